//! `GET /llm?provider=openai|anthropic&model=M&stream=0|1` - one model call to the platform's LLM gateway,
//! the way an SDK inside the agent would make it: to `$OPENAI_BASE_URL` with `Authorization: Bearer
//! $OPENAI_API_KEY`, or to `$ANTHROPIC_BASE_URL` with `x-api-key: $ANTHROPIC_API_KEY`. Reports
//! `{"status":..,"body":..,"error":..}` (the body's first 4 KiB).
//!
//! One attempt per request, bounded in time; the only address contacted is the base URL's, which must be an
//! IP literal (agents have no DNS).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::http::{json_opt_str, json_str, Request};

const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_ANSWER: u64 = 64 * 1024;

/// The call to make, from the query.
#[derive(Debug, PartialEq, Eq)]
pub struct Call {
    pub anthropic: bool,
    pub model: String,
    pub stream: bool,
}

pub fn call(req: &Request) -> Result<Call, String> {
    let anthropic = match req.param("provider") {
        Some("openai") | None => false,
        Some("anthropic") => true,
        Some(other) => return Err(format!("unknown provider {other:?}")),
    };
    let model = req.param("model").unwrap_or(if anthropic { "claude-sonnet-4" } else { "gpt-4o" }).to_string();
    if model.is_empty() || model.len() > 100 || !model.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) {
        return Err(format!("bad model {model:?}"));
    }
    Ok(Call { anthropic, model, stream: req.param("stream") == Some("1") })
}

/// `http://IP:PORT[/path]` -> the address and the path prefix.
pub fn parse_base(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url.strip_prefix("http://").ok_or("the base URL must start with http://")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/').to_string()),
        None => (rest, String::new()),
    };
    let addr = hostport.parse().map_err(|_| format!("the base URL must be an IP:port, got {hostport:?}"))?;
    Ok((addr, path))
}

pub fn run(c: &Call) -> String {
    let env = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
    let outcome = (|| -> Result<(u16, String), String> {
        let (base, key, path, auth) = if c.anthropic {
            let (addr, prefix) = parse_base(&env("ANTHROPIC_BASE_URL")?)?;
            let key = env("ANTHROPIC_API_KEY")?;
            (addr, key.clone(), format!("{prefix}/v1/messages"), format!("x-api-key: {key}\r\n"))
        } else {
            let (addr, prefix) = parse_base(&env("OPENAI_BASE_URL")?)?;
            let key = env("OPENAI_API_KEY")?;
            (addr, key.clone(), format!("{prefix}/chat/completions"), format!("Authorization: Bearer {key}\r\n"))
        };
        let _ = key;
        let body = if c.anthropic {
            format!(
                r#"{{"model":"{}","max_tokens":64,"stream":{},"messages":[{{"role":"user","content":"Say hello."}}]}}"#,
                c.model, c.stream
            )
        } else {
            format!(
                r#"{{"model":"{}","stream":{},"messages":[{{"role":"user","content":"Say hello."}}]}}"#,
                c.model, c.stream
            )
        };
        let mut s = TcpStream::connect_timeout(&base, TIMEOUT).map_err(|e| format!("connect to the gateway: {e}"))?;
        s.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {base}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).and_then(|()| s.write_all(body.as_bytes())).map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        s.take(MAX_ANSWER).read_to_end(&mut answer).map_err(|e| format!("reading the answer: {e}"))?;
        let text = String::from_utf8_lossy(&answer).to_string();
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        Ok((status, body.chars().take(4096).collect()))
    })();
    match outcome {
        Ok((status, body)) => format!(r#"{{"status":{status},"body":{},"error":null}}"#, json_str(&body)),
        Err(e) => format!(r#"{{"status":0,"body":"","error":{}}}"#, json_str(&e)),
    }
}

/// `GET /probe/env?name=NAME` -> `{"name":..,"value":..}` (`null` when unset): what the agent was given.
pub fn env_json(req: &Request) -> Result<String, String> {
    let name = req.param("name").ok_or("missing query parameter 'name'")?;
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad variable name {name:?}"));
    }
    Ok(format!(r#"{{"name":{},"value":{}}}"#, json_str(name), json_opt_str(std::env::var(name).ok().as_deref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_ip_literals() {
        assert_eq!(
            parse_base("http://10.213.0.1:3128/v1").unwrap(),
            ("10.213.0.1:3128".parse().unwrap(), "/v1".into())
        );
        assert_eq!(parse_base("http://10.213.0.1:3128").unwrap().1, "");
        assert!(parse_base("https://10.0.0.1:3128").is_err());
        assert!(parse_base("http://gateway:3128/v1").is_err());
    }

    #[test]
    fn calls_are_checked_before_anything_is_sent() {
        let req = |q: &str| crate::http::parse_head(format!("GET /llm?{q} HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(
            call(&req("provider=anthropic&stream=1")).unwrap(),
            Call { anthropic: true, model: "claude-sonnet-4".into(), stream: true }
        );
        assert!(call(&req("provider=other")).is_err());
        assert!(call(&req("model=a%20b")).is_err());
        assert!(env_json(&req("name=A-B")).is_err());
    }
}
