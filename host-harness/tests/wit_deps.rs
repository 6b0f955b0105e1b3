//! `wit/deps/` must be byte-identical to the WASI WIT shipped in the pinned
//! `wasmtime-wasi-http` crate, so the guest and the host agree on WASI 0.2.12.
//! `wit/vendor.sh` re-vendors by running this test with `HTTPS_STEP_VENDOR_WIT=1`.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The directory of the pinned wasmtime-wasi-http sources, from `cargo metadata`.
fn wasi_http_wit_deps() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only this platform's packages: the others (Windows crates) may not be
    // downloaded, and --offline must not need them.
    let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV names no host")?;
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let package = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "wasmtime-wasi-http"))
        .context("wasmtime-wasi-http is not in the dependency graph")?;
    let manifest = PathBuf::from(package["manifest_path"].as_str().context("manifest_path")?);
    Ok(manifest.parent().context("crate dir")?.join("wit").join("deps"))
}

fn wit_files(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wit"))
        .collect();
    names.sort();
    Ok(names)
}

#[test]
fn vendored_wasi_wit_matches_the_pinned_crate() -> Result<()> {
    let upstream = wasi_http_wit_deps()?;
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/deps");
    let vendor = std::env::var_os("HTTPS_STEP_VENDOR_WIT").is_some();
    let names = wit_files(&upstream)?;
    assert_eq!(names.len(), 7, "cli, clocks, filesystem, http, io, random, sockets: {names:?}");
    if vendor {
        for stale in wit_files(&ours)? {
            std::fs::remove_file(ours.join(stale))?;
        }
    }
    for name in &names {
        let theirs = std::fs::read(upstream.join(name))?;
        if vendor {
            std::fs::write(ours.join(name), &theirs)?;
        }
        let mine = std::fs::read(ours.join(name)).with_context(|| format!("wit/deps/{name} is missing; run wit/vendor.sh"))?;
        assert!(mine == theirs, "wit/deps/{name} differs from {}; run wit/vendor.sh", upstream.display());
    }
    assert_eq!(wit_files(&ours)?, names, "wit/deps holds files the pinned crate does not; run wit/vendor.sh");
    Ok(())
}
