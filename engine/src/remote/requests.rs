//! Request builders for the HTTP routes (§2): pure functions of the base URL, the
//! source id and the wire bodies (fixture-tested). The `Authorization` header is
//! added by [`crate::remote::client::Remote`] at send time.

use oversqlite_protocol::{
    ConnectRequest, PushChunkRequest, PushSessionCreateRequest, SnapshotSessionCreateRequest,
};
use serde::Serialize;

use crate::remote::transport::{percent_encode, HttpRequest};

pub const SOURCE_HEADER: &str = "Oversync-Source-ID";

/// Builds requests against a base URL whose path prefix is preserved
/// (`https://h/api/v1/` → `https://h/api/v1/sync/...`). Requests carry the source
/// header; the `Authorization` header is added by [`Remote`] at send time.
#[derive(Debug, Clone)]
pub struct Requests {
    base: String,
}

fn json_body<T: Serialize>(v: &T) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(v).expect("wire types serialise"))
}

impl Requests {
    pub fn new(base_url: &str) -> Self {
        Requests {
            base: base_url.trim().trim_end_matches('/').to_string(),
        }
    }

    fn req(
        &self,
        method: &'static str,
        path: &str,
        query: &[(&str, String)],
        source_id: &str,
        body: Option<Vec<u8>>,
    ) -> HttpRequest {
        let mut url = format!("{}{}", self.base, path);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&percent_encode(v));
        }
        HttpRequest {
            method,
            url,
            headers: vec![(SOURCE_HEADER.to_string(), source_id.to_string())],
            body,
        }
    }

    pub fn capabilities(&self, source_id: &str) -> HttpRequest {
        self.req("GET", "/sync/capabilities", &[], source_id, None)
    }

    pub fn connect(&self, source_id: &str, has_local_pending_rows: bool) -> HttpRequest {
        self.req(
            "POST",
            "/sync/connect",
            &[],
            source_id,
            json_body(&ConnectRequest {
                has_local_pending_rows,
            }),
        )
    }

    /// `target_bundle_seq` is sent only when positive (the first page omits it).
    pub fn pull(
        &self,
        source_id: &str,
        after_bundle_seq: i64,
        max_bundles: i64,
        target_bundle_seq: i64,
    ) -> HttpRequest {
        let mut q = vec![
            ("after_bundle_seq", after_bundle_seq.to_string()),
            ("max_bundles", max_bundles.to_string()),
        ];
        if target_bundle_seq > 0 {
            q.push(("target_bundle_seq", target_bundle_seq.to_string()));
        }
        self.req("GET", "/sync/pull", &q, source_id, None)
    }

    pub fn push_session_create(
        &self,
        source_id: &str,
        body: &PushSessionCreateRequest,
    ) -> HttpRequest {
        self.req(
            "POST",
            "/sync/push-sessions",
            &[],
            source_id,
            json_body(body),
        )
    }

    pub fn push_session_chunk(
        &self,
        source_id: &str,
        push_id: &str,
        body: &PushChunkRequest,
    ) -> HttpRequest {
        let body = serde_json::to_vec(body).expect("wire types serialise");
        self.push_session_chunk_body(source_id, push_id, body)
    }

    /// The same route with a body already serialised (the engine writes chunk bodies
    /// straight from the stored outbox texts).
    pub fn push_session_chunk_body(
        &self,
        source_id: &str,
        push_id: &str,
        body: Vec<u8>,
    ) -> HttpRequest {
        self.req(
            "POST",
            &format!("/sync/push-sessions/{}/chunks", percent_encode(push_id)),
            &[],
            source_id,
            Some(body),
        )
    }

    pub fn push_session_commit(&self, source_id: &str, push_id: &str) -> HttpRequest {
        self.req(
            "POST",
            &format!("/sync/push-sessions/{}/commit", percent_encode(push_id)),
            &[],
            source_id,
            None,
        )
    }

    pub fn push_session_delete(&self, source_id: &str, push_id: &str) -> HttpRequest {
        self.req(
            "DELETE",
            &format!("/sync/push-sessions/{}", percent_encode(push_id)),
            &[],
            source_id,
            None,
        )
    }

    /// The first page omits `after_row_ordinal` (ordinals are 0-based, §2.7).
    pub fn committed_rows(
        &self,
        source_id: &str,
        bundle_seq: i64,
        after_row_ordinal: Option<i64>,
        max_rows: i64,
    ) -> HttpRequest {
        let mut q = Vec::new();
        if let Some(a) = after_row_ordinal {
            q.push(("after_row_ordinal", a.to_string()));
        }
        q.push(("max_rows", max_rows.to_string()));
        self.req(
            "GET",
            &format!("/sync/committed-bundles/{bundle_seq}/rows"),
            &q,
            source_id,
            None,
        )
    }

    /// A plain (keep-source) snapshot request has no body; a rotated one carries
    /// `source_replacement` while the header still names the previous source.
    pub fn snapshot_session_create(
        &self,
        source_id: &str,
        body: Option<&SnapshotSessionCreateRequest>,
    ) -> HttpRequest {
        self.req(
            "POST",
            "/sync/snapshot-sessions",
            &[],
            source_id,
            body.and_then(json_body),
        )
    }

    pub fn snapshot_chunk(
        &self,
        source_id: &str,
        snapshot_id: &str,
        after_row_ordinal: i64,
        max_rows: i64,
    ) -> HttpRequest {
        let q = [
            ("after_row_ordinal", after_row_ordinal.to_string()),
            ("max_rows", max_rows.to_string()),
        ];
        self.req(
            "GET",
            &format!("/sync/snapshot-sessions/{}", percent_encode(snapshot_id)),
            &q,
            source_id,
            None,
        )
    }

    pub fn snapshot_session_delete(&self, source_id: &str, snapshot_id: &str) -> HttpRequest {
        self.req(
            "DELETE",
            &format!("/sync/snapshot-sessions/{}", percent_encode(snapshot_id)),
            &[],
            source_id,
            None,
        )
    }

    pub fn watch(&self, source_id: &str, after_bundle_seq: i64) -> HttpRequest {
        self.req(
            "GET",
            "/sync/watch",
            &[("after_bundle_seq", after_bundle_seq.to_string())],
            source_id,
            None,
        )
    }
}
