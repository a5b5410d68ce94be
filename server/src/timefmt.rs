//! Wall-clock helpers: milliseconds since the Unix epoch and saturating deadlines. RFC 3339
//! text of an instant is `oversqlite_protocol::values::rfc3339::format_millis` (re-exported
//! here as `rfc3339_from_ms`).

pub use oversqlite_protocol::values::rfc3339::format_millis as rfc3339_from_ms;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `now_ms` plus a TTL in seconds, saturating: a huge configured TTL means "never expires",
/// not an overflow panic (debug) or a wrapped, already-past deadline (release).
pub fn deadline_ms(now_ms: i64, ttl_secs: i64) -> i64 {
    now_ms.saturating_add(ttl_secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        assert_eq!(deadline_ms(1_000, 900), 901_000);
        assert_eq!(deadline_ms(1_774_377_731_500, i64::MAX), i64::MAX);
        assert_eq!(deadline_ms(i64::MAX - 5, 1), i64::MAX);
        // The farthest deadline still renders (snapshot `expires_at`).
        assert!(rfc3339_from_ms(i64::MAX).ends_with(".807Z"));
    }
}
