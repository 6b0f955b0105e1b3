//! The pooling allocator's slots: how many, how large, and how a slot is
//! reset between runs.
//!
//! Every run gets a fresh instance in a slot. Resetting a slot with
//! `madvise(MADV_DONTNEED)` (wasmtime's default) throws its pages away, so
//! the next run faults them in again, and the `madvise` itself costs TLB
//! shootdowns on every core. Where it is safe, slots are instead reset with
//! Linux's `PAGEMAP_SCAN` ioctl (kernel 6.7+; wasmtime falls back by itself
//! where it is missing): only the pages a run dirtied are found and reset in
//! place, and they stay resident for the next run.

use wasmtime::{Enabled, PoolingAllocationConfig};

/// Core instances, linear memories and tables of one component: a Rust
/// wasip2 component has 3 core instances; room is left for growth.
const CORE_INSTANCES_PER_RUN: u32 = 8;
const MEMORIES_PER_RUN: u32 = 4;
const TABLES_PER_RUN: u32 = 8;
/// Bytes of a slot's linear memory reset in place and kept resident: a
/// typical step dirties well under this (BENCHMARKS.md); beyond it the rest
/// is `madvise`d as before.
const KEEP_RESIDENT_MEMORY: usize = 4 << 20;
/// The same for a slot's tables.
const KEEP_RESIDENT_TABLE: usize = 256 << 10;

/// The pool for `runs` concurrent runs of at most `max_memory_bytes` of
/// linear memory each.
pub(super) fn pooling(runs: usize, max_memory_bytes: usize) -> PoolingAllocationConfig {
    let n = u32::try_from(runs).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_RUN))
        .total_memories(n.saturating_mul(MEMORIES_PER_RUN))
        .total_tables(n.saturating_mul(TABLES_PER_RUN))
        .max_core_instances_per_component(CORE_INSTANCES_PER_RUN)
        .max_memories_per_component(MEMORIES_PER_RUN)
        .max_tables_per_component(TABLES_PER_RUN)
        .max_memory_size(max_memory_bytes);
    if pagemap_reset_is_safe(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default()) {
        pool.pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE);
    }
    pool
}

/// Whether slots may be reset with `PAGEMAP_SCAN`, judged from
/// `/proc/meminfo`: only without swap. wasmtime 48's scan resets the dirty
/// pages that are present; a dirty page the kernel has swapped out is neither
/// reset nor decommitted, so the next instance in the slot — possibly another
/// tenant's — could read it (bytecodealliance/wasmtime#14357). With swap, an
/// unreadable `/proc/meminfo` or another OS, slots are reset with `madvise`,
/// wasmtime's default. (Without the scan, keeping pages resident would
/// memset the *lowest* bytes of a memory, which for a `--stack-first` wasip2
/// binary is its mostly idle stack, so it is off too.)
fn pagemap_reset_is_safe(meminfo: &str) -> bool {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("SwapTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_kept_resident_only_without_swap() {
        assert!(pagemap_reset_is_safe(
            "MemTotal:       24000000 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
        ));
        assert!(!pagemap_reset_is_safe("SwapTotal:       8388604 kB\n"));
        assert!(!pagemap_reset_is_safe(""), "unknown: the safe default");
        assert!(!pagemap_reset_is_safe("SwapTotal: lots\n"));
    }
}
