//! The https-step components, built from source by this crate's build
//! script and embedded here: the step (`guest/`, world `https-step`) and the
//! HTTP service (`guest/service/`, world `https-step-service`).
//!
//! # How to use
//! ```
//! let wasm: &[u8] = https_step_guest_artifact::WASM;
//! assert_eq!(&wasm[..4], b"\0asm");
//! ```

/// The step component's bytes (a WebAssembly component, not a core module).
pub const WASM: &[u8] = include_bytes!(env!("HTTPS_STEP_GUEST_WASM"));

/// The service component's bytes: exports `wasi:http/incoming-handler`, for
/// `wasmtime serve` and other engines of the `wasi:http/proxy` world.
pub const SERVICE_WASM: &[u8] = include_bytes!(env!("HTTPS_STEP_SERVICE_WASM"));
