//! Builds the two components from source (with `https-step-guest-build`)
//! and hands their paths to `src/lib.rs`: the step (`guest/`, for
//! `wasm32-wasip2`) and the HTTP service (`guest/service/`, for
//! `wasm32-unknown-unknown`, made a component of the proxy world). Lives in
//! a crate with no dependencies so that it runs while wasmtime is still
//! compiling.

fn main() -> anyhow::Result<()> {
    let step = https_step_guest_build::component(
        "https-step-guest",
        &[
            "guest/src",
            "guest/build.rs",
            "guest/Cargo.toml",
            "guest/wasi",
            "guest/core/src",
            "guest/core/Cargo.toml",
        ],
    )?;
    println!("cargo:rustc-env=HTTPS_STEP_GUEST_WASM={}", step.display());
    let service = https_step_guest_build::proxy_component(
        "https-step-service",
        &[
            "guest/service",
            "guest/wasi",
            "guest/core/src",
            "guest/core/Cargo.toml",
        ],
    )?;
    println!(
        "cargo:rustc-env=HTTPS_STEP_SERVICE_WASM={}",
        service.display()
    );
    Ok(())
}
