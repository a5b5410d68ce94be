//! `oversqlite log [--limit N]`: the newest rows of the sync journal
//! (`_oversqlite_sync_log`), newest first, from any trigger (sql, auto, cli). Read only:
//! a file that never synced has no journal and prints an empty list. JSON: an array of
//! the journal rows.
use oversqlite_core::store::sync_log::{self, LogEntry};

use super::{to_json, Ctx, Outcome};
use crate::args::LogArgs;
use crate::failure::Failure;

pub fn run(ctx: &Ctx, args: &LogArgs) -> Result<Outcome, Failure> {
    let conn = ctx.connection()?;
    let rows = sync_log::recent(&conn, args.limit)?;
    let json = to_json(&rows)?;
    Ok(Outcome {
        json,
        text: table(&rows),
    })
}

const HEADER: [&str; 9] = [
    "id",
    "finished_at",
    "operation",
    "trigger",
    "outcome",
    "rows_up",
    "rows_down",
    "bytes_up",
    "bytes_down",
];

/// Aligned columns, the error (code: message) after them; a note when empty.
fn table(rows: &[LogEntry]) -> String {
    if rows.is_empty() {
        return "no sync operations recorded".to_string();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.finished_at.clone(),
                r.operation.clone(),
                r.trigger.clone(),
                r.outcome.clone(),
                r.rows_up.to_string(),
                r.rows_down.to_string(),
                r.bytes_up.to_string(),
                r.bytes_down.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].len())
                .chain([HEADER[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |c: &[String]| {
        c.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    let mut out = vec![format!("{}  error", line(&header))];
    for (r, c) in rows.iter().zip(&cells) {
        let error = match (&r.error_code, &r.error_message) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.clone(),
            _ => String::new(),
        };
        out.push(format!("{}  {error}", line(c)).trim_end().to_string());
    }
    out.join("\n")
}
