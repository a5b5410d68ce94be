//! `local-schema/config-validation.json` through the SQL API (§4 last paragraph, §11.3):
//! run `schemaSql`, configure with `oversqlite_init`/`oversqlite_enable_sync`, call
//! `oversqlite_open()`; the error of whichever call rejects must contain every fragment.
//!
//! Deliberate divergence: `omitted-sync-key-rejected`. The SQL API documents that
//! `oversqlite_enable_sync(table)` defaults the key to the table's single PRIMARY KEY
//! column, so an omitted key is accepted and resolved to `id`; the fixture's rejection is
//! checked at the core level (`cargo test -p oversqlite-core`, config_validation.rs) and
//! here by persisting a registration without key, which `oversqlite_open()` must reject.
use oversqlite_tests::{fixtures, host};
use serde_json::Value;

#[test]
fn every_config_validation_case() {
    if !fixtures::fixtures_available() {
        return;
    }
    let doc = fixtures::fixture("local-schema/config-validation.json");
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let conn = host::memory();
        for sql in case["schemaSql"].as_array().unwrap() {
            conn.execute_batch(sql.as_str().unwrap()).unwrap();
        }
        let result = host::configure(&conn, &case["config"]).and_then(|_| host::open(&conn));
        if name == "omitted-sync-key-rejected" {
            result.unwrap_or_else(|e| panic!("{name}: SQL default key should apply: {e}"));
            let key: String = conn
                .query_row(
                    "SELECT sync_key_column FROM _oversqlite_tables WHERE table_name = 'users'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(key, "id");
            conn.execute(
                "UPDATE _oversqlite_tables SET sync_key_column = '' WHERE table_name = 'users'",
                [],
            )
            .unwrap();
            let err = host::open(&conn).expect_err("open must reject a registration without key");
            let frags = case["expectedError"]["messageContains"].as_array().unwrap();
            for f in frags {
                assert!(err.contains(f.as_str().unwrap()), "{name}: {err:?}");
            }
            assert!(
                err.contains("oversqlite_open: invalid_config: "),
                "{name}: {err:?}"
            );
            continue;
        }
        match &case["expectedError"] {
            Value::Null => {
                result.unwrap_or_else(|e| panic!("{name}: unexpected error {e}"));
                for sql in case["afterOpenSql"].as_array().into_iter().flatten() {
                    conn.execute_batch(sql.as_str().unwrap()).unwrap();
                }
                for q in case["expectedQueries"].as_array().unwrap() {
                    let got: rusqlite::types::Value = conn
                        .query_row(q["sql"].as_str().unwrap(), [], |r| r.get(0))
                        .unwrap();
                    let got = match got {
                        rusqlite::types::Value::Integer(i) => Value::from(i),
                        rusqlite::types::Value::Text(t) => Value::from(t),
                        other => panic!("{name}: unexpected value {other:?}"),
                    };
                    assert_eq!(got, q["value"], "{name}: {}", q["name"]);
                }
            }
            expected => {
                let err = result.expect_err(name);
                assert_eq!(expected["kind"], "configuration");
                assert!(
                    err.contains("oversqlite_enable_sync: invalid_config: ")
                        || err.contains("oversqlite_open: invalid_config: "),
                    "{name}: error not in oversqlite_<fn>: <code>: form: {err:?}"
                );
                for frag in expected["messageContains"].as_array().unwrap() {
                    assert!(
                        err.contains(frag.as_str().unwrap()),
                        "{name}: {err:?} lacks {frag}"
                    );
                }
            }
        }
    }
}
