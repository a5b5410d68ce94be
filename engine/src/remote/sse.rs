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
/// Longest line (and longest event) the parser accepts. Watch events are a few dozen
/// bytes; the cap keeps a misbehaving server or proxy from growing the client's memory
/// without bound by never sending a newline.
pub const MAX_SSE_LINE_BYTES: usize = 64 * 1024;

/// `BufRead::read_line` with a length cap: a line longer than `max` bytes is an
/// `InvalidData` error instead of an ever-growing buffer. Returns the bytes consumed
/// (0 at EOF); `line` receives the line including its `\n`.
pub fn read_line_bounded(
    reader: &mut dyn BufRead,
    line: &mut String,
    max: usize,
) -> std::io::Result<usize> {
    let mut bytes = Vec::new();
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if bytes.len() + take > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("event stream line longer than {max} bytes"),
            ));
        }
        bytes.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            break;
        }
    }
    let n = bytes.len();
    let text = String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "event stream line is not UTF-8",
        )
    })?;
    line.push_str(&text);
    Ok(n)
}

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
            "data" => {
                let held: usize = self.data.iter().map(|d| d.len() + 1).sum();
                if held + value.len() > MAX_SSE_LINE_BYTES {
                    return Err(SyncError::protocol(format!(
                        "watch event data longer than {MAX_SSE_LINE_BYTES} bytes"
                    )));
                }
                self.data.push(value.to_string());
            }
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
        let n = read_line_bounded(reader, &mut line, MAX_SSE_LINE_BYTES).map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    #[test]
    fn bounded_reader_returns_lines_and_eof() {
        // A 3-byte buffer forces lines to span several fill_buf calls.
        let mut r =
            BufReader::with_capacity(3, Cursor::new(b"event: bundle\ndata: {}\n\nlast".to_vec()));
        let mut got = Vec::new();
        loop {
            let mut line = String::new();
            if read_line_bounded(&mut r, &mut line, 64).unwrap() == 0 {
                break;
            }
            got.push(line);
        }
        assert_eq!(got, ["event: bundle\n", "data: {}\n", "\n", "last"]);
    }

    #[test]
    fn bounded_reader_refuses_an_endless_line() {
        let mut r = BufReader::with_capacity(8, Cursor::new(vec![b'x'; 100]));
        let mut line = String::new();
        let err = read_line_bounded(&mut r, &mut line, 64).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(line.is_empty());
        let mut r = Cursor::new(format!(": {}\n", "y".repeat(MAX_SSE_LINE_BYTES)).into_bytes());
        assert!(read_events(&mut r, |_| Ok(())).is_err());
    }

    #[test]
    fn oversized_event_data_is_a_stream_error() {
        let mut p = SseParser::new();
        p.push_line("event: bundle").unwrap();
        let chunk = "z".repeat(MAX_SSE_LINE_BYTES / 2);
        p.push_line(&format!("data: {chunk}")).unwrap();
        assert!(p.push_line(&format!("data: {chunk}")).is_err());
        // A normal event still decodes after a fresh start.
        let mut p = SseParser::new();
        p.push_line("event: bundle").unwrap();
        p.push_line(r#"data: {"bundle_seq":7}"#).unwrap();
        assert_eq!(p.push_line("").unwrap().map(|e| e.bundle_seq), Some(7));
    }
}
