//! A tenant: its outbound policy, trusted TLS roots, resolver overrides and
//! limits, built once and shared by all of its runs. Written by hand with
//! [`Tenant::builder`] or read from a policy file ([`TenantPolicy`], TOML).

use crate::Error;
use crate::egress::policy::{AllowedOrigin, EgressPolicy};
use crate::egress::pool::{ConnectionPool, Reuse};
use crate::egress::proxy::Proxy;
use crate::egress::tls::{ClientIdentity, client_config};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Per-run limits the host enforces, whatever the step asks for. The step's
/// own timeouts and size cap apply within these; they only ever lower them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostLimits {
    /// DNS + TCP connect + TLS handshake, each. Default: 30000.
    pub connect_timeout_ms: u64,
    /// From sending to the response head. Default: 300000.
    pub first_byte_timeout_ms: u64,
    /// Longest pause inside the response body. Default: 300000.
    pub between_bytes_timeout_ms: u64,
    /// Largest response body passed to the guest. Default: 67108864 (64 MiB).
    pub max_response_bytes: u64,
    /// Largest response header section. Default: 65536.
    pub max_response_header_bytes: usize,
    /// Most response header fields. Default: 100.
    pub max_response_headers: usize,
    /// Largest request body. Default: 16777216 (16 MiB).
    pub max_request_body_bytes: u64,
    /// Most outbound requests of one run (attempts + redirects). Default: 64.
    pub max_requests_per_run: u32,
    /// Guest linear memory. Default: 134217728 (128 MiB); at most the
    /// runtime's `max_memory_bytes`.
    pub memory_bytes: usize,
    /// Guest CPU time, measured in epoch ticks while guest code runs.
    /// Default: 5000.
    pub cpu_ms: u64,
    /// Wall-clock time of a whole run, waits and retries included.
    /// Default: 900000 (15 min).
    pub max_run_ms: u64,
    /// Idle keep-alive connections kept per origin for this tenant's later
    /// requests (never shared with another tenant); 0 opens a new connection
    /// for every request. Default: 8.
    pub max_idle_connections_per_origin: usize,
    /// How long an idle connection may wait for reuse; then it is closed,
    /// whether or not another request comes. Kept below common
    /// server keep-alive timeouts (nginx 75 s, Node.js 5 s…) so a reused
    /// connection is rarely one the server is closing; one it has closed is
    /// noticed and replaced before anything is sent. Default: 4000.
    pub idle_connection_ms: u64,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            connect_timeout_ms: 30_000,
            first_byte_timeout_ms: 300_000,
            between_bytes_timeout_ms: 300_000,
            max_response_bytes: 64 * 1024 * 1024,
            max_response_header_bytes: 64 * 1024,
            max_response_headers: 100,
            max_request_body_bytes: 16 * 1024 * 1024,
            max_requests_per_run: 64,
            memory_bytes: 128 * 1024 * 1024,
            cpu_ms: 5_000,
            max_run_ms: 900_000,
            max_idle_connections_per_origin: 8,
            idle_connection_ms: 4_000,
        }
    }
}

impl HostLimits {
    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub(crate) fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.first_byte_timeout_ms)
    }
    pub(crate) fn between_bytes_timeout(&self) -> Duration {
        Duration::from_millis(self.between_bytes_timeout_ms)
    }
    /// The connection reuse these limits allow.
    pub(crate) fn reuse(&self) -> Reuse {
        Reuse::new(
            self.max_idle_connections_per_origin,
            Duration::from_millis(self.idle_connection_ms),
        )
    }
}

/// A tenant policy file (TOML). Every field is optional.
///
/// ```toml
/// tenant = "acme"                                   # default "default"
/// allowed_hosts = ["https://api.example.com", "https://*.acme.test:*",
///                  "http://127.0.0.1:8080", "https://10.20.0.0/16:443"]
/// allow_public_https = true                         # default true
/// block_private_networks = true                     # default true
/// ca_certs = ["internal-ca.pem"]                    # relative to this file
/// [[client_certs]]                                  # mTLS, default none
/// origin = "https://mtls.partner.test"              # presented only there
/// cert = "client.pem"                               # chain, leaf first
/// key = "client-key.pem"                            # PKCS#8, PKCS#1 or SEC1
/// proxy = "http://user:pass@proxy.internal:3128"    # default none (direct)
/// no_proxy = ["corp.test", "10.0.0.0/8"]            # default none
/// [resolve]                                         # static DNS, default none
/// "orders.internal" = ["127.0.0.1"]
/// [limits]                                          # see HostLimits
/// max_response_bytes = 1048576
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicy {
    /// Tenant id for logs. Default: `default`.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Origins, wildcards, IPs and CIDR ranges allowed (see [`crate::egress::policy`]). Default: none.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// HTTPS to public hosts without an entry. Default: true.
    #[serde(default = "yes")]
    pub allow_public_https: bool,
    /// Refuse private, loopback, link-local and other non-public addresses
    /// unless an entry allows them. Default: true.
    #[serde(default = "yes")]
    pub block_private_networks: bool,
    /// Extra trusted CA certificates (PEM files), besides the webpki roots.
    /// Default: none.
    #[serde(default)]
    pub ca_certs: Vec<PathBuf>,
    /// Client certificates (mTLS), each presented only to its origin.
    /// Default: none.
    #[serde(default)]
    pub client_certs: Vec<ClientCertEntry>,
    /// Static name → addresses overrides, consulted before DNS. Default: none.
    #[serde(default)]
    pub resolve: HashMap<String, Vec<IpAddr>>,
    /// Outbound proxy, `http://[user:password@]host[:port]` (port default
    /// 3128): CONNECT for https targets, absolute-form requests for http ones.
    /// The allowlist still applies; the resolved-address check of proxied
    /// names is the proxy's job. Default: none (direct connections).
    #[serde(default)]
    pub proxy: Option<String>,
    /// Hosts reached directly despite `proxy`: `*`, domains (`corp.test`
    /// matches it and its subdomains), IP addresses, CIDR networks. Default: none.
    #[serde(default)]
    pub no_proxy: Vec<String>,
    /// Limits. Default: [`HostLimits::default`].
    #[serde(default)]
    pub limits: HostLimits,
}

/// One `[[client_certs]]` entry of a policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertEntry {
    /// The origin it is presented to, written as in `allowed_hosts`
    /// (wildcards and `:*` ports allowed). Required.
    pub origin: String,
    /// PEM certificate chain, leaf first; relative to the policy file. Required.
    pub cert: PathBuf,
    /// PEM private key of the leaf; relative to the policy file. Required.
    pub key: PathBuf,
}

fn default_tenant() -> String {
    "default".into()
}

fn yes() -> bool {
    true
}

/// Everything the host enforces for one tenant's runs.
#[derive(Debug)]
pub struct Tenant {
    /// Tenant id, for logs.
    pub id: String,
    /// Outbound policy.
    pub egress: EgressPolicy,
    /// TLS client settings: webpki roots plus the tenant's extra roots, which
    /// also pin exact server certificates.
    pub tls: Arc<rustls::ClientConfig>,
    /// TLS client settings that also present a client certificate, by origin.
    pub(crate) client_tls: Vec<(AllowedOrigin, Arc<rustls::ClientConfig>)>,
    /// Static resolver overrides (lower-case names).
    pub resolve: HashMap<String, Vec<IpAddr>>,
    /// Limits.
    pub limits: HostLimits,
    /// This tenant's idle keep-alive connections.
    /// Request bodies are the guest's `wasi:http` bodies (egress sends them on).
    pub(crate) pool: ConnectionPool<wasmtime_wasi_http::WasiBody>,
    /// The outbound proxy, if any.
    pub(crate) proxy: Option<Proxy>,
    /// This tenant's key-value store (`wasi:keyvalue`): OAuth 2.0 tokens,
    /// shared by the tenant's runs and by no other tenant.
    pub(crate) store: Arc<crate::store::TenantStore>,
    /// This tenant's number in the process, counted from 0 as tenants are
    /// built: in per-core mode it picks the tenant's core, so tenants spread
    /// over the cores evenly.
    pub(crate) number: usize,
}

impl Tenant {
    /// The TLS client settings for an origin: with its client certificate
    /// when one is configured for it, else the tenant's plain ones.
    pub(crate) fn tls_for(
        &self,
        host: &url::Host<String>,
        port: u16,
    ) -> &Arc<rustls::ClientConfig> {
        self.client_tls
            .iter()
            .find(|(origin, _)| origin.matches(crate::egress::policy::Scheme::Https, host, port))
            .map_or(&self.tls, |(_, config)| config)
    }

    /// Idle keep-alive connections this tenant holds right now.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Starts a tenant with the default policy: HTTPS to public hosts only.
    pub fn builder(id: impl Into<String>) -> TenantBuilder {
        TenantBuilder {
            id: id.into(),
            egress: EgressPolicy::default(),
            extra_roots: Vec::new(),
            client_certs: Vec::new(),
            resolve: HashMap::new(),
            proxy: None,
            limits: HostLimits::default(),
        }
    }

    /// Reads a policy file; relative `ca_certs` paths are relative to it.
    pub fn from_policy_file(path: &Path) -> Result<TenantBuilder, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Policy(format!("cannot read {}: {e}", path.display())))?;
        let policy: TenantPolicy =
            toml::from_str(&text).map_err(|e| Error::Policy(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Tenant::from_policy(policy, base)
    }

    /// Builds from a parsed policy; `base` anchors relative certificate paths.
    pub fn from_policy(policy: TenantPolicy, base: &Path) -> Result<TenantBuilder, Error> {
        let mut b = Tenant::builder(policy.tenant).limits(policy.limits);
        for origin in &policy.allowed_hosts {
            b = b.allow(origin)?;
        }
        b.egress.allow_public_https = policy.allow_public_https;
        b.egress.block_private_networks = policy.block_private_networks;
        for cert in &policy.ca_certs {
            let path = base.join(cert);
            let pem = std::fs::read(&path)
                .map_err(|e| Error::Certificate(format!("cannot read {}: {e}", path.display())))?;
            b = b.ca_certs_pem(&pem)?;
        }
        for entry in &policy.client_certs {
            let (cert, key) = (base.join(&entry.cert), base.join(&entry.key));
            let read = |path: &Path| {
                std::fs::read(path)
                    .map_err(|e| Error::Certificate(format!("cannot read {}: {e}", path.display())))
            };
            let source = format!("{} / {}", cert.display(), key.display());
            b = b.client_identity(
                &entry.origin,
                ClientIdentity::from_pem(&read(&cert)?, &read(&key)?, &source)?,
            )?;
        }
        for (name, addrs) in policy.resolve {
            b = b.resolve(&name, addrs);
        }
        match (&policy.proxy, policy.no_proxy.is_empty()) {
            (Some(url), _) => b = b.proxy(url, &policy.no_proxy)?,
            (None, false) => return Err(Error::Policy("no_proxy is set, but no proxy; add proxy = \"http://host:port\" or remove no_proxy".into())),
            (None, true) => {}
        }
        Ok(b)
    }
}

/// Builds a [`Tenant`].
#[derive(Debug)]
pub struct TenantBuilder {
    id: String,
    egress: EgressPolicy,
    extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    client_certs: Vec<(AllowedOrigin, ClientIdentity)>,
    resolve: HashMap<String, Vec<IpAddr>>,
    proxy: Option<Proxy>,
    limits: HostLimits,
}

impl TenantBuilder {
    /// Sends requests through the proxy at `url`
    /// (`http://[user:password@]host[:port]`), except to hosts matching a
    /// `no_proxy` entry (see [`TenantPolicy::no_proxy`]).
    pub fn proxy(mut self, url: &str, no_proxy: &[String]) -> Result<Self, Error> {
        let mut proxy = Proxy::parse(url).map_err(|e| Error::Policy(e.to_string()))?;
        for entry in no_proxy {
            proxy
                .bypass(entry)
                .map_err(|e| Error::Policy(e.to_string()))?;
        }
        self.proxy = Some(proxy);
        Ok(self)
    }

    /// Allows an origin such as `http://127.0.0.1:8080`, `https://*.corp.test:*`
    /// or `https://10.1.0.0/16:443`, private addresses included.
    pub fn allow(mut self, origin: &str) -> Result<Self, Error> {
        let origin: AllowedOrigin = origin
            .parse()
            .map_err(|e: crate::egress::policy::OriginParseError| Error::Policy(e.to_string()))?;
        self.egress.allowed.push(origin);
        Ok(self)
    }

    /// Trusts the CA certificates of a PEM file's contents, in addition to the
    /// webpki roots; a server presenting exactly one of these certificates is
    /// accepted while it is valid and names the host (a pinned self-signed
    /// certificate, see [`crate::egress::tls`]).
    pub fn ca_certs_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        use rustls_pki_types::pem::PemObject;
        let before = self.extra_roots.len();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            self.extra_roots
                .push(cert.map_err(|e| Error::Certificate(format!("not a PEM certificate: {e}")))?);
        }
        if self.extra_roots.len() == before {
            return Err(Error::Certificate(
                "no CERTIFICATE block found in the PEM data".into(),
            ));
        }
        Ok(self)
    }

    /// Presents the client certificate chain `cert_pem` (leaf first) with
    /// its private key `key_pem` to `origin` (as for [`TenantBuilder::allow`];
    /// https only) and to no other origin (mTLS).
    pub fn client_cert_pem(
        self,
        origin: &str,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, Error> {
        let identity = ClientIdentity::from_pem(
            cert_pem,
            key_pem,
            &format!("client certificate for {origin}"),
        )?;
        self.client_identity(origin, identity)
    }

    fn client_identity(mut self, origin: &str, identity: ClientIdentity) -> Result<Self, Error> {
        let parsed: AllowedOrigin = origin
            .parse()
            .map_err(|e: crate::egress::policy::OriginParseError| Error::Policy(e.to_string()))?;
        self.client_certs.push((parsed, identity));
        Ok(self)
    }

    /// Resolves `name` to `addrs` without DNS (tests, split-horizon setups).
    pub fn resolve(mut self, name: &str, addrs: Vec<IpAddr>) -> Self {
        self.resolve.insert(name.to_ascii_lowercase(), addrs);
        self
    }

    /// Replaces the limits.
    pub fn limits(mut self, limits: HostLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Builds the tenant.
    pub fn build(self) -> Result<Tenant, Error> {
        Ok(Tenant {
            id: self.id,
            egress: self.egress,
            client_tls: self
                .client_certs
                .into_iter()
                .map(|(origin, identity)| {
                    Ok((
                        origin,
                        Arc::new(client_config(self.extra_roots.clone(), Some(identity))?),
                    ))
                })
                .collect::<Result<_, Error>>()?,
            tls: Arc::new(client_config(self.extra_roots, None)?),
            resolve: self.resolve,
            limits: self.limits,
            pool: ConnectionPool::default(),
            proxy: self.proxy,
            store: Arc::default(),
            number: {
                static BUILT: AtomicUsize = AtomicUsize::new(0);
                BUILT.fetch_add(1, Ordering::Relaxed)
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_file_with_every_field() {
        let policy: TenantPolicy = toml::from_str(
            r#"
            tenant = "acme"
            allowed_hosts = ["https://api.example.com", "http://127.0.0.1:*", "https://10.20.0.0/16:443"]
            allow_public_https = false
            block_private_networks = true
            [resolve]
            "Orders.Internal" = ["127.0.0.1", "::1"]
            [limits]
            max_response_bytes = 1024
            cpu_ms = 100
            "#,
        )
        .expect("valid policy");
        let t = Tenant::from_policy(policy, Path::new("."))
            .expect("ok")
            .build()
            .expect("builds");
        assert_eq!(t.id, "acme");
        assert_eq!(t.egress.allowed.len(), 3);
        assert!(!t.egress.allow_public_https);
        assert_eq!(t.resolve["orders.internal"].len(), 2);
        assert_eq!(
            (
                t.limits.max_response_bytes,
                t.limits.cpu_ms,
                t.limits.max_requests_per_run
            ),
            (1024, 100, 64)
        );
    }

    #[test]
    fn unknown_keys_and_bad_entries_are_errors() {
        assert!(toml::from_str::<TenantPolicy>("alowed_hosts = []").is_err());
        assert!(toml::from_str::<TenantPolicy>("[limits]\nmax_bytes = 1").is_err());
        let policy: TenantPolicy =
            toml::from_str(r#"allowed_hosts = ["ftp://x"]"#).expect("parses");
        let err = Tenant::from_policy(policy, Path::new(".")).expect_err("bad origin");
        assert!(
            err.to_string().contains("scheme must be http or https"),
            "{err}"
        );
    }
}
