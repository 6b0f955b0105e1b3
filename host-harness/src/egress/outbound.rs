//! What the egress point enforces for one tenant, built once and shared by
//! its runs: the outbound policy, the TLS roots and pinned certificates,
//! client certificates by origin, resolver overrides, the proxy and the
//! keep-alive pool ([`Outbound`]); and the per-request network limits
//! ([`NetworkLimits`]), which the host may lower for some runs. A tenant
//! holds both; nothing here knows what a tenant is.

use super::limits::{LocalLimits, Quota, RateRule, SharedLimits};
use super::policy::{AllowedOrigin, EgressPolicy, OriginParseError, Scheme};
use super::pool::{ConnectionPool, Reuse};
use super::proxy::Proxy;
use super::tls::{ClientIdentity, client_config};
use crate::Error;
use crate::error::{CertificateProblem, PolicyProblem};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::WasiBody;

/// A tenant's egress, ready to send requests.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) policy: EgressPolicy,
    /// TLS client settings: webpki roots plus the tenant's extra roots, which
    /// also pin exact server certificates.
    tls: Arc<rustls::ClientConfig>,
    /// The same settings presenting a client certificate, by origin.
    client_tls: Vec<(AllowedOrigin, Arc<rustls::ClientConfig>)>,
    /// Static resolver overrides (lower-case names).
    pub(crate) resolve: HashMap<String, Vec<IpAddr>>,
    /// Idle keep-alive connections, never shared with another tenant.
    /// Request bodies are the guest's `wasi:http` bodies.
    pub(super) pool: ConnectionPool<WasiBody>,
    pub(super) proxy: Option<Proxy>,
    /// `[[rate_limits]]`, in order: a request's origin takes the first that covers it.
    pub(super) rules: Vec<RateRule>,
    /// Where the buckets, in-flight counts and back-off windows live.
    pub(super) limits: Arc<dyn SharedLimits>,
    /// The longest back-off window an upstream may open; none when
    /// `shared_backoff` is off.
    pub(super) max_backoff: Option<Duration>,
}

impl Outbound {
    /// The TLS client settings for an origin: with its client certificate
    /// when one is configured for it, else the plain ones.
    pub(super) fn tls_for(
        &self,
        host: &url::Host<String>,
        port: u16,
    ) -> &Arc<rustls::ClientConfig> {
        self.client_tls
            .iter()
            .find(|(origin, _)| origin.matches(Scheme::Https, host, port))
            .map_or(&self.tls, |(_, config)| config)
    }

    /// Idle keep-alive connections held right now.
    pub(crate) fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }
}

/// Builds an [`Outbound`]. Starts with the default policy: HTTPS to public
/// hosts only, webpki roots, no proxy.
#[derive(Debug)]
pub(crate) struct OutboundBuilder {
    policy: EgressPolicy,
    extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    client_certs: Vec<(AllowedOrigin, ClientIdentity)>,
    resolve: HashMap<String, Vec<IpAddr>>,
    proxy: Option<Proxy>,
    rules: Vec<RateRule>,
    limits: Option<Arc<dyn SharedLimits>>,
    max_backoff: Option<Duration>,
}

/// Default `max_backoff_ms`: an hour.
pub(crate) const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(3600);

impl Default for OutboundBuilder {
    fn default() -> Self {
        OutboundBuilder {
            policy: EgressPolicy::default(),
            extra_roots: Vec::new(),
            client_certs: Vec::new(),
            resolve: HashMap::new(),
            proxy: None,
            rules: Vec::new(),
            limits: None,
            max_backoff: Some(DEFAULT_MAX_BACKOFF),
        }
    }
}

/// An origin entry as the policy reads it.
fn origin(entry: &str) -> Result<AllowedOrigin, Error> {
    entry
        .parse()
        .map_err(|e: OriginParseError| Error::policy_from(PolicyProblem::Origin, e))
}

impl OutboundBuilder {
    /// Allows an origin (see [`super::policy`]).
    pub(crate) fn allow(mut self, entry: &str) -> Result<Self, Error> {
        self.policy.allowed.push(origin(entry)?);
        Ok(self)
    }

    /// Admits `https://` to public hosts without an entry.
    pub(crate) fn allow_public_https(mut self, on: bool) -> Self {
        self.policy.allow_public_https = on;
        self
    }

    /// Refuses non-public addresses unless an entry allows them.
    pub(crate) fn block_private_networks(mut self, on: bool) -> Self {
        self.policy.block_private_networks = on;
        self
    }

    /// Trusts (and pins) the certificates of PEM data; `of` names the data
    /// in errors.
    pub(crate) fn ca_certs_pem(mut self, pem: &[u8], of: &str) -> Result<Self, Error> {
        use rustls_pki_types::pem::PemObject;
        let before = self.extra_roots.len();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                let problem = CertificateProblem::NotPem { of: of.to_string() };
                Error::certificate(problem, Some(Box::new(e)))
            })?;
            self.extra_roots.push(cert);
        }
        if self.extra_roots.len() == before {
            let problem = CertificateProblem::NoCertificate { of: of.to_string() };
            return Err(Error::certificate(problem, None));
        }
        Ok(self)
    }

    /// Presents the client certificate chain `cert_pem` (leaf first) with
    /// its private key `key_pem` to `entry`'s origins (https only) and to no
    /// other; `of` names them in errors.
    pub(crate) fn client_cert_pem(
        mut self,
        entry: &str,
        cert_pem: &[u8],
        key_pem: &[u8],
        of: &str,
    ) -> Result<Self, Error> {
        let identity = ClientIdentity::from_pem(cert_pem, key_pem, of)?;
        self.client_certs.push((origin(entry)?, identity));
        Ok(self)
    }

    /// Resolves `name` to `addrs` without DNS.
    pub(crate) fn resolve(mut self, name: &str, addrs: Vec<IpAddr>) -> Self {
        self.resolve.insert(name.to_ascii_lowercase(), addrs);
        self
    }

    /// Sends requests through the proxy at `url`, except to hosts matching
    /// a `no_proxy` entry.
    pub(crate) fn proxy(mut self, url: &str, no_proxy: &[String]) -> Result<Self, Error> {
        let fail = |e| Error::policy_from(PolicyProblem::Proxy, e);
        let mut proxy = Proxy::parse(url).map_err(fail)?;
        for entry in no_proxy {
            proxy.bypass(entry).map_err(fail)?;
        }
        self.proxy = Some(proxy);
        Ok(self)
    }

    /// Adds a rate limit for the origins `entry` covers (see
    /// [`super::limits`]): `per_second` tokens a second in a bucket of
    /// `burst` (default: one second's worth, at least 1), at most
    /// `max_in_flight` open at once.
    pub(crate) fn rate_limit(
        mut self,
        entry: &str,
        per_second: Option<f64>,
        burst: Option<u32>,
        max_in_flight: Option<u32>,
    ) -> Result<Self, Error> {
        let fail = |reason: &'static str| {
            Error::policy(PolicyProblem::RateLimit {
                origin: entry.to_string(),
                reason,
            })
        };
        if per_second.is_none() && max_in_flight.is_none() {
            return Err(fail("give requests_per_second, max_in_flight or both"));
        }
        if per_second.is_some_and(|r| !(r.is_finite() && r > 0.0 && r <= 1e6)) {
            return Err(fail(
                "requests_per_second must be above 0 and at most 1000000",
            ));
        }
        if burst.is_some() && per_second.is_none() {
            return Err(fail(
                "burst is the bucket of requests_per_second; give that too",
            ));
        }
        if burst == Some(0) || max_in_flight == Some(0) {
            return Err(fail("burst and max_in_flight must be at least 1"));
        }
        let default_burst = per_second.map_or(1, |r| r.ceil() as u32).max(1);
        let origin = origin(entry)?;
        self.rules.push(RateRule {
            key: origin.to_string(),
            origin,
            quota: Quota {
                per_second,
                burst: burst.unwrap_or(default_burst),
                max_in_flight,
            },
        });
        Ok(self)
    }

    /// Lets an upstream's 429 (or 503 with `Retry-After`) hold back the
    /// tenant's other requests to that origin for at most `max` (none: off).
    pub(crate) fn backoff(mut self, max: Option<Duration>) -> Self {
        self.max_backoff = max;
        self
    }

    /// Keeps the limits in `store` instead of this process (default: a
    /// [`LocalLimits`] of the tenant's own).
    pub(crate) fn shared_limits(mut self, store: Arc<dyn SharedLimits>) -> Self {
        self.limits = Some(store);
        self
    }

    /// Builds the TLS settings and the rest.
    pub(crate) fn build(self) -> Result<Outbound, Error> {
        let client_tls = self
            .client_certs
            .into_iter()
            .map(|(origin, identity)| {
                Ok((
                    origin,
                    Arc::new(client_config(self.extra_roots.clone(), Some(identity))?),
                ))
            })
            .collect::<Result<_, Error>>()?;
        Ok(Outbound {
            policy: self.policy,
            tls: Arc::new(client_config(self.extra_roots, None)?),
            client_tls,
            resolve: self.resolve,
            pool: ConnectionPool::default(),
            proxy: self.proxy,
            rules: self.rules,
            limits: self
                .limits
                .unwrap_or_else(|| Arc::new(LocalLimits::default())),
            max_backoff: self.max_backoff,
        })
    }
}

/// The limits of each request a run makes, whatever the step asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NetworkLimits {
    /// DNS, TCP connect and TLS handshake, each.
    pub(crate) connect_timeout: Duration,
    /// From sending to the response head.
    pub(crate) first_byte_timeout: Duration,
    /// Longest pause inside the response body.
    pub(crate) between_bytes_timeout: Duration,
    /// Largest response body passed to the guest.
    pub(crate) max_response_bytes: u64,
    /// Largest response header section.
    pub(crate) max_response_header_bytes: usize,
    /// Most response header fields.
    pub(crate) max_response_headers: usize,
    /// Largest request body.
    pub(crate) max_request_body_bytes: u64,
    /// Most requests of one run.
    pub(crate) max_requests_per_run: u32,
    /// Keep-alive connection reuse.
    pub(crate) reuse: Reuse,
}
