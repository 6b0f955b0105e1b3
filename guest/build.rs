//! Link settings of the component's core module.

fn main() {
    // Start with 2 MiB of linear memory, at least what a typical step uses at
    // its peak (1.4 MiB for the benchmark's signed JSON POST, BENCHMARKS.md),
    // so a run rarely calls `memory.grow`: with pool slots kept resident
    // between runs (host-harness `runtime/slots.rs`), each grow is an
    // `mprotect` and page faults that the initial size avoids.
    println!("cargo:rustc-link-arg-cdylib=--initial-memory={}", 2 << 20);
}
