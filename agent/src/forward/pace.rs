//! The sending-rate cap. Pure: time (ms) is an input. (Retry backoff: [`crate::backoff::Backoff`],
//! shared with the sources' reconnects.)

/// Token buckets on records/s and bytes/s, each holding at most one second of its rate.
#[derive(Debug, Clone)]
pub struct Throttle {
    records_per_s: f64,
    bytes_per_s: f64,
    records: f64,
    bytes: f64,
    last_ms: Option<u64>,
}

impl Throttle {
    /// `bytes_per_s == 0` means no byte cap.
    pub fn new(records_per_s: f64, bytes_per_s: u64) -> Self {
        Self {
            records_per_s,
            bytes_per_s: bytes_per_s as f64,
            records: records_per_s.max(1.0),
            bytes: bytes_per_s as f64,
            last_ms: None,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let dt = self
            .last_ms
            .map_or(0.0, |l| now_ms.saturating_sub(l) as f64 / 1000.0);
        self.last_ms = Some(now_ms);
        self.records = (self.records + dt * self.records_per_s).min(self.records_per_s.max(1.0));
        if self.bytes_per_s > 0.0 {
            self.bytes = (self.bytes + dt * self.bytes_per_s).min(self.bytes_per_s);
        }
    }

    /// Takes one record of `bytes` at `now_ms`, or says how many ms until it may be sent. A
    /// record larger than a whole second of the byte rate is let through once the bucket is
    /// full, and drives it negative.
    pub fn take(&mut self, now_ms: u64, bytes: u64) -> Result<(), u64> {
        self.refill(now_ms);
        let mut wait_s: f64 = 0.0;
        if self.records < 1.0 {
            wait_s = wait_s.max((1.0 - self.records) / self.records_per_s);
        }
        if self.bytes_per_s > 0.0 {
            let need = (bytes as f64).min(self.bytes_per_s);
            if self.bytes < need {
                wait_s = wait_s.max((need - self.bytes) / self.bytes_per_s);
            }
        }
        if wait_s > 0.0 {
            return Err(((wait_s * 1000.0).ceil() as u64).max(1));
        }
        self.records -= 1.0;
        if self.bytes_per_s > 0.0 {
            self.bytes -= bytes as f64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_rate_holds_over_a_simulated_minute() {
        let mut t = Throttle::new(50.0, 0);
        let mut sent = 0;
        let mut now = 0;
        while now <= 60_000 {
            match t.take(now, 100) {
                Ok(()) => sent += 1,
                Err(wait) => now += wait,
            }
        }
        // One second of burst, then 50/s.
        assert!((3000..=3051).contains(&sent), "{sent}");
    }

    #[test]
    fn the_byte_rate_holds_and_says_how_long_to_wait() {
        let mut t = Throttle::new(1e6, 1000);
        assert_eq!(t.take(0, 600), Ok(()));
        assert_eq!(t.take(0, 600), Err(200));
        assert_eq!(t.take(200, 600), Ok(()));
        let mut sent = 0u64;
        let mut now = 200;
        while now <= 10_200 {
            match t.take(now, 100) {
                Ok(()) => sent += 100,
                Err(w) => now += w,
            }
        }
        assert!((9_900..=10_100).contains(&sent), "{sent}");
    }
}
