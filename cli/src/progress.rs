//! The progress line on stderr while a network operation runs, only when stderr is a
//! terminal (cron logs and pipes stay clean): the operation's phase, rows and bytes done
//! and, where the engine knows it, the total as a bar.
//!
//! The counters come from the engine's process-wide progress registry (keyed by the
//! file's canonical path), which the operation updates from this process's main thread
//! while a helper thread reads it every 100 ms through a read-only connection of its own
//! (`progress::current_for` needs a connection to find the file's key; a `Connection`
//! cannot cross threads).
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use oversqlite_engine::progress::{self, ProgressSnapshot};
use rusqlite::{Connection, OpenFlags};

pub struct Progress {
    bar: ProgressBar,
    done: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows `message` for the operation on `db` until dropped.
    pub fn start(message: String, db: &Path) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
                done: Arc::new(AtomicBool::new(true)),
                reader: None,
            };
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.clone());
        bar.enable_steady_tick(Duration::from_millis(100));
        let done = Arc::new(AtomicBool::new(false));
        let reader = spawn_reader(bar.clone(), message, db.to_path_buf(), done.clone());
        Progress { bar, done, reader }
    }
}

fn spawn_reader(
    bar: ProgressBar,
    message: String,
    db: PathBuf,
    done: Arc<AtomicBool>,
) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("oversqlite-progress".into())
        .spawn(move || {
            let Ok(conn) = Connection::open_with_flags(
                &db,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            ) else {
                return;
            };
            let mut shown_total = None;
            while !done.load(Ordering::SeqCst) {
                if let Some(p) = progress::current_for(&conn) {
                    show(&bar, &message, &p, &mut shown_total);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .ok()
}

/// The phase and counters in the message; a bar once a total is known.
fn show(bar: &ProgressBar, message: &str, p: &ProgressSnapshot, shown_total: &mut Option<i64>) {
    let phase = serde_json::to_value(p.phase)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default();
    let (done, total) = if p.rows_down > 0 || p.rows_down_total.is_some() {
        (p.rows_down, p.rows_down_total)
    } else {
        (p.rows_up, p.rows_up_total)
    };
    let rows = match total {
        Some(t) => format!("{done}/{t} rows"),
        None => format!("{done} rows"),
    };
    bar.set_message(format!(
        "{message}: {phase}, {rows}, {} up, {} down",
        HumanBytes(p.bytes_up.max(0) as u64),
        HumanBytes(p.bytes_down.max(0) as u64)
    ));
    if let Some(t) = total.filter(|t| *t > 0) {
        if *shown_total != Some(t) {
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}% {msg} ({elapsed})")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_length(t as u64);
            *shown_total = Some(t);
        }
        bar.set_position(done.clamp(0, t) as u64);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oversqlite_engine::progress::Phase;

    fn snapshot(phase: Phase, rows_up: i64, total: Option<i64>) -> ProgressSnapshot {
        ProgressSnapshot {
            operation: "push".into(),
            trigger: "cli".into(),
            phase,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            rows_up,
            rows_up_total: total,
            rows_down: 0,
            rows_down_total: None,
            bytes_up: 2048,
            bytes_down: 0,
        }
    }

    #[test]
    fn the_line_shows_phase_rows_and_bytes_and_a_bar_once_the_total_is_known() {
        let bar = ProgressBar::hidden();
        let mut total = None;
        show(
            &bar,
            "pushing x.db",
            &snapshot(Phase::Starting, 0, None),
            &mut total,
        );
        assert_eq!(
            bar.message(),
            "pushing x.db: starting, 0 rows, 2.00 KiB up, 0 B down"
        );
        assert_eq!((bar.length(), total), (None, None));

        show(
            &bar,
            "pushing x.db",
            &snapshot(Phase::Uploading, 500, Some(2000)),
            &mut total,
        );
        assert_eq!(
            bar.message(),
            "pushing x.db: uploading, 500/2000 rows, 2.00 KiB up, 0 B down"
        );
        assert_eq!(
            (bar.length(), bar.position(), total),
            (Some(2000), 500, Some(2000))
        );
    }
}
