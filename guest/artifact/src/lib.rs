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
