//! Finding the contract fixtures, which live outside this repository (the conformance set
//! `shared/contracts`, beside the repository in CI). Included with `#[path]` by the four
//! suites that run fixtures (core, engine, server, tests/e2e), so they share one rule:
//!
//! * `OVERSQLITE_CONTRACTS_DIR` set: it must name a directory, else the fixture tests fail.
//!   CI sets it, so CI can never skip a fixture.
//! * not set: `shared/contracts` inside or beside the repository; when neither exists (a
//!   plain clone), each fixture test returns at once and the test binary prints one line
//!   saying how many fixture tests did not run and how to run them.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

const VARIABLE: &str = "OVERSQLITE_CONTRACTS_DIR";

/// The fixtures directory, or `None` when they are not here and the variable is unset.
/// Panics when the variable names something that is not a directory.
pub fn locate(repo: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(VARIABLE).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "{VARIABLE}={} is not a directory: the contract fixtures must be there",
            dir.display()
        );
        return Some(dir);
    }
    [
        repo.join("shared/contracts"),
        repo.join("../shared/contracts"),
    ]
    .into_iter()
    .find(|c| c.is_dir())
}

/// The fixtures directory; for tests that already checked [`available`].
pub fn dir(repo: &Path) -> PathBuf {
    locate(repo).unwrap_or_else(|| {
        panic!("contract fixtures not found; check `available` first or set {VARIABLE}")
    })
}

static SKIPPED: AtomicUsize = AtomicUsize::new(0);
static REPORT_AT_EXIT: Once = Once::new();

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

/// True when the fixtures are here. Otherwise counts the calling test as not run; the
/// count is printed once, when the test binary exits (after libtest's own summary).
pub fn available(repo: &Path) -> bool {
    if locate(repo).is_some() {
        return true;
    }
    SKIPPED.fetch_add(1, Ordering::SeqCst);
    REPORT_AT_EXIT.call_once(|| {
        // SAFETY: registers a plain function with no captured state; it only writes to stderr.
        unsafe { atexit(report_skipped) };
    });
    false
}

extern "C" fn report_skipped() {
    let n = SKIPPED.load(Ordering::SeqCst);
    let tests = if n == 1 { "test" } else { "tests" };
    // Straight to the stderr handle: libtest captures only the print macros, and this runs
    // after it has printed its summary.
    let _ = writeln!(
        std::io::stderr(),
        "contract fixtures not found: {n} fixture {tests} not run; \
         set {VARIABLE}=/path/to/contracts to run them"
    );
}
