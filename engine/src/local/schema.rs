//! The managed-table model the engine works from, as validated by the local runtime.

pub use oversqlite_core::{ColumnKind, Config, KeyKind, ManagedTable};
