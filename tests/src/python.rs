//! The Python servers the tests run (httpbin on Werkzeug, proxy.py): a
//! virtual environment under `target/` with the packages pinned in
//! `tests/servers/requirements.txt`, made on first use (Python comes with the
//! machine image) and reused by later runs.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const REQUIREMENTS: &str = include_str!("../servers/requirements.txt");

/// The virtual environment with the pinned packages, made once per
/// requirements file (its hash names the directory) next to `target_tmp`
/// (an integration test's `CARGO_TARGET_TMPDIR`, i.e. `target/tmp`).
pub fn venv(target_tmp: &Path) -> Result<PathBuf> {
    use sha2::Digest as _;
    // Test binaries of one run may ask at once; one installs.
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one = INSTALLING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let hash = hex::encode(&sha2::Sha256::digest(REQUIREMENTS.as_bytes())[..8]);
    let dir = target_tmp.join("..").join("py-servers").join(hash);
    let done = dir.join("installed");
    if done.exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let run = |cmd: &mut Command| -> Result<()> {
        let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
        if !out.status.success() {
            bail!("{cmd:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/requirements.txt");
    run(Command::new(dir.join("bin/pip"))
        .args(["install", "--no-input", "--disable-pip-version-check", "--quiet", "-r"])
        .arg(&requirements))?;
    std::fs::write(&done, REQUIREMENTS)?;
    Ok(dir)
}
