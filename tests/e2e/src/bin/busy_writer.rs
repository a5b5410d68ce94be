//! The busy-writer suite's second process (issue #16): writes a device's database file
//! with plain SQLite, *without* the extension loaded, while that device syncs from
//! another process; the capture triggers are plain SQL, so these writes are captured too.
//! Prints one JSON line, the `WriterReport` (a failed open or write is in its `errors`).
//!
//! Usage: `busy_writer DB_PATH WRITER_SPEC_JSON`
use oversqlite_tests::busy_writer::{run, WriterSpec};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(spec)) = (args.next(), args.next()) else {
        eprintln!("usage: busy_writer DB_PATH WRITER_SPEC_JSON");
        std::process::exit(2);
    };
    let spec: WriterSpec = match serde_json::from_str(&spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("busy_writer: bad spec: {e}");
            std::process::exit(2);
        }
    };
    let report = run(std::path::Path::new(&db), &spec);
    println!("{}", serde_json::to_string(&report).expect("serialisable"));
}
