//! Builds a component of this workspace from source, for build scripts: a
//! nested `cargo build`, as wasmtime's `test-programs/artifacts` does. The
//! product's artifact crate (`guest/artifact`) builds the step and the
//! service with it; the test suite (`tests/`) builds its fault-injection
//! component and the experiment's probes, so the product embeds only the
//! product.
//!
//! # How to use
//! In a `build.rs`:
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let wasm = https_step_guest_build::component("https-step-guest", &["guest/src", "guest/Cargo.toml"])?;
//! println!("cargo:rustc-env=HTTPS_STEP_GUEST_WASM={}", wasm.display());
//! # Ok(()) }
//! ```

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `package` (a `cdylib` crate of this workspace) for `wasm32-wasip2`
/// with the `guest` profile and copies the component into `OUT_DIR`; returns
/// its path there. `inputs` are the workspace paths whose change rebuilds it
/// (the WIT, the root manifest and lock file are always included).
pub fn component(package: &str, inputs: &[&str]) -> Result<PathBuf> {
    let built = build(package, "wasm32-wasip2", inputs)?;
    let dest = out_file(package)?;
    std::fs::copy(&built, &dest).with_context(|| format!("copying {}", built.display()))?;
    Ok(dest)
}

/// Builds `package` for `wasm32-unknown-unknown` and makes the core module a
/// component from the worlds its bindings embed (wit-component, as
/// `wasm-tools component new` does); returns its path in `OUT_DIR`. Without
/// a libc, the component imports exactly the interfaces its code calls —
/// on `wasm32-wasip2` the standard library's libc adds `wasi:cli/environment`,
/// `exit`, the terminal interfaces and `wasi:random/insecure-seed`, which the
/// `wasi:http/proxy` world does not offer.
pub fn proxy_component(package: &str, inputs: &[&str]) -> Result<PathBuf> {
    let built = build(package, "wasm32-unknown-unknown", inputs)?;
    let module = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .with_context(|| format!("making a component of {}", built.display()))?;
    let dest = out_file(package)?;
    std::fs::write(&dest, component).with_context(|| format!("writing {}", dest.display()))?;
    Ok(dest)
}

/// `OUT_DIR/<package>.wasm`.
fn out_file(package: &str) -> Result<PathBuf> {
    Ok(
        PathBuf::from(std::env::var("OUT_DIR")?)
            .join(format!("{}.wasm", package.replace('-', "_"))),
    )
}

/// Runs the nested build of `package` for `target`; the built file's path.
fn build(package: &str, target: &str, inputs: &[&str]) -> Result<PathBuf> {
    let root = workspace_root()?;
    for path in inputs.iter().chain(&["wit", "Cargo.toml", "Cargo.lock"]) {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    ensure_target_installed(target)?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // One target directory for every component, beside the outer build's
    // (`target/wasm-guests`), so their common dependencies compile once.
    let target_dir = out_dir.ancestors().nth(4).map_or_else(
        || out_dir.join("target"),
        |target| target.join("wasm-guests"),
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--package",
            package,
            "--target",
            target,
            "--profile",
            "guest",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // The host's flags are not meant for the guest.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .with_context(|| format!("running the nested cargo build of {package}"))?;
    if !status.success() {
        bail!("building the component {package} failed (see the output above)");
    }
    Ok(target_dir
        .join(target)
        .join("guest")
        .join(format!("{}.wasm", package.replace('-', "_"))))
}

/// The workspace root: the nearest ancestor of the calling package whose
/// `Cargo.toml` declares `[workspace]`.
fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    manifest_dir
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|m| m.contains("[workspace]"))
        })
        .map(Path::to_path_buf)
        .context("no workspace root above the package")
}

/// Installs `target`'s standard library when it is missing: cargo does not
/// do it by itself (these machines set RUSTUP_AUTO_INSTALL=0), and the error
/// it gives otherwise ("can't find crate for `core`") helps nobody.
fn ensure_target_installed(target: &str) -> Result<()> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .with_context(|| format!("asking rustc for the {target} library directory"))?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if has_libcore(&libdir) {
        return Ok(());
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", target]);
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &toolchain]);
    }
    let status = cmd
        .status()
        .with_context(|| format!("running `rustup target add {target}`"))?;
    if !status.success() {
        bail!("the {target} target is missing and `rustup target add {target}` failed");
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
