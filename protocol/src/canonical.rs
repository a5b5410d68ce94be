//! Canonical JSON exactly as the go-oversync server computes it (PROTOCOL.md §8.2):
//! byte-wise sorted object keys, no whitespace, ECMAScript number formatting and Go
//! `encoding/json` string escaping (including the HTML-safe `<`, `>`, `&`, U+2028, U+2029).

use serde_json::{Number, Value};

/// Canonical text of a JSON value.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Parses JSON text and returns its canonical form (the server marshals, re-parses and
/// re-serialises; this is the same round trip).
pub fn canonicalize_json_text(text: &str) -> Result<String, serde_json::Error> {
    let value: Value = serde_json::from_str(text)?;
    Ok(canonical_json(&value))
}

/// Appends the canonical text of `value` to `out`.
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&format_number(n)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

/// Appends the canonical text of a JSON object (keys sorted byte-wise).
pub fn write_object(out: &mut String, map: &serde_json::Map<String, Value>) {
    // Sorted explicitly: serde_json's map keeps insertion order if any crate in the
    // build enables `preserve_order`. `str` ordering is byte-wise UTF-8 ordering.
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, &map[key.as_str()]);
    }
    out.push('}');
}

/// Every number goes through an IEEE-754 double, as in the Go server, so integers above
/// 2^53 lose precision the same way on both sides.
fn format_number(n: &Number) -> String {
    let f = n.as_f64().unwrap_or(0.0);
    ecmascript_number_to_string(f)
}

/// Number text as Go's `encoding/json` writes a float64, which is ECMAScript
/// `Number.prototype.toString` (shortest round-trip digits, plain notation for
/// 1e-6 <= |x| < 1e21, exponent notation otherwise) with one difference: negative zero
/// prints as `-0` (Go formats zero with `strconv.AppendFloat(f, 'f', -1, 64)`, which keeps
/// the sign), where ECMAScript prints `0`. The Go server's hash is what must be matched.
pub fn ecmascript_number_to_string(value: f64) -> String {
    // Fast path for the common case (row versions, ordinals, counters): an integral
    // value below 2^53 prints as its integer digits under both rules; `i64` Display
    // gives exactly those digits without the shortest-round-trip search.
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() < EXACT && !(value == 0.0 && value.is_sign_negative()) {
        return (value as i64).to_string();
    }
    shortest_round_trip_text(value)
}

/// The general ECMAScript algorithm (every finite double).
fn shortest_round_trip_text(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        // JSON cannot carry NaN/Infinity.
        return if value.is_sign_negative() && value == 0.0 {
            "-0"
        } else {
            "0"
        }
        .to_string();
    }
    let mut out = String::new();
    if value < 0.0 {
        out.push('-');
    }
    // `{:e}` yields the shortest round-trip digits as `d[.ddd]e<exp>`.
    let sci = format!("{:e}", value.abs());
    let (mantissa, exponent) = sci.split_once('e').expect("LowerExp always contains 'e'");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i32 = exponent.parse().expect("LowerExp exponent is an integer");
    let k = digits.len() as i32;
    // n: position of the decimal point relative to the digit string (ECMA-262 notation).
    let n = exponent + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
    out
}

/// Appends `s` as a JSON string with Go `encoding/json` escaping (HTML escaping on).
pub fn write_string(out: &mut String, s: &str) {
    // Runs of characters that need no escape are copied in one piece; the scan looks at
    // bytes, and every split point is a character boundary (an ASCII byte, or the lead
    // byte of U+2028/U+2029).
    out.push('"');
    let bytes = s.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let width = match bytes[i] {
            b'"' | b'\\' | b'<' | b'>' | b'&' | 0x00..=0x1f => 1,
            0xe2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                3
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        let c = s[i..]
            .chars()
            .next()
            .expect("escape at a character boundary");
        write_escape(out, c);
        i += width;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn write_escape(out: &mut String, c: char) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        _ => {
            let code = c as u32;
            out.push_str("\\u");
            for shift in [12, 8, 4, 0] {
                out.push(HEX[((code >> shift) & 0xf) as usize] as char);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_follow_ecmascript_formatting() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (1000.0, "1000"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (0.1, "0.1"),
            (0.000001, "0.000001"),
            (0.0000001, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e21, "1e+21"),
            (1.2345e22, "1.2345e+22"),
            (9007199254740993.0, "9007199254740992"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (value, expected) in cases {
            assert_eq!(ecmascript_number_to_string(*value), *expected, "{value:e}");
        }
    }

    #[test]
    fn integer_fast_path_agrees_with_the_general_algorithm() {
        let mut samples: Vec<f64> = (-2000..2000).map(|i| i as f64).collect();
        let mut v = 1.0f64;
        while v < 9_007_199_254_740_992.0 {
            samples.extend([v, v - 1.0, v + 1.0, -v, v * 7.0]);
            v *= 3.0;
        }
        samples.extend([
            9_007_199_254_740_991.0,
            -9_007_199_254_740_991.0,
            1e15,
            1e16,
        ]);
        for x in samples {
            assert_eq!(
                ecmascript_number_to_string(x),
                shortest_round_trip_text(x),
                "{x:e}"
            );
        }
    }

    #[test]
    fn integers_and_floats_share_one_notation() {
        let text = canonicalize_json_text(
            r#"[1, 1.0, 1e3, 1.50, 0.0, -0.0, -0, 9007199254740993, 12345678901234567890]"#,
        )
        .unwrap();
        assert_eq!(
            text,
            "[1,1,1000,1.5,0,-0,-0,9007199254740992,12345678901234567000]"
        );
    }

    /// The escaping rule written character by character, as the reference for the
    /// run-copying writer.
    fn escape_char_by_char(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"'
                | '\\'
                | '\n'
                | '\r'
                | '\t'
                | '\u{8}'
                | '\u{c}'
                | '<'
                | '>'
                | '&'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{0}'..='\u{1f}' => write_escape(&mut out, c),
                _ => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn run_copying_writer_matches_the_per_character_rule() {
        let alphabet: Vec<char> =
            "a\"\\<>&\n\u{1}\u{1f} é€😀\u{2028}\u{2029}\u{2027}\u{202a}\u{80}\u{7f}"
                .chars()
                .collect();
        // Every string of length <= 3 over the alphabet, plus a few long ones.
        let mut samples = vec![String::new(), "plain ascii text only".repeat(20)];
        for a in &alphabet {
            for b in &alphabet {
                for c in &alphabet {
                    samples.push([*a, *b, *c].iter().collect());
                }
            }
        }
        samples.push(alphabet.iter().cycle().take(500).collect());
        for s in samples {
            let mut out = String::new();
            write_string(&mut out, &s);
            assert_eq!(out, escape_char_by_char(&s), "{s:?}");
        }
    }

    #[test]
    fn strings_use_go_html_safe_escaping() {
        let value = json!("a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}<>&\u{2028}\u{2029}/é😀");
        assert_eq!(
            canonical_json(&value),
            "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\\u003c\\u003e\\u0026\\u2028\\u2029/é😀\""
        );
    }

    #[test]
    fn object_keys_sorted_bytewise_without_whitespace() {
        let text = canonicalize_json_text(
            r#"{ "b": 1, "a": [true, false, null], "B": {"é": 1, "z": 2}, "_": "" }"#,
        )
        .unwrap();
        assert_eq!(
            text,
            r#"{"B":{"z":2,"é":1},"_":"","a":[true,false,null],"b":1}"#
        );
    }
}
