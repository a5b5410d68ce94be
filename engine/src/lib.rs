//! oversqlite sync engine: attach, push, pull, snapshot rebuild, conflicts, source
//! recovery and detach over a [`transport::Transport`], on top of the local runtime
//! (`oversqlite-core`) and the shared wire types (`oversqlite-protocol`).
//!
//! Entry point: [`SyncClient`]. Every operation takes the `rusqlite::Connection`,
//! returns a serialisable report (see [`report`]) or a [`SyncError`] with a stable
//! snake_case code, never holds a write transaction across network I/O, and refuses
//! to run inside the caller's open transaction.

pub mod api;
pub mod auth;
pub mod client;
pub mod codec;
pub mod conflict;
pub mod error;
pub mod fk_check;
pub mod json_api;
mod lock;
pub mod ops;
pub mod report;
pub mod rfc3339;
pub mod rows;
pub mod schema;
pub mod sse;
pub mod state;
pub mod transport;
pub mod tx;
pub mod validate;

pub use client::{sync_status, EngineSettings, SyncClient};
pub use conflict::{
    CallbackResolver, ClientWins, ConflictContext, ConflictResolver, Resolution, ServerWins,
};
pub use error::{ErrorKind, Result, SyncError};
pub use json_api::Call;
pub use ops::watch::{
    AutoDownloadConfig, AutoDownloadStats, AutomaticDownloads, WatchOutcome, WatchReport,
};
