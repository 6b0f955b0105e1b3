//! A tenant's outbound policy: which origins a step may call and which
//! addresses it may reach. Parsed once into typed values; no wasmtime types.
//!
//! The rules, in order (deny by default):
//! 1. An explicit allow entry (`--allow ORIGIN`, `allowed_hosts`) that matches
//!    the request's scheme, host and port admits it, to any address, private
//!    ones included: that is how tests and on-premises services are reached.
//!    Entries name a host (`api.example.com`, `*.example.com`), an IP address
//!    or a CIDR range (`https://10.1.0.0/16:443`).
//! 2. Otherwise `https://` to any host is admitted (unless
//!    `allow_public_https` is off), but every address the name resolves to
//!    must be public (see [`blocked_range`]) or inside an allowed IP/CIDR
//!    entry for the same scheme and port; a name whose every address is
//!    refused is `destination-IP-prohibited`, and only checked addresses are
//!    dialled.
//! 3. Everything else (plain `http://` without an entry) is refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Scheme of an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http://`
    Http,
    /// `https://`
    Https,
}

impl Scheme {
    fn parse(s: &str) -> Option<Scheme> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    /// Port used when a URL gives none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// Host part of an allow entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this name (lower-case) or IP address.
    Exact(url::Host),
    /// `*.example.com`: any name ending in `.example.com` (not the apex).
    Suffix(String),
    /// An IP range such as `10.1.0.0/16`.
    Net(ipnet::IpNet),
}

/// One allow entry: `scheme://host[:port]`, where host may be `*.domain` and
/// port may be `*`. Without a port, the scheme's default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    scheme: Scheme,
    host: HostPattern,
    /// `None` = any port.
    port: Option<u16>,
}

/// Why an allow entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid allowed origin {entry:?}: {reason}; write scheme://host[:port], e.g. https://api.example.com, http://127.0.0.1:8080 or https://*.example.com:*"
)]
pub struct OriginParseError {
    entry: String,
    reason: String,
}

impl std::str::FromStr for AllowedOrigin {
    type Err = OriginParseError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| OriginParseError {
            entry: entry.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = entry.split_once("://").ok_or_else(|| err("no scheme"))?;
        let scheme =
            Scheme::parse(scheme).ok_or_else(|| err("the scheme must be http or https"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['?', '#', '@']) || rest.matches('/').count() > 1 {
            return Err(err("give only an origin, without path, query or user"));
        }
        if let Some((addr, prefix_port)) = rest.split_once('/') {
            // scheme://ADDR/PREFIX[:port], ADDR bracketed for IPv6.
            let (prefix, port) = match prefix_port.split_once(':') {
                Some((p, port)) => (p, Some(port)),
                None => (prefix_port, None),
            };
            let ip: IpAddr = addr
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| err("a CIDR range needs an IP address before the /"))?;
            let prefix: u8 = prefix
                .parse()
                .map_err(|_| err("the CIDR prefix length must be a number"))?;
            let net = ipnet::IpNet::new(ip, prefix)
                .map_err(|_| err("the CIDR prefix length is too long"))?;
            return Ok(AllowedOrigin {
                scheme,
                host: HostPattern::Net(net.trunc()),
                port: parse_port(port, scheme).map_err(&err)?,
            });
        }
        // Split off the port: after the last ':' unless inside IPv6 brackets.
        let (host, port) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains(']') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        let port = parse_port(port, scheme).map_err(&err)?;
        let host = if let Some(domain) = host.strip_prefix("*.") {
            match url::Host::parse(domain) {
                Ok(url::Host::Domain(d)) => HostPattern::Suffix(format!(".{d}")),
                _ => return Err(err("a wildcard must be followed by a domain name")),
            }
        } else {
            HostPattern::Exact(
                parse_host(host)
                    .ok_or_else(|| err("the host is not a valid name or IP address"))?,
            )
        };
        Ok(AllowedOrigin { scheme, host, port })
    }
}

/// `None` for `*`, the scheme's default port when absent.
fn parse_port(port: Option<&str>, scheme: Scheme) -> Result<Option<u16>, &'static str> {
    match port {
        None => Ok(Some(scheme.default_port())),
        Some("*") => Ok(None),
        Some(p) => p
            .parse::<u16>()
            .map(Some)
            .map_err(|_| "the port must be a number or *"),
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Exact(h) => write!(f, "{}://{h}", self.scheme)?,
            HostPattern::Suffix(s) => write!(f, "{}://*{s}", self.scheme)?,
            HostPattern::Net(n) => write!(f, "{}://{n}", self.scheme)?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => write!(f, ":*"),
        }
    }
}

/// Parses a host the way a URL parser does (WHATWG URL §3.5): lower-cases
/// names and normalises every IPv4 spelling (`2130706433`, `0x7f.1`,
/// `0177.0.0.1`) to its address, so no alternate spelling slips past a check.
pub fn parse_host(host: &str) -> Option<url::Host> {
    if host.is_empty() {
        return None;
    }
    url::Host::parse(host).ok()
}

fn host_ip(host: &url::Host) -> Option<IpAddr> {
    match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(*ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(*ip)),
        url::Host::Domain(_) => None,
    }
}

impl AllowedOrigin {
    pub(crate) fn matches(&self, scheme: Scheme, host: &url::Host, port: u16) -> bool {
        self.scheme == scheme
            && self.port.is_none_or(|p| p == port)
            && match (&self.host, host) {
                (HostPattern::Net(net), host) => {
                    host_ip(host).is_some_and(|ip| net.contains(&ip.to_canonical()))
                }
                (HostPattern::Exact(h), host) => match (host_ip(h), host_ip(host)) {
                    (Some(a), Some(b)) => a.to_canonical() == b.to_canonical(),
                    _ => h == host,
                },
                (HostPattern::Suffix(s), url::Host::Domain(d)) => d.ends_with(s.as_str()),
                (HostPattern::Suffix(_), _) => false,
            }
    }

    /// Whether this IP or CIDR entry covers a resolved address.
    fn covers_address(&self, scheme: Scheme, port: u16, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.scheme == scheme
            && self.port.is_none_or(|p| p == port)
            && match &self.host {
                HostPattern::Net(net) => net.contains(&ip),
                HostPattern::Exact(h) => host_ip(h).is_some_and(|a| a.to_canonical() == ip),
                HostPattern::Suffix(_) => false,
            }
    }
}

/// A tenant's outbound policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Explicitly allowed origins. Default: none.
    pub allowed: Vec<AllowedOrigin>,
    /// Admit `https://` to public hosts without an entry. Default: true.
    pub allow_public_https: bool,
    /// Refuse non-public resolved addresses unless an entry allows them.
    /// Default: true.
    pub block_private_networks: bool,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy {
            allowed: Vec::new(),
            allow_public_https: true,
            block_private_networks: true,
        }
    }
}

/// What the policy decided about a request's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// An allow entry matched: any resolved address may be dialled.
    Explicit,
    /// Public HTTPS: only public addresses may be dialled.
    PublicOnly,
}

/// Why the policy refused a request. Shown to the guest as
/// `HTTP-request-denied` or `destination-IP-prohibited`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denial {
    /// The origin is not allowed (`HTTP-request-denied`).
    #[error(
        "{0} is not an allowed origin: only https:// to public hosts is allowed by default; add it to the tenant's allowed origins (CLI: --allow {0})"
    )]
    Origin(String),
    /// The destination address is in a blocked range (`destination-IP-prohibited`).
    #[error(
        "{host} resolves to {ip} ({range}), which is blocked; allow the exact origin to reach it"
    )]
    Address {
        /// Host as requested.
        host: String,
        /// The blocked address.
        ip: IpAddr,
        /// Name of the blocked range.
        range: &'static str,
    },
}

impl EgressPolicy {
    /// Decides whether `scheme://host:port` may be called at all.
    pub fn admit(&self, scheme: Scheme, host: &url::Host, port: u16) -> Result<Admission, Denial> {
        if self.allowed.iter().any(|o| o.matches(scheme, host, port)) {
            return Ok(Admission::Explicit);
        }
        if scheme == Scheme::Https && self.allow_public_https {
            return Ok(Admission::PublicOnly);
        }
        let host = match host {
            url::Host::Ipv6(ip) => format!("[{ip}]"),
            other => other.to_string(),
        };
        Err(Denial::Origin(format!("{scheme}://{host}:{port}")))
    }

    /// Decides whether a resolved address of `scheme://host:port` may be
    /// dialled under `admission`.
    pub fn check_address(
        &self,
        admission: Admission,
        scheme: Scheme,
        port: u16,
        host: &str,
        ip: IpAddr,
    ) -> Result<(), Denial> {
        if admission == Admission::Explicit || !self.block_private_networks {
            return Ok(());
        }
        match blocked_range(ip) {
            Some(range)
                if !self
                    .allowed
                    .iter()
                    .any(|o| o.covers_address(scheme, port, ip)) =>
            {
                Err(Denial::Address {
                    host: host.to_string(),
                    ip,
                    range,
                })
            }
            _ => Ok(()),
        }
    }
}

/// The name of the non-public range `ip` is in, or `None` for a public address.
/// IPv6 addresses that embed an IPv4 address (v4-mapped, v4-compatible, NAT64,
/// 6to4, Teredo) are judged by the embedded address too.
pub fn blocked_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "'this network' 0.0.0.0/8 (RFC 791)",
        (10, ..) => "private 10.0.0.0/8 (RFC 1918)",
        (100, 64..=127, _) => "shared CGNAT 100.64.0.0/10 (RFC 6598)",
        (127, ..) => "loopback 127.0.0.0/8",
        (169, 254, _) => "link-local 169.254.0.0/16 (cloud metadata lives here)",
        (172, 16..=31, _) => "private 172.16.0.0/12 (RFC 1918)",
        (192, 0, 0) => "IETF protocol assignments 192.0.0.0/24",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation range (RFC 5737)",
        (192, 88, 99) => "6to4 relay anycast 192.88.99.0/24",
        (192, 168, _) => "private 192.168.0.0/16 (RFC 1918)",
        (198, 18..=19, _) => "benchmarking 198.18.0.0/15",
        (224..=239, ..) => "multicast 224.0.0.0/4",
        (240..=255, ..) => "reserved 240.0.0.0/4 and broadcast",
        _ => return None,
    })
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return blocked_v4(v4).map(|_| "IPv4-mapped IPv6 ::ffff:0:0/96 of a blocked IPv4 address");
    }
    if ip.is_unspecified() {
        return Some("unspecified ::");
    }
    if ip.is_loopback() {
        return Some("loopback ::1");
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    Some(match s[0] {
        // ::a.b.c.d (deprecated IPv4-compatible, RFC 4291 §2.5.5.1)
        0 if s[1..6] == [0; 5] => {
            return blocked_v4(embedded(s[6], s[7]))
                .map(|_| "IPv4-compatible IPv6 of a blocked IPv4 address");
        }
        // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052) and local-use 64:ff9b:1::/48 (RFC 8215)
        0x64 if s[1] == 0xff9b => {
            if s[2] == 1 {
                "NAT64 local-use 64:ff9b:1::/48"
            } else {
                return blocked_v4(embedded(s[6], s[7]))
                    .map(|_| "NAT64 64:ff9b::/96 of a blocked IPv4 address");
            }
        }
        // 6to4 2002::/16 embeds the IPv4 address in bits 16..48 (RFC 3056)
        0x2002 => {
            return blocked_v4(embedded(s[1], s[2]))
                .map(|_| "6to4 2002::/16 of a blocked IPv4 address");
        }
        // Teredo 2001::/32: the client IPv4 is stored inverted (RFC 4380 §4)
        0x2001 if s[1] == 0 => {
            return blocked_v4(Ipv4Addr::from(!((u32::from(s[6]) << 16) | u32::from(s[7]))))
                .map(|_| "Teredo 2001::/32 of a blocked IPv4 address");
        }
        0x2001 if s[1] == 0xdb8 => "documentation 2001:db8::/32",
        0x0100 if s[1..4] == [0; 3] => "discard-only 100::/64",
        x if x & 0xfe00 == 0xfc00 => "unique local fc00::/7",
        x if x & 0xffc0 == 0xfe80 => "link-local fe80::/10",
        x if x & 0xffc0 == 0xfec0 => "site-local fec0::/10",
        x if x & 0xff00 == 0xff00 => "multicast ff00::/8",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> AllowedOrigin {
        s.parse().expect("valid origin")
    }

    fn host(s: &str) -> url::Host {
        parse_host(s).expect("host")
    }

    #[test]
    fn parses_origins() {
        assert_eq!(
            origin("http://127.0.0.1:8080").to_string(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            origin("https://API.example.com/").to_string(),
            "https://api.example.com:443"
        );
        assert_eq!(
            origin("https://*.example.com:*").to_string(),
            "https://*.example.com:*"
        );
        assert_eq!(origin("http://[::1]:9000").to_string(), "http://[::1]:9000");
        assert_eq!(
            origin("http://2130706433:1").to_string(),
            "http://127.0.0.1:1"
        );
        for bad in [
            "127.0.0.1:80",
            "ftp://x",
            "http://x:port",
            "http://x/path",
            "http://*.1.2.3.4",
            "http://u@x",
            "http://",
        ] {
            let err = bad.parse::<AllowedOrigin>().expect_err(bad);
            assert!(err.to_string().contains("scheme://host"), "{err}");
        }
    }

    #[test]
    fn admission() {
        let p = EgressPolicy {
            allowed: vec![
                origin("http://127.0.0.1:8080"),
                origin("https://*.corp.test:*"),
            ],
            ..Default::default()
        };
        assert_eq!(
            p.admit(Scheme::Http, &host("127.0.0.1"), 8080),
            Ok(Admission::Explicit)
        );
        assert_eq!(
            p.admit(Scheme::Http, &host("0x7f.1"), 8080),
            Ok(Admission::Explicit)
        );
        assert!(p.admit(Scheme::Http, &host("127.0.0.1"), 8081).is_err());
        assert!(p.admit(Scheme::Http, &host("localhost"), 8080).is_err());
        assert_eq!(
            p.admit(Scheme::Https, &host("a.b.corp.test"), 1),
            Ok(Admission::Explicit)
        );
        assert_eq!(
            p.admit(Scheme::Https, &host("corp.test"), 443),
            Ok(Admission::PublicOnly)
        );
        assert_eq!(
            p.admit(Scheme::Https, &host("api.example.com"), 443),
            Ok(Admission::PublicOnly)
        );
        let err = p
            .admit(Scheme::Http, &host("api.example.com"), 80)
            .expect_err("http");
        assert!(
            err.to_string()
                .contains("--allow http://api.example.com:80"),
            "{err}"
        );
    }

    #[test]
    fn blocked_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
        ] {
            let ip: IpAddr = ip.parse().expect(ip);
            assert!(blocked_range(ip).is_some(), "{ip} should be blocked");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ] {
            let ip: IpAddr = ip.parse().expect(ip);
            assert_eq!(blocked_range(ip), None, "{ip} should be public");
        }
    }

    #[test]
    fn addresses_checked_only_without_explicit_entry() {
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        let p = EgressPolicy::default();
        assert!(
            p.check_address(Admission::Explicit, Scheme::Https, 443, "x", lo)
                .is_ok()
        );
        let err = p
            .check_address(Admission::PublicOnly, Scheme::Https, 443, "evil.test", lo)
            .expect_err("blocked");
        assert!(err.to_string().contains("loopback"), "{err}");
        let open = EgressPolicy {
            block_private_networks: false,
            ..Default::default()
        };
        assert!(
            open.check_address(Admission::PublicOnly, Scheme::Https, 443, "x", lo)
                .is_ok()
        );
    }

    #[test]
    fn cidr_entries_admit_literals_and_unlock_resolved_addresses() {
        assert_eq!(
            origin("https://10.1.2.3/16:443").to_string(),
            "https://10.1.0.0/16:443"
        );
        assert_eq!(
            origin("http://[fd00::1]/8:*").to_string(),
            "http://fd00::/8:*"
        );
        assert!("https://10.0.0.0/99".parse::<AllowedOrigin>().is_err());
        let p = EgressPolicy {
            allowed: vec![origin("https://127.0.0.0/8:*")],
            ..Default::default()
        };
        assert_eq!(
            p.admit(Scheme::Https, &host("127.9.9.9"), 1),
            Ok(Admission::Explicit)
        );
        assert_eq!(
            p.admit(Scheme::Https, &host("[::ffff:127.0.0.1]"), 1),
            Ok(Admission::Explicit)
        );
        assert_eq!(
            p.admit(Scheme::Https, &host("mixed.test"), 1),
            Ok(Admission::PublicOnly)
        );
        let ten: IpAddr = "10.0.0.1".parse().expect("ip");
        let lo: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        assert!(
            p.check_address(Admission::PublicOnly, Scheme::Https, 1, "mixed.test", ten)
                .is_err()
        );
        assert!(
            p.check_address(Admission::PublicOnly, Scheme::Https, 1, "mixed.test", lo)
                .is_ok()
        );
        assert!(
            p.check_address(Admission::PublicOnly, Scheme::Http, 1, "mixed.test", lo)
                .is_err()
        );
        let closed = EgressPolicy {
            allow_public_https: false,
            ..Default::default()
        };
        assert!(
            closed
                .admit(Scheme::Https, &host("api.example.com"), 443)
                .is_err()
        );
    }
}
