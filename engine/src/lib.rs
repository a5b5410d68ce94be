//! oversqlite sync engine: attach, push, pull, snapshot rebuild, conflicts, source
//! recovery and detach over a [`remote::transport::Transport`], on top of the local
//! runtime (`oversqlite-core`) and the shared wire types (`oversqlite-protocol`).
//!
//! Entry point: [`SyncClient`]. Every operation takes the `rusqlite::Connection`,
//! returns a serialisable report (see [`report`]) or a [`SyncError`] with a stable
//! snake_case code, never holds a write transaction across network I/O, and refuses
//! to run inside the caller's open transaction.
//!
//! Rooms (see ARCHITECTURE.md at the repository root): [`sync_client`] (the public
//! client and its settings), `ops/` (the workflows, one per file), [`remote`] (HTTP:
//! requests, transport, tokens, SSE, answer checks), [`values`] (codecs, rows,
//! RFC 3339), `local/` (transactions, lock, state through core's stores).

#![forbid(unsafe_code)]

pub mod auto;
pub mod conflict;
pub mod error;
pub mod journal;
mod local;
pub mod ops;
pub mod progress;
pub mod remote;
pub mod report;
pub mod sync_client;
pub mod values;
mod wording;

pub use conflict::{
    CallbackResolver, ClientWins, ConflictContext, ConflictResolver, Resolution, ServerWins,
};
pub use error::{ErrorKind, Result, SyncError};
pub use ops::watch::{
    AutoDownloadConfig, AutoDownloadStats, AutomaticDownloads, WatchOutcome, WatchReport,
};
pub use sync_client::{sync_status, EngineSettings, SyncClient};
