//! What stops a run, told apart by type: the store's resource limiter and the
//! CPU budget raise this module's own error types, and [`classify`] reads
//! them (and wasmtime's [`wasmtime::Trap`] and
//! [`wasmtime::component::ResourceTableError`]) back with `downcast_ref`, so
//! a wasmtime upgrade cannot reclassify a limit as a crash without a compile
//! error here. The one cause wasmtime keeps private (hostcall fuel) is matched
//! by its text in [`is_hostcall_fuel`], with its own test.

use crate::Error;
use crate::error::LimitKind;
use std::fmt;

/// The guest used more CPU time than its tenant's `cpu_ms` (raised by the
/// epoch-deadline callback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CpuExhausted;

impl fmt::Display for CpuExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("guest CPU budget exhausted")
    }
}

impl std::error::Error for CpuExhausted {}

/// The guest asked for more linear memory or table space than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GrowthRefused {
    what: &'static str,
    desired: usize,
    limit: usize,
}

impl fmt::Display for GrowthRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "growing {} to {} would pass its limit of {}",
            self.what, self.desired, self.limit
        )
    }
}

impl std::error::Error for GrowthRefused {}

/// The store's resource limiter: memory up to the tenant's `memory_bytes`,
/// tables up to `table_elements`; a refused growth traps (a Rust guest would
/// abort on a failed allocation anyway) with [`GrowthRefused`].
pub(super) struct RunLimiter {
    pub(super) memory_bytes: usize,
    pub(super) table_elements: usize,
}

impl wasmtime::ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = maximum.map_or(self.memory_bytes, |m| m.min(self.memory_bytes));
        if desired > limit {
            return Err(GrowthRefused {
                what: "linear memory (bytes)",
                desired,
                limit,
            }
            .into());
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = maximum.map_or(self.table_elements, |m| m.min(self.table_elements));
        if desired > limit {
            return Err(GrowthRefused {
                what: "a table (elements)",
                desired,
                limit,
            }
            .into());
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error)
    }
}

/// wasmtime's `HostcallFuelExhausted` is private; its message is all there is.
fn is_hostcall_fuel(e: &(dyn std::error::Error + 'static)) -> bool {
    e.to_string()
        .contains("fuel allocated for hostcalls has been exhausted")
}

/// Tells a resource limit from a fault in the guest, by the error's type.
pub(super) fn classify(e: wasmtime::Error, doing: &'static str) -> Error {
    let limit = |kind: LimitKind, detail: String| Error::ResourceLimit { kind, detail };
    if e.chain()
        .any(|c| c.downcast_ref::<CpuExhausted>().is_some())
    {
        return limit(
            LimitKind::Cpu,
            format!("the step used more CPU time than its cpu_ms budget while {doing}"),
        );
    }
    if let Some(refused) = e.chain().find_map(|c| c.downcast_ref::<GrowthRefused>()) {
        return limit(
            LimitKind::Memory,
            format!("the step ran out of memory (memory_bytes) while {doing}: {refused}"),
        );
    }
    if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        return limit(
            LimitKind::Interrupted,
            format!("the step was interrupted while {doing}"),
        );
    }
    let table_full = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    });
    if table_full || e.chain().any(is_hostcall_fuel) {
        return limit(
            LimitKind::HostResources,
            format!("the step exceeded a host resource limit while {doing}: {e:#}"),
        );
    }
    Error::GuestTrap {
        doing,
        source: e.into_boxed_dyn_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_told_apart_by_type() {
        let cpu = classify(wasmtime::Error::new(CpuExhausted), "running");
        // The words users see name the setting.
        assert_eq!(
            cpu.to_string(),
            "the step was stopped: the step used more CPU time than its cpu_ms budget while running"
        );
        assert!(
            matches!(
                &cpu,
                Error::ResourceLimit {
                    kind: LimitKind::Cpu,
                    ..
                }
            ),
            "{cpu}"
        );
        let grown = GrowthRefused {
            what: "linear memory (bytes)",
            desired: 2 << 20,
            limit: 1 << 20,
        };
        let memory = classify(
            wasmtime::Error::new(grown).context("while growing"),
            "running",
        );
        assert!(
            matches!(
                &memory,
                Error::ResourceLimit {
                    kind: LimitKind::Memory,
                    ..
                }
            ),
            "{memory}"
        );
        let full = classify(
            wasmtime::Error::new(wasmtime::component::ResourceTableError::Full),
            "running",
        );
        assert!(
            matches!(
                &full,
                Error::ResourceLimit {
                    kind: LimitKind::HostResources,
                    ..
                }
            ),
            "{full}"
        );
        let trap = classify(
            wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached),
            "running",
        );
        assert!(
            matches!(
                &trap,
                Error::GuestTrap {
                    doing: "running",
                    ..
                }
            ),
            "{trap}"
        );
        assert!(
            std::error::Error::source(&trap).is_some(),
            "the trap is kept as the source"
        );
    }

    /// The text of wasmtime 48's private `HostcallFuelExhausted`.
    #[test]
    fn hostcall_fuel_text() {
        #[derive(Debug)]
        struct Like;
        impl fmt::Display for Like {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("too much data is being copied between the host and the guest: fuel allocated for hostcalls has been exhausted")
            }
        }
        impl std::error::Error for Like {}
        assert!(is_hostcall_fuel(&Like));
    }
}
