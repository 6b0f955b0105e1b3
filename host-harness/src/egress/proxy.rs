//! A tenant's outbound proxy (README "Outbound proxy"): parsed once into typed
//! values, with the CONNECT exchange's wire format. No I/O here; the egress
//! point dials.
//!
//! - `https://` targets go through a tunnel: `CONNECT host:port` (RFC 9110
//!   §9.3.6), then TLS end to end with the target, so the proxy sees only the
//!   target's name and port.
//! - `http://` targets are sent to the proxy in absolute form (RFC 9112
//!   §3.2.2), `Proxy-Authorization` added by the host.
//! - The origin allowlist applies before the proxy is contacted; a refused
//!   origin never reaches it. The host cannot see the address a proxied name
//!   resolves to, so checking it is the proxy's job (as smokescreen does);
//!   IP-literal targets are still checked here.
//! - Credentials come from the proxy URL's userinfo, are sent as HTTP Basic
//!   (RFC 7617 as RFC 9110 §11.7.1 uses it) and are never printed.

use base64::Engine as _;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// Largest CONNECT response head read.
pub(crate) const MAX_CONNECT_HEAD: usize = 8 * 1024;

/// Why a proxy setting cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ProxyParseError(String);

/// The proxy a tenant's requests go through.
#[derive(Clone)]
pub(crate) struct Proxy {
    host: String,
    port: u16,
    /// `Basic …` for `Proxy-Authorization`, from the URL's userinfo.
    authorization: Option<String>,
    no_proxy: Vec<NoProxy>,
}

// Hand-written: the credentials never reach a log through `{:?}`.
impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("at", &self.to_string())
            .field(
                "credentials",
                &self.authorization.as_ref().map(|_| "redacted"),
            )
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// `http://host:port`, without credentials.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

/// One `no_proxy` entry: requests to matching hosts go direct.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxy {
    /// `*`: every host.
    Any,
    /// `corp.test` or `.corp.test`: that name and every name under it.
    Domain(String),
    /// `10.0.0.0/8` or `127.0.0.1`: IP-literal targets in the network.
    Net(IpNet),
}

impl Proxy {
    /// Parses `http://[user:password@]host[:port]` (port default 3128, as
    /// Squid's). A proxy reached over TLS (`https://`) is not supported.
    pub(crate) fn parse(raw: &str) -> Result<Proxy, ProxyParseError> {
        let fail = |why: &str| {
            ProxyParseError(format!(
                "proxy: {why} (write http://[user:password@]host:port)"
            ))
        };
        // The URL is not quoted in errors: it may carry the password.
        let url = url::Url::parse(raw.trim()).map_err(|e| fail(&format!("not a URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(fail(&format!(
                "scheme {:?} is not supported; the proxy is reached over plain http",
                url.scheme()
            )));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(fail("a proxy URL has no path, query or fragment"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| fail("no host"))?
            .to_string();
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
        };
        let authorization = match (url.username(), url.password()) {
            ("", None) => None,
            (user, password) => {
                let user = decode(user).map_err(|_| fail("the user name is not UTF-8"))?;
                let password = decode(password.unwrap_or_default())
                    .map_err(|_| fail("the password is not UTF-8"))?;
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                ))
            }
        };
        Ok(Proxy {
            host,
            port: url.port().unwrap_or(3128),
            authorization,
            no_proxy: Vec::new(),
        })
    }

    /// Adds a `no_proxy` entry: `*`, a domain (`corp.test` or `.corp.test`,
    /// matching it and its subdomains), an IP address or a CIDR network.
    pub(crate) fn bypass(&mut self, entry: &str) -> Result<(), ProxyParseError> {
        let entry = entry.trim().to_ascii_lowercase();
        let parsed = if entry == "*" {
            NoProxy::Any
        } else if let Ok(net) = entry.parse::<IpNet>() {
            NoProxy::Net(net)
        } else if let Ok(ip) = entry
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            NoProxy::Net(IpNet::from(ip))
        } else {
            let domain = entry.trim_start_matches('.');
            if domain.is_empty()
                || !domain.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
            {
                return Err(ProxyParseError(format!(
                    "no_proxy: {entry:?} is not *, a domain, an IP address or a CIDR network"
                )));
            }
            NoProxy::Domain(domain.to_string())
        };
        self.no_proxy.push(parsed);
        Ok(())
    }

    /// Whether requests to `host` go through the proxy.
    pub(crate) fn applies_to(&self, host: &url::Host<String>) -> bool {
        let ip = match host {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(*ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(*ip)),
            url::Host::Domain(_) => None,
        };
        !self.no_proxy.iter().any(|entry| match (entry, host, ip) {
            (NoProxy::Any, _, _) => true,
            (NoProxy::Net(net), _, Some(ip)) => net.contains(&ip),
            (NoProxy::Domain(d), url::Host::Domain(name), _) => {
                let name = name.to_ascii_lowercase();
                name == *d
                    || name
                        .strip_suffix(d.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            }
            _ => false,
        })
    }

    /// The proxy's host and port, to dial.
    pub(crate) fn address(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// The `Proxy-Authorization` value, if the URL had credentials.
    pub(crate) fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// The CONNECT request for `authority` (`host:port`, RFC 9110 §9.3.6).
    pub(crate) fn connect_request(&self, authority: &str) -> Vec<u8> {
        let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(auth) = &self.authorization {
            head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

/// What the proxy answered to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectAnswer {
    /// The head is not complete yet: read more.
    Partial,
    /// 2xx: the tunnel is open (RFC 9110 §9.3.6). `extra` bytes followed the
    /// head, which a proxy must not send before the client speaks TLS.
    Open { extra: usize },
    /// Any other status, with its reason phrase.
    Refused { status: u16, reason: String },
    /// Not an HTTP response.
    Garbled,
}

/// Reads the CONNECT response head in `buf` (everything received so far).
pub(crate) fn connect_answer(buf: &[u8]) -> ConnectAnswer {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Partial) => ConnectAnswer::Partial,
        Ok(httparse::Status::Complete(len)) => match response.code {
            Some(code @ 200..=299) if code != 204 => ConnectAnswer::Open {
                extra: buf.len() - len,
            },
            Some(status) => ConnectAnswer::Refused {
                status,
                reason: response.reason.unwrap_or_default().to_string(),
            },
            None => ConnectAnswer::Garbled,
        },
        Err(_) => ConnectAnswer::Garbled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> url::Host<String> {
        crate::egress::policy::parse_host(h).expect("host")
    }

    #[test]
    fn parses_credentials_without_showing_them() {
        let p = Proxy::parse("http://us%40er:p%3Ass@proxy.internal:8080").expect("proxy");
        assert_eq!(p.address(), ("proxy.internal", 8080));
        // RFC 7617: base64("us@er:p:ss").
        assert_eq!(p.authorization(), Some("Basic dXNAZXI6cDpzcw=="));
        assert_eq!(p.to_string(), "http://proxy.internal:8080");
        assert!(!format!("{p:?}").contains("p:ss") && !format!("{p:?}").contains("dXNA"));
        assert_eq!(
            Proxy::parse("http://proxy.internal")
                .expect("proxy")
                .address()
                .1,
            3128
        );
        for bad in [
            "https://proxy:443",
            "socks5://p:1080",
            "http://proxy:1/path",
            "nope",
        ] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
        let err = Proxy::parse("ftp://user:hunter22@p")
            .expect_err("scheme")
            .to_string();
        assert!(!err.contains("hunter22"), "{err}");
    }

    #[test]
    fn no_proxy_matches_domains_subdomains_and_networks() {
        let mut p = Proxy::parse("http://p:3128").expect("proxy");
        for entry in [".corp.test", "billing.example", "10.0.0.0/8", "::1"] {
            p.bypass(entry).expect("entry");
        }
        for (target, proxied) in [
            ("corp.test", false),
            ("api.corp.test", false),
            ("evilcorp.test", true),
            ("billing.example", false),
            ("x.billing.example", false),
            ("api.example", true),
            ("10.1.2.3", false),
            ("11.1.2.3", true),
            ("[::1]", false),
        ] {
            assert_eq!(p.applies_to(&host(target)), proxied, "{target}");
        }
        assert!(p.bypass("bad name!").is_err());
        p.bypass("*").expect("any");
        assert!(!p.applies_to(&host("api.example")));
    }

    #[test]
    fn connect_exchange() {
        let p = Proxy::parse("http://u:pw@p:3128").expect("proxy");
        assert_eq!(
            String::from_utf8(p.connect_request("api.test:443")).expect("utf8"),
            "CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\nProxy-Authorization: Basic dTpwdw==\r\n\r\n"
        );
        assert_eq!(
            connect_answer(b"HTTP/1.1 200 Connection established\r\n"),
            ConnectAnswer::Partial
        );
        assert_eq!(
            connect_answer(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            ConnectAnswer::Open { extra: 0 }
        );
        assert_eq!(
            connect_answer(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n"
            ),
            ConnectAnswer::Refused {
                status: 407,
                reason: "Proxy Authentication Required".into()
            }
        );
        assert_eq!(
            connect_answer(b"SSH-2.0-OpenSSH\r\n\r\n"),
            ConnectAnswer::Garbled
        );
    }
}
