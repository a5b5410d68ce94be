//! `sql/runtime_schema.sql` is the runtime DDL (`ddl::RUNTIME_DDL` is read from it); its
//! statements, split the plain way, are exactly what `open` executes.
use oversqlite_core::ddl::RUNTIME_DDL;

#[test]
fn sql_file_matches_runtime_ddl() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/runtime_schema.sql");
    let text = std::fs::read_to_string(path).expect("sql/runtime_schema.sql");
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let statements: Vec<&str> = body
        .split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let expected: Vec<String> = RUNTIME_DDL.iter().map(|s| s.to_string()).collect();
    assert_eq!(statements.len(), expected.len());
    for (got, want) in statements.iter().zip(&expected) {
        assert_eq!(got.trim_end_matches(';'), want);
    }
}
