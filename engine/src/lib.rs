//! oversqlite sync engine.
