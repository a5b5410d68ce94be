//! A JSON façade for the SQL adapters: one call per SQL function, returning the
//! report as JSON text, and the error text format `oversqlite_<fn>: <code>: <message>`.

use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;

use crate::client::SyncClient;
use crate::error::{Result, SyncError};

/// One public operation, as the SQL layer names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Attach(String),
    PushPending,
    PullToStable,
    Sync,
    Rebuild,
    Detach,
    DetachDiscardingLocalChanges,
    SyncThenDetach,
    Status,
    SourceInfo,
    /// One watch round, bounded by the duration.
    WatchFor(Duration),
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("reports serialise")
}

impl SyncClient {
    /// Runs `call` and returns its report as JSON text.
    pub fn call_json(&mut self, conn: &Connection, call: &Call) -> Result<String> {
        Ok(match call {
            Call::Attach(user) => json(&self.attach(conn, user)?),
            Call::PushPending => json(&self.push_pending(conn)?),
            Call::PullToStable => json(&self.pull_to_stable(conn)?),
            Call::Sync => json(&self.sync(conn)?),
            Call::Rebuild => json(&self.rebuild(conn)?),
            Call::Detach => json(&self.detach(conn)?),
            Call::DetachDiscardingLocalChanges => {
                json(&self.detach_discarding_local_changes(conn)?)
            }
            Call::SyncThenDetach => json(&self.sync_then_detach(conn)?),
            Call::Status => json(&self.status(conn)?),
            Call::SourceInfo => json(&self.source_info(conn)?),
            Call::WatchFor(limit) => json(&self.watch_for(conn, *limit)?),
        })
    }
}

impl SyncError {
    /// `oversqlite_<function>: <code>: <message>` — the SQL error text.
    pub fn sql_message(&self, function: &str) -> String {
        format!("{function}: {}: {}", self.code(), self.message)
    }
}
