//! The host library's error type: one enum, classified by type. Each case
//! that wraps another error keeps it as its typed `source` (wasmtime's, the
//! OS's, TOML's, rustls's, an origin's parse error); its `Display` is the
//! sentence a user sees, that source's text included.

use std::path::PathBuf;

/// What can go wrong in the host, outside the step's own outcome (which is a
/// [`crate::StepFailure`] with a WIT `step-error`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The component could not be compiled, linked or instantiated.
    #[error("{doing} failed: {source}")]
    Load {
        /// What the host was doing.
        doing: &'static str,
        /// wasmtime's error (or the OS's), with its chain.
        #[source]
        source: BoxError,
    },
    /// A tenant policy (a file, a directory of them, or a builder call) is
    /// unusable.
    #[error("{}", policy_text(problem, source.as_deref()))]
    Policy {
        /// What is wrong.
        problem: PolicyProblem,
        /// The error behind it, when there is one: the I/O error reading a
        /// file, TOML's parse error, the origin's or proxy's parse error.
        #[source]
        source: Option<BoxError>,
    },
    /// A certificate or private key could not be read or used.
    #[error("{}", with_source(problem, source.as_deref()))]
    Certificate {
        /// What is wrong.
        problem: CertificateProblem,
        /// The error behind it: the I/O, PEM or rustls error.
        #[source]
        source: Option<BoxError>,
    },
    /// The guest trapped: a fault in the step. The run is over; the host and
    /// other runs are unaffected.
    #[error("the step crashed while {doing}: {source}")]
    GuestTrap {
        /// What the step was doing (`instantiating`, `validating`, `running`).
        doing: &'static str,
        /// The trap, with wasmtime's backtrace context.
        #[source]
        source: BoxError,
    },
    /// The run exceeded one of the tenant's limits and was stopped; the host
    /// and other runs are unaffected.
    #[error("the step was stopped: {detail}")]
    ResourceLimit {
        /// Which limit.
        kind: LimitKind,
        /// What happened, naming the limit's setting.
        detail: String,
    },
    /// The run got no slot within the runtime's `slot_wait`: every slot was
    /// in use, or the tenant already ran its share of them, or its queue of
    /// waiting runs was full. Try again when a run has finished.
    #[error("the step runtime is busy: {}", busy_text(tenant, *slots, *share, cause))]
    Busy {
        /// The tenant whose run it was.
        tenant: String,
        /// The runtime's run slots (`max_concurrency`).
        slots: usize,
        /// The tenant's share of them (`max_concurrent_runs`).
        share: usize,
        /// Which bound it met.
        cause: BusyCause,
    },
}

/// Which bound a run without a slot met ([`Error::Busy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusyCause {
    /// Every slot was in use.
    Full,
    /// The tenant had its share of the slots running.
    TenantShare,
    /// The tenant's queue of runs waiting for a slot held this many
    /// (`max_queued_runs`).
    QueueFull(usize),
}

fn busy_text(tenant: &str, slots: usize, share: usize, cause: &BusyCause) -> String {
    match cause {
        BusyCause::Full => format!("all {slots} run slots are in use"),
        BusyCause::TenantShare => format!(
            "tenant {tenant:?} already runs {share} steps, its share (max_concurrent_runs) of the {slots} run slots"
        ),
        BusyCause::QueueFull(queued) => format!(
            "tenant {tenant:?} already has {queued} runs waiting for a slot (max_queued_runs)"
        ),
    }
}

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What is wrong with a tenant policy ([`Error::Policy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyProblem {
    /// A policy file could not be read (the source is the I/O error).
    UnreadableFile(PathBuf),
    /// A policy file is not valid TOML or has unknown or mistyped fields
    /// (the source is TOML's error, naming the line).
    MalformedFile(PathBuf),
    /// A policy directory could not be listed (the source is the I/O error).
    UnreadableDirectory(PathBuf),
    /// A policy directory holds no `*.toml` policy.
    EmptyDirectory(PathBuf),
    /// Two policies name the same tenant.
    DuplicateTenant(String),
    /// An origin (`allowed_hosts`, `client_certs.origin`, a builder call) is
    /// not one (the source is the parse error, naming the entry).
    Origin,
    /// The proxy URL or a `no_proxy` entry is unusable (the source says why).
    Proxy,
    /// `no_proxy` is set without `proxy`.
    NoProxyWithoutProxy,
    /// The Restate ingress that keeps shared limits is not a usable URL.
    Ingress {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `[[rate_limits]]` entry is unusable.
    RateLimit {
        /// The entry's origin, as written.
        origin: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl std::fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyProblem::UnreadableFile(path) => write!(f, "cannot read {}", path.display()),
            PolicyProblem::MalformedFile(path) => write!(f, "{}", path.display()),
            PolicyProblem::UnreadableDirectory(path) => {
                write!(f, "cannot read the policy directory {}", path.display())
            }
            PolicyProblem::EmptyDirectory(path) => {
                write!(f, "{} holds no tenant policy (*.toml)", path.display())
            }
            PolicyProblem::DuplicateTenant(id) => write!(
                f,
                "two tenant policies are named {id:?}; give each file its own `tenant = \"…\"`"
            ),
            PolicyProblem::Origin => f.write_str("invalid allowed origin"),
            PolicyProblem::Proxy => f.write_str("unusable proxy setting"),
            PolicyProblem::Ingress { url, reason } => {
                write!(f, "the Restate ingress {url:?}: {reason}")
            }
            PolicyProblem::RateLimit { origin, reason } => {
                write!(f, "rate_limits entry {origin:?}: {reason}")
            }
            PolicyProblem::NoProxyWithoutProxy => f.write_str(
                "no_proxy is set, but no proxy; add proxy = \"http://host:port\" or remove no_proxy",
            ),
        }
    }
}

/// What is wrong with a certificate or key ([`Error::Certificate`]); `of`
/// names where it came from (file names or the builder call, never a key).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateProblem {
    /// A certificate or key file could not be read (the source is the I/O error).
    UnreadableFile(PathBuf),
    /// PEM data holds something that is not a certificate.
    NotPem {
        /// Where the data came from.
        of: String,
    },
    /// PEM data holds no `CERTIFICATE` block.
    NoCertificate {
        /// Where the data came from.
        of: String,
    },
    /// PEM data holds no usable private key.
    NotPemKey {
        /// Where the data came from.
        of: String,
    },
    /// A CA certificate cannot be a trust anchor (the source is webpki's error).
    UnusableCa,
    /// A client certificate and its key do not make a TLS identity.
    UnusableClientIdentity {
        /// Where they came from.
        of: String,
    },
    /// The TLS client settings could not be made (the source is rustls's error).
    TlsSettings,
}

impl std::fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateProblem::UnreadableFile(path) => write!(f, "cannot read {}", path.display()),
            CertificateProblem::NotPem { of } => write!(f, "{of}: not a PEM certificate"),
            CertificateProblem::NoCertificate { of } => {
                write!(f, "{of}: no CERTIFICATE block found")
            }
            CertificateProblem::NotPemKey { of } => write!(f, "{of}: not a PEM private key"),
            CertificateProblem::UnusableCa => {
                f.write_str("CA certificate: unusable as a trust anchor")
            }
            CertificateProblem::UnusableClientIdentity { of } => {
                write!(f, "{of}: unusable client certificate or key")
            }
            CertificateProblem::TlsSettings => {
                f.write_str("the TLS client settings cannot be made")
            }
        }
    }
}

/// Which of a tenant's limits stopped a run ([`Error::ResourceLimit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// Guest CPU time (`cpu_ms`).
    Cpu,
    /// Guest linear memory or table space (`memory_bytes`).
    Memory,
    /// Wall-clock time of the whole run (`max_run_ms`).
    RunTime,
    /// The host's own bounds on what one run may hold or copy (resources,
    /// hostcall fuel).
    HostResources,
    /// The engine interrupted the guest.
    Interrupted,
}

/// An origin's or proxy's parse error says everything itself; other
/// problems are followed by their source.
fn policy_text(
    problem: &PolicyProblem,
    source: Option<&(dyn std::error::Error + Send + Sync)>,
) -> String {
    match (problem, source) {
        (PolicyProblem::Origin | PolicyProblem::Proxy, Some(source)) => source.to_string(),
        _ => with_source(problem, source),
    }
}

/// `problem`, then `: source` when there is one.
fn with_source(
    problem: &dyn std::fmt::Display,
    source: Option<&(dyn std::error::Error + Send + Sync)>,
) -> String {
    match source {
        Some(source) => format!("{problem}: {source}"),
        None => problem.to_string(),
    }
}

impl Error {
    /// A load failure with wasmtime's error as its source.
    pub(crate) fn load(doing: &'static str, e: wasmtime::Error) -> Error {
        Error::Load {
            doing,
            source: e.into_boxed_dyn_error(),
        }
    }

    /// A policy error without an underlying error.
    pub(crate) fn policy(problem: PolicyProblem) -> Error {
        Error::Policy {
            problem,
            source: None,
        }
    }

    /// A policy error caused by `source`.
    pub(crate) fn policy_from(
        problem: PolicyProblem,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Policy {
            problem,
            source: Some(Box::new(source)),
        }
    }

    /// A certificate error, caused by `source` when there is one.
    pub(crate) fn certificate(problem: CertificateProblem, source: Option<BoxError>) -> Error {
        Error::Certificate { problem, source }
    }

    /// Kebab-case name used as `error.kind` by the CLI.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Load { .. } => "load",
            Error::Policy { .. } => "policy",
            Error::Certificate { .. } => "certificate",
            Error::GuestTrap { .. } => "guest-trap",
            Error::ResourceLimit { .. } => "resource-limit",
            Error::Busy { .. } => "busy",
        }
    }
}
