//! `wit/deps/` must be byte-identical to the WASI WIT shipped in the pinned
//! wasmtime crates, so the guest and the host agree on WASI 0.2.12: the
//! `wasmtime-wasi-http` crate's files at the top, `wasmtime-wasi-keyvalue`'s
//! `wasi:keyvalue@0.2.0-draft` in `keyvalue/` (that crate is a dev-dependency
//! for this reason alone: the host implements the interface itself, since the
//! crate's store is per `Store` and tokens must be shared by a tenant's runs).
//! `wit/vendor.sh` re-vendors by running this test with `HTTPS_STEP_VENDOR_WIT=1`.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The `wit/deps` directory of the pinned crate `name`, from `cargo metadata`.
fn crate_wit_deps(name: &str) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only this platform's packages: the others (Windows crates) may not be
    // downloaded, and --offline must not need them.
    let rustc =
        std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("-vV")
            .output()
            .context("running rustc -vV")?;
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV names no host")?;
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &host,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let package = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .with_context(|| format!("{name} is not in the dependency graph"))?;
    let manifest = PathBuf::from(package["manifest_path"].as_str().context("manifest_path")?);
    Ok(manifest
        .parent()
        .context("crate dir")?
        .join("wit")
        .join("deps"))
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

/// Makes (or, when vendoring, first rewrites) `ours` a copy of `upstream`'s `.wit` files.
fn same_files(upstream: &Path, ours: &Path, expected: usize) -> Result<()> {
    let vendor = std::env::var_os("HTTPS_STEP_VENDOR_WIT").is_some();
    let names = wit_files(upstream)?;
    assert_eq!(names.len(), expected, "{}: {names:?}", upstream.display());
    if vendor {
        std::fs::create_dir_all(ours)?;
        for stale in wit_files(ours)? {
            std::fs::remove_file(ours.join(stale))?;
        }
    }
    for name in &names {
        let theirs = std::fs::read(upstream.join(name))?;
        if vendor {
            std::fs::write(ours.join(name), &theirs)?;
        }
        let mine = std::fs::read(ours.join(name)).with_context(|| {
            format!(
                "{} is missing; run wit/vendor.sh",
                ours.join(name).display()
            )
        })?;
        assert!(
            mine == theirs,
            "{} differs from {}; run wit/vendor.sh",
            ours.join(name).display(),
            upstream.display()
        );
    }
    assert_eq!(
        wit_files(ours)?,
        names,
        "{} holds files the pinned crate does not; run wit/vendor.sh",
        ours.display()
    );
    Ok(())
}

#[test]
fn vendored_wasi_wit_matches_the_pinned_crates() -> Result<()> {
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/deps");
    // cli, clocks, filesystem, http, io, random, sockets.
    same_files(&crate_wit_deps("wasmtime-wasi-http")?, &ours, 7)?;
    // atomic, batch, store, watch, world.
    same_files(
        &crate_wit_deps("wasmtime-wasi-keyvalue")?.join("keyvalue"),
        &ours.join("keyvalue"),
        5,
    )
}
