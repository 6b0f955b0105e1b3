//! The Python servers the tests run (httpbin and a multipart echo on
//! Werkzeug, proxy.py): a virtual environment under `target/` with the
//! packages pinned in `tests/servers/requirements.txt`, made on first use
//! (Python comes with the machine image) and reused by later runs, and the
//! [`Server`] processes started from it.

use crate::shared::ProcessGroup;
use anyhow::{Context as _, Result, bail};
use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A server process run by the virtual environment's Python, killed with
/// its process group (proxy.py's workers included) when dropped.
pub struct Server {
    group: ProcessGroup,
}

impl Server {
    /// Runs `python <args>` (stdout piped, stderr discarded); `target_tmp`
    /// as for [`venv`].
    pub fn start<S: AsRef<OsStr>>(target_tmp: &Path, args: &[S]) -> Result<Server> {
        let python = venv(target_tmp)?.join("bin/python");
        let group = ProcessGroup::spawn(
            Command::new(python)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .with_context(|| {
            format!(
                "starting python {:?}",
                args.iter().map(AsRef::as_ref).collect::<Vec<_>>()
            )
        })?;
        Ok(Server { group })
    }

    /// The port the server printed as the first line of its stdout.
    pub fn printed_port(&mut self) -> Result<u16> {
        let stdout = self.group.child().stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        line.trim()
            .parse()
            .with_context(|| format!("the server printed {line:?}, not its port"))
    }

    /// Polls `read` until it gives the port, while the process lives (at most 30 s).
    pub fn await_port(&mut self, read: impl Fn() -> Option<u16>) -> Result<u16> {
        let started = Instant::now();
        loop {
            if let Some(port) = read() {
                return Ok(port);
            }
            if let Some(status) = self.group.child().try_wait()? {
                bail!("the server exited with {status}");
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the server gave no port within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

const REQUIREMENTS: &str = include_str!("../servers/requirements.txt");

/// The virtual environment with the pinned packages, made once per
/// requirements file (its hash names the directory) next to `target_tmp`
/// (an integration test's `CARGO_TARGET_TMPDIR`, i.e. `target/tmp`).
pub fn venv(target_tmp: &Path) -> Result<PathBuf> {
    use sha2::Digest as _;
    // Test binaries of one run may ask at once; one installs.
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one = INSTALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let hash = hex::encode(&sha2::Sha256::digest(REQUIREMENTS.as_bytes())[..8]);
    let dir = target_tmp.join("..").join("py-servers").join(hash);
    let done = dir.join("installed");
    if done.exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let run = crate::shared::command_output;
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/requirements.txt");
    run(Command::new(dir.join("bin/pip"))
        .args([
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "--quiet",
            "-r",
        ])
        .arg(&requirements))?;
    std::fs::write(&done, REQUIREMENTS)?;
    Ok(dir)
}
