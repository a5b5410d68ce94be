//! oversqlite local runtime: the `_sync_*` schema, capture triggers, persisted
//! configuration and durable state, over a `rusqlite::Connection`. No SQL function
//! registration lives here (that is the extension crate's job); the sync engine builds on
//! this API.
//!
//! Public API (all functions take `&rusqlite::Connection` and return [`Result`]):
//!
//! * Configuration ([`config`]), persisted in `_oversqlite_config` / `_oversqlite_tables`:
//!   [`config::init`]`(conn, server_url, schema)`, [`config::enable_sync`]`(conn, table, keys)`,
//!   [`config::disable_sync`]`(conn, table)`, [`config::read_settings`] (raw, unvalidated) and
//!   [`config::load`]`(conn) -> `[`Config`] (validated; tables in FK order, parents first).
//! * Model ([`model`]): [`Config`] `{server_url, schema, tables}`, [`ManagedTable`]
//!   `{name, key_column, key_json_name, key_kind, columns, foreign_keys}`, [`Column`]
//!   `{name, json_name, declared_type, kind, not_null, primary_key_position}`,
//!   [`ColumnKind`] (`Text|Integer|Real|Blob|UuidBlob`), [`KeyKind`] (`Text|UuidBlob`).
//! * Validation ([`validate`]): [`validate::validate_tables`]`(conn, schema, &[TableRegistration])`
//!   — protocol digest §4 with the fixture message fragments.
//! * Open ([`open`]): [`open::open`]`(conn) -> (Config, OpenReport)` — §3.1, idempotent, one
//!   write transaction.
//! * DDL ([`ddl`]): [`ddl::RUNTIME_DDL`], [`ddl::install_runtime_tables`], [`ddl::runtime_installed`].
//! * Triggers ([`triggers`]): [`triggers::trigger_sql`], [`triggers::install_triggers`],
//!   [`triggers::drop_triggers`]; expression helpers in [`sql_text`] (`key_expr`, `row_expr`,
//!   `quote_ident`, `quote_literal`, `normalize_sql`).
//! * State ([`state`]): typed singleton rows [`state::AttachmentState`], [`state::OperationState`],
//!   [`state::OutboxBundle`], [`state::SourceState`] with `read_*`/`write_*`, `ensure_source`,
//!   `new_source_id` (lowercase UUID v4), `apply_mode`/`set_apply_mode`, `source_info`,
//!   `require_runtime`.
//! * Pending changes ([`pending`]): [`pending::pending_changes`] (outbox then dirty rows),
//!   [`pending::pending_count`].
//! * Keys ([`keys`]): [`keys::key_json`] / [`keys::key_json_from_local_text`] — always SQLite's
//!   `json_object`, byte-identical to the triggers.
//! * Transactions ([`tx`]): [`tx::write_tx`] — `BEGIN IMMEDIATE` or a savepoint when the caller
//!   is already in a transaction; rolls back on error and on panic.
//! * Test hook ([`fault`]): [`fault::point`] panics, aborts or `_exit`s the process when
//!   `OVERSQLITE_TEST_FAULT=panic:<point>` / `abort:<point>` / `exit:<point>` (optionally `#n`),
//!   only in builds with the `test-faults` feature (otherwise a no-op).
//! * Errors ([`error`]): [`Error`] `{code: ErrorCode, message}`, displayed as `<code>: <message>`.

// One `unsafe` block exists (`fault::hard_exit`, the test hook calling `_exit`), allowed
// locally; everything else is safe code.
#![deny(unsafe_code)]

pub mod config;
pub mod ddl;
pub mod error;
pub mod fault;
pub mod keys;
pub mod model;
pub mod open;
pub mod pending;
pub mod script;
pub mod sql_text;
pub mod state;
pub mod store;
pub mod table_info;
pub mod triggers;
pub mod tx;
pub mod validate;

pub use error::{Error, ErrorCode, Result};
pub use model::{Column, ColumnKind, Config, ForeignKey, KeyKind, ManagedTable};
