//! Builds the fault-injection component (`tests/fault-guest`) from source for
//! the sandbox tests; the product's artifact crate never contains it.

fn main() -> anyhow::Result<()> {
    let wasm = https_step_guest_build::component("https-step-fault-guest", &["tests/fault-guest"])?;
    println!("cargo:rustc-env=HTTPS_STEP_FAULT_WASM={}", wasm.display());
    Ok(())
}
