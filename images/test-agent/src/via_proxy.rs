//! `GET /via-proxy?target=host:port` - one CONNECT through the agent's egress proxy (`$HTTPS_PROXY`, with the
//! credentials from its URL as `Proxy-Authorization: Basic`), reporting the proxy's answer. When the tunnel
//! opens, one line is sent through it and up to 256 bytes of reply are read back.
//!
//! One attempt per request, bounded in time; the only address contacted is the proxy's, which must be an IP
//! literal (agents have no DNS). The target name is resolved by the proxy, never here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::http::{json_opt_str, json_str, Request};

const TIMEOUT: Duration = Duration::from_secs(30);
/// What is sent through an open tunnel.
pub const PING: &[u8] = b"ping through the gateway\n";

/// The proxy address and its `user:password` from a URL like `http://user:pass@10.0.0.1:3128`.
pub fn parse_proxy_url(url: &str) -> Result<(SocketAddr, Option<String>), String> {
    let rest = url.strip_prefix("http://").ok_or("the proxy URL must start with http://")?;
    let rest = rest.trim_end_matches('/');
    let (credentials, hostport) = match rest.rsplit_once('@') {
        Some((c, h)) => (Some(c.to_string()), h),
        None => (None, rest),
    };
    let addr: SocketAddr = hostport.parse().map_err(|_| format!("the proxy must be an IP:port, got {hostport:?}"))?;
    Ok((addr, credentials))
}

/// Reads `target` (`host:port`, passed to the proxy as is).
pub fn target(req: &Request) -> Result<&str, String> {
    let t = req.param("target").ok_or("missing query parameter 'target'")?;
    if t.is_empty() || t.len() > 300 || t.contains(['\r', '\n', ' ']) {
        return Err(format!("bad target {t:?}"));
    }
    Ok(t)
}

pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One CONNECT through the proxy; the answer as JSON: `status`, `status_line`, `body` (a denial's reason),
/// `reply` (what came back through an open tunnel), `error`.
pub fn connect_via(proxy_url: Option<&str>, target: &str) -> String {
    let outcome = (|| -> Result<(String, String, Option<String>), String> {
        let (addr, credentials) = parse_proxy_url(proxy_url.ok_or("HTTPS_PROXY is not set")?)?;
        let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect to the proxy: {e}"))?;
        s.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        let auth =
            credentials.map(|c| format!("Proxy-Authorization: Basic {}\r\n", base64(c.as_bytes()))).unwrap_or_default();
        s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        // The head, up to its blank line (at most 8 KiB).
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
            match s.read(&mut byte) {
                Ok(0) => break,
                Ok(_) => head.push(byte[0]),
                Err(e) => return Err(format!("reading the proxy's answer: {e}")),
            }
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let status_line = head.lines().next().unwrap_or_default().to_string();
        let status = status_line.split_whitespace().nth(1).unwrap_or_default().to_string();
        if status == "200" {
            s.write_all(PING).map_err(|e| e.to_string())?;
            let mut reply = [0u8; 256];
            let n = s.read(&mut reply).unwrap_or(0);
            Ok((status_line, String::new(), Some(String::from_utf8_lossy(&reply[..n]).to_string())))
        } else {
            let mut body = Vec::new();
            let _ = s.take(1024).read_to_end(&mut body);
            Ok((status_line, String::from_utf8_lossy(&body).trim().to_string(), None))
        }
    })();
    match outcome {
        Ok((line, body, reply)) => {
            let status = line.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
            format!(
                r#"{{"status":{status},"status_line":{},"body":{},"reply":{},"error":null}}"#,
                json_str(&line),
                json_str(&body),
                json_opt_str(reply.as_deref())
            )
        }
        Err(e) => format!(r#"{{"status":0,"status_line":"","body":"","reply":null,"error":{}}}"#, json_str(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_with_and_without_credentials() {
        let (addr, c) = parse_proxy_url("http://agent:dca_x-y@10.213.0.1:3128").unwrap();
        assert_eq!(addr, "10.213.0.1:3128".parse().unwrap());
        assert_eq!(c.as_deref(), Some("agent:dca_x-y"));
        let (_, c) = parse_proxy_url("http://10.0.0.1:3128/").unwrap();
        assert!(c.is_none());
        assert!(parse_proxy_url("https://10.0.0.1:3128").is_err());
        assert!(parse_proxy_url("http://gateway:3128").is_err(), "names are refused: no DNS");
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"agent:dca_abc"), "YWdlbnQ6ZGNhX2FiYw==");
    }

    #[test]
    fn no_proxy_is_an_error_not_an_attempt() {
        assert!(connect_via(None, "example.com:443").contains("HTTPS_PROXY is not set"));
    }
}
