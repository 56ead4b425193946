//! A parser of server-sent events (`text/event-stream`), fed with whatever chunks the
//! connection delivers: lines may be cut anywhere, even inside a UTF-8 character.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type (`message` when the server gave none).
    pub event: String,
    /// The event id field, when the event had one.
    pub id: Option<String>,
    /// The data lines, joined with `\n`.
    pub data: String,
}

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct SseParser {
    partial: Vec<u8>,
    event: String,
    id: Option<String>,
    data: Vec<String>,
}

/// The longest line kept while waiting for its end; longer input is dropped so a broken
/// server cannot grow the buffer without bound.
const MAX_LINE: usize = 64 * 1024 * 1024;

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(ev) = self.line(&String::from_utf8_lossy(&line)) {
                out.push(ev);
            }
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
        }
        out
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = std::mem::take(&mut self.data);
            let event = std::mem::take(&mut self.event);
            let id = self.id.take();
            if data.is_empty() {
                return None;
            }
            return Some(SseEvent {
                event: if event.is_empty() {
                    "message".into()
                } else {
                    event
                },
                id,
                data: data.join("\n"),
            });
        }
        if line.starts_with(':') {
            return None; // A comment (keep-alive).
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => self.data.push(value.to_string()),
            "id" => self.id = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_cut_of_the_stream() {
        let stream = "event: change\nid: 42\ndata: {\"a\":\"é\"}\n\n: keep-alive\n\nevent: health\r\ndata: x\r\ndata: y\r\n\r\n";
        let whole = SseParser::new().feed(stream.as_bytes());
        assert_eq!(
            whole,
            vec![
                SseEvent {
                    event: "change".into(),
                    id: Some("42".into()),
                    data: "{\"a\":\"é\"}".into()
                },
                SseEvent {
                    event: "health".into(),
                    id: None,
                    data: "x\ny".into()
                },
            ]
        );
        let bytes = stream.as_bytes();
        for cut in 0..bytes.len() {
            let mut p = SseParser::new();
            let mut got = p.feed(&bytes[..cut]);
            got.extend(p.feed(&bytes[cut..]));
            assert_eq!(got, whole, "cut at {cut}");
        }
    }
}
