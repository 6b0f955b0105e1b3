//! The https-step guest component, built from `guest/` by this crate's build
//! script for `wasm32-wasip2` and embedded here.
//!
//! # How to use
//! ```
//! let wasm: &[u8] = https_step_guest_artifact::WASM;
//! assert_eq!(&wasm[..4], b"\0asm");
//! ```

/// The component's bytes (a WebAssembly component, not a core module).
pub const WASM: &[u8] = include_bytes!(env!("HTTPS_STEP_GUEST_WASM"));

/// A test-only component implementing the same world badly on purpose
/// (`guest/fault`: an infinite loop, a memory bomb, a trap), for sandbox
/// tests. Nothing but tests should load it; a binary that does not refer to
/// it does not contain it.
pub const FAULT_WASM: &[u8] = include_bytes!(env!("HTTPS_STEP_FAULT_WASM"));
