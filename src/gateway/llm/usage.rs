//! Reading token usage out of provider answers as they pass through, without keeping their text.
//!
//! - OpenAI chat completions: `usage.prompt_tokens` / `usage.completion_tokens` in the JSON answer, or in the
//!   final chunk of a stream (the gateway always asks for it with `stream_options.include_usage`).
//! - Anthropic messages: `usage.input_tokens` (+ cache creation and cache reads, charged as input) /
//!   `usage.output_tokens`; in a stream, `message_start` carries the input count and `message_delta` the
//!   running output count.
//!
//! Only the usage numbers are kept; every other byte is dropped as soon as it is scanned.

use serde_json::Value;

use super::Provider;
use crate::gateway::pricing::Usage;

/// Largest JSON answer (or single stream event) scanned for usage; a bigger one is passed on unscanned and
/// its cost estimated from its size.
pub const MAX_SCANNED_BYTES: usize = 8 * 1024 * 1024;

/// Usage from one JSON object (a whole answer or one stream event), if it carries any.
pub fn from_object(provider: Provider, v: &Value) -> Option<Usage> {
    let n = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64);
    match provider {
        Provider::OpenAi => {
            let u = v.get("usage").filter(|u| u.is_object())?;
            Some(Usage { input_tokens: n(u, "prompt_tokens")?, output_tokens: n(u, "completion_tokens").unwrap_or(0) })
        }
        Provider::Anthropic => {
            // `message_start` nests the usage in `message`.
            let u =
                v.get("usage").or_else(|| v.get("message").and_then(|m| m.get("usage"))).filter(|u| u.is_object())?;
            let input = ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
                .iter()
                .filter_map(|k| n(u, k))
                .fold(0u64, u64::saturating_add);
            let output = n(u, "output_tokens").unwrap_or(0);
            (u.get("input_tokens").is_some() || u.get("output_tokens").is_some())
                .then_some(Usage { input_tokens: input, output_tokens: output })
        }
    }
}

/// Scans an answer chunk by chunk: a JSON body (kept up to [`MAX_SCANNED_BYTES`] to parse at the end) or a
/// server-sent-events stream (parsed event by event, nothing kept between events).
#[derive(Debug)]
pub struct UsageScanner {
    provider: Provider,
    kind: Kind,
    usage: Option<Usage>,
    /// Something could not be scanned (too big, not JSON): the usage may be incomplete.
    incomplete: bool,
    bytes: u64,
}

#[derive(Debug)]
enum Kind {
    Json { body: Vec<u8> },
    Events { line: Vec<u8>, data: Vec<u8>, overflow: bool },
}

impl UsageScanner {
    pub fn new(provider: Provider, event_stream: bool) -> Self {
        let kind = if event_stream {
            Kind::Events { line: Vec::new(), data: Vec::new(), overflow: false }
        } else {
            Kind::Json { body: Vec::new() }
        };
        Self { provider, kind, usage: None, incomplete: false, bytes: 0 }
    }

    /// Bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        match &mut self.kind {
            Kind::Json { body } => {
                if body.len() + chunk.len() <= MAX_SCANNED_BYTES {
                    body.extend_from_slice(chunk);
                } else {
                    self.incomplete = true;
                    body.clear();
                    body.shrink_to_fit();
                }
            }
            Kind::Events { .. } => {
                let mut rest = chunk;
                while let Some(i) = rest.iter().position(|b| *b == b'\n') {
                    self.push_line_part(&rest[..i]);
                    self.end_line();
                    rest = &rest[i + 1..];
                }
                self.push_line_part(rest);
            }
        }
    }

    fn push_line_part(&mut self, part: &[u8]) {
        if let Kind::Events { line, overflow, .. } = &mut self.kind {
            if line.len() + part.len() <= MAX_SCANNED_BYTES {
                line.extend_from_slice(part);
            } else {
                *overflow = true;
            }
        }
    }

    fn end_line(&mut self) {
        let Kind::Events { line, data, overflow } = &mut self.kind else { return };
        let text: &[u8] = line.strip_suffix(b"\r").unwrap_or(line);
        if text.is_empty() {
            // The blank line that ends an event.
            let event = std::mem::take(data);
            let lost = std::mem::replace(overflow, false);
            line.clear();
            if lost {
                self.incomplete = true;
            } else {
                self.event(&event);
            }
            return;
        }
        if let Some(value) = text.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if !data.is_empty() {
                data.push(b'\n');
            }
            if data.len() + value.len() <= MAX_SCANNED_BYTES {
                data.extend_from_slice(value);
            } else {
                *overflow = true;
            }
        }
        line.clear();
    }

    fn event(&mut self, data: &[u8]) {
        if data.is_empty() || data == b"[DONE]" {
            return;
        }
        match serde_json::from_slice::<Value>(data) {
            Ok(v) => {
                if let Some(u) = from_object(self.provider, &v) {
                    self.merge(u);
                }
            }
            Err(_) => self.incomplete = true,
        }
    }

    /// Counts only grow: a stream may repeat a count (Anthropic's running output total) but never lowers it.
    fn merge(&mut self, u: Usage) {
        let prev = self.usage.unwrap_or_default();
        self.usage = Some(Usage {
            input_tokens: prev.input_tokens.max(u.input_tokens),
            output_tokens: prev.output_tokens.max(u.output_tokens),
        });
    }

    /// The usage the answer reported, or `None` when it reported none (or not all of it could be read).
    pub fn finish(mut self) -> Option<Usage> {
        match std::mem::replace(&mut self.kind, Kind::Json { body: Vec::new() }) {
            Kind::Json { body } => {
                if !self.incomplete {
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        if let Some(u) = from_object(self.provider, &v) {
                            self.merge(u);
                        }
                    }
                }
            }
            Kind::Events { line, data, overflow } => {
                // A stream cut without its last blank line: the pending event still counts.
                self.kind = Kind::Events { line, data, overflow };
                self.end_line();
                self.end_line();
            }
        }
        if self.incomplete {
            return None;
        }
        self.usage
    }
}

/// A deliberately generous guess for an answer whose usage could not be read: about one token per three
/// bytes of the request and of the answer (real text averages about four per token, JSON framing more).
pub fn estimate(request_bytes: u64, answer_bytes: u64) -> Usage {
    Usage { input_tokens: request_bytes.div_ceil(3), output_tokens: answer_bytes.div_ceil(3) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPENAI_JSON: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;

    const OPENAI_STREAM: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n\
        data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
        data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":2,\"total_tokens\":32}}\n\n\
        data: [DONE]\n\n";

    const ANTHROPIC_STREAM: &str = "event: message_start\r\n\
        data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\r\n\r\n\
        event: content_block_delta\r\n\
        data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\r\n\r\n\
        event: message_delta\r\n\
        data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\r\n\r\n\
        event: message_stop\r\n\
        data: {\"type\":\"message_stop\"}\r\n\r\n";

    fn scan(provider: Provider, stream: bool, chunks: &[&[u8]]) -> Option<Usage> {
        let mut s = UsageScanner::new(provider, stream);
        for c in chunks {
            s.feed(c);
        }
        s.finish()
    }

    #[test]
    fn openai_answers_and_streams_report_usage() {
        assert_eq!(
            scan(Provider::OpenAi, false, &[OPENAI_JSON.as_bytes()]),
            Some(Usage { input_tokens: 12, output_tokens: 5 })
        );
        assert_eq!(
            scan(Provider::OpenAi, true, &[OPENAI_STREAM.as_bytes()]),
            Some(Usage { input_tokens: 30, output_tokens: 2 })
        );
    }

    #[test]
    fn anthropic_streams_add_cache_tokens_to_input_and_keep_the_running_output_total() {
        assert_eq!(
            scan(Provider::Anthropic, true, &[ANTHROPIC_STREAM.as_bytes()]),
            Some(Usage { input_tokens: 125, output_tokens: 15 })
        );
        let json = r#"{"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":9,"output_tokens":4}}"#;
        assert_eq!(
            scan(Provider::Anthropic, false, &[json.as_bytes()]),
            Some(Usage { input_tokens: 9, output_tokens: 4 })
        );
    }

    #[test]
    fn answers_without_usage_or_unreadable_ones_report_none() {
        assert_eq!(scan(Provider::OpenAi, false, &[b"{\"error\":{\"message\":\"bad\"}}"]), None);
        assert_eq!(scan(Provider::OpenAi, false, &[b"not json"]), None);
        // A stream cut before its usage chunk.
        let cut = &OPENAI_STREAM[..OPENAI_STREAM.find("data: {\"id\":\"c\",\"choices\":[]").unwrap()];
        assert_eq!(scan(Provider::OpenAi, true, &[cut.as_bytes()]), None);
        // A garbled event makes the count unreliable even if a later one has usage.
        let garbled = format!("data: {{not json\n\n{OPENAI_STREAM}");
        assert_eq!(scan(Provider::OpenAi, true, &[garbled.as_bytes()]), None);
    }

    #[test]
    fn a_final_event_without_its_blank_line_still_counts() {
        let s = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}";
        assert_eq!(scan(Provider::OpenAi, true, &[s.as_bytes()]), Some(Usage { input_tokens: 3, output_tokens: 4 }));
    }

    #[test]
    fn estimates_are_generous() {
        let u = estimate(300, 30);
        assert_eq!((u.input_tokens, u.output_tokens), (100, 10));
    }

    proptest! {
        /// However the network splits a stream, the scanner reads the same usage.
        #[test]
        fn chunking_does_not_change_the_usage(cuts in proptest::collection::vec(0usize..600, 0..12), anthropic in any::<bool>()) {
            let (provider, text) = if anthropic { (Provider::Anthropic, ANTHROPIC_STREAM) } else { (Provider::OpenAi, OPENAI_STREAM) };
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(&bytes[at..c]);
                at = c;
            }
            chunks.push(&bytes[at..]);
            let whole = scan(provider, true, &[bytes]);
            prop_assert!(whole.is_some());
            prop_assert_eq!(scan(provider, true, &chunks), whole);
        }
    }
}
