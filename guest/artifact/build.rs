//! Builds the two components from source (with `https-step-guest-build`)
//! and hands their paths to `src/lib.rs`: the step (`guest/`, for
//! `wasm32-wasip2`) and the HTTP service (`guest/service/`, for
//! `wasm32-unknown-unknown`, made a component of the proxy world). Lives in
//! a crate with no dependencies so that it runs while wasmtime is still
//! compiling.

/// What both components are built from besides their own crates: the
/// transport and the pure core with its derive.
const SHARED: [&str; 4] = [
    "guest/wasi",
    "guest/core/src",
    "guest/core/Cargo.toml",
    "guest/core/derive",
];

fn main() -> anyhow::Result<()> {
    let own = ["guest/src", "guest/build.rs", "guest/Cargo.toml"];
    let step =
        https_step_guest_build::component("https-step-guest", &[&own[..], &SHARED].concat())?;
    println!("cargo:rustc-env=HTTPS_STEP_GUEST_WASM={}", step.display());
    let service = https_step_guest_build::proxy_component(
        "https-step-service",
        &[&["guest/service"][..], &SHARED].concat(),
    )?;
    println!(
        "cargo:rustc-env=HTTPS_STEP_SERVICE_WASM={}",
        service.display()
    );
    Ok(())
}
