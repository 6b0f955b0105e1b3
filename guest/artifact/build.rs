//! Builds the guest component from source for `wasm32-wasip2` with a nested
//! `cargo build`, as wasmtime's `test-programs/artifacts` does, and hands its
//! path to `src/lib.rs`. Lives in a crate with no dependencies so that it runs
//! while wasmtime is still compiling.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .context("guest/artifact is two levels below the workspace root")?
        .to_path_buf();
    for path in ["guest/src", "guest/Cargo.toml", "guest/core/src", "guest/core/Cargo.toml", "guest/fault", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    ensure_target_installed()?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let target_dir = out_dir.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--package", "https-step-guest", "--package", "https-step-fault-guest"])
        .args(["--target", TARGET, "--profile", "guest"])
        .arg("--target-dir")
        .arg(&target_dir)
        // The host's flags are not meant for the guest.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("running the nested cargo build of the guest")?;
    if !status.success() {
        bail!("building the guest component failed (see the output above)");
    }
    for (file, var) in [("https_step_guest.wasm", "HTTPS_STEP_GUEST_WASM"), ("https_step_fault_guest.wasm", "HTTPS_STEP_FAULT_WASM")] {
        let wasm = target_dir.join(TARGET).join("guest").join(file);
        let dest = out_dir.join(file);
        std::fs::copy(&wasm, &dest).with_context(|| format!("copying {}", wasm.display()))?;
        println!("cargo:rustc-env={var}={}", dest.display());
    }
    Ok(())
}

/// Installs the wasm32-wasip2 standard library when it is missing: cargo does
/// not do it by itself (these machines set RUSTUP_AUTO_INSTALL=0), and the
/// error it gives otherwise ("can't find crate for `core`") helps nobody.
fn ensure_target_installed() -> Result<()> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .context("asking rustc for the wasm32-wasip2 library directory")?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if has_libcore(&libdir) {
        return Ok(());
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &toolchain]);
    }
    let status = cmd.status().context("running `rustup target add wasm32-wasip2`")?;
    if !status.success() {
        bail!("the {TARGET} target is missing and `rustup target add {TARGET}` failed");
    }
    Ok(())
}

fn has_libcore(libdir: &Path) -> bool {
    std::fs::read_dir(libdir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
    })
}
