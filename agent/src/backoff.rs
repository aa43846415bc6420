//! Retry delays for reconnecting sources and the Kafka forwarder. Pure: the caller supplies the
//! random draw and does the waiting.

/// Exponential backoff with full jitter: the n-th delay is uniform in `[min, min·2^n]`, capped
/// at `max`. Pure apart from the random draw, which the caller supplies.
#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    /// A backoff between `min_ms` and `max_ms`.
    pub fn new(min_ms: u64, max_ms: u64) -> Self {
        Self {
            min_ms: min_ms.max(1),
            max_ms: max_ms.max(min_ms.max(1)),
            attempt: 0,
        }
    }

    /// The next delay in ms; `unit` is a random number in `[0, 1)`.
    pub fn next_delay_ms(&mut self, unit: f64) -> u64 {
        let ceiling = self
            .min_ms
            .saturating_mul(1u64 << self.attempt.min(30))
            .min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        self.min_ms + ((ceiling - self.min_ms) as f64 * unit.clamp(0.0, 1.0)) as u64
    }

    /// Back to the shortest delay, after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::new(100, 1000);
        let highs: Vec<u64> = (0..6).map(|_| b.next_delay_ms(0.999_999)).collect();
        assert_eq!(highs, [99 + 1, 199, 399, 799, 999, 999]);
        b.reset();
        assert_eq!(b.next_delay_ms(0.0), 100);
    }

    #[test]
    fn jitter_spreads_delays_between_min_and_ceiling() {
        let mut b = Backoff::new(100, 10_000);
        b.next_delay_ms(0.5);
        b.next_delay_ms(0.5);
        // Third attempt: ceiling 400.
        assert_eq!(b.next_delay_ms(0.0), 100);
        let mut c = Backoff::new(100, 10_000);
        c.next_delay_ms(0.5);
        c.next_delay_ms(0.5);
        assert_eq!(c.next_delay_ms(0.5), 250);
    }
}
