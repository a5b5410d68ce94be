//! `EnvToken` re-reads `OVERSQLITE_TOKEN` / `OVERSQLITE_TOKEN_FILE` on every request.
//! (Own test binary: it changes process environment variables.)

use oversqlite_engine::remote::auth::{EnvToken, TokenProvider, TOKEN_ENV, TOKEN_FILE_ENV};

#[test]
fn env_token_follows_the_variable_and_the_file() {
    let dir = std::env::temp_dir().join(format!("oversqlite-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "from-file-1\n").unwrap();
    // SAFETY: this test binary has a single test, so nothing reads the environment concurrently.
    unsafe {
        std::env::remove_var(TOKEN_ENV);
        std::env::set_var(TOKEN_FILE_ENV, &file);
    }
    assert_eq!(EnvToken.token().unwrap().as_deref(), Some("from-file-1"));
    std::fs::write(&file, "from-file-2").unwrap();
    assert_eq!(
        EnvToken.token().unwrap().as_deref(),
        Some("from-file-2"),
        "re-read per request"
    );
    assert_eq!(
        EnvToken.token_after_unauthorized().unwrap().as_deref(),
        Some("from-file-2")
    );
    unsafe { std::env::set_var(TOKEN_ENV, "from-env") };
    assert_eq!(
        EnvToken.token().unwrap().as_deref(),
        Some("from-env"),
        "the variable wins"
    );
    unsafe {
        std::env::remove_var(TOKEN_ENV);
        std::env::set_var(TOKEN_FILE_ENV, dir.join("missing"));
    }
    let e = EnvToken.token().unwrap_err();
    assert_eq!(e.code(), "token_unavailable");
    unsafe { std::env::remove_var(TOKEN_FILE_ENV) };
    assert_eq!(EnvToken.token().unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
}
