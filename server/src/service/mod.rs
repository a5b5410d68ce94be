//! Protocol semantics over the store (§10). Every function runs synchronously on a pooled
//! connection; the HTTP layer calls them through `AppState::run*`.

pub mod admin;
pub mod cascade;
pub mod commit;
pub mod connect;
pub mod features;
pub mod push;
pub mod push_rows;
pub mod raw_rows;
pub mod reads;
pub mod scope;
pub mod server_bundle;
pub mod snapshot;
