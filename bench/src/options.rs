//! Command line of the benchmark's parent process.
use std::path::{Path, PathBuf};

pub const USAGE: &str = "\
oversqlite-bench: capture, push, pull and hydrate figures for liboversqlite

usage: oversqlite-bench [options]

  --sizes N,N,...          row counts to run (default 10000,100000)
  --extension PATH         liboversqlite.so to load (default target/release/liboversqlite.so)
  --server-bin PATH        oversqlite-server binary started when --server-url is absent
                           (default target/release/oversqlite-server)
  --server-config PATH     its table registration (default bench/server-config.toml)
  --server-url URL         use this running go-oversync-compatible server instead
  --schema NAME            remote schema holding the `users` table (default business)
  --token-command CMD      shell command printing a bearer token for a user; the user id is
                           its first argument ($1) and env OVERSQLITE_BENCH_USER (required
                           with --server-url; default: `oversqlite-server token`)
  --busy-backlog N         busy-writer step (issue #16): rows pending on device A when the
                           writer starts (default 20000)
  --busy-seconds S         how long the writer writes while A syncs in a loop, once in WAL
                           and once with a rollback journal (default 10; 0 skips the step)
  --busy-gap-ms MS         pause between the writer's writes (default 5)
  --busy-only              run the busy-writer step only (nothing is written unless
                           --output is given)
  --auto-writes N          auto-sync step (issue #11): writes timed from a commit on A to
                           the row on B, both devices running the worker with
                           debounce_ms 50 and watch (default 50; 0 skips the step)
  --auto-idle-seconds S    how long the idle cost of running workers is measured (default 20)
  --output PATH            markdown results file (default bench/results.md)
  --no-write               print the table only
  --require-targets        exit with status 3 when any target is missed
  --step-timeout SECS      kill a step that runs longer (default 900)
  --work-dir DIR           where device databases go (default: a fresh temp dir, removed)
  --wrap STEP=COMMAND      run STEP's child process under COMMAND (split on spaces), e.g.
                           --wrap 'push=perf record -e cpu-clock -g -o push.perf --'
                           (steps: floor baseline capture_plain capture_managed
                           prepare_push prepare_pull push pull hydrate busy)
  --built-from COMMIT      the binaries were built from this commit (a clean export):
                           recorded instead of this checkout's HEAD and its changes
  -h, --help               this text
";

/// Step names as `--wrap` takes them (the serde names of `steps::Step`).
pub const STEP_NAMES: [&str; 11] = [
    "floor",
    "baseline",
    "capture_plain",
    "capture_managed",
    "prepare_push",
    "prepare_pull",
    "push",
    "pull",
    "hydrate",
    "busy",
    "auto_sync",
];

#[derive(Debug, Clone)]
pub struct Options {
    pub sizes: Vec<usize>,
    pub extension: PathBuf,
    pub server_bin: PathBuf,
    pub server_config: PathBuf,
    pub server_url: Option<String>,
    pub schema: String,
    pub token_command: Option<String>,
    pub output: Option<PathBuf>,
    pub step_timeout_secs: u64,
    pub work_dir: Option<PathBuf>,
    /// Profiler commands to start given steps under: (step name, argv prefix).
    pub wrap: Vec<(String, Vec<String>)>,
    pub built_from: Option<String>,
    pub require_targets: bool,
    pub busy_backlog: usize,
    /// 0: no busy-writer step.
    pub busy_seconds: f64,
    pub busy_gap_ms: u64,
    /// Skip the per-size steps.
    pub busy_only: bool,
    /// 0: no auto-sync step.
    pub auto_writes: usize,
    pub auto_idle_seconds: f64,
}

/// The repository root, so the defaults work from any working directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

impl Options {
    fn defaults() -> Options {
        let root = repo_root();
        Options {
            sizes: vec![10_000, 100_000],
            extension: root.join("target/release/liboversqlite.so"),
            server_bin: root.join("target/release/oversqlite-server"),
            server_config: root.join("bench/server-config.toml"),
            server_url: None,
            schema: "business".into(),
            token_command: None,
            output: Some(root.join("bench/results.md")),
            step_timeout_secs: 900,
            work_dir: None,
            wrap: Vec::new(),
            built_from: None,
            require_targets: false,
            busy_backlog: 20_000,
            busy_seconds: 10.0,
            busy_gap_ms: 5,
            busy_only: false,
            auto_writes: 50,
            auto_idle_seconds: 20.0,
        }
    }

    /// `Ok(None)` means help was asked for.
    pub fn parse(args: &[String]) -> Result<Option<Options>, String> {
        let mut o = Options::defaults();
        let mut output_given = false;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                return Ok(None);
            }
            if flag == "--no-write" {
                o.output = None;
                continue;
            }
            if flag == "--require-targets" {
                o.require_targets = true;
                continue;
            }
            if flag == "--busy-only" {
                o.busy_only = true;
                continue;
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .clone();
            match flag.as_str() {
                "--sizes" => o.sizes = parse_sizes(&value)?,
                "--extension" => o.extension = PathBuf::from(value),
                "--server-bin" => o.server_bin = PathBuf::from(value),
                "--server-config" => o.server_config = PathBuf::from(value),
                "--server-url" => o.server_url = Some(value.trim_end_matches('/').to_string()),
                "--schema" => o.schema = value,
                "--token-command" => o.token_command = Some(value),
                "--output" => {
                    o.output = Some(PathBuf::from(value));
                    output_given = true;
                }
                "--busy-backlog" => {
                    o.busy_backlog = value
                        .replace('_', "")
                        .parse()
                        .map_err(|_| format!("--busy-backlog: not a row count: {value}"))?
                }
                "--busy-seconds" => {
                    o.busy_seconds = value
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                        .ok_or_else(|| format!("--busy-seconds: not a duration: {value}"))?
                }
                "--busy-gap-ms" => {
                    o.busy_gap_ms = value
                        .parse()
                        .map_err(|_| format!("--busy-gap-ms: not a number: {value}"))?
                }
                "--auto-writes" => {
                    o.auto_writes = value
                        .parse()
                        .map_err(|_| format!("--auto-writes: not a count: {value}"))?
                }
                "--auto-idle-seconds" => {
                    o.auto_idle_seconds = value
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| format!("--auto-idle-seconds: not a duration: {value}"))?
                }
                "--step-timeout" => {
                    o.step_timeout_secs = value
                        .parse()
                        .map_err(|_| format!("--step-timeout: not a number: {value}"))?
                }
                "--built-from" => o.built_from = Some(value),
                "--work-dir" => o.work_dir = Some(PathBuf::from(value)),
                "--wrap" => {
                    let (step, cmd) = value
                        .split_once('=')
                        .ok_or_else(|| format!("--wrap needs STEP=COMMAND: {value}"))?;
                    let argv: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
                    if !STEP_NAMES.contains(&step.trim()) {
                        return Err(format!(
                            "--wrap: unknown step {step:?} (one of {})",
                            STEP_NAMES.join(", ")
                        ));
                    }
                    if argv.is_empty() {
                        return Err(format!("--wrap {step}: empty command"));
                    }
                    o.wrap.push((step.trim().to_string(), argv));
                }
                other => return Err(format!("unknown option {other} (see --help)")),
            }
        }
        if o.server_url.is_some() && o.token_command.is_none() {
            return Err("--server-url needs --token-command (a command printing a bearer token for the user in $1)".into());
        }
        if o.schema.trim().is_empty() {
            return Err("--schema must not be empty".into());
        }
        if o.busy_only {
            if o.busy_seconds == 0.0 {
                return Err("--busy-only with --busy-seconds 0 runs nothing".into());
            }
            // A partial run must not replace the full results file by accident.
            if !output_given {
                o.output = None;
            }
        }
        Ok(Some(o))
    }
}

fn parse_sizes(text: &str) -> Result<Vec<usize>, String> {
    let sizes = text
        .split(',')
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse::<usize>()
                .map_err(|_| format!("--sizes: not a row count: {s}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if sizes.is_empty() || sizes.contains(&0) {
        return Err("--sizes needs positive row counts".into());
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn sizes_and_paths() {
        let o = parse(&[
            "--sizes",
            "1_000,20",
            "--extension",
            "x.so",
            "--no-write",
            "--wrap",
            "push=perf record -g --",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(o.sizes, vec![1000, 20]);
        assert_eq!(
            o.wrap,
            vec![(
                "push".to_string(),
                vec!["perf".into(), "record".into(), "-g".into(), "--".into()]
            )]
        );
        assert_eq!(o.extension, PathBuf::from("x.so"));
        assert!(o.output.is_none());
    }

    #[test]
    fn busy_step_options() {
        let o = parse(&[]).unwrap().unwrap();
        assert_eq!(
            (o.busy_backlog, o.busy_seconds, o.busy_gap_ms),
            (20_000, 10.0, 5)
        );
        assert!(!o.busy_only && o.output.is_some());
        let o = parse(&[
            "--busy-backlog",
            "300",
            "--busy-seconds",
            "0.5",
            "--busy-gap-ms",
            "2",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (o.busy_backlog, o.busy_seconds, o.busy_gap_ms),
            (300, 0.5, 2)
        );
        let o = parse(&["--busy-only"]).unwrap().unwrap();
        assert!(
            o.busy_only && o.output.is_none(),
            "a partial run writes nothing"
        );
        let o = parse(&["--busy-only", "--output", "x.md"])
            .unwrap()
            .unwrap();
        assert_eq!(o.output, Some(PathBuf::from("x.md")));
        assert!(parse(&["--busy-seconds", "-1"]).is_err());
        assert!(parse(&["--busy-seconds", "0", "--busy-only"]).is_err());
        assert!(parse(&["--busy-backlog", "many"]).is_err());
        let o = parse(&["--auto-writes", "5", "--auto-idle-seconds", "1.5"])
            .unwrap()
            .unwrap();
        assert_eq!((o.auto_writes, o.auto_idle_seconds), (5, 1.5));
        assert_eq!(parse(&[]).unwrap().unwrap().auto_writes, 50);
        assert!(parse(&["--auto-idle-seconds", "0"]).is_err());
    }

    #[test]
    fn external_server_needs_a_token_command() {
        assert!(parse(&["--server-url", "http://h:1"])
            .unwrap_err()
            .contains("--token-command"));
        let o = parse(&["--server-url", "http://h:1/", "--token-command", "echo t"])
            .unwrap()
            .unwrap();
        assert_eq!(o.server_url.as_deref(), Some("http://h:1"));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&["--sizes", "0"]).is_err());
        assert!(parse(&["--sizes", "ten"]).is_err());
        assert!(parse(&["--bogus", "1"]).is_err());
        assert!(parse(&["--schema"]).is_err());
        assert!(parse(&["--wrap", "push"]).is_err());
        assert!(parse(&["--wrap", "pus=perf"]).is_err());
        for name in STEP_NAMES {
            let step: crate::steps::Step = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(serde_json::to_value(step).unwrap(), name);
        }
    }
}
