//! The fixtures' default fake server (§11.1 "Fake chunked push server"), with an
//! override hook through which each fixture script bends individual routes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use oversqlite_engine::remote::transport::{HttpRequest, ScriptedResponse, ScriptedTransport};
use oversqlite_protocol::{bundle_hash, BundleRow, PushChunkRequest, PushRequestRow};
use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub struct Committed {
    pub seq: i64,
    pub source_id: String,
    pub source_bundle_id: i64,
    pub rows: Vec<BundleRow>,
    pub hash: String,
}

#[derive(Default)]
pub struct Session {
    pub source_id: String,
    pub source_bundle_id: i64,
    pub planned: i64,
    pub rows: Vec<PushRequestRow>,
}

type Hook = Box<dyn FnMut(&mut FakeState, &HttpRequest) -> Option<ScriptedResponse> + Send>;

pub struct FakeState {
    pub next_bundle_seq: i64,
    pub committed: Vec<Committed>,
    pub sessions: HashMap<String, Session>,
    pub push_counter: usize,
    /// Bodies of `POST /sync/push-sessions`, in order.
    pub create_requests: Vec<Value>,
    pub commit_requests: usize,
    pub committed_fetches: usize,
    pub pull_requests: usize,
    /// Bodies (or null) of `POST /sync/snapshot-sessions`.
    pub snapshot_creates: Vec<Value>,
    /// Rows of the last uploaded chunk as `table:OP:key`.
    pub last_chunk_rows: Vec<String>,
    pub capabilities: Value,
    /// When set, freshly committed bundles advertise this hash instead of the real one.
    pub commit_hash_override: Option<String>,
}

impl FakeState {
    fn new() -> Self {
        FakeState {
            next_bundle_seq: 1,
            committed: Vec::new(),
            sessions: HashMap::new(),
            push_counter: 0,
            create_requests: Vec::new(),
            commit_requests: 0,
            committed_fetches: 0,
            pull_requests: 0,
            snapshot_creates: Vec::new(),
            last_chunk_rows: Vec::new(),
            commit_hash_override: None,
            capabilities: json!({"protocol_version":"v1","schema_version":1,"features":{"connect_lifecycle":true}}),
        }
    }

    pub fn latest_seq(&self) -> i64 {
        self.committed.iter().map(|c| c.seq).max().unwrap_or(0)
    }

    /// Commits rows as a bundle with the next seq (server-originated or pushed).
    pub fn commit_rows(
        &mut self,
        source_id: &str,
        source_bundle_id: i64,
        rows: Vec<BundleRow>,
    ) -> Committed {
        let seq = self.next_bundle_seq;
        self.next_bundle_seq += 1;
        let rows: Vec<BundleRow> = rows
            .into_iter()
            .map(|mut r| {
                r.row_version = seq;
                r
            })
            .collect();
        let c = Committed {
            seq,
            source_id: source_id.into(),
            source_bundle_id,
            hash: bundle_hash(&rows),
            rows,
        };
        self.committed.push(c.clone());
        c
    }

    pub fn find_tuple(&self, source_id: &str, sbid: i64) -> Option<&Committed> {
        self.committed
            .iter()
            .find(|c| c.source_id == source_id && c.source_bundle_id == sbid)
    }

    pub fn find_seq(&self, seq: i64) -> Option<&Committed> {
        self.committed.iter().find(|c| c.seq == seq)
    }
}

pub fn source_of(req: &HttpRequest) -> String {
    req.header("Oversync-Source-ID").unwrap_or("").to_string()
}

pub fn meta_json(c: &Committed) -> Value {
    json!({"bundle_seq": c.seq, "source_id": c.source_id, "source_bundle_id": c.source_bundle_id, "row_count": c.rows.len(), "bundle_hash": c.hash})
}

/// One committed-rows page of `rows` per §2.7 (0-based ordinals).
pub fn committed_page(
    meta: Value,
    rows: &[BundleRow],
    after: Option<i64>,
    max: usize,
    hash_override: Option<&str>,
) -> Value {
    let start = after.map(|a| (a + 1) as usize).unwrap_or(0);
    let page: Vec<BundleRow> = rows.iter().skip(start).take(max).cloned().collect();
    let base = after.unwrap_or(-1);
    let next = if page.is_empty() {
        after.unwrap_or(0)
    } else {
        base + page.len() as i64
    };
    let mut m = meta;
    if let Some(h) = hash_override {
        m["bundle_hash"] = json!(h);
    }
    m["rows"] = serde_json::to_value(&page).unwrap();
    m["next_row_ordinal"] = json!(next);
    m["has_more"] = json!(start + page.len() < rows.len());
    m
}

pub struct FakeServer {
    pub state: Arc<Mutex<FakeState>>,
    pub transport: ScriptedTransport,
}

impl FakeServer {
    /// The default server; `hook` runs first and may answer any request itself.
    pub fn new(
        mut hook: impl FnMut(&mut FakeState, &HttpRequest) -> Option<ScriptedResponse> + Send + 'static,
    ) -> Self {
        let state = Arc::new(Mutex::new(FakeState::new()));
        let shared = state.clone();
        let transport = ScriptedTransport::new(move |req| {
            let mut st = shared.lock().unwrap();
            if let Some(r) = hook(&mut st, req) {
                return r;
            }
            default_route(&mut st, req)
        });
        FakeServer { state, transport }
    }

    pub fn plain() -> Self {
        Self::new(|_, _| None)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

pub fn boxed(
    h: impl FnMut(&mut FakeState, &HttpRequest) -> Option<ScriptedResponse> + Send + 'static,
) -> Hook {
    Box::new(h)
}

fn segments(req: &HttpRequest) -> Vec<String> {
    req.path()
        .trim_start_matches('/')
        .split('/')
        .map(str::to_string)
        .collect()
}

/// The route name and path id of a request (`push_chunk`, `snapshot_chunk`, ...).
pub fn route(req: &HttpRequest) -> (&'static str, String) {
    let seg = segments(req);
    let i = seg
        .iter()
        .position(|s| s == "sync")
        .map(|i| i + 1)
        .unwrap_or(0);
    let rest: Vec<&str> = seg[i..].iter().map(String::as_str).collect();
    match (req.method, rest.as_slice()) {
        ("GET", ["capabilities"]) => ("capabilities", String::new()),
        ("POST", ["connect"]) => ("connect", String::new()),
        ("POST", ["push-sessions"]) => ("push_create", String::new()),
        ("POST", ["push-sessions", id, "chunks"]) => ("push_chunk", id.to_string()),
        ("POST", ["push-sessions", id, "commit"]) => ("push_commit", id.to_string()),
        ("DELETE", ["push-sessions", id]) => ("push_delete", id.to_string()),
        ("GET", ["committed-bundles", seq, "rows"]) => ("committed_rows", seq.to_string()),
        ("GET", ["pull"]) => ("pull", String::new()),
        ("POST", ["snapshot-sessions"]) => ("snapshot_create", String::new()),
        ("GET", ["snapshot-sessions", id]) => ("snapshot_chunk", id.to_string()),
        ("DELETE", ["snapshot-sessions", id]) => ("snapshot_delete", id.to_string()),
        ("GET", ["watch"]) => ("watch", String::new()),
        _ => ("unknown", String::new()),
    }
}

pub fn qi64(req: &HttpRequest, name: &str) -> Option<i64> {
    req.query(name).and_then(|v| v.parse().ok())
}

pub fn default_route(st: &mut FakeState, req: &HttpRequest) -> ScriptedResponse {
    let (name, id) = route(req);
    let source = source_of(req);
    match name {
        "capabilities" => ScriptedResponse::ok(st.capabilities.clone()),
        "connect" => {
            let pending = req
                .body_json()
                .and_then(|b| b["has_local_pending_rows"].as_bool())
                .unwrap_or(false);
            if pending {
                ScriptedResponse::ok(
                    json!({"resolution":"initialize_local","initialization_id":"init-connect","lease_expires_at":"2099-01-01T00:00:00Z"}),
                )
            } else {
                ScriptedResponse::ok(json!({"resolution":"initialize_empty"}))
            }
        }
        "push_create" => {
            let body = req.body_json().unwrap_or(Value::Null);
            st.create_requests.push(body.clone());
            let sbid = body["source_bundle_id"].as_i64().unwrap_or(0);
            let planned = body["planned_row_count"].as_i64().unwrap_or(0);
            if let Some(c) = st.find_tuple(&source, sbid) {
                let mut m = meta_json(c);
                m["status"] = json!("already_committed");
                return ScriptedResponse::ok(m);
            }
            st.push_counter += 1;
            let push_id = format!("push-{}", st.push_counter);
            st.sessions.insert(
                push_id.clone(),
                Session {
                    source_id: source,
                    source_bundle_id: sbid,
                    planned,
                    rows: Vec::new(),
                },
            );
            ScriptedResponse::ok(
                json!({"status":"staging","push_id":push_id,"planned_row_count":planned,"next_expected_row_ordinal":0}),
            )
        }
        "push_chunk" => {
            let body: PushChunkRequest = match req
                .body
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
            {
                Some(b) => b,
                None => return ScriptedResponse::error(400, "push_chunk_invalid", "bad body"),
            };
            let Some(session) = st.sessions.get_mut(&id) else {
                return ScriptedResponse::error(404, "push_session_not_found", "no session");
            };
            if body.start_row_ordinal != session.rows.len() as i64 {
                return ScriptedResponse::error(409, "push_chunk_out_of_order", "out of order");
            }
            let labels: Vec<String> = body
                .rows
                .iter()
                .map(|r| {
                    format!(
                        "{}:{}:{}",
                        r.table,
                        r.op.as_str(),
                        r.key.values().next().cloned().unwrap_or_default()
                    )
                })
                .collect();
            session.rows.extend(body.rows);
            let next = session.rows.len();
            st.last_chunk_rows = labels;
            ScriptedResponse::ok(json!({"push_id": id, "next_expected_row_ordinal": next}))
        }
        "push_commit" => {
            st.commit_requests += 1;
            let Some(session) = st.sessions.remove(&id) else {
                return ScriptedResponse::error(404, "push_session_not_found", "no session");
            };
            if let Some(c) = st.find_tuple(&session.source_id, session.source_bundle_id) {
                return ScriptedResponse::ok(meta_json(c));
            }
            let rows = session
                .rows
                .into_iter()
                .map(|r| BundleRow {
                    schema: r.schema,
                    table: r.table,
                    key: r.key,
                    op: r.op,
                    row_version: 0,
                    payload: r.payload,
                })
                .collect();
            let mut c = st.commit_rows(&session.source_id, session.source_bundle_id, rows);
            if let Some(h) = st.commit_hash_override.clone() {
                c.hash = h;
                st.committed.last_mut().unwrap().hash = c.hash.clone();
            }
            ScriptedResponse::ok(meta_json(&c))
        }
        "push_delete" | "snapshot_delete" => ScriptedResponse::Raw(204, vec![], vec![]),
        "committed_rows" => {
            st.committed_fetches += 1;
            let seq: i64 = id.parse().unwrap_or(0);
            let Some(c) = st.find_seq(seq).cloned() else {
                return ScriptedResponse::error(
                    404,
                    "committed_bundle_not_found",
                    "unknown bundle",
                );
            };
            let max = qi64(req, "max_rows").unwrap_or(1000).max(1) as usize;
            ScriptedResponse::ok(committed_page(
                meta_json(&c),
                &c.rows,
                qi64(req, "after_row_ordinal"),
                max,
                None,
            ))
        }
        "pull" => {
            st.pull_requests += 1;
            let after = qi64(req, "after_bundle_seq").unwrap_or(0);
            let target = qi64(req, "target_bundle_seq").unwrap_or(0);
            let stable = if target > 0 { target } else { st.latest_seq() };
            let bundles: Vec<Value> = st
                .committed
                .iter()
                .filter(|c| c.seq > after && c.seq <= stable)
                .map(|c| json!({"bundle_seq": c.seq, "source_id": c.source_id, "source_bundle_id": c.source_bundle_id, "rows": c.rows}))
                .collect();
            ScriptedResponse::ok(
                json!({"stable_bundle_seq": stable, "bundles": bundles, "has_more": false}),
            )
        }
        "snapshot_create" => {
            st.snapshot_creates
                .push(req.body_json().unwrap_or(Value::Null));
            ScriptedResponse::ok(
                json!({"snapshot_id":"snapshot-empty","snapshot_bundle_seq":st.latest_seq(),"row_count":0,"byte_count":0,"expires_at":"2099-01-01T00:00:00Z"}),
            )
        }
        "snapshot_chunk" => {
            let after = qi64(req, "after_row_ordinal").unwrap_or(0);
            ScriptedResponse::ok(
                json!({"snapshot_id": id, "snapshot_bundle_seq": st.latest_seq(), "rows": [], "next_row_ordinal": after, "has_more": false}),
            )
        }
        _ => ScriptedResponse::error(404, "not_found", "unknown route"),
    }
}
