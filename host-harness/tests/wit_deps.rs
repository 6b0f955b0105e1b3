//! `wit/deps/` must be byte-identical to the WASI WIT shipped in the pinned
//! wasmtime crates, so the guest and the host agree on WASI 0.2.12: the
//! `wasmtime-wasi-http` crate's files at the top, `wasmtime-wasi-keyvalue`'s
//! `wasi:keyvalue@0.2.0-draft` in `keyvalue/` (that crate is a dev-dependency
//! for this reason alone: the host implements the interface itself, since the
//! crate's store is per `Store` and tokens must be shared by a tenant's runs).
//! `wit/vendor.sh` re-vendors by running this test with `HTTPS_STEP_VENDOR_WIT=1`.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The `wit/deps` directory of the pinned crate `name`: the version
/// `Cargo.lock` pins, in the cargo registry's unpacked sources — which the
/// build itself put there, since both crates are dependencies of this
/// package. Nothing is resolved or downloaded here: `cargo metadata` would
/// need every package of the whole lock file, including what only the
/// non-default members use, which `cargo test` at the root never fetches.
fn crate_wit_deps(name: &str) -> Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text =
        std::fs::read_to_string(workspace.join("Cargo.lock")).context("reading Cargo.lock")?;
    let lock: toml::Table = toml::from_str(&text).context("parsing Cargo.lock")?;
    let versions: Vec<&str> = lock
        .get("package")
        .and_then(toml::Value::as_array)
        .context("Cargo.lock has no packages")?
        .iter()
        .filter(|p| p.get("name").and_then(toml::Value::as_str) == Some(name))
        .filter_map(|p| p.get("version")?.as_str())
        .collect();
    let [version] = versions[..] else {
        bail!("Cargo.lock pins {name} at {versions:?}; expected exactly one version");
    };
    // Where cargo keeps registry sources: $CARGO_HOME, else ~/.cargo.
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|home| home.join(".cargo")))
        .context("neither CARGO_HOME nor a home directory is set")?;
    let sources = cargo_home.join("registry").join("src");
    let dir = std::fs::read_dir(&sources)
        .with_context(|| format!("reading {}", sources.display()))?
        .filter_map(|index| Some(index.ok()?.path().join(format!("{name}-{version}"))))
        .find(|dir| dir.is_dir())
        .with_context(|| {
            format!(
                "{name} {version} is not unpacked under {}",
                sources.display()
            )
        })?;
    Ok(dir.join("wit").join("deps"))
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
