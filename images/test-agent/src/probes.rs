//! Probes the runtime's isolation from inside the container: one outbound TCP connect, one file write,
//! the PIDs this process can see, and its identity. Tests call these over HTTP and assert on the
//! answers, so each probe reports what happened instead of failing the request.
//!
//! A probe must never loop, retry or resolve names: one attempt per request, bounded in time, so a test
//! that asks "can you reach X?" sends at most one connection attempt to X.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::http::{json_opt_str, json_str, Request};

/// The longest a connect probe may wait, whatever the caller asks for.
pub const MAX_CONNECT_TIMEOUT_MS: u64 = 5000;
/// Used when the caller gives no `timeout_ms`.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1000;

/// A validated connect request.
#[derive(Debug, PartialEq, Eq)]
pub struct ConnectTarget {
    pub addr: SocketAddr,
    pub timeout: Duration,
}

/// Reads `host`, `port` and `timeout_ms` from the query. `host` must be an IP literal: a name would need
/// DNS, which agents do not have, and resolving it could send a query somewhere the test did not choose.
pub fn connect_target(req: &Request) -> Result<ConnectTarget, String> {
    let host = req.param("host").ok_or("missing query parameter 'host'")?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let ip: IpAddr = host.parse().map_err(|_| format!("host must be an IP address, got {host:?}"))?;
    let port = req.param("port").ok_or("missing query parameter 'port'")?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(|| format!("bad port {port:?}"))?;
    let timeout_ms = match req.param("timeout_ms") {
        None => DEFAULT_CONNECT_TIMEOUT_MS,
        Some(t) => t.parse::<u64>().map_err(|_| format!("bad timeout_ms {t:?}"))?,
    };
    // Zero is not a valid connect timeout for std; more than the cap would let a test hang the agent.
    let timeout = Duration::from_millis(timeout_ms.clamp(1, MAX_CONNECT_TIMEOUT_MS));
    Ok(ConnectTarget { addr: SocketAddr::new(ip, port), timeout })
}

/// Exactly one connection attempt; the connection is closed at once if it succeeds.
pub fn connect_once(target: &ConnectTarget) -> String {
    let outcome = TcpStream::connect_timeout(&target.addr, target.timeout).map(drop);
    connect_json(&outcome)
}

fn connect_json(outcome: &io::Result<()>) -> String {
    match outcome {
        Ok(()) => r#"{"connected":true,"error":null}"#.to_owned(),
        Err(e) => format!(r#"{{"connected":false,"error":{}}}"#, json_str(&e.to_string())),
    }
}

/// Reads the `path` query parameter: an absolute path, since the agent's working directory is whatever
/// the image says and a relative path would make the answer depend on it.
pub fn write_path(req: &Request) -> Result<&Path, String> {
    let path = req.param("path").ok_or("missing query parameter 'path'")?;
    if !path.starts_with('/') {
        return Err(format!("path must be absolute, got {path:?}"));
    }
    Ok(Path::new(path))
}

/// Tries to create (or truncate) `path` and write a line to it. The file is left in place so a test can
/// check where it landed (for example on the state volume).
pub fn write_once(path: &Path) -> String {
    let outcome = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(b"deployclaw test-agent write probe\n"));
    match outcome {
        Ok(()) => r#"{"written":true,"error":null}"#.to_owned(),
        Err(e) => format!(r#"{{"written":false,"error":{}}}"#, json_str(&e.to_string())),
    }
}

/// The PIDs listed in `proc_dir` (normally `/proc`), sorted. In its own PID namespace the agent sees
/// only itself and its children; host processes showing up here means isolation failed.
pub fn visible_pids(proc_dir: &Path) -> io::Result<Vec<u32>> {
    let mut pids: Vec<u32> =
        fs::read_dir(proc_dir)?.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).collect();
    pids.sort_unstable();
    Ok(pids)
}

pub fn pids_json(pids: &io::Result<Vec<u32>>) -> String {
    match pids {
        Ok(pids) => {
            let list: Vec<String> = pids.iter().map(u32::to_string).collect();
            format!(r#"{{"pids":[{}],"count":{},"error":null}}"#, list.join(","), pids.len())
        }
        Err(e) => format!(r#"{{"pids":[],"count":0,"error":{}}}"#, json_str(&e.to_string())),
    }
}

/// Who the agent runs as, from `/proc/self/status` (a `FROM scratch` image has no `id` command and no
/// passwd file, and reading the kernel's view avoids trusting either).
#[derive(Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// Effective capabilities as the kernel prints them (hex); all zeros after `--cap-drop=ALL`.
    pub cap_eff: String,
    /// Whether no_new_privs is set; `None` on kernels that do not report it.
    pub no_new_privs: Option<bool>,
}

/// Parses the `Uid:`, `Gid:`, `CapEff:` and `NoNewPrivs:` lines of a `/proc/PID/status` text.
pub fn parse_status(text: &str) -> Result<Identity, String> {
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim);
    // Uid and Gid lines hold real, effective, saved and filesystem ids, in that order.
    let ids = |name: &str| -> Result<(u32, u32), String> {
        let line = field(name).ok_or(format!("no {name} line"))?;
        let mut nums = line.split_whitespace().map(str::parse::<u32>);
        match (nums.next(), nums.next()) {
            (Some(Ok(real)), Some(Ok(effective))) => Ok((real, effective)),
            _ => Err(format!("bad {name} line {line:?}")),
        }
    };
    let (uid, euid) = ids("Uid")?;
    let (gid, egid) = ids("Gid")?;
    let cap_eff = field("CapEff").ok_or("no CapEff line")?.to_owned();
    let no_new_privs = field("NoNewPrivs").map(|v| v == "1");
    Ok(Identity { uid, euid, gid, egid, cap_eff, no_new_privs })
}

pub fn identity_json(identity: &Result<Identity, String>) -> String {
    match identity {
        Ok(id) => format!(
            r#"{{"uid":{},"gid":{},"euid":{},"egid":{},"cap_eff":{},"no_new_privs":{},"error":null}}"#,
            id.uid,
            id.gid,
            id.euid,
            id.egid,
            json_str(&id.cap_eff),
            id.no_new_privs.map_or("null".to_owned(), |b| b.to_string()),
        ),
        Err(e) => format!(r#"{{"error":{}}}"#, json_opt_str(Some(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_target;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

    fn request(target: &str) -> Request {
        let (path, query) = parse_target(target).unwrap();
        Request { method: "GET".into(), path, query, content_length: 0 }
    }

    #[test]
    fn connect_target_takes_ip_port_and_timeout() {
        let t = connect_target(&request("/connect?host=10.89.77.1&port=18789&timeout_ms=250")).unwrap();
        assert_eq!(t.addr, SocketAddr::new(Ipv4Addr::new(10, 89, 77, 1).into(), 18789));
        assert_eq!(t.timeout, Duration::from_millis(250));
        let v6 = connect_target(&request("/connect?host=%5B::1%5D&port=80")).unwrap();
        assert_eq!(v6.addr, SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 80));
        assert_eq!(v6.timeout, Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS));
    }

    #[test]
    fn connect_timeout_is_capped_and_never_zero() {
        let long = connect_target(&request("/connect?host=127.0.0.1&port=1&timeout_ms=600000")).unwrap();
        assert_eq!(long.timeout, Duration::from_millis(MAX_CONNECT_TIMEOUT_MS));
        let zero = connect_target(&request("/connect?host=127.0.0.1&port=1&timeout_ms=0")).unwrap();
        assert_eq!(zero.timeout, Duration::from_millis(1));
    }

    #[test]
    fn connect_target_rejects_names_and_bad_ports() {
        for target in [
            "/connect?port=80",
            "/connect?host=example.com&port=80",
            "/connect?host=127.0.0.1",
            "/connect?host=127.0.0.1&port=0",
            "/connect?host=127.0.0.1&port=65536",
            "/connect?host=127.0.0.1&port=80&timeout_ms=-1",
        ] {
            assert!(connect_target(&request(target)).is_err(), "{target}");
        }
    }

    #[test]
    fn connect_once_reports_success_and_refusal_on_loopback() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let open = listener.local_addr().unwrap();
        let timeout = Duration::from_millis(1000);
        assert_eq!(connect_once(&ConnectTarget { addr: open, timeout }), r#"{"connected":true,"error":null}"#);
        drop(listener);
        // The port was just released; nothing listens there now.
        let refused = connect_once(&ConnectTarget { addr: open, timeout });
        assert!(refused.starts_with(r#"{"connected":false,"error":""#), "{refused}");
    }

    #[test]
    fn write_probe_needs_an_absolute_path_and_reports_failure() {
        assert!(write_path(&request("/probe/write?path=relative")).is_err());
        assert!(write_path(&request("/probe/write")).is_err());
        let dir = std::env::temp_dir().join(format!("test-agent-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("probe");
        assert_eq!(write_once(&file), r#"{"written":true,"error":null}"#);
        let missing = write_once(&dir.join("no-such-dir/probe"));
        assert!(missing.starts_with(r#"{"written":false,"error":""#), "{missing}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn visible_pids_lists_only_numeric_entries() {
        let dir = std::env::temp_dir().join(format!("test-agent-proc-{}", std::process::id()));
        for name in ["1", "42", "7", "self", "sys"] {
            fs::create_dir_all(dir.join(name)).unwrap();
        }
        let pids = visible_pids(&dir);
        assert_eq!(pids.as_ref().unwrap(), &vec![1, 7, 42]);
        assert_eq!(pids_json(&pids), r#"{"pids":[1,7,42],"count":3,"error":null}"#);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn status_file_is_parsed() {
        let status = "Name:\ttest-agent\nUid:\t65534\t65534\t65534\t65534\nGid:\t65533\t65532\t65532\t65532\n\
                      CapEff:\t0000000000000000\nNoNewPrivs:\t1\n";
        let id = parse_status(status).unwrap();
        assert_eq!(
            id,
            Identity {
                uid: 65534,
                euid: 65534,
                gid: 65533,
                egid: 65532,
                cap_eff: "0000000000000000".into(),
                no_new_privs: Some(true)
            }
        );
        assert_eq!(
            identity_json(&Ok(id)),
            r#"{"uid":65534,"gid":65533,"euid":65534,"egid":65532,"cap_eff":"0000000000000000","no_new_privs":true,"error":null}"#
        );
    }

    #[test]
    fn status_without_ids_is_an_error() {
        assert!(parse_status("Name:\tx\nCapEff:\t0\n").is_err());
        assert!(parse_status("Uid:\tnope\nGid:\t1\t1\nCapEff:\t0\n").is_err());
    }
}
