//! Credentials never leak through `Debug` of a request nor through transport errors.

use oversqlite_engine::remote::transport::{
    redact_url, HttpRequest, Transport, UreqTransport, UreqTransportConfig,
};

fn request(url: &str) -> HttpRequest {
    HttpRequest {
        method: "GET",
        url: url.to_string(),
        headers: vec![
            ("Authorization".into(), "Bearer secret-token-123".into()),
            ("Oversync-Source-ID".into(), "source-a".into()),
        ],
        body: None,
    }
}

#[test]
fn debug_of_a_request_redacts_the_authorization_header() {
    let shown = format!(
        "{:?}",
        request("https://sync.test/sync/pull?after_bundle_seq=1")
    );
    assert!(!shown.contains("secret-token-123"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(shown.contains("source-a"), "{shown}");
    assert!(shown.contains("https://sync.test/sync/pull"), "{shown}");
}

#[test]
fn redact_url_strips_userinfo_and_query() {
    assert_eq!(
        redact_url("https://alice:pw@sync.test:8443/base/sync/pull?token=abc&x=1#frag"),
        "https://sync.test:8443/base/sync/pull"
    );
    assert_eq!(
        redact_url("https://sync.test/sync/pull"),
        "https://sync.test/sync/pull"
    );
    assert_eq!(redact_url("http://bob@host"), "http://host");
}

#[test]
fn transport_errors_do_not_echo_userinfo_or_query() {
    let transport = UreqTransport::new(UreqTransportConfig::default());
    // Port 1 on loopback refuses the connection at once.
    let err = transport
        .send(&request(
            "http://alice:hunter2@127.0.0.1:1/sync/pull?token=abc123",
        ))
        .unwrap_err();
    assert!(!err.message.contains("hunter2"), "{}", err.message);
    assert!(!err.message.contains("abc123"), "{}", err.message);
    assert!(!err.message.contains("secret-token-123"), "{}", err.message);
    assert!(
        err.message.contains("127.0.0.1:1/sync/pull"),
        "{}",
        err.message
    );
}
