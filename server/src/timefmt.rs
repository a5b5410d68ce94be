//! Wall-clock helpers: milliseconds since the Unix epoch, and RFC3339 UTC text in the form
//! Go's `time.RFC3339Nano` produces (fraction without trailing zeros, `Z` suffix).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn rfc3339_from_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let second_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3600,
        (second_of_day / 60) % 60,
        second_of_day % 60
    );
    if millis != 0 {
        let fraction = format!("{millis:03}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
    fn formats_like_go_rfc3339nano() {
        assert_eq!(rfc3339_from_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_ms(1_774_377_731_500), "2026-03-24T18:42:11.5Z");
        assert_eq!(rfc3339_from_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        assert_eq!(deadline_ms(1_000, 900), 901_000);
        assert_eq!(deadline_ms(1_774_377_731_500, i64::MAX), i64::MAX);
        assert_eq!(deadline_ms(i64::MAX - 5, 1), i64::MAX);
        // The farthest deadline still renders (snapshot `expires_at`).
        assert!(rfc3339_from_ms(i64::MAX).ends_with(".807Z"));
    }
}
