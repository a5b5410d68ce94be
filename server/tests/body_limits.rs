//! Per-route body limits (#10 item 8): a body over its route's limit is refused with
//! `413 request_body_too_large` without being read, and an unauthenticated request is
//! refused 401 before any of its body is read.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Sends only the request head (declaring `content_length` body bytes) and reads the
/// answer, which must come before any body byte is sent. Returns (status, body text, time).
fn head_only(
    server: &Server,
    path: &str,
    headers: &[(&str, String)],
    content_length: u64,
) -> (u16, String, Duration) {
    let host = server.host();
    let mut stream = TcpStream::connect(&host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let started = Instant::now();
    stream.write_all(head.as_bytes()).unwrap();
    let answer = read_answer(&mut stream);
    let elapsed = started.elapsed();
    let (status, body) = split_answer(&answer);
    (status, body, elapsed)
}

/// Reads one HTTP/1.1 answer with a Content-Length (or until the peer closes).
fn read_answer(stream: &mut TcpStream) -> String {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buffer).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return text;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return String::from_utf8_lossy(&buffer).to_string(),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) => panic!(
                "no answer before the body was sent ({e}); got {:?}",
                String::from_utf8_lossy(&buffer)
            ),
        }
    }
}

fn split_answer(answer: &str) -> (u16, String) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[track_caller]
fn assert_too_large(status: u16, body: &str, elapsed: Duration) {
    assert_eq!(status, 413, "{body}");
    let value = parse(body);
    assert_eq!(value["error"], "request_body_too_large", "{body}");
    assert!(
        value["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

#[test]
fn oversized_bodies_get_413_at_once_and_unauthenticated_ones_401_unread() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    let (_, created) = alice.create(1, 1);
    let push_id = created["push_id"].as_str().unwrap().to_string();

    // Authenticated, declared over the limit: 413 before the body is sent. Small JSON
    // routes allow 64 KiB, push chunks 5000 rows × 16 KiB + 64 KiB.
    for (path, length) in [
        ("/sync/connect".to_string(), 64 * 1024 + 1),
        ("/sync/push-sessions".to_string(), 1024 * 1024),
        ("/sync/snapshot-sessions".to_string(), 1024 * 1024),
        (
            format!("/sync/push-sessions/{push_id}/chunks"),
            5000 * 16 * 1024 + 64 * 1024 + 1,
        ),
    ] {
        let (status, body, elapsed) = head_only(&server, &path, &alice.headers(), length);
        assert_too_large(status, &body, elapsed);
    }

    // Streamed (chunked, no length declared) past a small route's limit: 413 too.
    let mut stream = TcpStream::connect(server.host()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = format!(
        "POST /sync/connect HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n",
        server.host()
    );
    for (name, value) in alice.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let piece = vec![b' '; 16 * 1024];
    let started = Instant::now();
    for _ in 0..5 {
        let _ = stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes());
        let _ = stream.write_all(&piece);
        let _ = stream.write_all(b"\r\n");
    }
    let (status, body) = split_answer(&read_answer(&mut stream));
    assert_too_large(status, &body, started.elapsed());

    // Within the limit the route works as before (the session is unharmed).
    let (status, chunk) = alice.chunk(&push_id, 0, &[user_row("INSERT", "u1", "x", 0)]);
    assert_eq!(status, 200, "{chunk}");

    // Unauthenticated 250 MB bodies, 8 at once: 401 before any body byte is sent, and
    // the server's memory stays flat.
    let rss_before = rss_kib(server.pid());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let host = server.host();
            let path = format!("/sync/push-sessions/{push_id}/chunks");
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&host).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 250000000\r\nAuthorization: Bearer not-a-token\r\nOversync-Source-ID: dev-x\r\n\r\n"
                );
                let started = Instant::now();
                stream.write_all(head.as_bytes()).unwrap();
                let answer = read_answer(&mut stream);
                let elapsed = started.elapsed();
                // Keep pushing body bytes after the answer: the server must not buffer them.
                let megabyte = vec![b'x'; 1024 * 1024];
                for _ in 0..32 {
                    if stream.write_all(&megabyte).is_err() {
                        break;
                    }
                }
                (split_answer(&answer), elapsed)
            })
        })
        .collect();
    for handle in handles {
        let ((status, body), elapsed) = handle.join().unwrap();
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("Invalid token"), "{body}");
        assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    }
    let rss_after = rss_kib(server.pid());
    println!(
        "server RSS: {rss_before} KiB before, {rss_after} KiB after 8 unauthenticated 250 MB POSTs"
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "server RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}
