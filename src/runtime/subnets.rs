//! Per-agent IPv4 subnets: each agent gets its own /28 out of a private pool, with the gateway (where the
//! platform's egress proxy listens) at `.1` and the agent at `.2`. Explicit subnets and gateways are a
//! network-safety rule: a runtime-chosen gateway can be left unrouted, and traffic to it would leave the
//! machine.

use std::fmt;
use std::net::Ipv4Addr;

/// Addresses per agent subnet (/28).
pub const BLOCK: u32 = 16;

/// An IPv4 subnet with its gateway and the one host address we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The agent container's address.
    pub fn host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 2)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
        u32::from(ip) & mask == u32::from(self.network) & mask
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A pool of /28 blocks: `base` (a /16 or larger block's network address) and how many blocks it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub base: Ipv4Addr,
    pub blocks: u32,
}

/// The default pool: 10.213.0.0/16, 4096 agents.
pub const DEFAULT_POOL: Pool = Pool { base: Ipv4Addr::new(10, 213, 0, 0), blocks: 4096 };

impl Pool {
    /// A pool from CIDR text (`10.213.0.0/16`): a private (RFC 1918) block between /12 and /24, given by its
    /// network address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a CIDR block like 10.213.0.0/16");
        let (addr, prefix) = text.trim().split_once('/').ok_or_else(bad)?;
        let base: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u32 = prefix.parse().map_err(|_| bad())?;
        if !(12..=24).contains(&prefix) {
            return Err("use a block between /12 and /24 (each agent takes a /28)".into());
        }
        if !base.is_private() {
            return Err("use a private (RFC 1918) block: 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16".into());
        }
        if u32::from(base) & (u32::MAX >> prefix) != 0 {
            return Err(format!("{base} is not the network address of a /{prefix}"));
        }
        Ok(Self { base, blocks: 1 << (28 - prefix) })
    }

    /// The whole pool as CIDR text (`10.213.0.0/16`).
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.base, 28 - self.blocks.max(1).ilog2())
    }

    /// The `index`-th /28 of the pool.
    pub fn block(&self, index: u32) -> Option<Subnet> {
        (index < self.blocks)
            .then(|| Subnet { network: Ipv4Addr::from(u32::from(self.base) + index * BLOCK), prefix: 28 })
    }

    /// The lowest block index not in `used`.
    pub fn first_free(&self, used: &[u32]) -> Option<u32> {
        let mut used = used.to_vec();
        used.sort_unstable();
        let mut candidate = 0;
        for u in used {
            if u == candidate {
                candidate += 1;
            } else if u > candidate {
                break;
            }
        }
        (candidate < self.blocks).then_some(candidate)
    }

    /// The blocks of the pool that the IPv4 network `cidr` (`10.213.0.0/28`, as a container runtime lists its
    /// networks) overlaps; empty for anything else (IPv6, text that is not a CIDR block).
    pub fn overlapping(&self, cidr: &str) -> std::ops::Range<u32> {
        let Some((addr, prefix)) = cidr.trim().split_once('/') else { return 0..0 };
        let (Ok(addr), Ok(prefix)) = (addr.parse::<Ipv4Addr>(), prefix.parse::<u32>()) else { return 0..0 };
        if prefix > 32 {
            return 0..0;
        }
        let size = 1u64 << (32 - prefix);
        let start = u64::from(u32::from(addr)) & !(size - 1);
        let (pool_start, pool_end) = (
            u64::from(u32::from(self.base)),
            u64::from(u32::from(self.base)) + u64::from(self.blocks) * u64::from(BLOCK),
        );
        let (from, to) = (start.max(pool_start), (start + size).min(pool_end));
        if from >= to {
            return 0..0;
        }
        let first = (from - pool_start) / u64::from(BLOCK);
        let last = (to - pool_start).div_ceil(u64::from(BLOCK));
        u32::try_from(first).unwrap_or(0)..u32::try_from(last).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_disjoint_sixteens_with_gateway_and_host() {
        let a = DEFAULT_POOL.block(0).unwrap();
        let b = DEFAULT_POOL.block(1).unwrap();
        assert_eq!(a.to_string(), "10.213.0.0/28");
        assert_eq!(b.to_string(), "10.213.0.16/28");
        assert_eq!(a.gateway(), Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(a.host(), Ipv4Addr::new(10, 213, 0, 2));
        assert!(a.contains(a.host()) && !a.contains(b.host()));
        assert_eq!(DEFAULT_POOL.block(4095).unwrap().to_string(), "10.213.255.240/28");
        assert!(DEFAULT_POOL.block(4096).is_none());
        assert_eq!(DEFAULT_POOL.cidr(), "10.213.0.0/16");
        assert_eq!(Pool::parse("10.218.7.0/24").unwrap().cidr(), "10.218.7.0/24");
    }

    #[test]
    fn the_first_free_block_fills_gaps() {
        assert_eq!(DEFAULT_POOL.first_free(&[]), Some(0));
        assert_eq!(DEFAULT_POOL.first_free(&[0, 1, 3]), Some(2));
        assert_eq!(DEFAULT_POOL.first_free(&[3, 1, 0, 2]), Some(4));
        let full: Vec<u32> = (0..4096).collect();
        assert_eq!(DEFAULT_POOL.first_free(&full), None);
    }

    #[test]
    fn networks_overlap_the_blocks_they_share_addresses_with() {
        let pool = Pool::parse("10.213.0.0/24").unwrap();
        assert_eq!(pool.overlapping("10.213.0.0/28"), 0..1);
        assert_eq!(pool.overlapping("10.213.0.16/28"), 1..2);
        assert_eq!(pool.overlapping("10.213.0.40/29"), 2..3);
        assert_eq!(pool.overlapping("10.213.0.64/26"), 4..8);
        // A host-style address is widened to its network.
        assert_eq!(pool.overlapping("10.213.0.17/28"), 1..2);
        // Larger than the pool, or holding it: every block.
        assert_eq!(pool.overlapping("10.0.0.0/8"), 0..16);
        assert_eq!(pool.overlapping("0.0.0.0/0"), 0..16);
        // Beside it, IPv6, or not a block: none.
        assert_eq!(pool.overlapping("10.213.1.0/24"), 0..0);
        assert_eq!(pool.overlapping("10.212.255.240/28"), 0..0);
        assert_eq!(pool.overlapping("fd00::/64"), 0..0);
        assert_eq!(pool.overlapping("10.213.0.0"), 0..0);
        assert_eq!(pool.overlapping("10.213.0.0/33"), 0..0);
    }
}
