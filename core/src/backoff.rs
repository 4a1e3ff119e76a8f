//! Jittered exponential backoff. Randomness comes from a seeded generator so tests are exact.

use std::time::Duration;

/// xorshift64*: tiny, deterministic, good enough to spread retries of many clients.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Zero is a fixed point of xorshift.
        Self(seed.max(1) ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Backoff policy: delay `n` (0-based) is uniform in `[base·2ⁿ/2, base·2ⁿ]`, capped at `max`
/// ("equal jitter": never retries instantly, still spreads a thundering herd).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: u32, rng: &mut Rng) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let ceiling = exp.min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(rng.next_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_within_bounds() {
        let b = Backoff::default();
        let mut rng = Rng::new(42);
        for attempt in 0..40 {
            let ceiling = (b.base * 2u32.saturating_pow(attempt.min(20))).min(b.max);
            let d = b.delay(attempt, &mut rng);
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn jitter_spreads_clients() {
        let b = Backoff::default();
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|seed| b.delay(3, &mut Rng::new(seed)))
            .collect();
        assert!(delays.len() > 15, "jitter should differ between clients");
    }
}
