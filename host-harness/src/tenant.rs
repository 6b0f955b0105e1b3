//! A tenant: its outbound policy, trusted TLS roots and host limits, built
//! once and shared by all of its runs.

use crate::Error;
use crate::policy::{AllowedOrigin, EgressPolicy};
use std::sync::Arc;
use std::time::Duration;

/// Host-side maxima for one request. The guest's own timeouts and size cap
/// apply within these; they only ever lower them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLimits {
    /// DNS + TCP connect + TLS handshake, each. Default: 30 s.
    pub connect_timeout: Duration,
    /// From sending to the response head. Default: 300 s.
    pub first_byte_timeout: Duration,
    /// Longest pause inside the response body. Default: 300 s.
    pub between_bytes_timeout: Duration,
    /// Largest response body the host passes to the guest. Default: 64 MiB.
    pub max_response_bytes: u64,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            connect_timeout: Duration::from_secs(30),
            first_byte_timeout: Duration::from_secs(300),
            between_bytes_timeout: Duration::from_secs(300),
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Everything the host enforces for one tenant's runs.
#[derive(Debug)]
pub struct Tenant {
    /// Tenant id, for logs.
    pub id: String,
    /// Outbound policy.
    pub egress: EgressPolicy,
    /// TLS client settings: webpki roots plus the tenant's extra roots.
    pub tls: Arc<rustls::ClientConfig>,
    /// Per-request maxima.
    pub limits: HostLimits,
}

impl Tenant {
    /// Starts a tenant with the default policy: HTTPS to public hosts only.
    pub fn builder(id: impl Into<String>) -> TenantBuilder {
        TenantBuilder {
            id: id.into(),
            allowed: Vec::new(),
            extra_roots: Vec::new(),
            limits: HostLimits::default(),
        }
    }
}

/// Builds a [`Tenant`].
#[derive(Debug)]
pub struct TenantBuilder {
    id: String,
    allowed: Vec<AllowedOrigin>,
    extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    limits: HostLimits,
}

impl TenantBuilder {
    /// Allows an origin such as `http://127.0.0.1:8080` or `https://*.corp.test:*`,
    /// private addresses included.
    pub fn allow(mut self, origin: &str) -> Result<Self, Error> {
        self.allowed.push(origin.parse().map_err(|e: crate::policy::OriginParseError| Error::Policy(e.to_string()))?);
        Ok(self)
    }

    /// Trusts the CA certificates of a PEM file's contents, in addition to the
    /// webpki roots.
    pub fn ca_certs_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        use rustls_pki_types::pem::PemObject;
        let before = self.extra_roots.len();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            self.extra_roots.push(cert.map_err(|e| Error::Certificate(format!("not a PEM certificate: {e}")))?);
        }
        if self.extra_roots.len() == before {
            return Err(Error::Certificate("no CERTIFICATE block found in the PEM data".into()));
        }
        Ok(self)
    }

    /// Replaces the host limits.
    pub fn limits(mut self, limits: HostLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Builds the tenant.
    pub fn build(self) -> Result<Tenant, Error> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in self.extra_roots {
            roots
                .add(cert)
                .map_err(|e| Error::Certificate(format!("unusable CA certificate: {e}")))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Certificate(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tenant {
            id: self.id,
            egress: EgressPolicy { allowed: self.allowed },
            tls: Arc::new(tls),
            limits: self.limits,
        })
    }
}
