//! systemd service notifications (the `sd_notify` protocol) for a `Type=notify` unit.
//!
//! The protocol is a datagram of `KEY=VALUE` lines sent to the Unix socket named by
//! `NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`). The agent sends:
//! - `READY=1` once the pipeline's stages are running (systemd then counts the start as done),
//! - `WATCHDOG=1` every half `WATCHDOG_USEC`, **only while [`Health`] says the pipeline is
//!   turning**: a stuck stage stops the pings and systemd kills and restarts the service after
//!   `WatchdogSec=`,
//! - `STATUS=...` lines (shown by `systemctl status`) when the health verdict changes and
//!   periodically with the number of windows scored,
//! - `STOPPING=1` when shutdown begins.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) nothing is sent. The decision of what to
//! send at each tick is pure ([`Watchdog::tick`]); [`spawn`] is a thin timer loop around it.

use crate::ops::health::{Health, HealthReport};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Errors of the notification set-up. None is fatal: the agent runs without notifications.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is not a usable socket address.
    #[error("NOTIFY_SOCKET={0:?} is not a socket path or @abstract name")]
    BadSocket(String),
    /// `WATCHDOG_USEC` is not a positive integer.
    #[error("WATCHDOG_USEC={0:?} is not a positive number of microseconds")]
    BadWatchdogUsec(String),
    /// Creating the sending socket failed.
    #[error("cannot create a datagram socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Sends notifications to the service manager.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for; `None` when it is unset or empty.
    pub fn from_env() -> Result<Option<Self>, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(s) if !s.is_empty() => Self::new(&s).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for a socket path or an `@abstract` name.
    pub fn new(socket: &str) -> Result<Self, NotifyError> {
        let addr = if let Some(name) = socket.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        } else if socket.starts_with('/') {
            SocketAddr::from_pathname(socket)
        } else {
            return Err(NotifyError::BadSocket(socket.into()));
        }
        .map_err(|_| NotifyError::BadSocket(socket.into()))?;
        Ok(Self {
            socket: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Sends one message (newline-separated `KEY=VALUE` lines).
    pub fn send(&self, state: &str) -> std::io::Result<()> {
        self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        Ok(())
    }

    fn send_logged(&self, state: &str) {
        if let Err(e) = self.send(state) {
            tracing::warn!(error = %e, state, "cannot notify the service manager");
        }
    }
}

/// The ping interval systemd asks for: half of `WATCHDOG_USEC`, if the watchdog is on and meant
/// for this process (`WATCHDOG_PID` unset or equal to `my_pid`).
pub fn watchdog_interval(
    usec: Option<&str>,
    pid: Option<&str>,
    my_pid: u32,
) -> Result<Option<Duration>, NotifyError> {
    let Some(usec) = usec.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(my_pid)) {
        return Ok(None);
    }
    match usec.trim().parse::<u64>() {
        Ok(u) if u > 0 => Ok(Some(Duration::from_micros(u / 2))),
        _ => Err(NotifyError::BadWatchdogUsec(usec.into())),
    }
}

/// How often a `STATUS=` line with the window count is sent while healthy, in ticks.
const STATUS_EVERY_TICKS: u64 = 20;

/// What to send at watchdog ticks, from the pipeline's health. Pure.
#[derive(Debug, Default)]
pub struct Watchdog {
    stalled: bool,
    ticks: u64,
}

impl Watchdog {
    /// The message for this tick (possibly empty: nothing to send).
    pub fn tick(&mut self, report: &HealthReport) -> String {
        let healthy = report.status == "ok";
        let mut msg = Vec::new();
        if healthy {
            msg.push("WATCHDOG=1".to_string());
        }
        let changed = healthy == self.stalled;
        if changed || (healthy && self.ticks.is_multiple_of(STATUS_EVERY_TICKS)) {
            msg.push(if healthy {
                format!("STATUS=running: {} windows scored", report.windows_scored)
            } else {
                format!(
                    "STATUS=pipeline stalled: no progress for {} ms; watchdog pings stopped",
                    report.assembler_age_ms
                )
            });
        }
        if changed && !healthy {
            tracing::error!(
                assembler_age_ms = report.assembler_age_ms,
                "pipeline stalled: watchdog pings stopped"
            );
        } else if changed {
            tracing::info!("pipeline healthy again: watchdog pings resumed");
        }
        self.stalled = !healthy;
        self.ticks += 1;
        msg.join("\n")
    }
}

/// Service-manager notifications of a running agent.
#[derive(Debug)]
pub struct Systemd {
    notifier: Option<Arc<Notifier>>,
}

impl Systemd {
    /// Shutdown began.
    pub fn stopping(&self) {
        if let Some(n) = &self.notifier {
            n.send_logged("STOPPING=1\nSTATUS=stopping: draining the pipeline");
        }
    }
}

/// Sends `READY=1` and starts the watchdog task (when systemd asked for one). Call once the
/// pipeline runs; the task ends on `shutdown`. Configuration errors are logged, not fatal.
pub fn spawn(health: Arc<Health>, shutdown: CancellationToken) -> Systemd {
    let notifier = match Notifier::from_env() {
        Ok(Some(n)) => Arc::new(n),
        Ok(None) => return Systemd { notifier: None },
        Err(e) => {
            tracing::error!(error = %e, "systemd notifications off");
            return Systemd { notifier: None };
        }
    };
    notifier.send_logged("READY=1\nSTATUS=running");
    let interval = watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    );
    match interval {
        Ok(Some(every)) => {
            tracing::info!(
                interval_ms = every.as_millis() as u64,
                "systemd watchdog on"
            );
            let n = notifier.clone();
            tokio::spawn(async move {
                let mut dog = Watchdog::default();
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tick.tick() => {
                            let msg = dog.tick(&health.report());
                            if !msg.is_empty() {
                                n.send_logged(&msg);
                            }
                        }
                    }
                }
            });
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "systemd watchdog off"),
    }
    Systemd {
        notifier: Some(notifier),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: &'static str, windows: u64) -> HealthReport {
        HealthReport {
            status,
            assembler_age_ms: if status == "ok" { 50 } else { 5_000 },
            last_window_age_ms: None,
            windows_scored: windows,
        }
    }

    #[test]
    fn the_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() {
        assert_eq!(watchdog_interval(None, None, 7).unwrap(), None);
        assert_eq!(
            watchdog_interval(Some("2000000"), None, 7).unwrap(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            watchdog_interval(Some("2000000"), Some("7"), 7).unwrap(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            watchdog_interval(Some("2000000"), Some("8"), 7).unwrap(),
            None
        );
        assert!(matches!(
            watchdog_interval(Some("soon"), None, 7),
            Err(NotifyError::BadWatchdogUsec(_))
        ));
        assert!(watchdog_interval(Some("0"), None, 7).is_err());
    }

    #[test]
    fn pings_go_out_only_while_healthy_and_each_change_is_announced() {
        let mut dog = Watchdog::default();
        let first = dog.tick(&report("ok", 0));
        assert!(
            first.starts_with("WATCHDOG=1\nSTATUS=running: 0 windows"),
            "{first}"
        );
        assert_eq!(dog.tick(&report("ok", 3)), "WATCHDOG=1");
        let stalled = dog.tick(&report("stalled", 3));
        assert!(!stalled.contains("WATCHDOG=1"), "{stalled}");
        assert!(stalled.starts_with("STATUS=pipeline stalled"), "{stalled}");
        assert_eq!(dog.tick(&report("stalled", 3)), "");
        let back = dog.tick(&report("ok", 4));
        assert!(back.starts_with("WATCHDOG=1\nSTATUS=running: 4"), "{back}");
    }

    #[test]
    fn a_notifier_sends_datagrams_to_a_path_socket_and_refuses_relative_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.to_str().unwrap()).unwrap();
        n.send("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        assert!(matches!(
            Notifier::new("relative/sock"),
            Err(NotifyError::BadSocket(_))
        ));
    }
}
