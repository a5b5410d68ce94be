//! Thin SQL adapters over `oversqlite_core`: argument checks, result encoding, error
//! formatting and the panic guard. No sync logic lives here: `sync/` only maps SQL calls
//! onto `oversqlite_engine`.
pub mod args;
pub mod config_fns;
pub mod function;
pub mod guard;
pub mod open_fn;
pub mod rows_vtab;
pub mod runtime_vtabs;
pub mod sync;
pub mod version_fn;
