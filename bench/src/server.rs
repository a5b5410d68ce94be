//! The sync server the benchmark talks to: oversqlite-server started on a free loopback
//! port with a temporary store (stopped on drop), or an external one given by URL.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Server {
    pub url: String,
    /// Present when we started the server (its pid lets us read its CPU time).
    child: Option<Child>,
    /// Its SQLite store, when we started it (read by the busy step to count rows).
    store: Option<PathBuf>,
    tokens: TokenSource,
}

enum TokenSource {
    /// `oversqlite-server token` with the secret the started server uses.
    Minted {
        bin: PathBuf,
        config: PathBuf,
        secret: String,
    },
    /// A user-supplied shell command.
    Command(String),
}

impl Server {
    pub fn start(bin: &Path, config: &Path, store: &Path) -> Result<Server, String> {
        if !bin.is_file() {
            return Err(format!("server binary {} not found: build it (cargo build --release -p oversqlite-server) or pass --server-bin", bin.display()));
        }
        let secret = format!("bench-{:x}-{}", nanos(), std::process::id());
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--shutdown-grace-ms",
                "0",
                // Refusals and failures only: a line per request would cost time and flood
                // the benchmark's output.
                "--log-level",
                "warn",
            ])
            .arg("--config")
            .arg(config)
            .arg("--data")
            .arg(store)
            .env("OVERSQLITE_JWT_SECRET", &secret)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Server {
            url: String::new(),
            child: Some(child),
            store: Some(store.to_path_buf()),
            tokens: TokenSource::Minted {
                bin: bin.to_path_buf(),
                config: config.to_path_buf(),
                secret,
            },
        };
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                        server.url = url.trim_end_matches('/').to_string();
                        return Ok(server);
                    }
                }
                Err(_) => {
                    return Err(
                        "oversqlite-server did not print its listening address within 30 s".into(),
                    )
                }
            }
        }
    }

    pub fn external(url: &str, token_command: &str) -> Server {
        Server {
            url: url.to_string(),
            child: None,
            store: None,
            tokens: TokenSource::Command(token_command.to_string()),
        }
    }

    pub fn store(&self) -> Option<&Path> {
        self.store.as_deref()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A bearer token for `user`.
    pub fn token(&self, user: &str) -> Result<String, String> {
        let output = match &self.tokens {
            TokenSource::Minted {
                bin,
                config,
                secret,
            } => Command::new(bin)
                .args(["token", "--user", user, "--ttl-seconds", "7200"])
                .arg("--config")
                .arg(config)
                .env("OVERSQLITE_JWT_SECRET", secret)
                .output(),
            TokenSource::Command(cmd) => Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .arg("oversqlite-bench")
                .arg(user)
                .env("OVERSQLITE_BENCH_USER", user)
                .output(),
        }
        .map_err(|e| format!("token command: {e}"))?;
        if !output.status.success() {
            // stderr may be shown; stdout (where a token would be) is not.
            return Err(format!(
                "token command failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let token = String::from_utf8(output.stdout)
            .map_err(|_| "token command printed non-UTF-8".to_string())?;
        let token = token.trim().to_string();
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err("token command must print exactly one token".into());
        }
        Ok(token)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
