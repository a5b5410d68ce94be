//! Shared helpers for the oversqlite test suites (fixture runners, end-to-end): a host
//! connection that loads the built extension, fixture loading, the §11.2 catalog dump and
//! the §11.4 runtime-state dump with its normaliser.
pub mod busy_writer;
pub mod catalog;
pub mod fixtures;
pub mod host;
pub mod server;
pub mod stalled;
pub mod state_dump;
