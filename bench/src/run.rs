//! The parent process: starts (or reaches) the server, runs every step of every size in
//! its own child process, and collects the outcomes.
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auto::AutoSpec;
use crate::busy::{BusySpec, Journal, Role};
use crate::child::run_step;
use crate::options::Options;
use crate::proc_stats;
use crate::report::{BusyRun, SizeRun};
use crate::server::{nanos, Server};
use crate::steps::{Outcome, Spec, Step};

/// A temp directory removed when the run ends (also on error).
pub struct WorkDir {
    pub path: PathBuf,
    remove: bool,
}

impl WorkDir {
    pub fn new(chosen: Option<&Path>) -> Result<WorkDir, String> {
        let (path, remove) = match chosen {
            Some(p) => (p.to_path_buf(), false),
            None => (
                std::env::temp_dir().join(format!(
                    "oversqlite-bench-{}-{:x}",
                    std::process::id(),
                    nanos()
                )),
                true,
            ),
        };
        std::fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(WorkDir { path, remove })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Everything one run measured: per size, busy writer, auto sync, the server's description.
pub type Runs = (Vec<SizeRun>, Vec<BusyRun>, Option<Outcome>, String);

/// Every size's steps, the busy-writer step in WAL and with a rollback journal, then
/// the auto-sync step.
pub fn run_all(o: &Options, work: &WorkDir) -> Result<Runs, String> {
    if !o.extension.is_file() {
        return Err(format!(
            "extension {} not found: build it (cargo build --release -p oversqlite) or pass --extension",
            o.extension.display()
        ));
    }
    let server = match &o.server_url {
        Some(url) => Server::external(url, o.token_command.as_deref().unwrap_or_default()),
        None => Server::start(
            &o.server_bin,
            &o.server_config,
            &work.path.join("server.db"),
        )?,
    };
    eprintln!("oversqlite-bench: server {}", server.url);
    // Unique per run, so an external server's earlier data never collides.
    let run_id = format!(
        "{:08x}",
        (nanos() as u64 ^ std::process::id() as u64) & 0xffff_ffff
    );
    let mut runs = Vec::new();
    let sizes: &[usize] = if o.busy_only { &[] } else { &o.sizes };
    for &n in sizes {
        let dir = work.path.join(format!("n{n}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let user = format!("bench-{run_id}-{n}");
        let token = server.token(&user)?;
        let tag = format!(
            "{:08x}",
            u32::from_str_radix(&run_id, 16)
                .unwrap_or(0)
                .wrapping_add(n as u32)
        );
        let spec = |step: Step, db: &str| Spec {
            step,
            db: dir.join(db),
            extension: o.extension.clone(),
            n,
            tag: tag.clone(),
            server_url: server.url.clone(),
            schema: o.schema.clone(),
            user: user.clone(),
            busy: None,
            auto: None,
        };
        let step = |step: Step, db: &str| run_one(o, &server, &spec(step, db), &token);
        let (floor, _) = step(Step::Floor, "floor.db")?;
        let (baseline, _) = step(Step::Baseline, "baseline.db")?;
        let (plain, _) = step(Step::CapturePlain, "capture-plain.db")?;
        let (managed, _) = step(Step::CaptureManaged, "capture-managed.db")?;
        // B attaches before A pushes so that it later pulls A's bundle incrementally.
        step(Step::PreparePush, "device-a.db")?;
        step(Step::PreparePull, "device-b.db")?;
        let (push, push_cpu) = step(Step::Push, "device-a.db")?;
        let (pull, pull_cpu) = step(Step::Pull, "device-b.db")?;
        let (hydrate, hydrate_cpu) = step(Step::Hydrate, "device-c.db")?;
        runs.push(SizeRun {
            n,
            floor,
            baseline,
            plain,
            managed,
            push,
            pull,
            hydrate,
            server_cpu_ms: [push_cpu, pull_cpu, hydrate_cpu],
        });
        // Device databases of a finished size are not needed any more.
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut busy_runs = Vec::new();
    if o.busy_seconds > 0.0 {
        for (journal, role) in Journal::ALL
            .into_iter()
            .flat_map(|j| Role::ALL.map(|r| (j, r)))
        {
            let name = format!("busy-{journal:?}-{role:?}").to_lowercase();
            let dir = work.path.join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            let user = format!("bench-{run_id}-{name}");
            let token = server.token(&user)?;
            let spec = Spec {
                step: Step::Busy,
                db: dir.join("device.db"),
                extension: o.extension.clone(),
                n: o.busy_backlog,
                tag: format!("{:08x}", nanos() as u32),
                server_url: server.url.clone(),
                schema: o.schema.clone(),
                user,
                auto: None,
                busy: Some(BusySpec {
                    journal,
                    role,
                    seconds: o.busy_seconds,
                    gap_ms: o.busy_gap_ms,
                    server_store: server.store().map(Path::to_path_buf),
                }),
            };
            let (outcome, server_cpu) = run_one(o, &server, &spec, &token)?;
            busy_runs.push(BusyRun {
                outcome,
                server_cpu_ms: server_cpu,
            });
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let mut auto_run = None;
    if o.auto_writes > 0 && !o.busy_only {
        let dir = work.path.join("auto-sync");
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let user = format!("bench-{run_id}-auto");
        let token = server.token(&user)?;
        let spec = Spec {
            step: Step::AutoSync,
            db: dir.join("device.db"),
            extension: o.extension.clone(),
            n: o.auto_writes,
            tag: format!("{:08x}", nanos() as u32),
            server_url: server.url.clone(),
            schema: o.schema.clone(),
            user,
            busy: None,
            auto: Some(AutoSpec {
                writes: o.auto_writes,
                idle_seconds: o.auto_idle_seconds,
            }),
        };
        let (outcome, _) = run_one(o, &server, &spec, &token)?;
        auto_run = Some(outcome);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let server_desc = match &o.server_url {
        Some(url) => format!("external server {url}, schema `{}`", o.schema),
        None => {
            "oversqlite-server (release) started by the benchmark on 127.0.0.1, temporary store"
                .to_string()
        }
    };
    Ok((runs, busy_runs, auto_run, server_desc))
}

/// Runs one step in its own process (under its `--wrap` command, if any), reports it on
/// stderr, and returns its outcome with the server's CPU time meanwhile (when we started
/// the server).
fn run_one(
    o: &Options,
    server: &Server,
    spec: &Spec,
    token: &str,
) -> Result<(Outcome, Option<f64>), String> {
    let server_cpu0 = server
        .pid()
        .and_then(|p| proc_stats::cpu_time(&p.to_string()));
    let name = serde_json::to_value(spec.step)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let wrapper = o
        .wrap
        .iter()
        .find(|(s, _)| *s == name)
        .map(|(_, argv)| argv.as_slice());
    let timeout = Duration::from_secs(o.step_timeout_secs);
    let outcome = run_step(spec, Some(token), timeout, wrapper)?;
    let server_cpu = server
        .pid()
        .and_then(|p| proc_stats::cpu_time(&p.to_string()))
        .zip(server_cpu0)
        .map(|(after, before)| after.saturating_sub(before).as_secs_f64() * 1e3);
    let main: Vec<String> = outcome
        .phases
        .iter()
        .map(|(k, p)| format!("{k} {:.0} ms", p.wall_ms))
        .collect();
    eprintln!(
        "  N = {:>7}  {:<15} {:<40} peak RSS {:.1} MiB  {}",
        spec.n,
        format!("{:?}", spec.step),
        main.join(", "),
        outcome.peak_rss_kib as f64 / 1024.0,
        outcome.detail
    );
    Ok((outcome, server_cpu))
}
