//! The progress line: drawn on stderr only when it is a terminal (here a pseudo-terminal
//! from util-linux `script`), with the phase and the rows moved out of the total as the
//! engine's progress registry reports them; nothing on a pipe.
mod support;

use std::process::Command;

use oversqlite_tests::server::TestServer;
use support::{cli_as, device, plain};

const ROWS: i64 = 20_000;

fn many_users(db: &std::path::Path) {
    let mut conn = plain(db);
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare("INSERT INTO users(id, name) VALUES (?1, ?2)")
            .unwrap();
        for i in 0..ROWS {
            stmt.execute([format!("u{i:05}"), format!("user number {i}")])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

#[test]
fn a_terminal_gets_a_progress_bar_with_rows_out_of_the_total_and_a_pipe_gets_none() {
    let server = TestServer::start();
    let db = device(&server, "progress-tty");
    cli_as(&server, "alice", &db, &["attach", "--user", "alice"]).ok();
    many_users(&db);

    // `script -qec CMD /dev/null`: CMD on a pseudo-terminal, its output (stdout and
    // stderr, with the bar's redraws) on ours, its exit code as script's.
    let command = format!(
        "{} --db {} push",
        env!("CARGO_BIN_EXE_oversqlite"),
        db.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("OVERSQLITE_TOKEN", server.token("alice"))
        .env("TERM", "xterm")
        .output()
        .expect("util-linux script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("push: committed"), "{text}");
    assert!(text.contains("pushing "), "{text}");
    assert!(text.contains(": uploading, "), "{text}");
    // Every count is out of the whole push (several bundles of the server's cap), never
    // past it, and it grows.
    let counts: Vec<(i64, i64)> = text
        .split(" rows,")
        .filter_map(|chunk| {
            let last = chunk.rsplit(' ').next()?;
            let (done, total) = last.split_once('/')?;
            Some((done.parse().ok()?, total.parse().ok()?))
        })
        .collect();
    assert!(counts.len() >= 2, "{text}");
    assert!(counts.iter().all(|(_, t)| *t == ROWS), "{counts:?}");
    assert!(counts.iter().all(|(d, t)| d <= t), "{counts:?}");
    assert!(counts.windows(2).all(|w| w[0].0 <= w[1].0), "{counts:?}");
    assert!(
        counts.iter().any(|(d, _)| *d > 0 && *d < ROWS),
        "{counts:?}"
    );
    assert!(text.contains('%'), "the bar's percentage: {text}");
    assert_eq!(server.rows("users", "alice", "id").len() as i64, ROWS);

    // A pipe (cron, a log file): the result on stdout, nothing drawn on stderr.
    many_more(&db);
    let r = cli_as(&server, "alice", &db, &["push"]).ok();
    assert!(r.stderr.is_empty(), "{:?}", r.stderr);
    assert!(r.stdout.starts_with("push: committed"), "{}", r.stdout);
}

/// Changes every row again (a second large push).
fn many_more(db: &std::path::Path) {
    plain(db)
        .execute("UPDATE users SET name = name || '!'", [])
        .unwrap();
}
