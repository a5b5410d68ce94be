//! Minimal RFC 3339 instant parsing, for the timestamp rule of typed equivalence
//! (§6.4) and `expires_at` validation. Only the strict profile
//! `YYYY-MM-DDTHH:MM:SS(.fraction)?(Z|±HH:MM)` is accepted.

/// An instant: whole seconds since the Unix epoch plus the fraction digits with
/// trailing zeros removed (so `.5` and `.500` compare equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instant {
    pub epoch_seconds: i64,
    pub fraction: String,
}

fn digits(s: &[u8], from: usize, n: usize) -> Option<i64> {
    let part = s.get(from..from + n)?;
    if !part.iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    std::str::from_utf8(part).ok()?.parse().ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses `text` as a strict RFC 3339 date-time with an explicit offset.
pub fn parse(text: &str) -> Option<Instant> {
    let s = text.as_bytes();
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || s[10] != b'T'
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(s, 0, 4)?, digits(s, 5, 2)?, digits(s, 8, 2)?);
    let (h, mi, se) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60
    {
        return None;
    }
    let mut i = 19;
    let mut fraction = String::new();
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        fraction = text[start..i].trim_end_matches('0').to_string();
    }
    let offset_seconds = match s.get(i) {
        Some(b'Z') if i + 1 == s.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == s.len() && s[i + 3] == b':' => {
            let (oh, om) = (digits(s, i + 1, 2)?, digits(s, i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let v = oh * 3600 + om * 60;
            if *sign == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    let epoch_seconds =
        days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset_seconds;
    Some(Instant {
        epoch_seconds,
        fraction,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn offset_equivalent_instants_compare_equal() {
        assert_eq!(
            parse("2026-03-24T18:42:11Z"),
            parse("2026-03-24T20:42:11+02:00")
        );
        assert_ne!(
            parse("2026-03-24T18:42:11Z"),
            parse("2026-03-24T20:42:12+02:00")
        );
        assert_eq!(
            parse("2026-03-24T18:42:11.500Z"),
            parse("2026-03-24T18:42:11.5Z")
        );
        assert_eq!(parse("1970-01-01T00:00:00Z").unwrap().epoch_seconds, 0);
    }

    #[test]
    fn rejects_non_rfc3339_text() {
        assert!(parse("2026-06-09 10:13:08").is_none());
        assert!(parse("not-a-timestamp").is_none());
        assert!(parse("2026-02-30T00:00:00Z").is_none());
        assert!(parse("2026-03-24T18:42:11").is_none());
    }
}
