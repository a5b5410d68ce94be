use oversqlite_core::Error;
use rusqlite::Connection;

use super::args::Args;

/// `oversqlite_version()` → the extension's version text.
pub fn version(_conn: &Connection, args: &Args) -> Result<String, Error> {
    args.expect_count(0, 0, "oversqlite_version()")?;
    Ok(env!("CARGO_PKG_VERSION").to_string())
}
