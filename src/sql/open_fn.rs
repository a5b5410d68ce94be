use oversqlite_core::{open, Error};
use rusqlite::Connection;

use super::args::Args;

/// `oversqlite_open()` → JSON open report.
pub fn open(conn: &Connection, args: &Args) -> Result<String, Error> {
    args.expect_count(0, 0, "oversqlite_open()")?;
    let (_config, report) = open::open(conn)?;
    serde_json::to_string(&report)
        .map_err(|e| Error::new(oversqlite_core::ErrorCode::Internal, e.to_string()))
}
