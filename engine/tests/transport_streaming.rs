//! `Transport::send_to`: the production transport streams a response body into a
//! sink, the default implementation (scripted transport) goes through `send`, and a
//! retried request leaves exactly the final response in the spool file.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use oversqlite_engine::remote::transport::{
    send_to_with_retry, HttpRequest, RetryPolicy, ScriptedResponse, ScriptedTransport, Transport,
    UreqTransport,
};

fn get(url: String) -> HttpRequest {
    HttpRequest {
        method: "GET",
        url,
        headers: vec![],
        body: None,
    }
}

/// A one-shot HTTP/1.1 server on loopback answering `status` with `body`.
fn serve_once(status: &'static str, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nRetry-After: 0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
    });
    format!("http://{addr}/sync/pull")
}

#[test]
fn ureq_streams_a_large_body_into_the_sink() {
    let body: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let url = serve_once("200 OK", body.clone());
    let mut sink = Vec::new();
    let head = UreqTransport::default()
        .send_to(&get(url), &mut sink)
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert_eq!(sink.len(), body.len());
    assert!(sink == body);
}

#[test]
fn ureq_returns_error_statuses_with_their_body() {
    let url = serve_once("409 Conflict", br#"{"error":"history_pruned"}"#.to_vec());
    let mut sink = Vec::new();
    let head = UreqTransport::default()
        .send_to(&get(url), &mut sink)
        .unwrap();
    assert_eq!(head.status, 409);
    assert_eq!(sink, br#"{"error":"history_pruned"}"#);
}

fn temp_file() -> std::fs::File {
    let path = std::env::temp_dir().join(format!(
        "oversqlite-transport-test-{}-{}",
        std::process::id(),
        uuid_like()
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

fn uuid_like() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

#[test]
fn a_retried_response_replaces_the_partial_one_in_the_spool() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let transport = ScriptedTransport::new(move |_| match seen.fetch_add(1, Ordering::SeqCst) {
        0 => ScriptedResponse::Raw(503, vec![], b"a long temporary failure body".to_vec()),
        _ => ScriptedResponse::Raw(200, vec![], b"{}".to_vec()),
    });
    let policy = RetryPolicy {
        max_attempts: 2,
        initial_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let mut file = temp_file();
    let head = send_to_with_retry(
        &transport,
        &policy,
        &get("https://h/sync/pull".into()),
        &mut file,
    )
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let mut content = String::new();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_to_string(&mut content).unwrap();
    assert_eq!(content, "{}");
}
