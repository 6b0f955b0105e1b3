//! Builds the guest component from source for `wasm32-wasip2` (with
//! `https-step-guest-build`) and hands its path to `src/lib.rs`. Lives in a
//! crate with no dependencies so that it runs while wasmtime is still
//! compiling.

fn main() -> anyhow::Result<()> {
    let wasm = https_step_guest_build::component(
        "https-step-guest",
        &["guest/src", "guest/build.rs", "guest/Cargo.toml", "guest/core/src", "guest/core/Cargo.toml"],
    )?;
    println!("cargo:rustc-env=HTTPS_STEP_GUEST_WASM={}", wasm.display());
    Ok(())
}
