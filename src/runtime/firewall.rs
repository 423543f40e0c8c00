//! The host side of agent isolation: packets from agent networks to this host are dropped unless they go
//! to the egress gateway's port (or answer a connection the host opened, such as a health check).
//!
//! Agent networks are `--internal`, so nothing is forwarded off the host; but the host itself is on every
//! agent bridge (the gateway address), and any service of the host listening on all addresses (`0.0.0.0`)
//! would otherwise be reachable from every agent. One nftables table per pool (`inet
//! deployclaw_<pool>`) holds an input-hook chain that, for sources inside the pool, accepts established and
//! related traffic and new TCP connections to [`GATEWAY_PORT`](super::hardening::GATEWAY_PORT), and drops the
//! rest. The table is replaced as a whole in one `nft -f` transaction, so installing it twice is harmless.
//!
//! Needs the `nft` command and `CAP_NET_ADMIN` (root, as rootful podman does). Without them the platform
//! still runs, and says so at startup: agents can then reach host services bound to all addresses.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::hardening::GATEWAY_PORT;
use super::subnets::Pool;

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("the nft command is not available ({0})")]
    Missing(String),
    #[error("nft refused the rules: {0}")]
    Refused(String),
}

/// The table holding the rules for `pool`.
pub fn table_name(pool: Pool) -> String {
    format!("deployclaw_{}", pool.cidr().replace(['.', '/'], "_"))
}

/// The nftables script that (re)creates the pool's table.
pub fn ruleset(pool: Pool) -> String {
    let (table, cidr) = (table_name(pool), pool.cidr());
    format!(
        "table inet {table} {{}}\n\
         delete table inet {table}\n\
         table inet {table} {{\n\
         \tchain agents_to_host {{\n\
         \t\ttype filter hook input priority filter - 10; policy accept;\n\
         \t\tip saddr {cidr} ct state established,related accept\n\
         \t\tip saddr {cidr} tcp dport {GATEWAY_PORT} ct state new accept\n\
         \t\tip saddr {cidr} counter drop\n\
         \t}}\n\
         }}\n"
    )
}

/// Installs (or replaces) the pool's rules.
pub async fn protect_host(pool: Pool) -> Result<(), FirewallError> {
    nft(&ruleset(pool)).await
}

/// Removes the pool's rules, if any (tests; a platform moving to another pool).
pub async fn remove(pool: Pool) -> Result<(), FirewallError> {
    let table = table_name(pool);
    nft(&format!("table inet {table} {{}}\ndelete table inet {table}\n")).await
}

async fn nft(script: &str) -> Result<(), FirewallError> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| FirewallError::Missing(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await.map_err(|e| FirewallError::Refused(e.to_string()))?;
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
        .await
        .map_err(|_| FirewallError::Refused("nft did not finish within 10 s".into()))?
        .map_err(|e| FirewallError::Refused(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FirewallError::Refused(String::from_utf8_lossy(&out.stderr).trim().chars().take(500).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::subnets::DEFAULT_POOL;

    #[test]
    fn the_rules_admit_only_the_gateway_port_from_the_pool() {
        let r = ruleset(DEFAULT_POOL);
        assert!(r.starts_with("table inet deployclaw_10_213_0_0_16 {}\ndelete table inet deployclaw_10_213_0_0_16\n"));
        assert!(r.contains("ip saddr 10.213.0.0/16 tcp dport 3128 ct state new accept"));
        assert!(r.contains("ip saddr 10.213.0.0/16 counter drop"));
        let accept = r.find("tcp dport 3128").unwrap();
        assert!(r.find("counter drop").unwrap() > accept, "the drop comes last");
    }
}
