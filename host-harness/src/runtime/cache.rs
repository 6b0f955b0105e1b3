//! The on-disk cache of the compiled component: keyed by the component's
//! SHA-256 and the engine's settings, so a later process loads it in about a
//! millisecond instead of compiling it.

use crate::Error;
use sha2::Digest;
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Loads the precompiled component from `dir`, or compiles and stores it.
pub(super) fn cached_component(
    engine: &Engine,
    wasm: &[u8],
    dir: &Path,
) -> Result<Component, Error> {
    use std::hash::{Hash, Hasher};
    let load = |e: wasmtime::Error| Error::load("compiling the component", e);
    let mut settings = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    let digest = sha2::Sha256::digest(wasm);
    let key: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("https-step-{key}-{:016x}.cwasm", settings.finish()));
    if path.exists() {
        // SAFETY: the file is one this function wrote (below) for exactly
        // these component bytes and engine settings, named by their hashes, in
        // a directory the host operator chose as trusted. wasmtime also checks
        // the engine compatibility header before using it.
        #[allow(unsafe_code, reason = "loading our own precompiled artifact")]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        if let Ok(component) = loaded {
            return Ok(component);
        }
    }
    // Compile once: the precompiled bytes are both cached and loaded.
    let bytes = engine.precompile_component(wasm).map_err(load)?;
    // SAFETY: these bytes were produced by this engine, in this process, a
    // moment ago (`precompile_component`); they are exactly what
    // `deserialize` expects.
    #[allow(unsafe_code, reason = "loading the artifact this engine just produced")]
    let component = unsafe { Component::deserialize(engine, &bytes) }.map_err(load)?;
    // Written under a temporary name and renamed, so a concurrent reader never
    // sees half a file; failing to cache is not an error.
    if std::fs::create_dir_all(dir).is_ok() {
        let tmp = dir.join(format!(".{}.{}", std::process::id(), key));
        if std::fs::write(&tmp, &bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    Ok(component)
}
