//! The host library's error type.

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
    /// A tenant policy entry is invalid.
    #[error("{0}")]
    Policy(String),
    /// A CA certificate could not be read or used.
    #[error("CA certificate: {0}")]
    Certificate(String),
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
    /// The run exceeded one of the tenant's limits (memory, CPU time, run
    /// time) and was stopped; the host and other runs are unaffected.
    #[error("the step was stopped: {0}")]
    ResourceLimit(String),
    /// As many runs as the runtime allows are already in progress; try again
    /// when one has finished.
    #[error("the step runtime is busy: all {0} run slots are in use")]
    Busy(usize),
}

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// A load failure with wasmtime's error as its source.
    pub(crate) fn load(doing: &'static str, e: wasmtime::Error) -> Error {
        Error::Load {
            doing,
            source: e.into_boxed_dyn_error(),
        }
    }

    /// Kebab-case name used as `error.kind` by the CLI.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Load { .. } => "load",
            Error::Policy(_) => "policy",
            Error::Certificate(_) => "certificate",
            Error::GuestTrap { .. } => "guest-trap",
            Error::ResourceLimit(_) => "resource-limit",
            Error::Busy(_) => "busy",
        }
    }
}
