//! Fixture runner: `watch/behavior/automatic-downloads.json` — the background worker
//! against a fake server whose first watch request gets the scripted answer and whose
//! later watch requests are held open (as in the reference runner).

mod support;

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oversqlite_engine::transport::{
    HttpRequest, HttpResponse, ScriptedTransport, StreamResponse, Transport, TransportError,
};
use oversqlite_engine::{AutoDownloadConfig, AutomaticDownloads, SyncClient};
use oversqlite_protocol::BundleRow;
use serde_json::{json, Value};
use support::fake_server::{qi64, route, FakeServer, FakeState};

/// A stream body fed through a channel: blocks until data arrives, EOF when every
/// sender is gone, counts its own closing.
struct ChannelBody {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
    closes: Arc<AtomicUsize>,
}

impl Read for ChannelBody {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChannelBody {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.buf.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(&[]),
            }
        }
        Ok(&self.buf[self.pos..])
    }
    fn consume(&mut self, amt: usize) {
        self.pos += amt;
    }
}

impl Drop for ChannelBody {
    fn drop(&mut self) {
        self.closes.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct WatchState {
    after_seqs: Vec<i64>,
    held: Vec<Sender<Vec<u8>>>,
}

struct WatchTransport {
    inner: ScriptedTransport,
    server: Arc<Mutex<FakeState>>,
    script: Value,
    watch: Arc<Mutex<WatchState>>,
    closes: Arc<AtomicUsize>,
}

fn rows_of(bundle: &Value) -> Vec<BundleRow> {
    let rows: Vec<Value> = bundle["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.get("row_version").is_none() {
                r["row_version"] = json!(0);
            }
            r
        })
        .collect();
    serde_json::from_value(Value::Array(rows)).unwrap()
}

impl Transport for WatchTransport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self.inner.send(request)
    }

    fn open_stream(&self, request: &HttpRequest) -> Result<StreamResponse, TransportError> {
        if route(request).0 != "watch" {
            return self.inner.open_stream(request);
        }
        let (tx, rx) = channel();
        let body = ChannelBody {
            rx,
            buf: Vec::new(),
            pos: 0,
            closes: self.closes.clone(),
        };
        let mut w = self.watch.lock().unwrap();
        let first = w.after_seqs.is_empty();
        w.after_seqs
            .push(qi64(request, "after_bundle_seq").unwrap_or(-1));
        let kind = self.script["kind"].as_str().unwrap();
        match (kind, first) {
            ("non_ok_watch_response", true) => {
                let r = &self.script["response"];
                tx.send(serde_json::to_vec(&r["body"]).unwrap()).unwrap();
                return Ok(StreamResponse {
                    status: r["status"].as_u64().unwrap() as u16,
                    headers: vec![],
                    body: Box::new(body),
                });
            }
            ("watch_lines", true) => {
                let text = support::strings(&self.script["lines"]).join("\n") + "\n";
                tx.send(text.into_bytes()).unwrap();
            }
            ("hold_watch_open", true) => {
                if let Some(wake) = self.script["wakeBundles"].as_array() {
                    for b in wake {
                        let c =
                            self.server
                                .lock()
                                .unwrap()
                                .commit_rows("remote-source", 1, rows_of(b));
                        let event = format!(
                            "event: bundle\ndata: {}\n\n",
                            json!({"bundle_seq": c.seq, "source_id": c.source_id, "source_bundle_id": c.source_bundle_id})
                        );
                        tx.send(event.into_bytes()).unwrap();
                    }
                }
                w.held.push(tx);
            }
            _ => w.held.push(tx), // later attempts stay open until the test ends
        }
        Ok(StreamResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "text/event-stream".into())],
            body: Box::new(body),
        })
    }
}

fn satisfied(
    exp: &Value,
    pulls: i64,
    attempts: i64,
    closes: i64,
    seqs: &[i64],
    users: &Value,
) -> bool {
    let ge = |k: &str, v: i64| exp[k].as_i64().is_none_or(|e| v >= e);
    let eq = |k: &str, v: i64| exp[k].as_i64().is_none_or(|e| v == e);
    ge("fallbackPullsAtLeast", pulls)
        && eq("fallbackPullsExactly", pulls)
        && ge("watchAttemptsAtLeast", attempts)
        && eq("watchAttemptsExactly", attempts)
        && eq("watchCloseCount", closes)
        && exp["watchAfterBundleSeqsContains"]
            .as_array()
            .is_none_or(|want| want.iter().all(|v| seqs.contains(&v.as_i64().unwrap())))
        && exp.get("users").is_none_or(|u| u == users)
}

#[test]
fn automatic_downloads_fixture() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("watch/behavior/automatic-downloads.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let script = case["serverScript"].clone();
        let exp = case["expectedState"].clone();
        let supported = script["bundleChangeWatchSupported"]
            .as_bool()
            .unwrap_or(script["kind"] != "unsupported_capability");
        let server = FakeServer::plain();
        server.with(|s| {
            s.capabilities = json!({"protocol_version":"v1","schema_version":1,"features":{"connect_lifecycle":true,"bundle_change_watch":supported}});
            for key in ["startBundles", "remoteBundles"] {
                for b in script[key].as_array().cloned().unwrap_or_default() {
                    s.commit_rows("remote-source", 1, rows_of(&b));
                }
            }
        });
        let closes = Arc::new(AtomicUsize::new(0));
        let watch = Arc::new(Mutex::new(WatchState::default()));
        let transport: Arc<dyn Transport> = Arc::new(WatchTransport {
            inner: server.transport.clone(),
            server: server.state.clone(),
            script: script.clone(),
            watch: watch.clone(),
            closes: closes.clone(),
        });
        let db = support::TestDb::new();
        let tables = vec![
            ("users".to_string(), "id".to_string()),
            ("posts".to_string(), "id".to_string()),
        ];
        let conn = db.create("users-posts", &tables, "main");
        support::open(&conn);
        let mut setup_client = SyncClient::with_transport(transport.clone());
        setup_client.attach(&conn, "user-1").unwrap();

        let exact_attempts = exp.get("watchAttemptsExactly").is_some();
        let config = AutoDownloadConfig {
            interval: Duration::from_secs(10),
            watch: true,
            reconnect_min: if exact_attempts {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(10)
            },
            reconnect_max: if exact_attempts {
                Duration::from_secs(2)
            } else {
                Duration::from_millis(20)
            },
        };
        let path = db.path.clone();
        let worker_transport = transport.clone();
        let worker = AutomaticDownloads::start(
            move || {
                let conn = rusqlite::Connection::open(&path)
                    .map_err(oversqlite_engine::SyncError::from)?;
                conn.busy_timeout(Duration::from_secs(5))
                    .map_err(oversqlite_engine::SyncError::from)?;
                let mut client = SyncClient::with_transport(worker_transport);
                client.settings.retry = oversqlite_engine::transport::RetryPolicy::no_retry();
                Ok((conn, client))
            },
            "user-1",
            config,
        );

        let observe = |conn: &rusqlite::Connection| {
            let pulls = server.with(|s| s.pull_requests) as i64;
            let seqs = watch.lock().unwrap().after_seqs.clone();
            (
                pulls,
                seqs.len() as i64,
                closes.load(Ordering::SeqCst) as i64,
                seqs,
                support::app_rows(conn, "users"),
            )
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (p, a, c, s, u) = observe(&conn);
            if satisfied(&exp, p, a, c, &s, &u) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(ms) = exp["observeForMillis"].as_u64() {
            std::thread::sleep(Duration::from_millis(ms));
        }
        if exp["stopActiveWatchBeforeAssert"].as_bool() == Some(true) {
            let started = Instant::now();
            worker.stop();
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{name}: stop must cancel the active watch promptly"
            );
            let (p, a, c, s, u) = observe(&conn);
            assert!(
                satisfied(&exp, p, a, c, &s, &u),
                "{name}: pulls {p}, watch attempts {a}, closes {c}, seqs {s:?}, users {u}"
            );
        } else {
            let (p, a, c, s, u) = observe(&conn);
            assert!(
                satisfied(&exp, p, a, c, &s, &u),
                "{name}: pulls {p}, watch attempts {a}, closes {c}, seqs {s:?}, users {u}"
            );
            worker.stop();
        }
        watch.lock().unwrap().held.clear();
    }
}
