//! Conflict policies per connection and per table: `server_wins` (default),
//! `client_wins`, or `custom` = a host SQL function
//! `f(table, key_json, server_row_json, local_payload_json)` answering `'server'`,
//! `'local'` or a merged row as JSON object text.
use std::collections::BTreeMap;
use std::sync::Mutex;

use oversqlite_engine::{ClientWins, ConflictContext, ConflictResolver, Resolution, ServerWins};
use rusqlite::types::Value as SqlValue;
use serde::Serialize;
use serde_json::{Map, Value};

use super::host_fn::{call_host_function, HostCall};
use crate::sql::guard::connection;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum Policy {
    ServerWins,
    ClientWins,
    Custom { function: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Policies {
    pub default: Policy,
    /// Per-table overrides, keyed by lower-cased local table name.
    pub tables: BTreeMap<String, Policy>,
}

/// Dispatches each conflict to its table's policy. Holds the connection handle (as an
/// address) to call custom functions; dropped with the connection.
pub struct ConnResolver {
    db: usize,
    pub policies: Mutex<Policies>,
    /// Why the last custom answer was refused (the engine only sees an invalid resolution).
    pub last_invalid: Mutex<Option<String>>,
}

/// A resolution no plan accepts (a merged row must carry every column, and a DELETE
/// cannot be merged), so the engine fails closed with `invalid_conflict_resolution` and
/// restores the bundle as local changes.
fn refused() -> Resolution {
    Resolution::KeepMerged(Map::new())
}

impl ConnResolver {
    pub fn new(db: *mut rusqlite::ffi::sqlite3) -> Self {
        ConnResolver {
            db: db as usize,
            policies: Mutex::new(Policies {
                default: Policy::ServerWins,
                tables: BTreeMap::new(),
            }),
            last_invalid: Mutex::new(None),
        }
    }

    pub fn take_invalid_reason(&self) -> Option<String> {
        self.last_invalid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn policy_for(&self, table: &str) -> Policy {
        let p = self.policies.lock().unwrap_or_else(|p| p.into_inner());
        p.tables
            .get(&table.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| p.default.clone())
    }

    fn refuse(&self, reason: String) -> Resolution {
        *self.last_invalid.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        refused()
    }

    fn custom(&self, function: &str, c: &ConflictContext) -> Resolution {
        // The handle belongs to the connection that owns this state; conflicts are resolved
        // during calls on that connection, on the calling thread.
        let conn = match connection(self.db as *mut rusqlite::ffi::sqlite3) {
            Ok(c) => c,
            Err(e) => return self.refuse(format!("cannot call the resolver {function}(): {e}")),
        };
        let key = serde_json::to_string(&c.key).unwrap_or_default();
        let server_row = c
            .server_row
            .as_ref()
            .map(|r| serde_json::to_string(r).unwrap_or_default());
        let local = c
            .local_payload
            .as_ref()
            .map(|r| serde_json::to_string(r).unwrap_or_default());
        let answer = match call_host_function(&conn, function, &[&c.table, &key, &server_row, &local]) {
            Ok(HostCall::Value(v)) => v,
            Ok(HostCall::NotRegistered) => {
                return self.refuse(format!("the resolver function {function}(table, key_json, server_row_json, local_payload_json) is not registered on this connection"))
            }
            Ok(HostCall::Failed(m)) => return self.refuse(format!("the resolver function {function}() failed: {m}")),
            Err(e) => return self.refuse(format!("the resolver function {function}() could not be called: {}", e.message)),
        };
        let text = match answer {
            SqlValue::Text(t) => t,
            other => {
                return self.refuse(format!(
                    "the resolver function {function}() returned {}; expected 'server', 'local' or a merged JSON object",
                    match other {
                        SqlValue::Null => "NULL",
                        SqlValue::Integer(_) => "an INTEGER",
                        SqlValue::Real(_) => "a REAL",
                        SqlValue::Blob(_) => "a BLOB",
                        SqlValue::Text(_) => "TEXT",
                    }
                ))
            }
        };
        match text.trim() {
            "server" => Resolution::AcceptServer,
            "local" => Resolution::KeepLocal,
            t if t.starts_with('{') => match serde_json::from_str::<Value>(t) {
                Ok(Value::Object(merged)) => {
                    // Recorded in case the engine refuses the merged row (missing columns, DELETE).
                    *self.last_invalid.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!(
                        "the merged row from {function}() cannot be applied to {} (it must name exactly the table's columns, and a local DELETE cannot be merged)",
                        c.table
                    ));
                    Resolution::KeepMerged(merged)
                }
                _ => self.refuse(format!("the resolver function {function}() returned text that is not a JSON object")),
            },
            _ => self.refuse(format!(
                "the resolver function {function}() answered {:?}; expected 'server', 'local' or a merged JSON object",
                text.chars().take(40).collect::<String>()
            )),
        }
    }
}

impl ConflictResolver for ConnResolver {
    fn resolve(&self, c: &ConflictContext) -> Resolution {
        *self.last_invalid.lock().unwrap_or_else(|p| p.into_inner()) = None;
        match self.policy_for(&c.table) {
            Policy::ServerWins => ServerWins.resolve(c),
            Policy::ClientWins => ClientWins.resolve(c),
            Policy::Custom { function } => self.custom(&function, c),
        }
    }

    fn policy(&self, table: &str) -> String {
        match self.policy_for(table) {
            Policy::ServerWins => "server_wins".into(),
            Policy::ClientWins => "client_wins".into(),
            Policy::Custom { .. } => "custom".into(),
        }
    }
}
