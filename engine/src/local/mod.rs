//! The engine's side of the local database: short write transactions (capture
//! suppressed while the engine applies rows), the cross-process operation lock, the
//! managed-table model, the durable state read through core's stores, and the
//! foreign-key violation report.

pub mod fk_check;
pub(crate) mod lock;
pub mod schema;
pub mod state;
pub mod tx;
