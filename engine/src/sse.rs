//! Server-Sent Events parser for `GET /sync/watch` (§2.12). Only `event: bundle`
//! frames are decoded; everything else (comments, heartbeats, unknown events) is
//! ignored. A malformed bundle event is a stream error.

use std::io::BufRead;

use oversqlite_protocol::WatchEvent;

use crate::error::{Result, SyncError};

/// Incremental parser: feed lines (without the trailing newline) with [`push_line`],
/// dispatching on the empty line.
///
/// [`push_line`]: SseParser::push_line
#[derive(Default)]
pub struct SseParser {
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one line; returns a decoded bundle event when this line completes one.
    pub fn push_line(&mut self, line: &str) -> Result<Option<WatchEvent>> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
        Ok(None)
    }

    /// Ends the stream: a frame without its terminating empty line is discarded, as
    /// the SSE specification requires.
    pub fn finish(&mut self) {
        self.event = None;
        self.data.clear();
    }

    fn dispatch(&mut self) -> Result<Option<WatchEvent>> {
        let event = self.event.take();
        let data = std::mem::take(&mut self.data);
        if event.as_deref() != Some("bundle") {
            return Ok(None);
        }
        let text = data.join("\n");
        let decoded: WatchEvent = serde_json::from_str(&text)
            .map_err(|e| SyncError::protocol(format!("malformed bundle watch event: {e}")))?;
        if decoded.bundle_seq <= 0 {
            return Err(SyncError::protocol(format!(
                "bundle watch event bundle_seq {} must be positive",
                decoded.bundle_seq
            )));
        }
        Ok(Some(decoded))
    }
}

/// Reads events from a stream until EOF, calling `on_event` for each bundle event.
/// Returns Ok at a clean EOF; a read failure or malformed event is an error.
pub fn read_events(
    reader: &mut dyn BufRead,
    mut on_event: impl FnMut(WatchEvent) -> Result<()>,
) -> Result<()> {
    let mut parser = SseParser::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| {
            SyncError::new(
                crate::error::ErrorKind::NetworkError,
                format!("watch stream read failed: {e}"),
            )
        })?;
        if n == 0 {
            parser.finish();
            return Ok(());
        }
        let trimmed = line.strip_suffix('\n').unwrap_or(&line);
        if let Some(ev) = parser.push_line(trimmed)? {
            on_event(ev)?;
        }
    }
}
