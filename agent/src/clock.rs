//! The process's one clock.
//!
//! Every stage's pure core takes the time as an argument; only this module and the drivers
//! (the tasks and threads around the cores) read the operating system's clocks. Two readings:
//!
//! - **agent time** ([`Clock::now_ms`]): monotonic milliseconds since the agent started, for
//!   intervals, deadlines, timeouts and latencies. Never goes back.
//! - **wall time** ([`Clock::unix_ms`]): Unix milliseconds, stamped into what leaves the agent
//!   (record creation times) and into ages compared across restarts. May step (NTP).
//!
//! [`Now`] carries both, taken together, into a core that needs both.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The clock the agent started with; cheap to copy into every driver.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

/// Agent time and wall time read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds since the agent started (monotonic).
    pub ms: u64,
    /// Unix milliseconds (wall clock).
    pub unix_ms: u64,
}

impl Clock {
    /// A clock whose agent time starts now.
    pub fn start() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// Agent time: milliseconds since [`Clock::start`].
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Wall time: Unix milliseconds (0 if the system clock is before 1970).
    pub fn unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Both readings.
    pub fn now(&self) -> Now {
        Now {
            ms: self.now_ms(),
            unix_ms: self.unix_ms(),
        }
    }

    /// The instant of agent time `ms`, for a driver's timer (`tokio::time::sleep_until`).
    pub fn instant_at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }
}

/// How long a piece of work took (feature extraction, inference), for metrics and logs.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts timing.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Time since [`Stopwatch::start`].
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}
