//! The public operations, one workflow per file.

pub mod attach;
pub(crate) mod beside;
pub(crate) mod bundle_cut;
pub(crate) mod committed;
pub mod conflict_apply;
pub(crate) mod copied;
pub mod detach;
pub mod freeze;
pub(crate) mod gates;
pub mod pull;
pub mod push;
pub mod recovery;
pub(crate) mod refused;
pub mod replay;
pub mod server_row;
pub mod snapshot;
pub mod sync;
pub mod watch;
