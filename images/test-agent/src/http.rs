//! Just enough HTTP/1.1 for the test agent: read one request head, parse its request line, path and
//! query, drain a small body, and write one `Connection: close` JSON response.
//!
//! Everything is bounded so a misbehaving client cannot make the agent grow: the head is capped at
//! [`MAX_HEAD`], a body at [`MAX_BODY`], and the caller sets socket timeouts. There is no keep-alive and
//! no chunked encoding: tests send one request per connection.

use std::fmt::Write as _;
use std::io::{self, Read, Write};

/// Largest request head (request line plus headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest body drained. Bodies are never used; they are read only so that closing the socket does not
/// reset the connection (and lose our response) while unread bytes sit in the receive buffer.
pub const MAX_BODY: usize = 64 * 1024;

/// A parsed request: method, path (not decoded) and decoded query parameters in their order.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub content_length: usize,
}

impl Request {
    /// The value of query parameter `name`, if present. Duplicates are rejected while parsing, so there
    /// is never a question of which one wins.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be parsed; each maps to one HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The head is larger than [`MAX_HEAD`] (431).
    HeadTooLarge,
    /// The declared body is larger than [`MAX_BODY`] (413).
    BodyTooLarge,
    /// The connection ended or timed out before a full head arrived.
    Incomplete,
    /// Not an HTTP/1.x request we understand (400).
    Malformed(&'static str),
    /// A chunked body, which we do not decode (411).
    LengthRequired,
}

impl ParseError {
    pub fn status(&self) -> u16 {
        match self {
            ParseError::HeadTooLarge => 431,
            ParseError::BodyTooLarge => 413,
            ParseError::Incomplete | ParseError::Malformed(_) => 400,
            ParseError::LengthRequired => 411,
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            ParseError::HeadTooLarge => "request head too large",
            ParseError::BodyTooLarge => "request body too large",
            ParseError::Incomplete => "incomplete request",
            ParseError::Malformed(why) => why,
            ParseError::LengthRequired => "chunked bodies are not supported; send Content-Length",
        }
    }
}

/// Reads from `stream` until the end of the head (`\r\n\r\n`), returning the head and any bytes read
/// past it (the start of the body).
pub fn read_head(stream: &mut impl Read) -> Result<(Vec<u8>, Vec<u8>), ParseError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_head_end(&buf) {
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(ParseError::HeadTooLarge);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(ParseError::Incomplete),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Index just past the blank line that ends the head, if it has arrived.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Reads and discards the rest of a body of `len` bytes, of which `already` were read with the head.
pub fn drain_body(stream: &mut impl Read, len: usize, already: usize) -> io::Result<()> {
    let remaining = len.saturating_sub(already) as u64;
    let copied = io::copy(&mut stream.take(remaining), &mut io::sink())?;
    if copied < remaining {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body ended early"));
    }
    Ok(())
}

/// Parses a complete request head.
pub fn parse_head(head: &[u8]) -> Result<Request, ParseError> {
    if head.len() > MAX_HEAD {
        return Err(ParseError::HeadTooLarge);
    }
    let text = std::str::from_utf8(head).map_err(|_| ParseError::Malformed("request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Malformed("bad request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ParseError::Malformed("bad method"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(ParseError::Malformed("only HTTP/1.0 and HTTP/1.1 are supported"));
    }
    let (path, query) = parse_target(target)?;

    let mut content_length = None;
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(ParseError::Malformed("bad header line"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let len: usize = value.parse().map_err(|_| ParseError::Malformed("bad Content-Length"))?;
            // Two different lengths is a request-smuggling shape; refuse rather than pick one.
            if content_length.is_some_and(|prev| prev != len) {
                return Err(ParseError::Malformed("conflicting Content-Length headers"));
            }
            content_length = Some(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && !value.eq_ignore_ascii_case("identity") {
            return Err(ParseError::LengthRequired);
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY {
        return Err(ParseError::BodyTooLarge);
    }
    Ok(Request { method: method.to_owned(), path, query, content_length })
}

/// Splits an origin-form target (`/path?query`) into its path and decoded query parameters.
pub fn parse_target(target: &str) -> Result<(String, Vec<(String, String)>), ParseError> {
    if !target.starts_with('/') {
        return Err(ParseError::Malformed("request target must start with '/'"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k)?, percent_decode(v)?);
        if params.iter().any(|(seen, _)| *seen == k) {
            return Err(ParseError::Malformed("duplicate query parameter"));
        }
        params.push((k, v));
    }
    Ok((path.to_owned(), params))
}

/// Decodes `%XX` escapes and `+` (a space in form encoding); the result must be UTF-8.
pub fn percent_decode(s: &str) -> Result<String, ParseError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(ParseError::Malformed("truncated percent escape"))?;
                let hex = std::str::from_utf8(hex).map_err(|_| ParseError::Malformed("bad percent escape"))?;
                let byte = u8::from_str_radix(hex, 16).map_err(|_| ParseError::Malformed("bad percent escape"))?;
                out.push(byte);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ParseError::Malformed("query is not UTF-8"))
}

/// One JSON response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Response { status, body: body.into() }
    }

    pub fn error(status: u16, message: &str) -> Self {
        Response::json(status, format!("{{\"error\":{}}}", json_str(message)))
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.body.len()
        );
        w.write_all(head.as_bytes())?;
        w.write_all(self.body.as_bytes())?;
        w.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// `s` as a quoted JSON string.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `Some(s)` as a JSON string, `None` as `null`.
pub fn json_opt_str(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_owned(), json_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Request, ParseError> {
        parse_head(raw.as_bytes())
    }

    #[test]
    fn simple_get_is_parsed() {
        let req = parse("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(req, Request { method: "GET".into(), path: "/healthz".into(), query: vec![], content_length: 0 });
    }

    #[test]
    fn query_parameters_are_decoded_in_order() {
        let req = parse("GET /connect?host=10.89.77.1&port=8080&timeout_ms=250 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(req.path, "/connect");
        assert_eq!(req.param("host"), Some("10.89.77.1"));
        assert_eq!(req.param("port"), Some("8080"));
        assert_eq!(req.param("timeout_ms"), Some("250"));
        assert_eq!(req.param("missing"), None);
    }

    #[test]
    fn percent_escapes_and_plus_are_decoded() {
        assert_eq!(percent_decode("%2Fetc%2fpasswd").unwrap(), "/etc/passwd");
        assert_eq!(percent_decode("a+b%20c").unwrap(), "a b c");
        assert_eq!(percent_decode("%E2%9C%93").unwrap(), "\u{2713}");
    }

    #[test]
    fn bad_percent_escapes_are_rejected() {
        assert!(matches!(percent_decode("%"), Err(ParseError::Malformed(_))));
        assert!(matches!(percent_decode("%4"), Err(ParseError::Malformed(_))));
        assert!(matches!(percent_decode("%zz"), Err(ParseError::Malformed(_))));
        assert!(matches!(percent_decode("%ff"), Err(ParseError::Malformed(_))), "not UTF-8");
    }

    #[test]
    fn parameter_without_value_is_empty_and_duplicates_are_rejected() {
        let (_, q) = parse_target("/probe/write?path").unwrap();
        assert_eq!(q, vec![("path".to_owned(), String::new())]);
        assert_eq!(parse_target("/connect?port=1&port=2"), Err(ParseError::Malformed("duplicate query parameter")));
    }

    #[test]
    fn malformed_request_lines_are_rejected() {
        for raw in [
            "GET\r\n\r\n",
            "GET /healthz\r\n\r\n",
            "GET /healthz HTTP/1.1 extra\r\n\r\n",
            "get /healthz HTTP/1.1\r\n\r\n",
            "GET healthz HTTP/1.1\r\n\r\n",
            "GET /healthz HTTP/2\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
        ] {
            assert!(matches!(parse(raw), Err(ParseError::Malformed(_))), "{raw:?}");
        }
    }

    #[test]
    fn content_length_is_read_and_bounded() {
        let req = parse("POST /crash HTTP/1.1\r\ncontent-length: 5\r\n\r\n").unwrap();
        assert_eq!(req.content_length, 5);
        let big = format!("POST /crash HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        assert_eq!(parse(&big), Err(ParseError::BodyTooLarge));
        let conflict = "POST /crash HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(parse(conflict), Err(ParseError::Malformed(_))));
        let chunked = "POST /crash HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(chunked), Err(ParseError::LengthRequired));
    }

    #[test]
    fn head_is_read_up_to_the_blank_line_and_keeps_the_body_start() {
        let mut input: &[u8] = b"POST /crash HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody";
        let (head, rest) = read_head(&mut input).unwrap();
        assert!(head.ends_with(b"\r\n\r\n"));
        assert_eq!(rest, b"body");
    }

    #[test]
    fn oversized_or_truncated_heads_are_rejected() {
        let mut huge: &[u8] = &vec![b'a'; MAX_HEAD + 2048];
        assert_eq!(read_head(&mut huge), Err(ParseError::HeadTooLarge));
        let mut cut: &[u8] = b"GET /healthz HTTP/1.1\r\n";
        assert_eq!(read_head(&mut cut), Err(ParseError::Incomplete));
    }

    #[test]
    fn body_is_drained_exactly() {
        let mut input: &[u8] = b"abcdef";
        drain_body(&mut input, 4, 1).unwrap();
        assert_eq!(input, b"def");
        let mut short: &[u8] = b"ab";
        assert!(drain_body(&mut short, 5, 0).is_err());
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
        assert_eq!(json_opt_str(None), "null");
        assert_eq!(json_opt_str(Some("x")), r#""x""#);
    }

    #[test]
    fn response_has_length_and_closes() {
        let mut out = Vec::new();
        Response::json(200, r#"{"ok":true}"#).write_to(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 11\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"ok\":true}"));
    }
}
