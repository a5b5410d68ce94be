//! Shared helpers for the oversqlite test suites (fixture runners, end-to-end).
