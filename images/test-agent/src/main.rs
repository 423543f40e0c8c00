//! `test-agent`: a stand-in agent for DeployClaw's container runtime tests.
//!
//! A small static HTTP/1.1 server on `0.0.0.0:$PORT` (default 8080) that starts in milliseconds, so tests
//! of deploy, health, crash restarts and isolation need not wait for a real OpenClaw gateway:
//!
//! - `GET /healthz` -> `{"ok":true}`
//! - `POST /crash` -> answers, then exits with status 3 (a crash the reconciler must notice)
//! - `GET /connect?host=IP&port=P&timeout_ms=T` -> one TCP connect attempt, `{"connected":..,"error":..}`
//! - `GET /probe/write?path=/abs/file` -> `{"written":..,"error":..}` (read-only rootfs check)
//! - `GET /probe/processes` -> the PIDs visible in `/proc` (PID namespace check)
//! - `GET /probe/whoami` -> uid, gid, effective capabilities and no_new_privs from `/proc/self/status`
//! - `GET /via-proxy?target=host:port` -> one CONNECT through `$HTTPS_PROXY` (its credentials as Basic proxy
//!   authorization): `{"status":..,"status_line":..,"body":..,"reply":..,"error":..}`
//! - `GET /llm?provider=openai|anthropic&model=M&stream=0|1` -> one model call to the LLM gateway at
//!   `$OPENAI_BASE_URL` / `$ANTHROPIC_BASE_URL` with the key the agent was given: `{"status":..,"body":..}`
//! - `GET /probe/env?name=NAME` -> `{"name":..,"value":..}`: what the agent's environment holds
//!
//! It must never generate traffic on its own: it only answers requests, and each probe does one bounded
//! thing per request.
#![forbid(unsafe_code)]

mod http;
mod llm;
mod probes;
mod via_proxy;

use std::io::Write;
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use http::{Request, Response};

const DEFAULT_PORT: u16 = 8080;
/// Exit status after `POST /crash`, distinct from 1 (error) and 2 (bad configuration).
const CRASH_STATUS: i32 = 3;
/// Connections served at once. Each takes a thread, and agents run under a small pids limit (64 in the
/// smoke test), so stay well below it; extra connections get 503 at once.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request or read our answer.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let port = match parse_port(std::env::var("PORT").ok().as_deref()) {
        Ok(port) => port,
        Err(e) => {
            eprintln!("test-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("test-agent: cannot listen on 0.0.0.0:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("test-agent: listening on 0.0.0.0:{port}");

    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("test-agent: accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = Response::error(503, "too many connections").write_to(&mut stream);
            continue;
        }
        let slot = Slot(Arc::clone(&active));
        let spawned = thread::Builder::new().name("conn".into()).spawn(move || {
            let _slot = slot;
            serve(stream);
        });
        if let Err(e) = spawned {
            // Out of threads (the pids limit): the connection is dropped with the closure.
            eprintln!("test-agent: cannot start a connection thread: {e}");
        }
    }
    ExitCode::FAILURE
}

/// Frees a connection slot when the connection's thread ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn parse_port(value: Option<&str>) -> Result<u16, String> {
    match value {
        None | Some("") => Ok(DEFAULT_PORT),
        Some(v) => v.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("PORT must be 1-65535, got {v:?}")),
    }
}

/// What to do after the response is written.
#[derive(Debug, PartialEq, Eq)]
enum After {
    Continue,
    Crash,
}

fn serve(mut stream: TcpStream) {
    let (response, after) = match read_request(&mut stream) {
        Ok(req) => {
            let (response, after) = route(&req);
            // Health checks arrive every few seconds for the agent's whole life; logging them would bury
            // the lines that matter in `podman logs`.
            if req.path != "/healthz" {
                eprintln!("test-agent: {} {} -> {}", req.method, req.path, response.status);
            }
            (response, after)
        }
        Err(e) => (Response::error(e.status(), e.message()), After::Continue),
    };
    let written = response.write_to(&mut stream);
    if after == After::Crash {
        // Make sure the caller has the whole answer before the process goes away.
        let _ = stream.flush();
        let _ = stream.shutdown(Shutdown::Write);
        crash(written.is_ok());
    }
}

/// Exits at once, as a crash would: no cleanup, other connections cut off.
#[expect(clippy::disallowed_methods, reason = "a simulated crash is meant to skip graceful shutdown")]
fn crash(answered: bool) -> ! {
    eprintln!("test-agent: crashing on request (answered: {answered}), exit status {CRASH_STATUS}");
    std::process::exit(CRASH_STATUS)
}

fn read_request(stream: &mut TcpStream) -> Result<Request, http::ParseError> {
    let (head, body_start) = http::read_head(stream)?;
    let req = http::parse_head(&head)?;
    http::drain_body(stream, req.content_length, body_start.len()).map_err(|_| http::ParseError::Incomplete)?;
    Ok(req)
}

fn route(req: &Request) -> (Response, After) {
    let ok = |body: String| (Response::json(200, body), After::Continue);
    let bad = |message: String| (Response::error(400, &message), After::Continue);
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/healthz") => ok(r#"{"ok":true}"#.to_owned()),
        ("POST", "/crash") => {
            (Response::json(200, format!(r#"{{"crashing":true,"status":{CRASH_STATUS}}}"#)), After::Crash)
        }
        ("GET", "/connect") => match probes::connect_target(req) {
            Ok(target) => ok(probes::connect_once(&target)),
            Err(e) => bad(e),
        },
        ("GET", "/probe/write") => match probes::write_path(req) {
            Ok(path) => ok(probes::write_once(path)),
            Err(e) => bad(e),
        },
        ("GET", "/via-proxy") => match via_proxy::target(req) {
            Ok(target) => ok(via_proxy::connect_via(std::env::var("HTTPS_PROXY").ok().as_deref(), target)),
            Err(e) => bad(e),
        },
        ("GET", "/llm") => match llm::call(req) {
            Ok(c) => ok(llm::run(&c)),
            Err(e) => bad(e),
        },
        ("GET", "/probe/env") => match llm::env_json(req) {
            Ok(json) => ok(json),
            Err(e) => bad(e),
        },
        ("GET", "/probe/processes") => ok(probes::pids_json(&probes::visible_pids(Path::new("/proc")))),
        ("GET", "/probe/whoami") => {
            let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string());
            ok(probes::identity_json(&status.and_then(|text| probes::parse_status(&text))))
        }
        (
            _,
            "/healthz" | "/crash" | "/connect" | "/via-proxy" | "/llm" | "/probe/env" | "/probe/write"
            | "/probe/processes" | "/probe/whoami",
        ) => (Response::error(405, "method not allowed"), After::Continue),
        _ => (Response::error(404, "not found"), After::Continue),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str) -> Request {
        http::parse_head(format!("{method} {target} HTTP/1.1\r\n\r\n").as_bytes()).unwrap()
    }

    #[test]
    fn port_defaults_to_8080_and_rejects_nonsense() {
        assert_eq!(parse_port(None), Ok(8080));
        assert_eq!(parse_port(Some("")), Ok(8080));
        assert_eq!(parse_port(Some("18789")), Ok(18789));
        assert!(parse_port(Some("0")).is_err());
        assert!(parse_port(Some("65536")).is_err());
        assert!(parse_port(Some("http")).is_err());
    }

    #[test]
    fn healthz_answers_ok() {
        assert_eq!(route(&request("GET", "/healthz")), (Response::json(200, r#"{"ok":true}"#), After::Continue));
    }

    #[test]
    fn crash_answers_then_asks_to_exit_with_status_3() {
        let (response, after) = route(&request("POST", "/crash"));
        assert_eq!(response, Response::json(200, r#"{"crashing":true,"status":3}"#));
        assert_eq!(after, After::Crash);
    }

    #[test]
    fn wrong_method_and_unknown_path_are_distinguished() {
        assert_eq!(route(&request("GET", "/crash")).0.status, 405);
        assert_eq!(route(&request("POST", "/healthz")).0.status, 405);
        assert_eq!(route(&request("GET", "/nope")).0.status, 404);
    }

    #[test]
    fn bad_probe_parameters_are_400_not_attempts() {
        assert_eq!(route(&request("GET", "/connect?host=example.com&port=80")).0.status, 400);
        assert_eq!(route(&request("GET", "/probe/write?path=x")).0.status, 400);
    }
}
