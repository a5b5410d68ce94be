//! Figures → one markdown table, each target next to the figure it judges.
use crate::busy::{BusyFigures, Journal, Role};
use crate::steps::Outcome;

pub const TARGET_N: usize = 100_000;
pub const CAPTURE_RATIO_MAX: f64 = 3.5;
/// Per-row capture cost may grow this much from the smallest to the largest size
/// (B-tree depth adds a little; anything super-linear shows up far above it).
pub const LINEARITY_MAX: f64 = 1.5;
pub const PUSH_MIN: f64 = 30_000.0;
pub const PULL_MIN: f64 = 60_000.0;
pub const HYDRATE_MIN: f64 = 50_000.0;
pub const RSS_MAX_MIB: f64 = 64.0;
pub const RSS_GROWTH_MAX_MIB: f64 = 16.0;
/// Busy writer (issue #16), WAL: the writer's statement latency.
pub const BUSY_P99_MAX_MS: f64 = 10.0;
pub const BUSY_MAX_MS: f64 = 100.0;

/// Picks one step's outcome out of a size's run.
type StepOf = fn(&SizeRun) -> &Outcome;

/// Everything measured at one size.
pub struct SizeRun {
    pub n: usize,
    pub floor: Outcome,
    pub baseline: Outcome,
    pub plain: Outcome,
    pub managed: Outcome,
    pub push: Outcome,
    pub pull: Outcome,
    pub hydrate: Outcome,
    /// Server CPU ms during push, pull, hydrate (only for a server we started).
    pub server_cpu_ms: [Option<f64>; 3],
}

/// One busy-writer run (one journal mode).
pub struct BusyRun {
    pub outcome: Outcome,
    /// Server CPU ms during the step (only for a server we started).
    pub server_cpu_ms: Option<f64>,
}

impl BusyRun {
    pub fn figures(&self) -> BusyFigures {
        serde_json::from_value(self.outcome.detail.clone()).unwrap_or_else(|e| {
            // Shown as an all-zero line (0 sync calls: the sync target is missed).
            eprintln!("oversqlite-bench: unreadable busy-step figures: {e}");
            BusyFigures::default()
        })
    }
}

#[derive(Default)]
pub struct Verdicts {
    pub met: usize,
    pub missed: Vec<String>,
}

impl Verdicts {
    pub fn merge(&mut self, other: Verdicts) {
        self.met += other.met;
        self.missed.extend(other.missed);
    }

    fn judge(&mut self, what: &str, ok: bool) -> &'static str {
        if ok {
            self.met += 1;
            "met"
        } else {
            self.missed.push(what.to_string());
            "**missed**"
        }
    }
}

struct Line {
    step: String,
    n: String,
    wall_ms: Option<f64>,
    rows_per_s: Option<f64>,
    x_floor: Option<f64>,
    rss_mib: Option<f64>,
    client_cpu_ms: Option<f64>,
    server_cpu_ms: Option<f64>,
    target: String,
    figure: String,
    result: String,
}

impl Line {
    fn new(step: impl Into<String>, n: impl Into<String>) -> Line {
        Line {
            step: step.into(),
            n: n.into(),
            wall_ms: None,
            rows_per_s: None,
            x_floor: None,
            rss_mib: None,
            client_cpu_ms: None,
            server_cpu_ms: None,
            target: String::new(),
            figure: String::new(),
            result: String::new(),
        }
    }
}

pub fn mib(o: &Outcome) -> f64 {
    o.peak_rss_kib as f64 / 1024.0
}

fn wall(o: &Outcome, phase: &str) -> f64 {
    o.phases.get(phase).map(|p| p.wall_ms).unwrap_or(f64::NAN)
}

fn cpu(o: &Outcome, phase: &str) -> Option<f64> {
    o.phases.get(phase).map(|p| p.cpu_ms)
}

fn capture_total(o: &Outcome) -> f64 {
    ["insert", "update", "delete"]
        .iter()
        .map(|p| wall(o, p))
        .sum()
}

/// Thousands separators: 123456.7 → "123,457".
pub fn int(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "—".into())
}

pub fn table(runs: &[SizeRun]) -> (String, Verdicts) {
    let mut v = Verdicts::default();
    let mut lines = Vec::new();
    for r in runs {
        let n = r.n as f64;
        let floor_ms = wall(&r.floor, "insert");
        let at_target = r.n == TARGET_N;
        let mut l = Line::new("floor: plain SQLite insert, one transaction", int(n));
        l.wall_ms = Some(floor_ms);
        l.rows_per_s = Some(n / floor_ms * 1e3);
        l.x_floor = Some(1.0);
        l.rss_mib = Some(mib(&r.floor));
        l.client_cpu_ms = cpu(&r.floor, "insert");
        lines.push(l);

        let mut l = Line::new(
            "baseline: extension loaded, table configured (idle)",
            int(n),
        );
        l.rss_mib = Some(mib(&r.baseline));
        lines.push(l);

        for op in ["insert", "update", "delete", "all three"] {
            let (managed, plain) = if op == "all three" {
                (capture_total(&r.managed), capture_total(&r.plain))
            } else {
                (wall(&r.managed, op), wall(&r.plain, op))
            };
            let ratio = managed / plain;
            let rows = if op == "all three" { 3.0 * n } else { n };
            let mut l = Line::new(
                format!("capture {op}: managed table (one transaction each)"),
                int(n),
            );
            l.wall_ms = Some(managed);
            l.rows_per_s = Some(rows / managed * 1e3);
            l.x_floor = Some(managed / floor_ms);
            l.client_cpu_ms = if op == "all three" {
                None
            } else {
                cpu(&r.managed, op)
            };
            l.target = format!("≤ {CAPTURE_RATIO_MAX}× unmanaged");
            l.figure = format!("{ratio:.2}× ({} ms unmanaged)", int(plain));
            if op == "all three" {
                l.rss_mib = Some(mib(&r.managed));
                l.target.push_str(&format!("; RSS ≤ {RSS_MAX_MIB} MiB"));
                l.figure.push_str(&format!("; {:.1} MiB", mib(&r.managed)));
            }
            l.result = if at_target {
                v.judge(
                    &format!("capture {op} ratio at N = {}", r.n),
                    ratio <= CAPTURE_RATIO_MAX,
                )
                .to_string()
            } else {
                "(target at 100,000)".into()
            };
            if op == "all three" {
                let rss = v.judge(
                    &format!("capture peak RSS at N = {}", r.n),
                    mib(&r.managed) <= RSS_MAX_MIB,
                );
                l.result = format!("{}; {rss}", l.result);
            }
            lines.push(l);
        }

        let sync_steps = [
            (
                "push: device A, oversqlite_push_pending()",
                &r.push,
                "push",
                PUSH_MIN,
                r.server_cpu_ms[0],
            ),
            (
                "pull: device B, oversqlite_pull_to_stable()",
                &r.pull,
                "pull",
                PULL_MIN,
                r.server_cpu_ms[1],
            ),
            (
                "hydrate: device C, oversqlite_attach() by snapshot",
                &r.hydrate,
                "hydrate",
                HYDRATE_MIN,
                r.server_cpu_ms[2],
            ),
        ];
        for (label, o, phase, min, server_cpu) in sync_steps {
            let ms = wall(o, phase);
            let rate = n / ms * 1e3;
            let mut l = Line::new(label, int(n));
            l.wall_ms = Some(ms);
            l.rows_per_s = Some(rate);
            l.x_floor = Some(ms / floor_ms);
            l.rss_mib = Some(mib(o));
            l.client_cpu_ms = cpu(o, phase);
            l.server_cpu_ms = server_cpu;
            l.target = format!("≥ {} rows/s; RSS ≤ {RSS_MAX_MIB} MiB", int(min));
            l.figure = format!("{} rows/s; {:.1} MiB", int(rate), mib(o));
            let speed = if at_target {
                v.judge(&format!("{phase} rows/s at N = {}", r.n), rate >= min)
            } else {
                "(target at 100,000)"
            };
            let rss = v.judge(
                &format!("{phase} peak RSS at N = {}", r.n),
                mib(o) <= RSS_MAX_MIB,
            );
            l.result = format!("{speed}; {rss}");
            lines.push(l);
        }
    }

    if let (Some(small), Some(large)) = (
        runs.iter().min_by_key(|r| r.n),
        runs.iter().max_by_key(|r| r.n),
    ) {
        if large.n > small.n {
            let span = format!("{} → {}", int(small.n as f64), int(large.n as f64));
            let per_row = |r: &SizeRun| capture_total(&r.managed) * 1e3 / (3.0 * r.n as f64);
            let growth = per_row(large) / per_row(small);
            let mut l = Line::new("capture linearity: managed µs per row", span.clone());
            l.target = format!("≤ {LINEARITY_MAX}× per-row cost");
            l.figure = format!(
                "{growth:.2}× ({:.2} → {:.2} µs/row)",
                per_row(small),
                per_row(large)
            );
            l.result = v.judge("capture linearity", growth <= LINEARITY_MAX).into();
            lines.push(l);
            let steps: [(&str, StepOf); 4] = [
                ("capture", |r| &r.managed),
                ("push", |r| &r.push),
                ("pull", |r| &r.pull),
                ("hydrate", |r| &r.hydrate),
            ];
            for (name, get) in steps {
                let grew = mib(get(large)) - mib(get(small));
                let mut l = Line::new(format!("{name}: peak RSS growth"), span.clone());
                l.target = format!("< {RSS_GROWTH_MAX_MIB} MiB");
                l.figure = format!(
                    "{grew:+.1} MiB ({:.1} → {:.1})",
                    mib(get(small)),
                    mib(get(large))
                );
                l.result = v
                    .judge(&format!("{name} RSS growth"), grew < RSS_GROWTH_MAX_MIB)
                    .into();
                lines.push(l);
            }
        }
    }

    let mut out = String::from(
        "| step | N | wall ms | rows/s | × floor | peak RSS MiB | client CPU ms | server CPU ms | target | figure | result |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|---|---|---|\n",
    );
    for l in &lines {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            l.step,
            l.n,
            opt(l.wall_ms, |x| format!("{x:.1}")),
            opt(l.rows_per_s, int),
            opt(l.x_floor, |x| format!("{x:.2}")),
            opt(l.rss_mib, |x| format!("{x:.1}")),
            opt(l.client_cpu_ms, |x| format!("{x:.0}")),
            opt(l.server_cpu_ms, |x| format!("{x:.0}")),
            if l.target.is_empty() {
                "—"
            } else {
                &l.target
            },
            if l.figure.is_empty() {
                "—"
            } else {
                &l.figure
            },
            if l.result.is_empty() {
                "—"
            } else {
                &l.result
            },
        ));
    }
    (out, v)
}

fn ms(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "—".into()
    }
}

/// The busy-writer runs as one markdown table (targets judged at whatever size ran; the
/// issue's figures are for a 20,000-row backlog and a write every 5 ms for 10 s), plus
/// one line per journal mode naming the errors, if any.
pub fn busy_table(runs: &[BusyRun]) -> (String, Verdicts) {
    let mut v = Verdicts::default();
    let mut out = String::from(
        "| run | backlog | writer | sync calls ok / total | complete: false | rows pushed | rows/s | writes (failed) | writer p50 ms | writer p99 ms | writer max ms | longest lock wait ms (waits) | longest sync write transaction ms | longest sync ms | client CPU ms | server CPU ms | target | result |\n\
         |---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|\n",
    );
    let mut notes = String::new();
    for r in runs {
        let f = r.figures();
        let journal = f.journal.unwrap_or(Journal::Wal);
        let label = format!("{}, {}", journal.label(), f.role.label());
        let rate = f.rows_pushed.map(|rows| rows as f64 / f.busy_wall_ms * 1e3);
        let mut target = "100% syncs ok; every write ok".to_string();
        let mut results = vec![
            v.judge(
                &format!("busy {label}: every sync call returns normally"),
                f.syncs_total > 0 && f.syncs_ok == f.syncs_total,
            ),
            v.judge(
                &format!("busy {label}: every write succeeds"),
                f.write_errors == 0,
            ),
        ];
        // The latency targets are for its run (WAL, the device pushing a
        // backlog); the pulling device's figures are shown next to them unjudged.
        if journal == Journal::Wal && f.role == Role::Pull {
            target.push_str(&format!(
                "; (p99 ≤ {BUSY_P99_MAX_MS} ms, max ≤ {BUSY_MAX_MS} ms: not judged)"
            ));
        }
        if journal == Journal::Wal && f.role == Role::Push {
            target.push_str(&format!(
                "; p99 ≤ {BUSY_P99_MAX_MS} ms; max ≤ {BUSY_MAX_MS} ms"
            ));
            results.push(v.judge(
                &format!("busy {label}: writer p99"),
                f.writer_p99_ms <= BUSY_P99_MAX_MS,
            ));
            results.push(v.judge(
                &format!("busy {label}: writer max"),
                f.writer_max_ms <= BUSY_MAX_MS,
            ));
        }
        let cpu = r.outcome.phases.get("busy").map(|p| p.cpu_ms);
        let waits = format!("{} ({})", ms(f.max_lock_wait_ms), f.lock_waits);
        out.push_str(&format!(
            "| {label} | {} | every {} ms for {} s | {} / {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {target} | {} |\n",
            int(f.backlog as f64),
            f.gap_ms,
            f.seconds,
            f.syncs_ok,
            f.syncs_total,
            f.syncs_incomplete,
            opt(f.rows_pushed.map(|r| r as f64), int),
            opt(rate, int),
            f.writes,
            f.write_errors,
            ms(f.writer_p50_ms),
            ms(f.writer_p99_ms),
            ms(f.writer_max_ms),
            waits,
            ms(f.longest_transactions.first().map_or(f64::NAN, |t| t.hold_ms)),
            ms(f.longest_sync_ms),
            opt(cpu, |x| format!("{x:.0}")),
            opt(r.server_cpu_ms, |x| format!("{x:.0}")),
            results.join("; "),
        ));
        if !f.longest_transactions.is_empty() {
            let holds: Vec<String> = f
                .longest_transactions
                .iter()
                .map(|t| {
                    let top: Vec<String> = t
                        .top
                        .iter()
                        .map(|(sql, n, ms)| format!("`{sql}` ×{n} {ms:.1} ms"))
                        .collect();
                    format!(
                        "{:.1} ms (COMMIT {:.0} ms; {} statements; {})",
                        t.hold_ms,
                        t.commit_ms,
                        t.statements,
                        top.join(", ")
                    )
                })
                .collect();
            notes.push_str(&format!(
                "\n{label}: the sync ran {} write transactions, {} held the lock over 10 ms and {} over 100 ms; \
                 the longest: {}. (Statement times overlap: a query read row by row while other \
                 statements run counts its whole reading time.) Writes slower than 10 ms: {}; \
                 the slowest write's own work, lock wait excluded: {:.1} ms.",
                f.sync_transactions,
                f.transactions_over_10ms,
                f.transactions_over_100ms,
                holds.join("; "),
                f.writes_over_10ms,
                f.writer_max_own_ms,
            ));
            if let (Some(ms), Some(sql)) = (f.longest_autocommit_ms, &f.longest_autocommit_sql) {
                notes.push_str(&format!(
                    " Longest statement outside a transaction: {ms:.1} ms, `{sql}`."
                ));
            }
            notes.push('\n');
        }
        if !f.sync_errors.is_empty() {
            let codes: Vec<String> = f
                .sync_errors
                .iter()
                .map(|(code, n)| format!("`{code}` ×{n}"))
                .collect();
            notes.push_str(&format!(
                "\n{label}: {} sync calls failed ({}), e.g. `{}`.\n",
                f.syncs_total - f.syncs_ok,
                codes.join(", "),
                f.first_error.as_deref().unwrap_or("?")
            ));
        }
        if let Some(e) = &f.first_write_error {
            notes.push_str(&format!(
                "\n{label}: {} writes failed, e.g. `{e}`.\n",
                f.write_errors
            ));
        }
    }
    out.push_str(&notes);
    (out, v)
}

/// The auto-sync step (issue #11) as a markdown table: latency from a commit on A to the
/// row on B, and the idle cost of a running worker.
pub fn auto_table(outcome: &Outcome) -> String {
    let d = &outcome.detail;
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let lat = &d["latency_ms"];
    let idle = &d["idle"];
    format!(
        "| measure | figure |\n|---|--:|\n\
         | commit on A → row on B, p50 (ms, {} writes, debounce_ms 50, watch) | {:.0} |\n\
         | commit on A → row on B, p95 (ms) | {:.0} |\n\
         | commit on A → row on B, max (ms) | {:.0} |\n\
         | idle worker CPU (ms per minute, default options, {:.0} s measured) | {:.1} |\n\
         | idle worker wakeups (context switches per minute, its {} threads / {} workers) | {:.0} |\n",
        d["writes"],
        f(&lat["p50"]),
        f(&lat["p95"]),
        f(&lat["max"]),
        f(&idle["seconds"]),
        f(&idle["cpu_ms_per_min_per_worker"]),
        idle["threads"],
        idle["workers"],
        f(&idle["wakeups_per_min_per_worker"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::Phase;

    fn outcome(phases: &[(&str, f64)], rss_mib: u64) -> Outcome {
        Outcome {
            phases: phases
                .iter()
                .map(|(k, ms)| {
                    (
                        k.to_string(),
                        Phase {
                            wall_ms: *ms,
                            cpu_ms: *ms,
                        },
                    )
                })
                .collect(),
            peak_rss_kib: rss_mib * 1024,
            detail: serde_json::Value::Null,
        }
    }

    fn run(n: usize, push_ms: f64, rss: u64) -> SizeRun {
        SizeRun {
            n,
            floor: outcome(&[("insert", 100.0)], 5),
            baseline: outcome(&[], 6),
            plain: outcome(
                &[("insert", 100.0), ("update", 100.0), ("delete", 100.0)],
                5,
            ),
            managed: outcome(
                &[("insert", 300.0), ("update", 300.0), ("delete", 400.0)],
                8,
            ),
            push: outcome(&[("push", push_ms)], rss),
            pull: outcome(&[("pull", 1000.0)], 10),
            hydrate: outcome(&[("hydrate", 1000.0)], 10),
            server_cpu_ms: [Some(1.0), None, None],
        }
    }

    #[test]
    fn judges_targets_from_the_figures() {
        // 100,000 rows: push 2 s = 50,000 rows/s (met), pull/hydrate 1 s = 100,000 (met),
        // delete 4× unmanaged (missed), total 3.33× (met); push RSS 70 MiB (missed).
        let (table, v) = table(&[run(10_000, 200.0, 20), run(100_000, 2000.0, 70)]);
        assert!(table.contains("| 50,000 |"), "{table}");
        assert!(
            v.missed
                .contains(&"capture delete ratio at N = 100000".to_string()),
            "{:?}",
            v.missed
        );
        assert!(v
            .missed
            .contains(&"push peak RSS at N = 100000".to_string()));
        assert!(v.missed.contains(&"push RSS growth".to_string()), "+50 MiB");
        assert!(
            !v.missed.iter().any(|m| m.contains("rows/s")),
            "{:?}",
            v.missed
        );
        assert!(!v.missed.contains(&"capture linearity".to_string()));
        assert!(table.contains("(target at 100,000)"));
    }

    fn busy(journal: &str, role: &str, ok: usize, p99: f64, max: f64) -> BusyRun {
        BusyRun {
            outcome: Outcome {
                phases: [(
                    "busy".to_string(),
                    Phase {
                        wall_ms: 10_000.0,
                        cpu_ms: 900.0,
                    },
                )]
                .into_iter()
                .collect(),
                peak_rss_kib: 0,
                detail: serde_json::json!({
                    "journal": journal, "role": role, "backlog": 20000, "seconds": 10.0, "gap_ms": 5,
                    "syncs_ok": ok, "syncs_total": 40, "syncs_incomplete": 3,
                    "sync_errors": if ok < 40 { serde_json::json!({"pending_local_changes": 40 - ok}) } else { serde_json::json!({}) },
                    "first_error": if ok < 40 { serde_json::json!("oversqlite_sync: pending_local_changes: x") } else { serde_json::Value::Null },
                    "longest_sync_ms": 900.0, "busy_wall_ms": 10_000.0, "rows_pushed": 21_500,
                    "writes": 1700, "write_errors": 0, "first_write_error": null,
                    "writer_p50_ms": 0.5, "writer_p99_ms": p99, "writer_max_ms": max,
                    "lock_waits": 12, "max_lock_wait_ms": max - 0.5, "drain_syncs": 1
                }),
            },
            server_cpu_ms: None,
        }
    }

    #[test]
    fn busy_targets() {
        let (table, v) = busy_table(&[
            busy("wal", "push", 40, 3.0, 180.0),
            busy("wal", "pull", 40, 30.0, 900.0),
            busy("rollback", "push", 30, 30.0, 250.0),
        ]);
        assert!(
            table.contains(
                "| WAL, pushing device | 20,000 | every 5 ms for 10 s | 40 / 40 | 3 | 21,500 | 2,150 |"
            ),
            "{table}"
        );
        assert_eq!(
            v.missed,
            vec![
                "busy WAL, pushing device: writer max".to_string(),
                "busy rollback journal, pushing device: every sync call returns normally"
                    .to_string()
            ]
        );
        // Latency is judged for the run only (WAL, pushing); every run must
        // have its syncs and writes succeed: 3 + 2 + 1 met.
        assert_eq!(v.met, 6);
        assert!(table.contains("not judged"), "{table}");
        assert!(
            table.contains(
                "rollback journal, pushing device: 10 sync calls failed (`pending_local_changes` ×10)"
            ),
            "{table}"
        );
    }

    #[test]
    fn formats_thousands() {
        assert_eq!(int(1234567.4), "1,234,567");
        assert_eq!(int(999.0), "999");
        assert_eq!(int(f64::NAN), "—");
    }
}
