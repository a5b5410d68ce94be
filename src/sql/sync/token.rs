//! Where the bearer token comes from, asked on every request and never persisted.
//!
//! Precedence (first that yields a non-empty token wins):
//! 1. `oversqlite_set_token(token)` on this connection (explicit, so it wins);
//! 2. the host's SQL function `oversqlite_auth_token()`, if registered on this connection;
//! 3. the environment variable `OVERSQLITE_TOKEN`;
//! 4. the file named by `OVERSQLITE_TOKEN_FILE` (re-read on every request).
//!
//! After a 401 only the source that supplied the rejected token is asked again: the host
//! function once more, the token file re-read. A token set by `oversqlite_set_token` or
//! `OVERSQLITE_TOKEN` cannot change by itself, so its 401 stands.
use std::sync::Mutex;

use oversqlite_engine::remote::auth::{
    EnvToken, SharedToken, TokenProvider, TOKEN_ENV, TOKEN_FILE_ENV,
};
use oversqlite_engine::{ErrorKind, Result, SyncError};

use super::host_fn::{call_host_function, HostCall};
use crate::sql::guard::connection;

/// The name of the optional host-registered token function.
pub const AUTH_FUNCTION: &str = "oversqlite_auth_token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    SetToken,
    HostFunction,
    Environment,
}

/// The connection's token chain; holds the connection handle (as an address, valid for
/// as long as this state lives: it is dropped when the connection closes).
pub struct ConnTokens {
    pub explicit: SharedToken,
    /// The last token the host function returned on this connection: what this
    /// connection's auto-sync worker uses, as it must never call the host function
    /// itself (see `auto_sync.rs`).
    pub host_cache: SharedToken,
    db: usize,
    last: Mutex<Option<Source>>,
}

fn non_empty(t: Option<String>) -> Option<String> {
    t.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

impl ConnTokens {
    pub fn new(db: *mut rusqlite::ffi::sqlite3) -> Self {
        ConnTokens {
            explicit: SharedToken::new(None),
            host_cache: SharedToken::new(None),
            db: db as usize,
            last: Mutex::new(None),
        }
    }

    fn remember(&self, source: Source) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// `SELECT oversqlite_auth_token()`; `None` when the host registered no such function.
    /// Asks the host function (on the calling thread, which must be a call on this
    /// connection) and refreshes `host_cache`; nothing when a token was set explicitly.
    pub fn refresh_host_cache(&self) -> Result<()> {
        if non_empty(self.explicit.get()).is_none() {
            self.ask_host()?;
        }
        Ok(())
    }

    fn ask_host(&self) -> Result<Option<String>> {
        let token = self.call_host()?;
        if token.is_some() {
            self.host_cache.set(token.clone());
        }
        Ok(token)
    }

    fn call_host(&self) -> Result<Option<String>> {
        // The handle belongs to the connection that owns this state; requests are only made
        // from calls on that connection, on the calling thread.
        let conn = connection(self.db as *mut rusqlite::ffi::sqlite3)?;
        match call_host_function(&conn, AUTH_FUNCTION, &[])? {
            HostCall::NotRegistered => Ok(None),
            HostCall::Value(v) => match v {
                rusqlite::types::Value::Null => Ok(None),
                rusqlite::types::Value::Text(t) => Ok(non_empty(Some(t))),
                _ => Err(SyncError::new(
                    ErrorKind::TokenUnavailable,
                    format!("{AUTH_FUNCTION}() must return TEXT (or NULL for no token)"),
                )),
            },
            HostCall::Failed(message) => Err(SyncError::new(
                ErrorKind::TokenUnavailable,
                format!("the host function {AUTH_FUNCTION}() failed: {message}"),
            )),
        }
    }
}

impl TokenProvider for ConnTokens {
    fn token(&self) -> Result<Option<String>> {
        if let Some(t) = non_empty(self.explicit.get()) {
            self.remember(Source::SetToken);
            return Ok(Some(t));
        }
        if let Some(t) = self.ask_host()? {
            self.remember(Source::HostFunction);
            return Ok(Some(t));
        }
        if let Some(t) = EnvToken.token()? {
            self.remember(Source::Environment);
            return Ok(Some(t));
        }
        // Failing here, before anything is sent, keeps a missing token free of network
        // side effects (the server would only answer 401).
        Err(SyncError::new(
            ErrorKind::TokenUnavailable,
            format!(
                "no bearer token: call oversqlite_set_token(token), set {TOKEN_ENV} or {TOKEN_FILE_ENV}, \
                 or register a SQL function {AUTH_FUNCTION}() on this connection"
            ),
        ))
    }

    fn token_after_unauthorized(&self) -> Result<Option<String>> {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last {
            Some(Source::HostFunction) => self.ask_host(),
            Some(Source::Environment) => EnvToken.token_after_unauthorized(),
            Some(Source::SetToken) | None => Ok(None),
        }
    }
}
