//! The request head an agent sends its proxy: read with a bound, parsed (CONNECT or absolute-form HTTP, with
//! the gateway token from `Proxy-Authorization`), told apart from a model call, and answered when refused.

use super::*;

pub(super) struct Head {
    pub(super) bytes: Vec<u8>,
    /// Where the head ends (after the blank line); what follows is body or tunnel data.
    pub(super) len: usize,
}

#[derive(Debug)]
pub(super) enum HeadError {
    TooLarge,
    Closed,
}

pub(super) async fn read_head(stream: &mut TcpStream) -> Result<Head, HeadError> {
    let mut bytes = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        let searched_from = bytes.len().saturating_sub(3);
        bytes.extend_from_slice(&chunk[..n]);
        if let Some(i) = bytes[searched_from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let len = searched_from + i + 4;
            if len > MAX_HEAD_BYTES {
                return Err(HeadError::TooLarge);
            }
            return Ok(Head { bytes, len });
        }
        if bytes.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Connect,
    /// The request rewritten for the origin server: origin-form target, no proxy headers, `Connection: close`.
    Forward {
        origin_head: String,
    },
}

#[derive(Debug)]
pub(super) struct Request {
    pub(super) method: String,
    pub(super) host: String,
    pub(super) port: u16,
    /// The password of `Proxy-Authorization: Basic` (never logged).
    pub(super) token: Option<String>,
    pub(super) kind: Kind,
}

pub(super) fn parse_request(bytes: &[u8]) -> Result<Request, Denial> {
    let bad = || deny(400, "not a proxy request this gateway understands");
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(deny(431, "too many request headers")),
        _ => return Err(bad()),
    }
    let method = req.method.ok_or_else(bad)?.to_string();
    let target = req.path.ok_or_else(bad)?;
    let token = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .and_then(|h| crate::gateway::token::from_basic(h.value));
    if method == "CONNECT" {
        let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        return Ok(Request { method, host: host.to_string(), port, token, kind: Kind::Connect });
    }
    let url = url::Url::parse(target).map_err(|_| bad())?;
    if url.scheme() != "http" {
        return Err(deny(400, "only http:// URLs are proxied as requests; use CONNECT for https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(deny(400, "credentials in the URL are not forwarded"));
    }
    let host = url.host_str().ok_or_else(bad)?.to_string();
    let port = url.port_or_known_default().ok_or_else(bad)?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let mut origin_head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if matches!(name.as_str(), "host" | "proxy-authorization" | "proxy-connection" | "connection" | "keep-alive") {
            continue;
        }
        origin_head.push_str(h.name);
        origin_head.push_str(": ");
        origin_head.push_str(&String::from_utf8_lossy(h.value));
        origin_head.push_str("\r\n");
    }
    origin_head.push_str("Connection: close\r\n\r\n");
    Ok(Request { method, host, port, token, kind: Kind::Forward { origin_head } })
}

/// Whether a request is addressed to the gateway itself (a model call) rather than through it: an
/// origin-form target (`POST /v1/messages`), or an absolute URL naming this very listener.
pub(super) fn is_model_call(head: &[u8], local: Option<SocketAddr>) -> bool {
    let line_end = head.iter().position(|b| *b == b'\r' || *b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let mut parts = line.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else { return false };
    if method == "CONNECT" {
        return false;
    }
    if target.starts_with('/') {
        return true;
    }
    let (Some(local), Ok(url)) = (local, url::Url::parse(target)) else { return false };
    let host_is_local = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip) == local.ip(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip) == local.ip(),
        _ => false,
    };
    url.scheme() == "http" && host_is_local && url.port_or_known_default() == Some(local.port())
}

pub(super) async fn answer(stream: &mut TcpStream, d: &Denial) -> io::Result<()> {
    let phrase = match d.status {
        400 => "Bad Request",
        403 => "Forbidden",
        407 => "Proxy Authentication Required",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let body = format!("{}\n", d.reason);
    let auth = if d.status == 407 { "Proxy-Authenticate: Basic realm=\"deployclaw\"\r\n" } else { "" };
    let text = format!(
        "HTTP/1.1 {} {phrase}\r\n{auth}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        d.status,
        body.len()
    );
    stream.write_all(text.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn basic(token: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("agent:{token}"))
    }

    #[test]
    fn connect_requests_are_parsed_with_their_token() {
        let raw = format!(
            "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\nProxy-Authorization: Basic {}\r\n\r\n",
            basic("dca_secret")
        );
        let r = parse_request(raw.as_bytes()).unwrap();
        assert_eq!((r.method.as_str(), r.host.as_str(), r.port), ("CONNECT", "api.example.com", 443));
        assert_eq!(r.token.as_deref(), Some("dca_secret"));
        assert_eq!(r.kind, Kind::Connect);
        let v6 = parse_request(b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(v6.host, "[::1]");
        assert!(v6.token.is_none());
        for bad in
            ["CONNECT example.com HTTP/1.1\r\n\r\n", "CONNECT example.com:0 HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\n\r\n"]
        {
            assert_eq!(parse_request(bad.as_bytes()).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn forward_requests_are_rewritten_without_proxy_headers() {
        let raw = format!(
            "GET http://Example.com:8080/a?b=1 HTTP/1.1\r\nHost: other\r\nProxy-Authorization: Basic {}\r\n\
             Proxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n",
            basic("t")
        );
        let r = parse_request(raw.as_bytes()).unwrap();
        assert_eq!((r.host.as_str(), r.port), ("example.com", 8080));
        let Kind::Forward { origin_head } = r.kind else { panic!("a forward request") };
        assert_eq!(
            origin_head,
            "GET /a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        assert!(!origin_head.to_ascii_lowercase().contains("proxy"));
        assert_eq!(parse_request(b"GET https://example.com/ HTTP/1.1\r\n\r\n").unwrap_err().status, 400);
    }

    #[test]
    fn model_calls_are_requests_to_the_listener_itself() {
        let local: SocketAddr = "10.213.0.1:3128".parse().unwrap();
        let yes = |h: &str| is_model_call(h.as_bytes(), Some(local));
        assert!(yes("POST /v1/chat/completions HTTP/1.1\r\n\r\n"));
        assert!(yes("POST http://10.213.0.1:3128/v1/messages HTTP/1.1\r\n\r\n"));
        assert!(!yes("POST http://10.213.0.1:3129/v1/messages HTTP/1.1\r\n\r\n"));
        assert!(!yes("GET http://example.com/v1/messages HTTP/1.1\r\n\r\n"));
        assert!(!yes("CONNECT api.openai.com:443 HTTP/1.1\r\n\r\n"));
        assert!(!yes("CONNECT /x HTTP/1.1\r\n\r\n"));
        assert!(!yes("garbage"));
    }

    #[test]
    fn only_basic_credentials_carry_a_token() {}
}
