//! Bounded property tests of the snapshot-chunk and watch-stream decoders (issue #10,
//! fuzz item; the pull-page decoder has its own in `src/ops/pull/page_fuzz.rs`).
//! Arbitrary and mutated input must be refused or decoded to exactly what was sent;
//! never a panic, never a malformed chunk or event accepted silently. Fixed case counts,
//! no failure persistence: the file runs in about a second.

use std::io::{BufReader, Cursor};

use oversqlite_engine::remote::sse::read_events;
use oversqlite_engine::remote::validate::validate_snapshot_chunk;
use oversqlite_protocol::{SnapshotChunkResponse, SnapshotRow, WatchEvent};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

const SNAPSHOT_ID: &str = "5f0c8a2e-2b6f-4e39-9d7e-2f1f3c1a9b10";

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    })
}

/// Decodes and validates a chunk body as the snapshot download does (chunk after
/// ordinal `after` of a session at `seq`); a panic fails the test.
fn chunk_verdict(bytes: &[u8], seq: i64, after: i64) -> Result<SnapshotChunkResponse, String> {
    std::panic::catch_unwind(|| {
        let chunk: SnapshotChunkResponse =
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        validate_snapshot_chunk(&chunk, SNAPSHOT_ID, seq, after).map_err(|e| e.message)?;
        Ok(chunk)
    })
    .unwrap_or_else(|_| {
        panic!(
            "snapshot chunk decoding panicked on {:?}",
            String::from_utf8_lossy(bytes)
        )
    })
}

fn valid_chunk(rows: usize, seq: i64, after: i64, has_more: bool) -> Value {
    let rows: Vec<SnapshotRow> = (0..rows)
        .map(|i| SnapshotRow {
            schema: "main".into(),
            table: if i % 2 == 0 { "users" } else { "posts" }.into(),
            key: [("id".to_string(), format!("k{i}"))].into(),
            row_version: 1 + (i as i64 % seq.max(1)),
            payload: json!({"id": format!("k{i}"), "n": i, "blob": "AAE="})
                .as_object()
                .cloned()
                .unwrap(),
        })
        .collect();
    let n = rows.len() as i64;
    serde_json::to_value(SnapshotChunkResponse {
        snapshot_id: SNAPSHOT_ID.into(),
        snapshot_bundle_seq: seq,
        rows,
        next_row_ordinal: after + n,
        has_more,
    })
    .unwrap()
}

/// A valid chunk's parameters: rows, snapshot seq, `after`, has_more.
fn chunk_params() -> impl Strategy<Value = (usize, i64, i64, bool)> {
    (1usize..5, 1i64..50, 0i64..1000, any::<bool>())
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn valid_snapshot_chunks_pass() {
    runner(128)
        .run(&chunk_params(), |(rows, seq, after, more)| {
            let bytes = serde_json::to_vec(&valid_chunk(rows, seq, after, more)).unwrap();
            let chunk = chunk_verdict(&bytes, seq, after).map_err(TestCaseError::fail)?;
            prop_assert_eq!(chunk.rows.len(), rows);
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_and_byte_flips_never_panic_and_truncation_is_refused() {
    runner(512)
        .run(&prop::collection::vec(any::<u8>(), 0..256), |bytes| {
            let verdict = chunk_verdict(&bytes, 3, 0);
            if serde_json::from_slice::<Value>(&bytes).is_err() {
                prop_assert!(verdict.is_err());
            }
            Ok(())
        })
        .unwrap();
    let strategy = (
        chunk_params(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        any::<prop::sample::Index>(),
    );
    runner(512)
        .run(&strategy, |((rows, seq, after, more), flips, cut)| {
            let mut bytes = serde_json::to_vec(&valid_chunk(rows, seq, after, more)).unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(
                chunk_verdict(&bytes[..cut], seq, after).is_err(),
                "cut at {}",
                cut
            );
            for (i, b) in flips {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            let _ = chunk_verdict(&bytes, seq, after);
            Ok(())
        })
        .unwrap();
}

/// One defect in a valid chunk; decoding or validation must refuse it.
fn injected(chunk: &mut Value, defect: usize, replacement: Value) {
    match defect % 12 {
        0 => chunk["snapshot_id"] = json!("another-session"),
        1 => {
            let s = chunk["snapshot_bundle_seq"].as_i64().unwrap();
            chunk["snapshot_bundle_seq"] = json!(s + 1);
        }
        2 => {
            let n = chunk["next_row_ordinal"].as_i64().unwrap();
            chunk["next_row_ordinal"] = json!(n + 1);
        }
        3 => chunk["rows"][0]["row_version"] = json!(0),
        4 => {
            let s = chunk["snapshot_bundle_seq"].as_i64().unwrap();
            chunk["rows"][0]["row_version"] = json!(s + 1);
        }
        5 => chunk["rows"][0]["table"] = json!(""),
        6 => chunk["rows"][0]["key"] = json!({}),
        7 => chunk["rows"][0]["payload"]["_sync_scope_id"] = json!("someone"),
        8 => chunk["rows"][0]["payload"] = json!(null),
        // A required member replaced by a value of another shape (or removed).
        9 => {
            let member = [
                "snapshot_id",
                "snapshot_bundle_seq",
                "rows",
                "next_row_ordinal",
                "has_more",
            ][defect / 12 % 5];
            if replacement.is_null() {
                chunk.as_object_mut().unwrap().remove(member);
            } else if !same_kind(&chunk[member], &replacement) {
                chunk[member] = replacement;
            } else {
                chunk.as_object_mut().unwrap().remove(member);
            }
        }
        10 => {
            chunk["has_more"] = json!(true);
            chunk["rows"] = json!([]);
        }
        _ => {
            chunk["rows"][0].as_object_mut().unwrap().remove("key");
        }
    }
}

fn same_kind(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
        || (a.is_i64() && b.is_number() && b.as_i64().is_some())
}

#[test]
fn snapshot_chunk_defects_are_refused() {
    let strategy = (chunk_params(), any::<usize>(), any_json());
    runner(512)
        .run(
            &strategy,
            |((rows, seq, after, more), defect, replacement)| {
                let mut chunk = valid_chunk(rows, seq, after, more);
                injected(&mut chunk, defect, replacement);
                let bytes = serde_json::to_vec(&chunk).unwrap();
                prop_assert!(
                    chunk_verdict(&bytes, seq, after).is_err(),
                    "defect {} accepted: {}",
                    defect % 12,
                    chunk
                );
                Ok(())
            },
        )
        .unwrap();
}

/// Everything `read_events` delivers from `bytes` (read through a tiny buffer so lines
/// span reads), or its error; a panic fails the test.
fn events_of(bytes: &[u8]) -> Result<Vec<WatchEvent>, String> {
    std::panic::catch_unwind(|| {
        let mut reader = BufReader::with_capacity(7, Cursor::new(bytes.to_vec()));
        let mut got = Vec::new();
        read_events(&mut reader, |e| {
            got.push(e);
            Ok(())
        })
        .map(|_| got)
        .map_err(|e| e.message)
    })
    .unwrap_or_else(|_| {
        panic!(
            "watch stream decoding panicked on {:?}",
            String::from_utf8_lossy(bytes)
        )
    })
}

fn event() -> impl Strategy<Value = WatchEvent> {
    (
        1i64..i64::MAX,
        prop::option::of("[a-z0-9-]{1,12}"),
        prop::option::of(1i64..1000),
    )
        .prop_map(|(bundle_seq, source_id, source_bundle_id)| WatchEvent {
            bundle_seq,
            source_id,
            source_bundle_id,
        })
}

/// Noise a stream may carry between events: comments (heartbeats), unknown events,
/// unknown fields, blank lines; none of it is a bundle event.
fn noise() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,20}".prop_map(|c| format!(":{c}\n")),
        Just("\n".to_string()),
        "[ -~]{0,20}".prop_map(|d| format!("event: ping\ndata: {d}\n\n")),
        "[a-z]{1,6}".prop_map(|f| format!("{f}: x\n\n")),
    ]
}

#[test]
fn well_formed_streams_deliver_exactly_their_bundle_events() {
    let strategy = prop::collection::vec((event(), noise(), any::<bool>()), 0..6);
    runner(256)
        .run(&strategy, |items| {
            let mut text = String::new();
            for (ev, noise, crlf) in &items {
                text.push_str(noise);
                let data = serde_json::to_string(ev).unwrap();
                let frame = format!("event: bundle\nid: 1\ndata: {data}\n\n");
                text.push_str(&if *crlf {
                    frame.replace('\n', "\r\n")
                } else {
                    frame
                });
            }
            let got = events_of(text.as_bytes()).map_err(TestCaseError::fail)?;
            let sent: Vec<WatchEvent> = items.into_iter().map(|(e, _, _)| e).collect();
            prop_assert_eq!(got, sent);
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_and_mutated_streams_never_panic_or_deliver_a_bad_event() {
    runner(512)
        .run(&prop::collection::vec(any::<u8>(), 0..256), |bytes| {
            if let Ok(events) = events_of(&bytes) {
                prop_assert!(events.iter().all(|e| e.bundle_seq > 0));
            }
            Ok(())
        })
        .unwrap();
    // A bundle event whose data is any JSON: delivered only if it is a valid event,
    // and then exactly as the typed decoder reads it.
    let event_like =
        (any_json(), any_json(), any_json(), any::<u8>()).prop_map(|(seq, src, sb, drop)| {
            let mut m = serde_json::Map::new();
            for (i, (k, v)) in [
                ("bundle_seq", seq),
                ("source_id", src),
                ("source_bundle_id", sb),
            ]
            .into_iter()
            .enumerate()
            {
                if drop & (1 << i) == 0 {
                    m.insert(k.to_string(), v);
                }
            }
            Value::Object(m)
        });
    let seq_like = prop_oneof![
        (-3i64..3).prop_map(|n| json!({"bundle_seq": n})),
        any::<i64>().prop_map(|n| json!({"bundle_seq": n, "source_id": "s"}))
    ];
    runner(1024)
        .run(&prop_oneof![any_json(), event_like, seq_like], |data| {
            let text = format!("event: bundle\ndata: {data}\n\n");
            let typed = serde_json::from_value::<WatchEvent>(data.clone())
                .ok()
                .filter(|e| e.bundle_seq > 0);
            match (events_of(text.as_bytes()), typed) {
                (Ok(got), Some(e)) => prop_assert_eq!(got, vec![e]),
                (Err(_), None) => {}
                (got, typed) => {
                    return Err(TestCaseError::fail(format!(
                        "data {data}: stream gave {got:?}, typed decoder {typed:?}"
                    )))
                }
            }
            Ok(())
        })
        .unwrap();
    // A frame cut short (no terminating blank line) is never dispatched.
    runner(128)
        .run(&(event(), any::<prop::sample::Index>()), |(ev, cut)| {
            let frame = format!(
                "event: bundle\ndata: {}\n\n",
                serde_json::to_string(&ev).unwrap()
            );
            let cut = cut.index(frame.len() - 1);
            let got = events_of(&frame.as_bytes()[..cut]);
            prop_assert!(
                matches!(got, Ok(ref v) if v.is_empty()) || got.is_err(),
                "{:?}",
                got
            );
            Ok(())
        })
        .unwrap();
}
