//! Builds the fault-injection component (`tests/fault-guest`) from source for
//! the sandbox tests, and with feature `p3-experiment` the two probes of the
//! wasi:http 0.3 experiment (`tests/probes/`); the product's artifact crate
//! never contains them.

fn main() -> anyhow::Result<()> {
    let wasm = https_step_guest_build::component("https-step-fault-guest", &["tests/fault-guest"])?;
    println!("cargo:rustc-env=HTTPS_STEP_FAULT_WASM={}", wasm.display());
    if std::env::var_os("CARGO_FEATURE_P3_EXPERIMENT").is_some() {
        for (package, var) in [
            ("https-step-probe-p2", "HTTPS_STEP_PROBE_P2_WASM"),
            ("https-step-probe-p3", "HTTPS_STEP_PROBE_P3_WASM"),
        ] {
            let wasm = https_step_guest_build::component(package, &["tests/probes"])?;
            println!("cargo:rustc-env={var}={}", wasm.display());
        }
    }
    Ok(())
}
