//! The benchmark steps. Each runs in its own child process (`oversqlite-bench __step
//! SPEC`) so the peak RSS it reports is that step's alone; it prints one JSON line.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::busy::BusySpec;
use crate::device::{Device, Result};
use crate::proc_stats;
use crate::workload;

/// The child reads the bearer token from here, never from its command line.
pub const TOKEN_ENV: &str = "OVERSQLITE_BENCH_TOKEN";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Plain SQLite, no extension: N inserts in one transaction.
    Floor,
    /// The extension loaded and the table configured, nothing else (process baseline).
    Baseline,
    /// Inserts, updates, deletes in an unmanaged table (extension not loaded).
    CapturePlain,
    /// The same in a sync-managed table.
    CaptureManaged,
    /// Device A: configure, attach, then N local inserts waiting to be pushed.
    PreparePush,
    /// Device B: configure and attach before A pushes, so it later pulls incrementally.
    PreparePull,
    Push,
    Pull,
    /// A fresh device C attaches and restores the N rows from a snapshot.
    Hydrate,
    /// Device A syncs in a loop over an N-row backlog while another connection keeps
    /// writing (issue #16; `busy.rs`).
    Busy,
    /// Two devices with the background worker: commit-to-visible latency and the idle
    /// worker's cost (issue #11; `auto.rs`).
    AutoSync,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub step: Step,
    pub db: PathBuf,
    pub extension: PathBuf,
    pub n: usize,
    /// Distinguishes the keys of one size's rows from another's.
    pub tag: String,
    pub server_url: String,
    pub schema: String,
    pub user: String,
    /// Settings of the busy step (absent for every other step).
    #[serde(default)]
    pub busy: Option<BusySpec>,
    /// Settings of the auto-sync step (absent for every other step).
    #[serde(default)]
    pub auto: Option<crate::auto::AutoSpec>,
}

/// Timed phases (name → wall ms and client CPU ms) plus whatever the step checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub phases: BTreeMap<String, Phase>,
    pub peak_rss_kib: u64,
    pub detail: Value,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Phase {
    pub wall_ms: f64,
    pub cpu_ms: f64,
}

struct Timer {
    phases: BTreeMap<String, Phase>,
}

impl Timer {
    fn time<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let cpu0 = proc_stats::cpu_time("self").unwrap_or_default();
        let t = Instant::now();
        let value = f()?;
        let wall = t.elapsed();
        let cpu = proc_stats::cpu_time("self")
            .unwrap_or_default()
            .saturating_sub(cpu0);
        self.phases.insert(
            name.to_string(),
            Phase {
                wall_ms: wall.as_secs_f64() * 1e3,
                cpu_ms: cpu.as_secs_f64() * 1e3,
            },
        );
        Ok(value)
    }
}

pub fn run(spec: &Spec) -> Result<Outcome> {
    let mut timer = Timer {
        phases: BTreeMap::new(),
    };
    let detail = match spec.step {
        Step::Floor => floor(spec, &mut timer)?,
        Step::Baseline => {
            let d = Device::open(&spec.db, &spec.extension)?;
            d.configure(&spec.server_url, &spec.schema)?;
            json!({})
        }
        Step::CapturePlain => {
            let conn = plain(spec)?;
            capture(&conn, spec, &mut timer)?;
            json!({})
        }
        Step::CaptureManaged => capture_managed(spec, &mut timer)?,
        Step::PreparePush => {
            let d = attached_device(spec, true)?;
            let outcome = d.1;
            workload::insert_all(&d.0.conn, &spec.tag, spec.n)
                .map_err(|e| format!("insert rows: {e}"))?;
            json!({"attach": outcome, "pending": pending_rows(&d.0.conn)?})
        }
        Step::PreparePull => json!({"attach": attached_device(spec, true)?.1}),
        Step::Push => push(spec, &mut timer)?,
        Step::Pull => pull(spec, &mut timer)?,
        Step::Hydrate => hydrate(spec, &mut timer)?,
        Step::Busy => {
            let busy = spec
                .busy
                .as_ref()
                .ok_or("the busy step needs its settings")?;
            let (detail, wall, cpu) = crate::busy::run(spec, busy, &token()?)?;
            timer.phases.insert(
                "busy".to_string(),
                Phase {
                    wall_ms: wall.as_secs_f64() * 1e3,
                    cpu_ms: cpu.as_secs_f64() * 1e3,
                },
            );
            detail
        }
        Step::AutoSync => {
            let auto = spec
                .auto
                .as_ref()
                .ok_or("the auto-sync step needs its settings")?;
            crate::auto::run(spec, auto, &token()?)?
        }
    };
    Ok(Outcome {
        phases: timer.phases,
        peak_rss_kib: proc_stats::peak_rss_kib()?,
        detail,
    })
}

fn plain(spec: &Spec) -> Result<Connection> {
    let conn =
        Connection::open(&spec.db).map_err(|e| format!("open {}: {e}", spec.db.display()))?;
    workload::tune(&conn).map_err(|e| format!("pragmas: {e}"))?;
    conn.execute_batch(workload::CREATE_USERS)
        .map_err(|e| format!("create users: {e}"))?;
    Ok(conn)
}

fn floor(spec: &Spec, timer: &mut Timer) -> Result<Value> {
    let conn = plain(spec)?;
    timer.time("insert", || {
        workload::insert_all(&conn, &spec.tag, spec.n).map_err(|e| format!("insert: {e}"))
    })?;
    Ok(json!({"rows": workload::count(&conn).map_err(|e| e.to_string())?}))
}

fn capture(conn: &Connection, spec: &Spec, timer: &mut Timer) -> Result<()> {
    capture_with_check(conn, spec, timer, || Ok(()))
}

/// Inserts, updates, deletes (one transaction each); `after_insert` runs untimed.
fn capture_with_check(
    conn: &Connection,
    spec: &Spec,
    timer: &mut Timer,
    after_insert: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let (tag, n) = (&spec.tag, spec.n);
    timer.time("insert", || {
        workload::insert_all(conn, tag, n).map_err(|e| format!("insert: {e}"))
    })?;
    after_insert()?;
    timer.time("update", || {
        workload::update_all(conn, tag, n).map_err(|e| format!("update: {e}"))
    })?;
    timer.time("delete", || {
        workload::delete_all(conn, tag, n).map_err(|e| format!("delete: {e}"))
    })
}

fn capture_managed(spec: &Spec, timer: &mut Timer) -> Result<Value> {
    let d = Device::open(&spec.db, &spec.extension)?;
    d.configure(&spec.server_url, &spec.schema)?;
    let mut captured = 0;
    capture_with_check(&d.conn, spec, timer, || {
        // Proves the triggers ran: one dirty row per inserted key.
        captured = pending_rows(&d.conn)?;
        if captured as usize != spec.n {
            return Err(format!(
                "{captured} dirty rows after {} managed inserts",
                spec.n
            ));
        }
        Ok(())
    })?;
    Ok(
        json!({"dirty_rows_after_insert": captured, "dirty_rows_after_delete": pending_rows(&d.conn)?}),
    )
}

fn pending_rows(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT count(*) FROM _sync_dirty_rows", [], |r| r.get(0))
        .map_err(|e| format!("count _sync_dirty_rows: {e}"))
}

/// Opens the device (configuring it on first use), gives it the token and attaches.
fn attached_device(spec: &Spec, first_launch: bool) -> Result<(Device, Value)> {
    let d = Device::open(&spec.db, &spec.extension)?;
    if first_launch {
        d.configure(&spec.server_url, &spec.schema)?;
    } else {
        d.launch()?;
    }
    d.set_token(&token()?)?;
    let report = d.call("oversqlite_attach(?1)", &[&spec.user])?;
    let outcome = report["outcome"].clone();
    if outcome == "retry_later" {
        return Err(format!("attach answered retry_later: {report}"));
    }
    Ok((d, outcome))
}

fn token() -> Result<String> {
    std::env::var(TOKEN_ENV).map_err(|_| format!("{TOKEN_ENV} is not set"))
}

fn push(spec: &Spec, timer: &mut Timer) -> Result<Value> {
    let d = Device::open(&spec.db, &spec.extension)?;
    d.launch()?;
    d.set_token(&token()?)?;
    let attach = timer.time("attach", || d.call("oversqlite_attach(?1)", &[&spec.user]))?;
    let report = timer.time("push", || d.call("oversqlite_push_pending()", &[]))?;
    let rows = report["row_count"].as_u64().unwrap_or(0) as usize;
    if report["outcome"] != "committed" || rows != spec.n {
        return Err(format!("push did not commit {} rows: {report}", spec.n));
    }
    Ok(
        json!({"attach": attach["outcome"], "outcome": report["outcome"], "bundle_seq": report["bundle_seq"], "row_count": rows}),
    )
}

fn pull(spec: &Spec, timer: &mut Timer) -> Result<Value> {
    let (d, attach) = attached_device(spec, false)?;
    let report = timer.time("pull", || d.call("oversqlite_pull_to_stable()", &[]))?;
    let rows = d.count()?;
    if report["outcome"] != "applied_incremental" || rows != spec.n {
        return Err(format!("pull left {rows} of {} rows: {report}", spec.n));
    }
    Ok(
        json!({"attach": attach, "outcome": report["outcome"], "bundles_applied": report["bundles_applied"], "rows": rows}),
    )
}

fn hydrate(spec: &Spec, timer: &mut Timer) -> Result<Value> {
    let d = Device::open(&spec.db, &spec.extension)?;
    d.configure(&spec.server_url, &spec.schema)?;
    d.set_token(&token()?)?;
    let (attach, pull) = timer.time("hydrate", || {
        let attach = d.call("oversqlite_attach(?1)", &[&spec.user])?;
        // A server may also answer "start empty, then pull": count both as hydrating.
        let pull = if d.count()? < spec.n {
            Some(d.call("oversqlite_pull_to_stable()", &[])?)
        } else {
            None
        };
        Ok((attach, pull))
    })?;
    let rows = d.count()?;
    if rows != spec.n {
        return Err(format!(
            "hydrate left {rows} of {} rows: attach {attach}, pull {pull:?}",
            spec.n
        ));
    }
    Ok(
        json!({"attach": attach["outcome"], "restore": attach["restore"], "pull": pull.map(|p| p["outcome"].clone()), "rows": rows}),
    )
}
