//! Process figures from /proc (Linux): peak resident set size and CPU time.
use std::time::Duration;

/// Peak resident set size of this process (VmHWM), in KiB.
pub fn peak_rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("read /proc/self/status: {e}"))?;
    status_field_kib(&status, "VmHWM:").ok_or_else(|| "no VmHWM in /proc/self/status".to_string())
}

fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// User + system CPU time consumed so far by process `pid` ("self" for this one).
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; the fields after its ')' are fixed.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_second(),
    ))
}

fn clock_ticks_per_second() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    // USER_HZ is 100 on every Linux ABI Rust supports; getconf confirms when present.
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_figures() {
        assert!(peak_rss_kib().unwrap() > 100);
        let busy: u64 = (0..20_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(busy > 0);
        assert!(cpu_time("self").is_some());
    }

    #[test]
    fn parses_status_lines() {
        let s = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(status_field_kib(s, "VmHWM:"), Some(12345));
        assert_eq!(status_field_kib(s, "VmPeak:"), None);
    }
}
