//! A failed command: a stable snake_case code (the engine's, or one of the CLI's own),
//! a message that never contains a token, the exit code, and extra JSON members
//! (`http_status`, `server_code`, `retry_after_seconds`) for `--json`.
use oversqlite_engine::SyncError;
use serde_json::{json, Map, Value};

use crate::exit::{classify, Exit};

#[derive(Debug)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub exit: Exit,
    pub details: Map<String, Value>,
}

impl Failure {
    pub fn new(code: &str, exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            code: code.to_string(),
            message: message.into(),
            exit,
            details: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_string(), value);
        self
    }

    /// `oversqlite <command>: <code>: <message>`.
    pub fn line(&self, command: &str) -> String {
        format!("oversqlite {command}: {}: {}", self.code, self.message)
    }

    /// The `--json` form: `{"command", "error": {"code", "message", "exit_code",
    /// "retry_later", ...details}}`.
    pub fn to_json(&self, command: &str) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        error.insert("exit_code".into(), json!(self.exit.code()));
        error.insert("retry_later".into(), json!(self.exit.retry_later()));
        error.extend(self.details.clone());
        json!({"command": command, "error": Value::Object(error)})
    }
}

impl From<SyncError> for Failure {
    fn from(e: SyncError) -> Self {
        let mut f = Failure::new(e.code(), classify(&e), e.message.clone());
        if let Some(s) = e.http_status {
            f = f.with("http_status", json!(s));
        }
        if let Some(c) = e.server_code {
            f = f.with("server_code", json!(c));
        }
        f
    }
}

impl From<oversqlite_core::Error> for Failure {
    fn from(e: oversqlite_core::Error) -> Self {
        SyncError::from(e).into()
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        SyncError::from(e).into()
    }
}
