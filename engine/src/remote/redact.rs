//! Redaction of anything derived from a server answer: a server (or a proxy) that
//! echoes the request's `Authorization` header into its error text must not put the
//! bearer token into an engine error, and a huge error text is cut.

/// Longest response-derived text kept in an error, in characters.
pub const MAX_SERVER_TEXT_CHARS: usize = 512;

/// What a redacted token is replaced with.
pub const REDACTED: &str = "[redacted]";

/// `text` with every `Bearer <token>` and bare `<token>` of `tokens` replaced by
/// [`REDACTED`], then cut to [`MAX_SERVER_TEXT_CHARS`] characters (with `…`).
/// Redaction runs before the cut, so no prefix of a token survives at the end.
pub fn server_text(text: &str, tokens: &[String]) -> String {
    let mut out = text.to_string();
    for t in tokens.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        for prefix in ["Bearer ", "bearer ", "BEARER "] {
            out = out.replace(&format!("{prefix}{t}"), REDACTED);
        }
        out = out.replace(t, REDACTED);
    }
    if out.chars().count() > MAX_SERVER_TEXT_CHARS {
        let mut cut: String = out.chars().take(MAX_SERVER_TEXT_CHARS).collect();
        cut.push('…');
        return cut;
    }
    out
}

/// The bearer token a request carries (the value after `Bearer `), if any.
pub fn bearer_of(headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Authorization"))
        .map(|(_, v)| {
            let v = v.trim();
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_redacts_the_token_and_caps_the_length() {
        let tok = vec!["tok.en-1".to_string()];
        assert_eq!(
            server_text("got Authorization: Bearer tok.en-1 and tok.en-1", &tok),
            "got Authorization: [redacted] and [redacted]"
        );
        let long = "x".repeat(2000) + "tok.en-1";
        let cut = server_text(&long, &tok);
        assert_eq!(cut.chars().count(), MAX_SERVER_TEXT_CHARS + 1);
        assert!(!cut.contains("tok"));
        assert_eq!(server_text("plain", &[]), "plain");
        assert_eq!(server_text("x", &[" ".into()]), "x");
    }
}
