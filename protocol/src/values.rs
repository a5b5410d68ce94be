//! The wire-value grammar of PROTOCOL.md §1.4 / §6, defined once for the client engine
//! and the server: UUID text ⇄ 16 bytes, standard base64 ⇄ bytes, INTEGER / REAL numbers,
//! and RFC 3339 instants. Pure functions, no SQLite, no I/O.
//!
//! Where the engine and the server did the same thing differently, both behaviours are
//! kept (each caller's current behaviour exactly) and the difference is named here:
//!
//! | function | replaces (engine) | replaces (server) |
//! |---|---|---|
//! | [`hex_encode`] / [`hex_decode`] | `codec::hex_encode` / `codec::hex_decode` | — |
//! | [`uuid_text`] | `codec::uuid_text` | — |
//! | [`parse_canonical_uuid`] | `codec::parse_canonical_uuid` (returns `[u8; 16]` now; `.to_vec()` where a `Vec` is bound) | — |
//! | [`is_canonical_uuid`] | — | `codec::is_canonical_uuid` (sync keys) |
//! | [`normalize_uuid`] | — | `uuid::Uuid::parse_str(..).hyphenated()` in `codec::wire_to_sql` (UUID payload columns), and the `push_id` / `snapshot_id` checks |
//! | [`encode_base64`] | `BASE64.encode` in `codec` | `BASE64.encode` in `codec::sql_to_wire`, `service::snapshot` |
//! | [`decode_base64`] | `codec::parse_exact_base64` | `BASE64.decode` in `codec::wire_to_sql` |
//! | [`integer_of`] | `codec::integer_of` | the INTEGER arm of `codec::wire_to_sql` |
//! | [`real_of`] | the REAL arm of `codec::wire_value_to_sql` | the REAL arm of `codec::wire_to_sql` |
//! | [`canonical_real`] | `codec::canonical_real` (push: local REAL → wire) | — |
//! | [`real_value`] | — | `codec::float_value` (stored REAL → wire) |
//! | [`rfc3339::parse`] / [`rfc3339::Instant`] | `rfc3339::parse` / `rfc3339::Instant` | — |
//! | [`rfc3339::format_millis`] | — | `timefmt::rfc3339_from_ms` |
//!
//! Differences kept on purpose:
//! * **UUID strictness.** The engine accepts only the canonical lowercase dashed text on
//!   the wire ([`parse_canonical_uuid`]), fail-closed on anything a conforming server
//!   would not send. The server is strict for *sync keys* ([`is_canonical_uuid`], as the Go
//!   reference) but lenient for UUID *payload columns* ([`normalize_uuid`]: any form the
//!   `uuid` crate parses — simple, dashed in either case, braced, `urn:uuid:` — stored
//!   canonically), as the reference's Postgres `uuid` type accepts them.
//! * **REAL output.** The engine pushes integral REAL values as integers (`1.0` → `1`,
//!   [`canonical_real`]), matching what `json_object()` in the capture triggers produces
//!   and the canonical-JSON number form. The server writes a stored REAL back as the f64 it
//!   holds (`1.0` stays `1.0`, non-finite → `null`, [`real_value`]). Both hash identically
//!   (canonical JSON prints every number as an ECMAScript number), so the difference is only
//!   in bytes on the wire; neither side is changed here.
//! * **base64.** The engine checked that decoding re-encodes to the same text; the server
//!   decoded with the same `STANDARD` engine alone. In base64 0.22 `STANDARD` requires
//!   canonical padding and rejects non-zero trailing bits, so the two accept exactly the
//!   same strings; [`decode_base64`] keeps the round-trip check as a guard should that
//!   configuration ever change (see `base64_decoding_is_exact`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Number, Value};

// ---------- hex (the local BLOB form of the capture triggers) ----------

/// Lowercase hex of `bytes`.
pub fn hex_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Hex (either case) → bytes; `None` on odd length or a non-hex digit.
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

// ---------- UUID ----------

/// 16 bytes → canonical lowercase dashed UUID text (`8-4-4-4-12`); `None` for any other length.
pub fn uuid_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    let h = hex_encode(bytes);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// True for exactly the canonical 36-character lowercase dashed form.
pub fn is_canonical_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// Strict: the canonical lowercase dashed text → its 16 bytes; anything else → `None`.
pub fn parse_canonical_uuid(text: &str) -> Option<[u8; 16]> {
    if !is_canonical_uuid(text) {
        return None;
    }
    let bytes = hex_decode(&text.replace('-', ""))?;
    bytes.try_into().ok()
}

/// Lenient: any UUID form the `uuid` crate parses → the canonical lowercase dashed text.
/// The server's rule for UUID payload columns and for session ids in paths.
pub fn normalize_uuid(text: &str) -> Option<String> {
    uuid::Uuid::parse_str(text)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

// ---------- base64 ----------

/// Standard (RFC 4648 §4, padded) base64 of `bytes`.
pub fn encode_base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Standard padded base64 → bytes. Strict: only the exact text [`encode_base64`] would
/// produce is accepted (no missing padding, no non-zero trailing bits, no whitespace).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = BASE64.decode(text).ok()?;
    (BASE64.encode(&bytes) == text).then_some(bytes)
}

// ---------- numbers ----------

/// A wire INTEGER: an `i64` JSON number, or an integral float with |f| < 9.2e18 (Go's
/// encoder may print large integral values in exponent form: `1e3` → 1000).
pub fn integer_of(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

/// A wire REAL: any JSON number as its f64.
pub fn real_of(n: &Number) -> Option<f64> {
    n.as_f64()
}

/// The engine's push form of a REAL: a finite number with integral values (below 2^53)
/// written as integers (`1.0` → `1`); integers pass through; non-finite → `None`.
pub fn canonical_real(n: &Number) -> Option<Value> {
    if n.is_i64() || n.is_u64() {
        return Some(Value::Number(n.clone()));
    }
    let f = n.as_f64()?;
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        return Some(Value::from(f as i64));
    }
    Number::from_f64(f).map(Value::Number)
}

/// The server's form of a stored REAL: the f64 as is (`1.0` serialises as `1.0`);
/// a non-finite value, which JSON cannot carry, → `null`.
pub fn real_value(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

// ---------- RFC 3339 ----------

/// RFC 3339 instants: the strict parse the engine uses for the timestamp rule of typed
/// equivalence (§6.4) and `expires_at` validation, and the UTC formatting the server uses
/// for every timestamp it sends (Go's `time.RFC3339Nano` shape at millisecond precision).
pub mod rfc3339 {
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

    /// Days since 1970-01-01 → (year, month, day), the inverse of `days_from_civil`.
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

    fn days_in_month(y: i64, m: i64) -> i64 {
        match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            _ => 28,
        }
    }

    /// Parses `text` as a strict RFC 3339 date-time with an explicit offset:
    /// `YYYY-MM-DDTHH:MM:SS(.fraction)?(Z|±HH:MM)` (upper-case `T` and `Z` only).
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
        if !(1..=12).contains(&mo)
            || d < 1
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || se > 60
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

    /// Milliseconds since the Unix epoch → RFC 3339 UTC text as Go's `time.RFC3339Nano`
    /// prints it: the fraction without trailing zeros (omitted when zero), `Z` suffix.
    pub fn format_millis(ms: i64) -> String {
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
}

#[cfg(test)]
mod tests {
    use super::rfc3339::{format_millis, parse};
    use super::*;
    use serde_json::json;

    fn num(v: Value) -> Number {
        match v {
            Value::Number(n) => n,
            other => panic!("{other} is not a number"),
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_text() {
        assert_eq!(hex_encode(&[0xde, 0xad, 0x0f]), "dead0f");
        assert_eq!(hex_decode("DEAD0f"), Some(vec![0xde, 0xad, 0x0f]));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode(""), Some(vec![]));
    }

    #[test]
    fn uuid_text_is_strict_and_canonical() {
        let bytes: [u8; 16] = hex_decode("00112233445566778899aabbccddeeff")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            uuid_text(&bytes).unwrap(),
            "00112233-4455-6677-8899-aabbccddeeff"
        );
        assert_eq!(
            parse_canonical_uuid("00112233-4455-6677-8899-aabbccddeeff"),
            Some(bytes)
        );
        assert!(is_canonical_uuid("00112233-4455-6677-8899-aabbccddeeff"));
        for bad in [
            "00112233-4455-6677-8899-AABBCCDDEEFF",
            "00112233445566778899aabbccddeeff",
            "{00112233-4455-6677-8899-aabbccddeeff}",
            "00112233-4455-6677-8899-aabbccddeef",
            "0011223-34455-6677-8899-aabbccddeeff",
        ] {
            assert_eq!(parse_canonical_uuid(bad), None, "{bad}");
            assert!(!is_canonical_uuid(bad), "{bad}");
        }
        assert_eq!(uuid_text(&[1, 2, 3]), None);
    }

    #[test]
    fn lenient_uuid_normalises_every_parseable_form() {
        let canonical = "3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10";
        for form in [
            canonical,
            "3F1C0B0E-8D52-4A7E-9A51-0C6C3F1B2A10",
            "3f1c0b0e8d524a7e9a510c6c3f1b2a10",
            "{3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10}",
            "urn:uuid:3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10",
        ] {
            assert_eq!(normalize_uuid(form).as_deref(), Some(canonical), "{form}");
        }
        assert_eq!(normalize_uuid("nope"), None);
        assert_eq!(normalize_uuid(""), None);
    }

    #[test]
    fn base64_decoding_is_exact() {
        assert_eq!(encode_base64(&[0xde, 0xad, 0xbe, 0xef]), "3q2+7w==");
        assert_eq!(
            decode_base64("3q2+7w=="),
            Some(vec![0xde, 0xad, 0xbe, 0xef])
        );
        assert_eq!(decode_base64(""), Some(vec![]));
        for bad in [
            "3q2+7w",
            "3q2+7w=",
            "3q2+7x==",
            "3q2-7w==",
            "3q2+ 7w==",
            "not base64!",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad}");
            // The bare STANDARD decode (the server's former rule) rejects the same texts.
            assert!(BASE64.decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integers_accept_integral_floats_within_range() {
        assert_eq!(integer_of(&num(json!(-42))), Some(-42));
        assert_eq!(integer_of(&num(json!(1e3))), Some(1000));
        assert_eq!(integer_of(&num(json!(1.5))), None);
        assert_eq!(integer_of(&num(json!(1e30))), None);
        assert_eq!(integer_of(&num(json!(u64::MAX))), None);
        assert_eq!(real_of(&num(json!(3))), Some(3.0));
    }

    #[test]
    fn the_two_real_output_forms() {
        // Engine (push): integral values as integers.
        assert_eq!(canonical_real(&num(json!(1.0))), Some(json!(1)));
        assert_eq!(canonical_real(&num(json!(1.5))), Some(json!(1.5)));
        assert_eq!(canonical_real(&num(json!(7))), Some(json!(7)));
        assert_eq!(canonical_real(&num(json!(1e300))), Some(json!(1e300)));
        // Server (stored REAL): the f64 as is.
        assert_eq!(serde_json::to_string(&real_value(1.0)).unwrap(), "1.0");
        assert_eq!(real_value(1.5), json!(1.5));
        assert_eq!(real_value(f64::NAN), Value::Null);
        assert_eq!(real_value(f64::INFINITY), Value::Null);
    }

    #[test]
    fn rfc3339_offset_equivalent_instants_compare_equal() {
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
    fn rfc3339_rejects_non_rfc3339_text() {
        assert!(parse("2026-06-09 10:13:08").is_none());
        assert!(parse("not-a-timestamp").is_none());
        assert!(parse("2026-02-30T00:00:00Z").is_none());
        assert!(parse("2026-03-24T18:42:11").is_none());
        assert!(parse("2026-03-24T18:42:11.Z").is_none());
        assert!(parse("2026-03-24T18:42:11z").is_none());
    }

    #[test]
    fn rfc3339_formats_like_go_rfc3339nano() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_millis(1_774_377_731_500), "2026-03-24T18:42:11.5Z");
        assert_eq!(format_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_millis(-1), "1969-12-31T23:59:59.999Z");
        assert!(format_millis(i64::MAX).ends_with(".807Z"));
    }

    #[test]
    fn rfc3339_formatting_parses_back_to_the_same_instant() {
        for ms in [0, 1_774_377_731_500, 951_782_400_123, 4_102_444_800_010] {
            let instant = parse(&format_millis(ms)).unwrap();
            assert_eq!(instant.epoch_seconds, ms.div_euclid(1000), "{ms}");
            let frac = format!("{:03}", ms.rem_euclid(1000));
            assert_eq!(instant.fraction, frac.trim_end_matches('0'), "{ms}");
        }
    }
}
