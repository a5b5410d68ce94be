//! A description of the machine and the code a run measured.
use std::process::Command;

use crate::options::repo_root;

pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub os: String,
    pub date: String,
    pub commit: String,
    pub sqlite: String,
    /// Other work on the machine skews the figures; recorded so a reader can tell.
    pub load: String,
}

impl Machine {
    /// `built_from`: the commit a clean export of the measured code was built from.
    pub fn describe(built_from: Option<&str>) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let distro = os_release
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let kernel = command_output("uname", &["-sr"]).unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory,
            os: format!("{distro}, {kernel} ({})", std::env::consts::ARCH),
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
            commit: match built_from {
                Some(c) => format!("{c} (binaries built from a clean export of it)"),
                None => git_commit(),
            },
            sqlite: rusqlite::version().to_string(),
            load: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unknown".into()),
        }
    }

    pub fn markdown(&self) -> String {
        format!(
            "| | |\n|---|---|\n| CPU | {} |\n| cores | {} |\n| memory | {} |\n| OS | {} |\n| date | {} |\n| commit | {} |\n| host SQLite (bundled) | {} |\n| load average (1, 5, 15 min) at the end | {} |\n",
            self.cpu, self.cores, self.memory, self.os, self.date, self.commit, self.sqlite, self.load
        )
    }
}

fn git_commit() -> String {
    let root = repo_root();
    let root = root.to_string_lossy();
    let commit = command_output("git", &["-C", &root, "rev-parse", "--short=12", "HEAD"])
        .unwrap_or_else(|| "unknown".into());
    // Uncommitted changes in the measured code make the commit an approximation.
    let dirty = command_output(
        "git",
        &[
            "-C",
            &root,
            "status",
            "--porcelain",
            "--",
            "src",
            "core",
            "engine",
            "protocol",
            "server",
        ],
    )
    .map(|s| !s.is_empty())
    .unwrap_or(false);
    if dirty {
        format!("{commit} (with uncommitted changes)")
    } else {
        commit
    }
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
