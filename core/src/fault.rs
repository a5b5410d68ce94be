//! Test hook for crash-safety tests: with `OVERSQLITE_TEST_FAULT=panic:<point>` (or
//! `panic:*` for every point) the named point panics. Entry points of the extension are
//! points (`oversqlite_open`, `oversqlite_pending.filter`), and so are a few steps inside
//! multi-step transactions (`open.after_triggers`), to prove a panic mid-way rolls back.
pub fn point(name: &str) {
    if let Ok(spec) = std::env::var("OVERSQLITE_TEST_FAULT") {
        if let Some(target) = spec.strip_prefix("panic:") {
            if target == "*" || target == name {
                // resume_unwind skips the panic hook: an injected fault unwinds exactly like a
                // real panic but does not print a backtrace into the host's stderr.
                std::panic::resume_unwind(Box::new(format!("OVERSQLITE_TEST_FAULT injected panic at {name}")));
            }
        }
    }
}
