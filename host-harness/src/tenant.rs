//! A tenant: its egress (policy, TLS roots, client certificates, resolver
//! overrides, proxy, keep-alive pool: an [`crate::egress`] value it holds),
//! its limits and its key-value store, built once and shared by all of its
//! runs. Written by hand with [`Tenant::builder`] or read from a policy file
//! ([`TenantPolicy`], TOML).

use crate::Error;
use crate::egress::limits::SharedLimits;
use crate::egress::{NetworkLimits, Outbound, OutboundBuilder, RunEgress};
use crate::error::{CertificateProblem, PolicyProblem};
use crate::progress::ProgressFn;
use crate::store::TenantStore;
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
    /// Most outbound requests of one run: attempts, redirects, pages, polls
    /// and token requests. Default: 64.
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
    /// Most of the runtime's run slots this tenant holds at once; its
    /// further runs wait in its own queue and never take a slot another
    /// tenant could use. Default: half the runtime's slots, at least one (a
    /// host with a single tenant sets it to all of them).
    pub max_concurrent_runs: Option<usize>,
    /// Most of this tenant's runs waiting for a slot at once (each waits at
    /// most the runtime's `slot_wait`); beyond it a run is refused at once.
    /// Default: 256.
    pub max_queued_runs: usize,
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
            max_concurrent_runs: None,
            max_queued_runs: 256,
        }
    }
}

impl HostLimits {
    /// The limits the egress point applies to each request of a run.
    fn network(&self) -> NetworkLimits {
        NetworkLimits {
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            first_byte_timeout: Duration::from_millis(self.first_byte_timeout_ms),
            between_bytes_timeout: Duration::from_millis(self.between_bytes_timeout_ms),
            max_response_bytes: self.max_response_bytes,
            max_response_header_bytes: self.max_response_header_bytes,
            max_response_headers: self.max_response_headers,
            max_request_body_bytes: self.max_request_body_bytes,
            max_requests_per_run: self.max_requests_per_run,
            reuse: crate::egress::pool::Reuse::new(
                self.max_idle_connections_per_origin,
                Duration::from_millis(self.idle_connection_ms),
            ),
        }
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
    /// Limits per destination, shared by all of the tenant's runs; a
    /// request's origin takes the first entry that covers it. Default: none.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitEntry>,
    /// An upstream's `429`, or `503` with `Retry-After`, holds back the
    /// tenant's other requests to that origin until the time it names:
    /// they are answered locally and never reach it. Default: true.
    #[serde(default = "yes")]
    pub shared_backoff: bool,
    /// The longest such hold. Default: 3600000 (1 hour).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

/// One `[[rate_limits]]` entry of a policy file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitEntry {
    /// The origins it covers, written as in `allowed_hosts` (wildcards and
    /// `:*` ports allowed: one quota for all of them). Required.
    pub origin: String,
    /// Requests per second, refilling a token bucket. Default: none (no
    /// rate); give it, `max_in_flight`, or both.
    pub requests_per_second: Option<f64>,
    /// The bucket's size: how many requests may go at once after a quiet
    /// spell. Default: one second's worth, at least 1.
    pub burst: Option<u32>,
    /// The most requests open at once, from sending to the end of the
    /// response. Default: none (no cap).
    pub max_in_flight: Option<u32>,
}

fn default_max_backoff_ms() -> u64 {
    u64::try_from(crate::egress::DEFAULT_MAX_BACKOFF.as_millis()).unwrap_or(u64::MAX)
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
    id: Arc<str>,
    /// What the egress point enforces for the tenant's requests.
    egress: Arc<Outbound>,
    limits: HostLimits,
    /// The tenant's key-value store (`wasi:keyvalue`): OAuth 2.0 tokens,
    /// shared by the tenant's runs and by no other tenant.
    store: Arc<TenantStore>,
    /// This tenant's number in the process, counted from 0 as tenants are
    /// built: in per-core mode it picks the tenant's core, so tenants spread
    /// over the cores evenly.
    number: usize,
}

impl Tenant {
    /// Starts a tenant with the default policy: HTTPS to public hosts only.
    pub fn builder(id: impl Into<String>) -> TenantBuilder {
        TenantBuilder {
            id: id.into(),
            egress: OutboundBuilder::default(),
            limits: HostLimits::default(),
            shared_backoff: true,
            max_backoff_ms: default_max_backoff_ms(),
        }
    }

    /// Reads a policy file; relative `ca_certs` paths are relative to it.
    pub fn from_policy_file(path: &Path) -> Result<TenantBuilder, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::policy_from(PolicyProblem::UnreadableFile(path.into()), e))?;
        let policy: TenantPolicy = toml::from_str(&text)
            .map_err(|e| Error::policy_from(PolicyProblem::MalformedFile(path.into()), e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Tenant::from_policy(policy, base)
    }

    /// Builds from a parsed policy; `base` anchors relative certificate paths.
    pub fn from_policy(policy: TenantPolicy, base: &Path) -> Result<TenantBuilder, Error> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| {
                let problem = CertificateProblem::UnreadableFile(path.into());
                Error::certificate(problem, Some(Box::new(e)))
            })
        };
        let mut b = Tenant::builder(policy.tenant)
            .limits(policy.limits)
            .allow_public_https(policy.allow_public_https)
            .block_private_networks(policy.block_private_networks);
        for origin in &policy.allowed_hosts {
            b = b.allow(origin)?;
        }
        for cert in &policy.ca_certs {
            let path = base.join(cert);
            b.egress = b
                .egress
                .ca_certs_pem(&read(&path)?, &path.display().to_string())?;
        }
        for entry in &policy.client_certs {
            let (cert, key) = (base.join(&entry.cert), base.join(&entry.key));
            let of = format!("{} / {}", cert.display(), key.display());
            b.egress = b
                .egress
                .client_cert_pem(&entry.origin, &read(&cert)?, &read(&key)?, &of)?;
        }
        for (name, addrs) in policy.resolve {
            b = b.resolve(&name, addrs);
        }
        for entry in &policy.rate_limits {
            b = b.rate_limit(entry)?;
        }
        b = b
            .shared_backoff(policy.shared_backoff)
            .max_backoff_ms(policy.max_backoff_ms);
        match (&policy.proxy, policy.no_proxy.is_empty()) {
            (Some(url), _) => b = b.proxy(url, &policy.no_proxy)?,
            (None, false) => return Err(Error::policy(PolicyProblem::NoProxyWithoutProxy)),
            (None, true) => {}
        }
        Ok(b)
    }

    /// The tenant's id, as logs and the durable service name it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The tenant's limits.
    pub(crate) fn limits(&self) -> &HostLimits {
        &self.limits
    }

    /// Idle keep-alive connections this tenant holds right now.
    pub fn idle_connections(&self) -> usize {
        self.egress.idle_connections()
    }

    /// The `wasi:http` hooks of one run of this tenant.
    pub(crate) fn run_egress(&self, events: ProgressFn) -> RunEgress {
        RunEgress::new(
            self.egress.clone(),
            self.limits.network(),
            self.id.clone(),
            events,
        )
    }

    /// The tenant's key-value store.
    pub(crate) fn store(&self) -> &Arc<TenantStore> {
        &self.store
    }

    /// The tenant's number in the process (its core in per-core mode).
    pub(crate) fn number(&self) -> usize {
        self.number
    }

    /// Lowers `max_response_bytes` to at most `cap` (the durable service
    /// keeps responses below the engine's journal-entry limit).
    pub(crate) fn cap_response_bytes(&mut self, cap: u64) {
        self.limits.max_response_bytes = self.limits.max_response_bytes.min(cap);
    }
}

/// Builds a [`Tenant`].
#[derive(Debug)]
pub struct TenantBuilder {
    id: String,
    egress: OutboundBuilder,
    limits: HostLimits,
    shared_backoff: bool,
    max_backoff_ms: u64,
}

impl TenantBuilder {
    /// Allows an origin such as `http://127.0.0.1:8080`, `https://*.corp.test:*`
    /// or `https://10.1.0.0/16:443`, private addresses included (see
    /// [`crate::policy`]).
    pub fn allow(mut self, origin: &str) -> Result<Self, Error> {
        self.egress = self.egress.allow(origin)?;
        Ok(self)
    }

    /// Admits `https://` to public hosts that no entry names (their every
    /// resolved address must still be public). Default: true.
    pub fn allow_public_https(mut self, on: bool) -> Self {
        self.egress = self.egress.allow_public_https(on);
        self
    }

    /// Refuses private, loopback, link-local and other non-public addresses
    /// unless an entry allows them. Default: true.
    pub fn block_private_networks(mut self, on: bool) -> Self {
        self.egress = self.egress.block_private_networks(on);
        self
    }

    /// Trusts the CA certificates of a PEM file's contents, in addition to the
    /// webpki roots; a server presenting exactly one of these certificates is
    /// accepted while it is valid and names the host (a pinned self-signed
    /// certificate, see `egress/tls.rs`).
    pub fn ca_certs_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        self.egress = self
            .egress
            .ca_certs_pem(pem, "the CA certificates' PEM data")?;
        Ok(self)
    }

    /// Presents the client certificate chain `cert_pem` (leaf first) with
    /// its private key `key_pem` to `origin` (as for [`TenantBuilder::allow`];
    /// https only) and to no other origin (mTLS).
    pub fn client_cert_pem(
        mut self,
        origin: &str,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, Error> {
        let of = format!("client certificate for {origin}");
        self.egress = self
            .egress
            .client_cert_pem(origin, cert_pem, key_pem, &of)?;
        Ok(self)
    }

    /// Resolves `name` to `addrs` without DNS (tests, split-horizon setups).
    pub fn resolve(mut self, name: &str, addrs: Vec<IpAddr>) -> Self {
        self.egress = self.egress.resolve(name, addrs);
        self
    }

    /// Sends requests through the proxy at `url`
    /// (`http://[user:password@]host[:port]`), except to hosts matching a
    /// `no_proxy` entry (see [`TenantPolicy::no_proxy`]).
    pub fn proxy(mut self, url: &str, no_proxy: &[String]) -> Result<Self, Error> {
        self.egress = self.egress.proxy(url, no_proxy)?;
        Ok(self)
    }

    /// Replaces the limits.
    pub fn limits(mut self, limits: HostLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds a limit for the origins `entry` covers (see
    /// [`TenantPolicy::rate_limits`]).
    pub fn rate_limit(mut self, entry: &RateLimitEntry) -> Result<Self, Error> {
        self.egress = self.egress.rate_limit(
            &entry.origin,
            entry.requests_per_second,
            entry.burst,
            entry.max_in_flight,
        )?;
        Ok(self)
    }

    /// Whether an upstream's 429 (or 503 with `Retry-After`) holds back the
    /// tenant's other requests to that origin. Default: true.
    pub fn shared_backoff(mut self, on: bool) -> Self {
        self.shared_backoff = on;
        self
    }

    /// The longest such hold, in milliseconds. Default: 3600000 (1 hour).
    pub fn max_backoff_ms(mut self, ms: u64) -> Self {
        self.max_backoff_ms = ms;
        self
    }

    /// Keeps the tenant's rate-limit buckets, in-flight counts and back-off
    /// windows in `store` — one several processes share, so the limits hold
    /// across them — instead of in this process (the default).
    pub fn shared_limits(mut self, store: Arc<dyn SharedLimits>) -> Self {
        self.egress = self.egress.shared_limits(store);
        self
    }

    /// Builds the tenant.
    pub fn build(self) -> Result<Tenant, Error> {
        static BUILT: AtomicUsize = AtomicUsize::new(0);
        Ok(Tenant {
            id: self.id.into(),
            egress: Arc::new(
                self.egress
                    .backoff(
                        self.shared_backoff
                            .then(|| Duration::from_millis(self.max_backoff_ms)),
                    )
                    .build()?,
            ),
            limits: self.limits,
            store: Arc::default(),
            number: BUILT.fetch_add(1, Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::OriginParseError;

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
        assert_eq!(t.id(), "acme");
        assert_eq!(t.egress.policy.allowed.len(), 3);
        assert!(!t.egress.policy.allow_public_https);
        assert_eq!(t.egress.resolve["orders.internal"].len(), 2);
        assert_eq!(
            (
                t.limits.max_response_bytes,
                t.limits.cpu_ms,
                t.limits.max_requests_per_run
            ),
            (1024, 100, 64)
        );
    }

    /// The README's policy file, every field in it, reads as a policy.
    #[test]
    fn the_readme_policy_example_reads() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .expect("README.md");
        let block = readme
            .split("Policy file, every field optional:\n\n```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the README's policy example");
        let policy: TenantPolicy = toml::from_str(block).expect("the example reads");
        assert_eq!(policy.rate_limits.len(), 1);
        assert_eq!(policy.limits.max_concurrent_runs, Some(256));
        assert!(policy.shared_backoff);
    }

    #[test]
    fn the_builder_sets_every_policy_field() {
        let t = Tenant::builder("b")
            .allow_public_https(false)
            .block_private_networks(false)
            .build()
            .expect("builds");
        assert!(!t.egress.policy.allow_public_https);
        assert!(!t.egress.policy.block_private_networks);
    }

    #[test]
    fn unknown_keys_and_bad_entries_are_typed_errors() {
        assert!(toml::from_str::<TenantPolicy>("alowed_hosts = []").is_err());
        assert!(toml::from_str::<TenantPolicy>("[limits]\nmax_bytes = 1").is_err());
        let policy: TenantPolicy =
            toml::from_str(r#"allowed_hosts = ["ftp://x"]"#).expect("parses");
        let err = Tenant::from_policy(policy, Path::new(".")).expect_err("bad origin");
        let Error::Policy {
            problem: PolicyProblem::Origin,
            source: Some(source),
        } = &err
        else {
            panic!("not an origin error: {err:?}");
        };
        assert!(source.is::<OriginParseError>(), "{source:?}");
        // The text users see is the parse error's own.
        assert_eq!(err.to_string(), source.to_string());
        let policy: TenantPolicy = toml::from_str(r#"no_proxy = ["corp.test"]"#).expect("parses");
        assert!(matches!(
            Tenant::from_policy(policy, Path::new(".")),
            Err(Error::Policy {
                problem: PolicyProblem::NoProxyWithoutProxy,
                source: None
            })
        ));
        let policy: TenantPolicy = toml::from_str(r#"proxy = "ftp://p""#).expect("parses");
        assert!(matches!(
            Tenant::from_policy(policy, Path::new(".")),
            Err(Error::Policy {
                problem: PolicyProblem::Proxy,
                source: Some(_)
            })
        ));
    }

    #[test]
    fn unreadable_and_malformed_files_keep_their_cause() {
        let missing = Path::new("/nonexistent/https-step/policy.toml");
        let err = Tenant::from_policy_file(missing).expect_err("no such file");
        let Error::Policy {
            problem: PolicyProblem::UnreadableFile(path),
            source: Some(source),
        } = &err
        else {
            panic!("not an unreadable-file error: {err:?}");
        };
        assert_eq!(path, missing);
        assert_eq!(
            source
                .downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
        let dir = std::env::temp_dir().join(format!("https-step-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("bad.toml");
        std::fs::write(&file, "allowed_hosts = 7").expect("write");
        let err = Tenant::from_policy_file(&file).expect_err("malformed");
        assert!(
            matches!(&err, Error::Policy { problem: PolicyProblem::MalformedFile(p), source: Some(s) }
                if p == &file && s.is::<toml::de::Error>()),
            "{err:?}"
        );
        let ca = dir.join("ca.toml");
        std::fs::write(&ca, r#"ca_certs = ["missing-ca.pem"]"#).expect("write");
        let err = Tenant::from_policy_file(&ca).expect_err("no CA file");
        assert!(
            matches!(&err, Error::Certificate { problem: CertificateProblem::UnreadableFile(p), .. }
                if p == &dir.join("missing-ca.pem")),
            "{err:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
