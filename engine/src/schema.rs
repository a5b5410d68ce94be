//! The managed-table model the engine works from, as validated by the local runtime.

pub use oversqlite_core::{Column, ColumnKind, Config, ForeignKey, KeyKind, ManagedTable};
