//! Backoff between failed worker runs: exponential from `min`, capped at `max`, with
//! "equal jitter" (a uniform draw in the upper half of the step) so devices that failed
//! together (a server restart) do not come back in step. Never above `max`.
use std::time::Duration;

/// The wait after `failures` consecutive failures (1 = the first).
pub fn delay(failures: u32, min: Duration, max: Duration) -> Duration {
    delay_with(failures, min, max, random_unit())
}

/// [`delay`] with the random draw `unit` in [0, 1) given (for tests).
pub fn delay_with(failures: u32, min: Duration, max: Duration, unit: f64) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
    let step = min
        .saturating_mul(factor)
        .min(max)
        .max(Duration::from_millis(1));
    let half = step / 2;
    (half + half.mul_f64(unit.clamp(0.0, 1.0))).min(max)
}

/// A uniform value in [0, 1) from the OS-seeded UUID generator (no rand dependency).
fn random_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_jitters_and_stays_under_the_cap() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        assert_eq!(delay_with(1, min, max, 0.0), Duration::from_millis(50));
        assert_eq!(delay_with(1, min, max, 1.0), Duration::from_millis(100));
        assert_eq!(delay_with(3, min, max, 0.0), Duration::from_millis(200));
        assert_eq!(
            delay_with(30, min, max, 0.999),
            Duration::from_micros(999_500)
        );
        for f in 1..40 {
            assert!(delay(f, min, max) <= max);
        }
    }
}
