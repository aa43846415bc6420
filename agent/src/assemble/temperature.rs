//! Temperature level and rate of rise over a bounded time horizon.
//!
//! A pure accumulator: the caller passes each reading with its own timestamp (seconds on any
//! monotonic scale, e.g. the sensor frame's timestamp), and asks for the level and the rate.
//! Nothing here reads a clock.
//!
//! # Invariants
//!
//! - Kept timestamps are non-decreasing. A reading earlier than the newest one kept starts a
//!   new series ([`Pushed::Restarted`]): the old readings are on another time base (a sensor
//!   reboot, a clock step), so fitting across the jump would be meaningless, and refusing the
//!   reading would stall the trend until the clock caught up again.
//! - Non-finite readings are refused and leave the state unchanged.
//! - After a push at time `t`, every kept reading is at or after `t − horizon_s`, and at most
//!   `max_points` readings are kept (the oldest is dropped first).
//! - The rate is the least-squares slope of the kept readings, reported only when they span at
//!   least `min_span_s`; the level is that line evaluated at the newest timestamp (the mean of
//!   the readings while the span is shorter).

use std::collections::VecDeque;

use thiserror::Error;

use crate::field::FieldError;
use serde::{Deserialize, Serialize};

/// A reading the trend refused. Recoverable: the state is unchanged; carry on with the next
/// reading.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TrendError {
    /// The timestamp or the temperature is NaN or infinite.
    #[error("temperature reading is not finite: t = {t_s} s, {celsius} °C")]
    NotFinite {
        /// The rejected timestamp, s.
        t_s: f64,
        /// The rejected temperature, °C.
        celsius: f64,
    },
}

/// What [`TemperatureTrend::push`] did with a reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pushed {
    /// Added to the series.
    Added,
    /// The reading was earlier than the newest one kept (at `previous_newest_s`), so the old
    /// readings were forgotten and a new series starts with it.
    Restarted {
        /// The newest timestamp of the forgotten series, s.
        previous_newest_s: f64,
    },
}

/// Least-squares temperature trend over the last `horizon_s` seconds.
#[derive(Debug, Clone)]
pub struct TemperatureTrend {
    cfg: TemperatureTrendConfig,
    /// `(t_s, celsius)`, oldest first.
    points: VecDeque<(f64, f64)>,
}

impl Default for TemperatureTrend {
    /// An empty trend with [`TemperatureTrendConfig::default`].
    fn default() -> Self {
        Self::new(&TemperatureTrendConfig::default()).expect("the default config is valid")
    }
}

impl TemperatureTrend {
    /// An empty trend. Allocates its `max_points` buffer once.
    pub fn new(cfg: &TemperatureTrendConfig) -> Result<Self, FieldError> {
        cfg.validate()?;
        Ok(Self {
            cfg: *cfg,
            points: VecDeque::with_capacity(cfg.max_points),
        })
    }

    /// Adds a reading taken at `t_s` seconds, then forgets readings older than the horizon. A
    /// reading from before the newest one starts a new series.
    pub fn push(&mut self, t_s: f64, celsius: f64) -> Result<Pushed, TrendError> {
        if !(t_s.is_finite() && celsius.is_finite()) {
            return Err(TrendError::NotFinite { t_s, celsius });
        }
        let mut pushed = Pushed::Added;
        if let Some(&(newest_s, _)) = self.points.back()
            && t_s < newest_s
        {
            self.points.clear();
            pushed = Pushed::Restarted {
                previous_newest_s: newest_s,
            };
        }
        if self.points.len() == self.cfg.max_points {
            self.points.pop_front();
        }
        self.points.push_back((t_s, celsius));
        let oldest_kept_s = t_s - self.cfg.horizon_s;
        while let Some(&(t, _)) = self.points.front() {
            if t >= oldest_kept_s {
                break;
            }
            self.points.pop_front();
        }
        Ok(pushed)
    }

    /// Forgets every reading.
    pub fn clear(&mut self) {
        self.points.clear();
    }

    /// Number of readings kept.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no reading is kept.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The newest reading as `(t_s, celsius)`.
    pub fn latest(&self) -> Option<(f64, f64)> {
        self.points.back().copied()
    }

    /// Smoothed current temperature, °C: the least-squares line at the newest timestamp, or the
    /// mean of the readings while they span less than `min_span_s`. `None` when empty.
    pub fn level(&self) -> Option<f64> {
        let fit = self.fit()?;
        Some(match fit.slope_c_per_s {
            Some(slope) => fit.mean_c + slope * (0.0 - fit.mean_t_s),
            None => fit.mean_c,
        })
    }

    /// Rate of change in °C per minute (positive when warming): the least-squares slope of the
    /// kept readings. `None` until they span at least `min_span_s`.
    pub fn rate_c_per_min(&self) -> Option<f64> {
        self.fit()?.slope_c_per_s.map(|slope| slope * 60.0)
    }

    /// Least squares with time measured from the newest reading, so epoch-sized timestamps do
    /// not lose precision.
    fn fit(&self) -> Option<Fit> {
        let &(newest_s, _) = self.points.back()?;
        let &(oldest_s, _) = self.points.front()?;
        let n = self.points.len() as f64;
        let (sum_t, sum_c) = self.points.iter().fold((0.0, 0.0), |(st, sc), &(t, c)| {
            (st + (t - newest_s), sc + c)
        });
        let (mean_t_s, mean_c) = (sum_t / n, sum_c / n);
        let slope_c_per_s = if newest_s - oldest_s >= self.cfg.min_span_s {
            let (sxy, sxx) = self.points.iter().fold((0.0, 0.0), |(sxy, sxx), &(t, c)| {
                let dt = t - newest_s - mean_t_s;
                (sxy + dt * (c - mean_c), sxx + dt * dt)
            });
            (sxx > 0.0).then(|| sxy / sxx)
        } else {
            None
        };
        Some(Fit {
            mean_t_s,
            mean_c,
            slope_c_per_s,
        })
    }
}

struct Fit {
    /// Mean timestamp relative to the newest, s (≤ 0).
    mean_t_s: f64,
    mean_c: f64,
    slope_c_per_s: Option<f64>,
}

/// Settings for [`TemperatureTrend`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemperatureTrendConfig {
    /// Readings older than this many seconds before the newest are forgotten. Default
    /// [`default_horizon_s`]: 600 s (10 min).
    pub horizon_s: f64,
    /// A rate is only reported once the readings kept span at least this many seconds, so two
    /// close noisy readings cannot produce a wild slope. Default [`default_min_span_s`]: 60 s.
    pub min_span_s: f64,
    /// Most readings kept; when full, the oldest is dropped (which shortens the effective
    /// horizon for very fast probes). Default [`default_max_points`]: 1024.
    pub max_points: usize,
}

/// Default [`TemperatureTrendConfig::horizon_s`]: 600 s.
pub const fn default_horizon_s() -> f64 {
    600.0
}

/// Default [`TemperatureTrendConfig::min_span_s`]: 60 s.
pub const fn default_min_span_s() -> f64 {
    60.0
}

/// Default [`TemperatureTrendConfig::max_points`]: 1024 (one reading per second for 17 min).
pub const fn default_max_points() -> usize {
    1024
}

impl Default for TemperatureTrendConfig {
    fn default() -> Self {
        Self {
            horizon_s: default_horizon_s(),
            min_span_s: default_min_span_s(),
            max_points: default_max_points(),
        }
    }
}

impl TemperatureTrendConfig {
    /// Checks the horizon is positive, the minimum span fits inside it, and at least two points
    /// are kept.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(self.horizon_s.is_finite() && self.horizon_s > 0.0) {
            return Err(FieldError::new(
                "temperature.horizon_s",
                format!("{} must be > 0", self.horizon_s),
            ));
        }
        if !(self.min_span_s.is_finite() && self.min_span_s > 0.0) {
            return Err(FieldError::new(
                "temperature.min_span_s",
                format!("{} must be > 0", self.min_span_s),
            ));
        }
        if self.min_span_s > self.horizon_s {
            return Err(FieldError::new(
                "temperature.min_span_s",
                format!(
                    "{} must not exceed horizon_s ({})",
                    self.min_span_s, self.horizon_s
                ),
            ));
        }
        if self.max_points < 2 {
            return Err(FieldError::new(
                "temperature.max_points",
                format!("{} must be >= 2", self.max_points),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend() -> TemperatureTrend {
        TemperatureTrend::default()
    }

    #[test]
    fn a_linear_ramp_gives_its_slope_and_its_current_level() {
        let mut trend = trend();
        // 1.5 °C/min from 40 °C, one reading every 5 s for 5 min, at epoch-sized timestamps.
        let t0 = 1.7e9;
        for i in 0..=60 {
            let t = t0 + 5.0 * f64::from(i);
            trend.push(t, 40.0 + 1.5 * (t - t0) / 60.0).unwrap();
        }
        let rate = trend.rate_c_per_min().unwrap();
        assert!((rate - 1.5).abs() < 1e-6, "rate {rate}");
        let level = trend.level().unwrap();
        assert!((level - 47.5).abs() < 1e-6, "level {level}");
    }

    #[test]
    fn readings_older_than_the_horizon_fall_out() {
        let mut trend = trend();
        // A hot spell long ago, then 10 min of a steady 30 °C.
        for i in 0..60 {
            trend.push(f64::from(i), 90.0).unwrap();
        }
        for i in 0..=60 {
            trend.push(1000.0 + 10.0 * f64::from(i), 30.0).unwrap();
        }
        assert_eq!(trend.len(), 61);
        assert_eq!(trend.rate_c_per_min(), Some(0.0));
        assert_eq!(trend.level(), Some(30.0));
    }

    #[test]
    fn no_rate_is_reported_until_the_readings_span_the_minimum() {
        let mut trend = trend();
        assert_eq!(trend.level(), None);
        trend.push(0.0, 20.0).unwrap();
        trend.push(1.0, 21.0).unwrap();
        assert_eq!(trend.rate_c_per_min(), None);
        assert_eq!(trend.level(), Some(20.5));
        trend.push(60.0, 21.0).unwrap();
        assert!(trend.rate_c_per_min().is_some());
    }

    #[test]
    fn the_oldest_reading_is_dropped_when_the_buffer_is_full() {
        let cfg = TemperatureTrendConfig {
            max_points: 3,
            ..TemperatureTrendConfig::default()
        };
        let mut trend = TemperatureTrend::new(&cfg).unwrap();
        for (t, c) in [(0.0, 99.0), (100.0, 10.0), (200.0, 20.0), (300.0, 30.0)] {
            trend.push(t, c).unwrap();
        }
        assert_eq!(trend.len(), 3);
        let rate = trend.rate_c_per_min().unwrap();
        assert!((rate - 6.0).abs() < 1e-9, "rate {rate}");
    }

    #[test]
    fn a_reading_from_the_past_starts_a_new_series() {
        let mut trend = trend();
        for i in 0..=10 {
            trend
                .push(1000.0 + 10.0 * f64::from(i), 50.0 + f64::from(i))
                .unwrap();
        }
        assert_eq!(
            trend.push(3.0, 20.0),
            Ok(Pushed::Restarted {
                previous_newest_s: 1100.0
            })
        );
        assert_eq!(trend.len(), 1);
        assert_eq!(trend.level(), Some(20.0));
        assert_eq!(trend.push(4.0, 21.0), Ok(Pushed::Added));
    }

    #[test]
    fn a_non_finite_reading_is_refused_and_changes_nothing() {
        let mut trend = trend();
        trend.push(100.0, 20.0).unwrap();
        assert!(matches!(
            trend.push(101.0, f64::NAN),
            Err(TrendError::NotFinite { .. })
        ));
        assert!(trend.push(f64::INFINITY, 20.0).is_err());
        assert_eq!(trend.latest(), Some((100.0, 20.0)));
        trend.clear();
        assert!(trend.is_empty());
    }
}
