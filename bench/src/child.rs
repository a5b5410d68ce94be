//! Runs one step in a fresh process of this same binary, bounded by a timeout.
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::steps::{Outcome, Spec, TOKEN_ENV};

/// The hidden subcommand a child is started with.
pub const STEP_COMMAND: &str = "__step";

/// `wrapper`: a profiler command line the child is started under (`perf record ... --`).
pub fn run_step(
    spec: &Spec,
    token: Option<&str>,
    timeout: Duration,
    wrapper: Option<&[String]>,
) -> Result<Outcome, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let spec_json = serde_json::to_string(spec).map_err(|e| e.to_string())?;
    let mut cmd = match wrapper {
        Some([program, args @ ..]) => {
            let mut c = Command::new(program);
            c.args(args).arg(exe);
            c
        }
        _ => Command::new(exe),
    };
    cmd.arg(STEP_COMMAND)
        .arg(&spec_json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match token {
        Some(t) => cmd.env(TOKEN_ENV, t),
        None => cmd.env_remove(TOKEN_ENV),
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("start step {:?}: {e}", spec.step))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "step {:?} (N = {}) ran longer than {} s and was stopped",
                spec.step,
                spec.n,
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "step {:?} (N = {}) failed ({status}): {}",
            spec.step,
            spec.n,
            err.trim()
        ));
    }
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .map_err(|e| format!("step {:?}: unreadable result ({e}): {line}", spec.step))
}

/// Entry point of a child: runs the step and prints its outcome as one JSON line.
pub fn step_main(spec_json: &str) -> i32 {
    let spec: Spec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bad step spec: {e}");
            return 2;
        }
    };
    match crate::steps::run(&spec) {
        Ok(outcome) => {
            println!("{}", serde_json::to_string(&outcome).expect("serialisable"));
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
