//! The stderr log subscriber and the check of its level. `EnvFilter` takes any bare word
//! as a target name, so a typo such as `wran` would parse and silently turn every log line
//! off; each directive is checked for a real level first.

/// The level names a directive may end with.
pub const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Why `directives` is not a log level: every comma-separated directive is a level
/// (`warn`) or `target=level` (`oversqlite_server=debug`).
pub fn check(directives: &str) -> Result<(), String> {
    for directive in directives.split(',').map(str::trim) {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level.trim(),
            Some(_) => "",
            None => directive,
        };
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "invalid log level {directives:?}: {directive:?} is not one of {} (or target=level, e.g. oversqlite_server=debug)",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// Installs the stderr log subscriber: `--log-level` (refused when invalid), else
/// OVERSQLITE_LOG, else RUST_LOG, else `info` (one line per request, each refused token's
/// reason). An invalid environment value is named once on stderr and `info` used instead:
/// a stray RUST_LOG meant for another program must not stop the server.
pub fn init(flag: Option<&str>) -> Result<(), String> {
    let directives = match flag {
        Some(flag) => {
            check(flag)?;
            flag.to_string()
        }
        None => from_env().unwrap_or_else(|| "info".to_string()),
    };
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| format!("invalid log level {directives:?}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init()
        .map_err(|e| format!("cannot start logging: {e}"))
}

/// The first non-blank of OVERSQLITE_LOG and RUST_LOG, if it is a valid level.
fn from_env() -> Option<String> {
    for name in ["OVERSQLITE_LOG", "RUST_LOG"] {
        let Some(value) = std::env::var(name).ok().filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        return match check(&value) {
            Ok(()) => Some(value),
            Err(why) => {
                eprintln!("oversqlite-server: warning: {name}: {why}; logging at info");
                None
            }
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn levels_and_target_directives_pass_typos_do_not() {
        for ok in [
            "info",
            "WARN",
            "off",
            "oversqlite_server=debug",
            "warn,oversqlite_server=trace",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in ["wran", "nonsense", "info,loud", "=info", "x=loud", ""] {
            let err = check(bad).unwrap_err();
            assert!(
                err.contains("off, error, warn, info, debug, trace"),
                "{err}"
            );
        }
    }
}
