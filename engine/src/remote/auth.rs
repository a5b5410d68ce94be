//! Bearer-token providers. Tokens are fetched per request (so rotated tokens are
//! picked up), never stored in the database and never included in errors or logs.

use std::sync::{Arc, Mutex};

use crate::error::{ErrorKind, Result, SyncError};

/// Supplies the bearer token for each request.
pub trait TokenProvider: Send + Sync {
    /// The token to send, or `None` to send no `Authorization` header.
    fn token(&self) -> Result<Option<String>>;

    /// Called once after a 401. `Some(token)` sends the request once more with that
    /// token; `None` (the default) lets the 401 stand.
    fn token_after_unauthorized(&self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// No authentication (test servers, or auth done by a proxy).
pub struct NoToken;

impl TokenProvider for NoToken {
    fn token(&self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// A token held in memory and replaceable at any time (the SQL layer's
/// `oversqlite_set_token`). Cloning shares the same slot.
#[derive(Clone, Default)]
pub struct SharedToken {
    slot: Arc<Mutex<Option<String>>>,
}

impl SharedToken {
    pub fn new(token: Option<String>) -> Self {
        SharedToken {
            slot: Arc::new(Mutex::new(token)),
        }
    }

    pub fn set(&self, token: Option<String>) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) =
            token.filter(|t| !t.trim().is_empty());
    }

    pub fn get(&self) -> Option<String> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl TokenProvider for SharedToken {
    fn token(&self) -> Result<Option<String>> {
        Ok(self.get())
    }
}

/// Reads `OVERSQLITE_TOKEN`, else the file named by `OVERSQLITE_TOKEN_FILE`, on
/// every request (so a token file rewritten by another process is picked up).
pub struct EnvToken;

pub const TOKEN_ENV: &str = "OVERSQLITE_TOKEN";
pub const TOKEN_FILE_ENV: &str = "OVERSQLITE_TOKEN_FILE";

impl TokenProvider for EnvToken {
    fn token(&self) -> Result<Option<String>> {
        if let Ok(t) = std::env::var(TOKEN_ENV) {
            if !t.trim().is_empty() {
                return Ok(Some(t.trim().to_string()));
            }
        }
        if let Ok(path) = std::env::var(TOKEN_FILE_ENV) {
            if !path.trim().is_empty() {
                let text = std::fs::read_to_string(path.trim()).map_err(|e| {
                    SyncError::new(
                        ErrorKind::TokenUnavailable,
                        format!(
                            "cannot read the token file named by {TOKEN_FILE_ENV}: {}",
                            e.kind()
                        ),
                    )
                })?;
                let t = text.trim();
                if !t.is_empty() {
                    return Ok(Some(t.to_string()));
                }
            }
        }
        Ok(None)
    }

    fn token_after_unauthorized(&self) -> Result<Option<String>> {
        // A token file may have been rotated since the request was built.
        if std::env::var(TOKEN_FILE_ENV)
            .map(|p| p.trim().is_empty())
            .unwrap_or(true)
        {
            return Ok(None);
        }
        self.token()
    }
}

/// A host callback: `f(false)` for a normal request, `f(true)` once after a 401 to
/// ask for a refreshed token.
pub struct CallbackToken<F>(pub F);

impl<F> TokenProvider for CallbackToken<F>
where
    F: Fn(bool) -> Result<Option<String>> + Send + Sync,
{
    fn token(&self) -> Result<Option<String>> {
        (self.0)(false)
    }

    fn token_after_unauthorized(&self) -> Result<Option<String>> {
        (self.0)(true)
    }
}

/// Tries providers in order and uses the first that yields a token (e.g. the
/// per-connection token, then the environment).
pub struct FirstToken(pub Vec<Arc<dyn TokenProvider>>);

impl TokenProvider for FirstToken {
    fn token(&self) -> Result<Option<String>> {
        for p in &self.0 {
            if let Some(t) = p.token()? {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    fn token_after_unauthorized(&self) -> Result<Option<String>> {
        for p in &self.0 {
            if let Some(t) = p.token_after_unauthorized()? {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}

/// The `sub` claim of a JWT-shaped token (`header.payload.signature`, base64url), read
/// without checking the signature; `None` for opaque tokens or a payload without a
/// string `sub`. Only the claim is returned, never any part of the token.
pub fn jwt_subject(token: &str) -> Option<String> {
    use base64::Engine as _;
    let mut parts = token.trim().split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_string)
}

/// Refuses `attach(user)` when `token` is a JWT for another user: the server binds
/// data to the token's subject, so the device would hold that user's data as `user`.
/// The message names both users, never the token.
pub fn check_token_user(token: Option<&str>, user: &str) -> Result<()> {
    match token.and_then(jwt_subject) {
        Some(sub) if sub != user => Err(SyncError::new(
            ErrorKind::TokenUserMismatch,
            format!(
                "the bearer token belongs to user {sub:?} (its sub claim), not {user:?}; attach as {sub:?} or set a token for {user:?}"
            ),
        )),
        _ => Ok(()),
    }
}

/// A provider whose first `token()` answer was fetched ahead (to inspect it before
/// any request) and is handed out once; later calls ask the inner provider as usual,
/// so a host token function is not asked one extra time. A failure to get a token is
/// kept for the first request too: a step that sends nothing (a resumed attach) needs
/// no token.
pub struct PrefetchedToken<'a> {
    inner: &'a dyn TokenProvider,
    first: Mutex<Option<Result<Option<String>>>>,
}

impl<'a> PrefetchedToken<'a> {
    pub fn fetch(inner: &'a dyn TokenProvider) -> Self {
        PrefetchedToken {
            inner,
            first: Mutex::new(Some(inner.token())),
        }
    }

    /// The prefetched token, if there is one and it has not been handed out yet.
    pub fn peek(&self) -> Option<String> {
        match &*self.first.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Ok(t)) => t.clone(),
            _ => None,
        }
    }
}

impl TokenProvider for PrefetchedToken<'_> {
    fn token(&self) -> Result<Option<String>> {
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner()).take();
        match first {
            Some(t) => t,
            None => self.inner.token(),
        }
    }

    fn token_after_unauthorized(&self) -> Result<Option<String>> {
        self.inner.token_after_unauthorized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn jwt(claims: &str) -> String {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            b.encode(r#"{"alg":"HS256"}"#),
            b.encode(claims)
        )
    }

    #[test]
    fn token_user_mismatch_reads_the_sub_claim_only() {
        assert_eq!(
            jwt_subject(&jwt(r#"{"sub":"alice"}"#)).as_deref(),
            Some("alice")
        );
        assert_eq!(jwt_subject("opaque-token"), None);
        assert_eq!(jwt_subject("a.b.c.d"), None);
        assert_eq!(jwt_subject(&jwt(r#"{"sub":7}"#)), None);
        let token = jwt(r#"{"sub":"alice"}"#);
        let e = check_token_user(Some(&token), "bob").unwrap_err();
        assert_eq!(e.kind, ErrorKind::TokenUserMismatch);
        assert!(e.message.contains("\"alice\"") && e.message.contains("\"bob\""));
        assert!(!e.message.contains(&token));
        assert!(check_token_user(Some(&token), "alice").is_ok());
        assert!(check_token_user(Some("opaque"), "bob").is_ok());
        assert!(check_token_user(None, "bob").is_ok());
    }
}
