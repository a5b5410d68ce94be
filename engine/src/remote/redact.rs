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

/// `text` with anything that looks like a credential replaced by [`REDACTED`]: the
/// word after `Bearer`, and JWT-shaped words (`eyJ…` with two dots). For texts kept
/// beyond the request that produced them (the sync journal), where the exact token
/// sent is no longer known. Then cut like [`server_text`].
pub fn scrub_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_bearer = false;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let bare = word
            .trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.');
        let jwt = bare.starts_with("eyJ") && bare.matches('.').count() >= 2;
        if (after_bearer && !bare.is_empty()) || jwt {
            out.push_str(&word.replace(bare, REDACTED));
        } else {
            out.push_str(word);
        }
        after_bearer = bare.eq_ignore_ascii_case("bearer");
    }
    server_text(&out, &[])
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

    #[test]
    fn scrub_credentials_removes_bearer_words_and_jwts() {
        assert_eq!(
            scrub_credentials("got Authorization: Bearer abc.def, then eyJhbGci.eyJzdWIi.sig!"),
            "got Authorization: Bearer [redacted], then [redacted]!"
        );
        assert_eq!(scrub_credentials("plain 1.2.3 text"), "plain 1.2.3 text");
    }
}
