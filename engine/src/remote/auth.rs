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
