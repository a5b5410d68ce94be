//! Bounded property tests of the streaming pull-page decoder (issue #10, fuzz item):
//! arbitrary bytes, truncated pages and structurally mutated pages must be refused or
//! decoded exactly as the whole-body decoder (`PullResponse`) decodes them; never a
//! panic, never a page accepted that the typed decoder refuses. A page that decodes is
//! then run through the checks the pull applies (`remote/validate.rs`), which must
//! refuse every semantic defect injected into an otherwise valid page.
//!
//! Case counts are fixed (no persistence, no shrinking of huge inputs) so the whole file
//! runs in a few seconds within `cargo test -p oversqlite-engine`.

use oversqlite_protocol::{bundle_hash, Bundle, BundleRow, Op, PullResponse};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use super::page::{read_page, BundleHead, PageHead, PageSink};
use crate::error::Result;
use crate::remote::validate::{
    validate_bundle_digest, validate_bundle_head, validate_bundle_row, validate_pull_head,
};

/// Records what the reader hands over, in order.
#[derive(Default)]
struct Recorder {
    events: Vec<String>,
    rows: Vec<(usize, BundleRow)>,
    heads: Vec<(usize, BundleHead)>,
}

impl PageSink for Recorder {
    fn bundle_begin(&mut self, index: usize) -> Result<()> {
        self.events.push(format!("begin {index}"));
        Ok(())
    }
    fn row(&mut self, index: usize, row: BundleRow) -> Result<()> {
        self.events.push(format!("row {index}"));
        self.rows.push((index, row));
        Ok(())
    }
    fn bundle_end(&mut self, index: usize, head: BundleHead) -> Result<()> {
        self.events.push(format!("end {index}"));
        self.heads.push((index, head));
        Ok(())
    }
}

fn decode(bytes: &[u8]) -> (Result<PageHead>, Recorder) {
    let mut sink = Recorder::default();
    let out =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_page(bytes, &mut sink)));
    match out {
        Ok(r) => (r, sink),
        Err(_) => panic!("read_page panicked on {:?}", String::from_utf8_lossy(bytes)),
    }
}

/// The checks the pull runs on a decoded page (`after_bundle_seq` 0).
fn check(head: &PageHead, rec: &Recorder) -> Result<()> {
    validate_pull_head(head.stable_bundle_seq, head.bundles > 0, 0)?;
    let mut previous = 0;
    for (index, h) in &rec.heads {
        validate_bundle_head(
            h.bundle_seq,
            &h.source_id,
            h.source_bundle_id,
            previous,
            head.stable_bundle_seq,
        )?;
        let rows: Vec<BundleRow> = rec
            .rows
            .iter()
            .filter(|(i, _)| i == index)
            .map(|(_, r)| r.clone())
            .collect();
        for r in &rows {
            validate_bundle_row(r)?;
        }
        validate_bundle_digest(
            h.bundle_seq,
            h.row_count,
            h.bundle_hash.as_deref(),
            rows.len() as i64,
            &bundle_hash(&rows),
        )?;
        previous = h.bundle_seq;
    }
    Ok(())
}

fn row(id: &str, version: i64, op: Op) -> BundleRow {
    let payload = match op {
        Op::Delete => None,
        _ => json!({"id": id, "name": format!("n-{id}")})
            .as_object()
            .cloned(),
    };
    BundleRow {
        schema: "main".into(),
        table: "users".into(),
        key: [("id".to_string(), id.to_string())].into(),
        op,
        row_version: version,
        payload,
    }
}

/// A valid page of `shape.len()` bundles, bundle i holding `shape[i]` rows.
fn valid_page(shape: &[usize]) -> Value {
    let mut bundles = Vec::new();
    let mut seq = 0;
    for (b, &n) in shape.iter().enumerate() {
        seq += 1 + b as i64;
        let rows: Vec<BundleRow> = (0..n)
            .map(|i| {
                let op = [Op::Insert, Op::Update, Op::Delete][i % 3];
                row(&format!("k{b}-{i}"), seq, op)
            })
            .collect();
        bundles.push(Bundle {
            bundle_seq: seq,
            source_id: format!("source-{b}"),
            source_bundle_id: 1 + b as i64,
            row_count: Some(n as i64),
            bundle_hash: Some(bundle_hash(&rows)),
            rows,
        });
    }
    serde_json::to_value(PullResponse {
        stable_bundle_seq: seq.max(0),
        bundles,
        has_more: false,
    })
    .unwrap()
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..4, 0..4)
}

/// A JSON value of any kind, small.
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

/// Every path (object member or array index) inside `v`.
fn paths(v: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| {
            let mut p = prefix.clone();
            p.push(k.clone());
            out.push(p.clone());
            paths(c, p, out);
        }),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| {
            let mut p = prefix.clone();
            p.push(i.to_string());
            out.push(p.clone());
            paths(c, p, out);
        }),
        _ => {}
    }
}

fn at<'v>(v: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(v, |cur, seg| match cur {
        Value::Object(m) => m.get_mut(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    })
}

/// Replaces the value at one path with `with`, or removes that member / element.
fn mutate(page: &Value, pick: usize, with: Option<Value>) -> Value {
    let mut page = page.clone();
    let mut all = Vec::new();
    paths(&page, Vec::new(), &mut all);
    if all.is_empty() {
        return with.unwrap_or(page);
    }
    let path = &all[pick % all.len()];
    match with {
        Some(v) => {
            if let Some(slot) = at(&mut page, path) {
                *slot = v;
            }
        }
        None => {
            let (last, parent) = path.split_last().unwrap();
            match at(&mut page, parent) {
                Some(Value::Object(m)) => {
                    m.remove(last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < a.len() {
                            a.remove(i);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    page
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    })
}

/// The reader agrees with the whole-body decoder: both accept or both refuse, and an
/// accepted page hands over exactly the typed decoder's bundles and rows.
fn agrees_with_typed_decoder(bytes: &[u8]) -> std::result::Result<(), TestCaseError> {
    let (streamed, rec) = decode(bytes);
    let typed = serde_json::from_slice::<PullResponse>(bytes);
    match (&streamed, &typed) {
        (Ok(head), Ok(page)) => {
            prop_assert_eq!(head.stable_bundle_seq, page.stable_bundle_seq);
            prop_assert_eq!(head.has_more, page.has_more);
            prop_assert_eq!(head.bundles, page.bundles.len());
            let rows: Vec<BundleRow> = page.bundles.iter().flat_map(|b| b.rows.clone()).collect();
            let got: Vec<BundleRow> = rec.rows.iter().map(|(_, r)| r.clone()).collect();
            prop_assert_eq!(got, rows);
            for ((_, h), b) in rec.heads.iter().zip(&page.bundles) {
                prop_assert_eq!(h.bundle_seq, b.bundle_seq);
                prop_assert_eq!(&h.source_id, &b.source_id);
                prop_assert_eq!(h.source_bundle_id, b.source_bundle_id);
                prop_assert_eq!(h.row_count, b.row_count);
                prop_assert_eq!(&h.bundle_hash, &b.bundle_hash);
            }
        }
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => {
            return Err(TestCaseError::fail(format!(
                "streamed decoder accepted what the typed decoder refuses ({e}): {}",
                String::from_utf8_lossy(bytes)
            )))
        }
        (Err(e), Ok(_)) => {
            return Err(TestCaseError::fail(format!(
                "streamed decoder refused a well-formed page ({e}): {}",
                String::from_utf8_lossy(bytes)
            )))
        }
    }
    Ok(())
}

#[test]
fn valid_pages_decode_and_pass_the_checks() {
    runner(64)
        .run(&shape(), |shape| {
            let bytes = serde_json::to_vec(&valid_page(&shape)).unwrap();
            agrees_with_typed_decoder(&bytes)?;
            let (head, rec) = decode(&bytes);
            let head = head.map_err(|e| TestCaseError::fail(e.message))?;
            check(&head, &rec).map_err(|e| TestCaseError::fail(e.message))?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_never_panic_and_non_json_is_refused() {
    runner(512)
        .run(&prop::collection::vec(any::<u8>(), 0..256), |bytes| {
            let (out, _) = decode(&bytes);
            if serde_json::from_slice::<Value>(&bytes).is_err() {
                prop_assert!(out.is_err(), "accepted non-JSON {:?}", bytes);
            }
            agrees_with_typed_decoder(&bytes)
        })
        .unwrap();
}

#[test]
fn every_truncated_page_is_refused() {
    runner(48)
        .run(&(shape(), any::<prop::sample::Index>()), |(shape, cut)| {
            let bytes = serde_json::to_vec(&valid_page(&shape)).unwrap();
            let cut = cut.index(bytes.len());
            let (out, _) = decode(&bytes[..cut]);
            prop_assert!(
                out.is_err(),
                "accepted a page cut at {cut}: {}",
                String::from_utf8_lossy(&bytes[..cut])
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn mutated_pages_agree_with_the_typed_decoder() {
    let strategy = (
        shape(),
        any::<usize>(),
        prop::option::weighted(0.8, any_json()),
    );
    runner(2048)
        .run(&strategy, |(shape, pick, with)| {
            let page = mutate(&valid_page(&shape), pick, with);
            agrees_with_typed_decoder(&serde_json::to_vec(&page).unwrap())
        })
        .unwrap();
}

#[test]
fn byte_flips_never_panic_and_agree_with_the_typed_decoder() {
    let strategy = (
        shape(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    );
    runner(1024)
        .run(&strategy, |(shape, flips)| {
            let mut bytes = serde_json::to_vec(&valid_page(&shape)).unwrap();
            for (i, b) in flips {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            agrees_with_typed_decoder(&bytes)
        })
        .unwrap();
}

/// One semantic defect in an otherwise valid page; the pull's checks must refuse it.
#[derive(Debug, Clone)]
enum Defect {
    RowVersionNotPositive,
    EmptyTable,
    EmptyKey,
    InsertWithoutPayload,
    HiddenScopeColumn,
    BundleSeqNotAscending,
    BundleAboveStable,
    EmptySourceId,
    SourceBundleIdNotPositive,
    RowCountWrong,
    HashWrong,
    NegativeStable,
}

fn defect() -> impl Strategy<Value = Defect> {
    prop_oneof![
        Just(Defect::RowVersionNotPositive),
        Just(Defect::EmptyTable),
        Just(Defect::EmptyKey),
        Just(Defect::InsertWithoutPayload),
        Just(Defect::HiddenScopeColumn),
        Just(Defect::BundleSeqNotAscending),
        Just(Defect::BundleAboveStable),
        Just(Defect::EmptySourceId),
        Just(Defect::SourceBundleIdNotPositive),
        Just(Defect::RowCountWrong),
        Just(Defect::HashWrong),
        Just(Defect::NegativeStable),
    ]
}

fn inject(page: &mut Value, d: &Defect) {
    let b0 = &mut page["bundles"][0];
    match d {
        Defect::RowVersionNotPositive => b0["rows"][0]["row_version"] = json!(0),
        Defect::EmptyTable => b0["rows"][0]["table"] = json!(""),
        Defect::EmptyKey => b0["rows"][0]["key"] = json!({}),
        Defect::InsertWithoutPayload => {
            b0["rows"][0]["op"] = json!("INSERT");
            b0["rows"][0].as_object_mut().unwrap().remove("payload");
        }
        Defect::HiddenScopeColumn => {
            b0["rows"][0]["op"] = json!("INSERT");
            b0["rows"][0]["payload"] = json!({"id": "k", "_sync_scope_id": "alice"});
        }
        Defect::BundleSeqNotAscending => page["bundles"][1]["bundle_seq"] = json!(0),
        Defect::BundleAboveStable => {
            let stable = page["stable_bundle_seq"].as_i64().unwrap();
            page["bundles"][1]["bundle_seq"] = json!(stable + 1);
        }
        Defect::EmptySourceId => b0["source_id"] = json!(" "),
        Defect::SourceBundleIdNotPositive => b0["source_bundle_id"] = json!(-1),
        Defect::RowCountWrong => {
            let n = b0["row_count"].as_i64().unwrap();
            b0["row_count"] = json!(n + 1);
        }
        Defect::HashWrong => b0["bundle_hash"] = json!("0".repeat(64)),
        Defect::NegativeStable => page["stable_bundle_seq"] = json!(-1),
    }
}

/// Recomputes each bundle's `bundle_hash` from its (possibly defective) rows, so a
/// defect must be caught by its own check, not by the digest.
fn rehash(page: &mut Value) {
    for b in page["bundles"].as_array_mut().into_iter().flatten() {
        if let Ok(rows) = serde_json::from_value::<Vec<BundleRow>>(b["rows"].clone()) {
            b["bundle_hash"] = json!(bundle_hash(&rows));
        }
    }
}

#[test]
fn semantic_defects_are_refused_by_decoding_or_the_checks() {
    // At least two bundles of at least one row, so every defect has a target.
    let strategy = (prop::collection::vec(1usize..4, 2..4), defect());
    runner(256)
        .run(&strategy, |(shape, d)| {
            let mut page = valid_page(&shape);
            inject(&mut page, &d);
            if !matches!(d, Defect::RowCountWrong | Defect::HashWrong) {
                rehash(&mut page);
            }
            let bytes = serde_json::to_vec(&page).unwrap();
            let (out, rec) = decode(&bytes);
            let refused = match out {
                Err(_) => true,
                Ok(head) => check(&head, &rec).is_err(),
            };
            prop_assert!(refused, "{:?} passed: {}", d, page);
            Ok(())
        })
        .unwrap();
}
