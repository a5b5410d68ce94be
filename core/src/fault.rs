//! Test hook for crash-safety tests, driven by `OVERSQLITE_TEST_FAULT=<mode>:<point>[#n]`
//! (`*` names every point; `#n` fires only the n-th time the point is reached in this
//! process, otherwise it fires every time):
//!
//! * `panic` — the point panics, to prove a panic mid-way rolls back and never crosses
//!   into the host;
//! * `abort` — the process ends at once with SIGABRT;
//! * `exit` — the process ends at once with `_exit(86)`.
//!
//! `abort` and `exit` behave like `kill -9`: no destructor, rollback, flush or atexit
//! handler runs, so whatever SQLite had not made durable is gone, exactly as after a
//! power cut of the device process. Entry points of the extension are points
//! (`oversqlite_open`, `oversqlite_pending.filter`), and so is every durable step of the
//! sync engine (`push.after_freeze`, `pull.after_bundle_applied`, ...).
//!
//! Only builds with the cargo feature `test-faults` read the variable (the test builds:
//! `make build-test`, the engine's tests); without it [`point`] does nothing, so a
//! release library ignores `OVERSQLITE_TEST_FAULT`.
#[cfg(feature = "test-faults")]
use std::sync::atomic::{AtomicU32, Ordering};

/// Exit status of the `exit` mode, so a test can tell an injected exit from a crash.
pub const EXIT_STATUS: i32 = 86;

/// Times the targeted point has been reached in this process (a spec names one point).
#[cfg(feature = "test-faults")]
static HITS: AtomicU32 = AtomicU32::new(0);

/// Without the `test-faults` feature: nothing, whatever `OVERSQLITE_TEST_FAULT` says.
#[cfg(not(feature = "test-faults"))]
#[inline(always)]
pub fn point(_name: &str) {}

#[cfg(feature = "test-faults")]
pub fn point(name: &str) {
    let Ok(spec) = std::env::var("OVERSQLITE_TEST_FAULT") else {
        return;
    };
    let Some((mode, target)) = spec.split_once(':') else {
        return;
    };
    let (target, nth) = match target.split_once('#') {
        Some((t, n)) => (t, n.parse::<u32>().ok()),
        None => (target, None),
    };
    if target != "*" && target != name {
        return;
    }
    if let Some(nth) = nth {
        if HITS.fetch_add(1, Ordering::SeqCst) + 1 != nth {
            return;
        }
    }
    match mode {
        // resume_unwind skips the panic hook: an injected fault unwinds exactly like a
        // real panic but does not print a backtrace into the host's stderr.
        "panic" => std::panic::resume_unwind(Box::new(format!(
            "OVERSQLITE_TEST_FAULT injected panic at {name}"
        ))),
        "abort" => std::process::abort(),
        "exit" => hard_exit(),
        _ => {}
    }
}

#[cfg(all(unix, feature = "test-faults"))]
#[allow(unsafe_code)]
fn hard_exit() -> ! {
    extern "C" {
        fn _exit(status: std::os::raw::c_int) -> !;
    }
    // SAFETY: `_exit` is async-signal-safe and never returns; skipping atexit handlers
    // and stdio flushing is the point.
    unsafe { _exit(EXIT_STATUS) }
}

#[cfg(all(not(unix), feature = "test-faults"))]
fn hard_exit() -> ! {
    std::process::abort()
}

#[cfg(all(test, not(feature = "test-faults")))]
mod tests {
    /// A build without `test-faults` (as released) ignores the variable: no exit, no
    /// abort, no panic at any point.
    #[test]
    fn build_without_test_faults_feature_ignores_oversqlite_test_fault() {
        for spec in [
            "exit:*",
            "abort:*",
            "panic:*",
            "exit:oversqlite_init",
            "exit:*#1",
        ] {
            std::env::set_var("OVERSQLITE_TEST_FAULT", spec);
            super::point("oversqlite_init");
            super::point("push.after_freeze");
        }
        std::env::remove_var("OVERSQLITE_TEST_FAULT");
    }
}

/// Test builds only: `OVERSQLITE_TEST_MAX_BUNDLE_ROWS=<n>` caps every frozen bundle at
/// about `n` rows, so the randomised suites, whose backlogs are small, cut bundles the
/// way a large backlog is cut (engine `ops/bundle_cut.rs`).
#[cfg(feature = "test-faults")]
pub fn max_bundle_rows_override() -> Option<usize> {
    std::env::var("OVERSQLITE_TEST_MAX_BUNDLE_ROWS")
        .ok()?
        .parse()
        .ok()
}

/// Without the `test-faults` feature: no override.
#[cfg(not(feature = "test-faults"))]
#[inline(always)]
pub fn max_bundle_rows_override() -> Option<usize> {
    None
}
