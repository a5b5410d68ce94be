//! Thin SQL adapters over `oversqlite_core`: argument checks (`args`), the one
//! registration path of functions (`function`) and virtual tables (`rows_vtab`), the one
//! panic guard (`guard`) and the one error boundary (`error`). No sync logic lives here: `sync/` only maps SQL calls
//! onto `oversqlite_engine`.
pub mod args;
pub mod config_fns;
pub mod error;
pub mod exec_fn;
pub mod function;
pub mod guard;
pub mod open_fn;
pub mod rows_vtab;
pub mod runtime_vtabs;
pub mod sync;
pub mod version_fn;
