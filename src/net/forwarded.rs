//! The client's address behind trusted reverse proxies.
//!
//! A request's peer is the client unless the peer is a proxy the configuration trusts
//! (`server.trusted_proxies`). From a trusted peer, the client is the right-most address of the forwarding
//! header that is not itself trusted: every trusted hop appends the address it received the request from, so
//! everything to the left of the first untrusted entry (counted from the right) was written by the client
//! and proves nothing. From any other peer the header is ignored, whatever it says.
//!
//! Only one header is read (`server.client_address_header`): a proxy that appends to `X-Forwarded-For`
//! passes a client's own `Forwarded` header through untouched, so reading both would let a client choose
//! its address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, from a dual-stack socket or a proxy) are the IPv4 address
/// they carry: one client, one address, whichever way it arrived.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// A block of addresses: `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.7`, a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` (canonicalised) lies in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32) == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128) == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `width`-bit address held in the low bits of a `u128`.
fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let ones = if prefix >= 128 { u128::MAX } else { (1u128 << prefix) - 1 };
    bits & (ones << u32::from(width - prefix))
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("{text:?} is not an address or a CIDR block like 10.0.0.0/8 or 2001:db8::/32");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= width).ok_or_else(bad)?,
            None => width,
        };
        let bits = match network {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        if masked(bits, prefix, width) != bits {
            return Err(format!("{text:?} has bits set past its /{prefix}: write the block's network address"));
        }
        if prefix == 0 {
            return Err(format!("{text:?} trusts every address: list your proxies' addresses instead"));
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Which header a trusted proxy writes the client's address into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAddressHeader {
    /// `X-Forwarded-For: client, proxy1` (nginx's `$proxy_add_x_forwarded_for`, Caddy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:443"`.
    Forwarded,
}

impl ClientAddressHeader {
    pub fn name(&self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(format!("{text:?} is not x-forwarded-for or forwarded")),
        }
    }
}

/// The proxies whose forwarding header is believed. Empty (the default): none, the peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
    header: ClientAddressHeader,
}

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>, header: ClientAddressHeader) -> Self {
        Self { blocks, header }
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn blocks(&self) -> &[Cidr] {
        &self.blocks
    }

    pub fn header(&self) -> ClientAddressHeader {
        self.header
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(ip))
    }

    /// The client's address for a request from `peer` carrying `values` of the configured header (every
    /// line of it, in the order received). Always canonical. From an untrusted peer: the peer. From a trusted
    /// peer: the right-most listed address that is not trusted; when an entry cannot be read (`unknown`, an
    /// obfuscated name, garbage) the walk stops at the last hop that wrote a readable one, since nothing to its
    /// left can be attributed; when every entry is trusted, the left-most.
    pub fn client_address<'a>(&self, peer: IpAddr, values: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let entries: Vec<&str> = values.into_iter().flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let parsed = match self.header {
                ClientAddressHeader::XForwardedFor => parse_node(entry),
                ClientAddressHeader::Forwarded => forwarded_for(entry).and_then(parse_node),
            };
            let Some(ip) = parsed else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// The `for=` parameter of one RFC 7239 element (`for=192.0.2.60;proto=http;by=203.0.113.43`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then_some(value.trim())
    })
}

/// One node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`, optionally in quotes.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok())) {
            return None;
        }
        return inside.parse::<IpAddr>().ok().filter(IpAddr::is_ipv6).map(canonical);
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(blocks: &[&str], header: ClientAddressHeader) -> TrustedProxies {
        TrustedProxies::new(blocks.iter().map(|b| b.parse().unwrap()).collect(), header)
    }

    #[test]
    fn blocks_parse_and_contain_what_they_should() {
        let b: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(b.contains(ip("10.255.0.1")) && !b.contains(ip("11.0.0.1")));
        assert!(b.contains(ip("::ffff:10.1.2.3")), "a mapped address is its IPv4 address");
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")) && !v6.contains(ip("10.0.0.1")));
        let mapped: Cidr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(mapped.contains(ip("127.0.0.1")) && mapped.to_string() == "127.0.0.1/32");
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "0.0.0.0/0", "::/0", "proxy.example", "10.0.0.0/", "/8", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_its_headers_say() {
        let t = trusted(&["127.0.0.1"], ClientAddressHeader::XForwardedFor);
        assert_eq!(t.client_address(ip("203.0.113.5"), ["198.51.100.1"]), ip("203.0.113.5"));
        let none = TrustedProxies::default();
        assert_eq!(none.client_address(ip("127.0.0.1"), ["198.51.100.1"]), ip("127.0.0.1"));
        assert_eq!(none.client_address(ip("::ffff:192.0.2.9"), []), ip("192.0.2.9"), "canonical");
    }

    #[test]
    fn from_a_trusted_peer_the_right_most_untrusted_entry_is_the_client() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"], ClientAddressHeader::XForwardedFor);
        // The client wrote the first entry itself; the proxy appended the address it saw.
        assert_eq!(t.client_address(ip("127.0.0.1"), ["6.6.6.6, 198.51.100.7"]), ip("198.51.100.7"));
        // Two trusted hops, across two header lines.
        assert_eq!(t.client_address(ip("127.0.0.1"), ["6.6.6.6, 198.51.100.7", "10.1.1.1"]), ip("198.51.100.7"));
        // Ports, brackets, mapped addresses.
        assert_eq!(t.client_address(ip("127.0.0.1"), ["198.51.100.7:5123"]), ip("198.51.100.7"));
        assert_eq!(t.client_address(ip("127.0.0.1"), ["[2001:db8::5]:443"]), ip("2001:db8::5"));
        assert_eq!(t.client_address(ip("::ffff:127.0.0.1"), ["::ffff:198.51.100.7"]), ip("198.51.100.7"));
        // No header: the proxy itself; only trusted entries: the left-most.
        assert_eq!(t.client_address(ip("127.0.0.1"), []), ip("127.0.0.1"));
        assert_eq!(t.client_address(ip("127.0.0.1"), ["10.0.0.9, 10.0.0.8"]), ip("10.0.0.9"));
        // An entry that cannot be read stops the walk at the hop that wrote it.
        assert_eq!(t.client_address(ip("127.0.0.1"), ["198.51.100.7, garbage"]), ip("127.0.0.1"));
        assert_eq!(t.client_address(ip("127.0.0.1"), ["6.6.6.6, unknown, 10.0.0.3"]), ip("10.0.0.3"));
    }

    #[test]
    fn rfc7239_forwarded_is_read_only_when_configured() {
        let t = trusted(&["127.0.0.1"], ClientAddressHeader::Forwarded);
        let header = r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https;by=127.0.0.1"#;
        assert_eq!(t.client_address(ip("127.0.0.1"), [header]), ip("2001:db8:cafe::17"));
        assert_eq!(t.client_address(ip("127.0.0.1"), ["proto=https;For=198.51.100.3"]), ip("198.51.100.3"));
        assert_eq!(t.client_address(ip("127.0.0.1"), ["for=_hidden"]), ip("127.0.0.1"));
        // X-Forwarded-For values are not RFC 7239 elements: with `forwarded` configured they prove nothing.
        assert_eq!(t.client_address(ip("127.0.0.1"), ["198.51.100.3"]), ip("127.0.0.1"));
    }

    #[test]
    fn the_header_setting_parses() {
        assert_eq!(ClientAddressHeader::parse("X-Forwarded-For"), Ok(ClientAddressHeader::XForwardedFor));
        assert_eq!(ClientAddressHeader::parse("forwarded"), Ok(ClientAddressHeader::Forwarded));
        assert!(ClientAddressHeader::parse("x-real-ip").is_err());
    }
}
