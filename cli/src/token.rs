//! Where the CLI's bearer token comes from: `--token-file PATH`, else the engine's
//! environment provider (`OVERSQLITE_TOKEN`, else the file named by
//! `OVERSQLITE_TOKEN_FILE`). Files are re-read on every request and again after a 401
//! (a rotated token is picked up). The token is never printed, stored or put in an error.
use std::path::PathBuf;

use oversqlite_engine::remote::auth::{EnvToken, TokenProvider, TOKEN_ENV, TOKEN_FILE_ENV};
use oversqlite_engine::{ErrorKind, Result, SyncError};

pub struct CliTokens {
    pub file: Option<PathBuf>,
}

impl CliTokens {
    fn read_file(&self) -> Result<Option<String>> {
        let Some(path) = &self.file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            SyncError::new(
                ErrorKind::TokenUnavailable,
                format!("cannot read --token-file {}: {}", path.display(), e.kind()),
            )
        })?;
        let t = text.trim();
        if t.is_empty() {
            return Err(SyncError::new(
                ErrorKind::TokenUnavailable,
                format!("--token-file {} is empty", path.display()),
            ));
        }
        Ok(Some(t.to_string()))
    }
}

impl TokenProvider for CliTokens {
    fn token(&self) -> Result<Option<String>> {
        if let Some(t) = self.read_file()? {
            return Ok(Some(t));
        }
        if let Some(t) = EnvToken.token()? {
            return Ok(Some(t));
        }
        // Failing before anything is sent: the server would only answer 401.
        Err(SyncError::new(
            ErrorKind::TokenUnavailable,
            format!(
                "no bearer token: pass --token-file PATH, or set {TOKEN_ENV} or {TOKEN_FILE_ENV}"
            ),
        ))
    }

    fn token_after_unauthorized(&self) -> Result<Option<String>> {
        if self.file.is_some() {
            return self.read_file();
        }
        EnvToken.token_after_unauthorized()
    }
}
