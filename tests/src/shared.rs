//! Process-wide fixtures for the library-level integration tests — one tokio
//! runtime and one step runtime per test binary, since building a
//! `StepRuntime` (engine, pool, component) is the expensive part — and this
//! process's memory figures for the benchmark, soak and bound tests, and the
//! runner of the tools the tests provision.

use anyhow::{Context as _, bail};
use https_step_host::StepRuntime;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// A multi-threaded tokio runtime shared by the tests of one binary.
pub fn tokio() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio")
    })
}

/// A step runtime with the embedded component and default settings.
pub fn step_runtime() -> &'static StepRuntime {
    static RT: OnceLock<StepRuntime> = OnceLock::new();
    RT.get_or_init(|| StepRuntime::builder().build().expect("runtime"))
}

/// A `kB` field of `/proc/self/status` (`VmRSS:` now, `VmHWM:` peak), in
/// KiB; 0 where it cannot be read.
pub fn status_kib(field: &str) -> u64 {
    proc_status_kib("self", field)
}

/// A `kB` field of `/proc/<process>/status`; 0 where it cannot be read.
fn proc_status_kib(process: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Minor page faults this process has taken so far (`minflt`, the tenth
/// field of `/proc/self/stat`); 0 where it cannot be read.
pub fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(7)?.parse().ok())
        .unwrap_or(0)
}

/// Resets this process's peak RSS (`VmHWM:`) to its current RSS, so a later
/// reading is the peak of what ran in between (Linux `clear_refs`, value 5).
/// Returns false where the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs `cmd` to its end (a tool the tests provision: pip, npm, jco, node);
/// its standard output, or an error with both of its outputs.
pub fn command_output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The npm packages pinned by `sources/package-lock.json` (a directory under
/// `tests/hosts/`), installed with `npm ci` on first use into
/// `target/npm/<hash of the lock file>` (`target_tmp` is an integration
/// test's `CARGO_TARGET_TMPDIR`, i.e. `target/tmp`) and reused while the lock file stays
/// the same; that directory. Install scripts are not run: the packages used
/// here need none (their binaries ship in platform packages), and some
/// dependencies' scripts only report usage over the network.
pub fn npm_packages(sources: &Path, target_tmp: &Path) -> anyhow::Result<PathBuf> {
    use sha2::Digest as _;
    // Tests of one binary run in parallel threads: one installs at a time.
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
    let lock = std::fs::read(sources.join("package-lock.json"))
        .with_context(|| format!("reading {}", sources.display()))?;
    let dir = target_tmp
        .join("../npm")
        .join(hex::encode(&sha2::Sha256::digest(&lock)[..8]));
    if !dir.join("installed").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(sources.join(file), dir.join(file))?;
        }
        command_output(
            Command::new("npm")
                .args([
                    "ci",
                    "--ignore-scripts",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                ])
                .current_dir(&dir),
        )?;
        std::fs::write(dir.join("installed"), &lock)?;
    }
    Ok(dir)
}

/// One HTTP/1.1 exchange over a keep-alive client shared by the process,
/// within 120 s: the status, the headers and the body as text. For tests
/// that drive a server on 127.0.0.1 (restate-server, `wasmtime serve`).
pub async fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> anyhow::Result<(u16, http::HeaderMap, String)> {
    use http_body_util::BodyExt as _;
    type Client = hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >;
    static CLIENT: OnceLock<Client> = OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http()
    });
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(http_body_util::Full::new(bytes::Bytes::from(
        body.unwrap_or_default(),
    )))?;
    let answer = async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await?.to_bytes();
        anyhow::Ok((
            parts.status.as_u16(),
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    };
    tokio::time::timeout(std::time::Duration::from_secs(120), answer)
        .await
        .context("no answer within 120 s")?
}

/// A process a test started, as the leader of a process group of its own:
/// killed (SIGKILL) with every process it started in turn (proxy.py's
/// workers, a shell's children) and reaped when dropped, so a test never
/// leaves a server behind.
pub struct ProcessGroup {
    child: Child,
}

impl ProcessGroup {
    /// Starts `cmd` in a new process group.
    pub fn spawn(cmd: &mut Command) -> anyhow::Result<ProcessGroup> {
        use std::os::unix::process::CommandExt as _;
        let child = cmd
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", cmd.get_program().to_string_lossy()))?;
        Ok(ProcessGroup { child })
    }

    /// The group leader.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The leader's process id (the group's id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the whole group now (SIGKILL) and reaps the leader.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        use rustix::process::{Pid, Signal, kill_process_group};
        let group = i32::try_from(self.child.id())
            .ok()
            .and_then(Pid::from_raw)
            .context("a process id out of range")?;
        // The group is gone already when its last process has exited.
        match kill_process_group(group, Signal::KILL) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => return Err(e).context("killing the process group"),
        }
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A process a test started (an engine, a server), its stdout and stderr
/// appended to a log file; killed (SIGKILL) with its process group and
/// reaped when dropped.
pub struct ChildProcess {
    group: ProcessGroup,
    log: PathBuf,
}

impl ChildProcess {
    /// Starts `cmd` with no stdin and its output appended to `log`.
    pub fn start(cmd: &mut Command, log: PathBuf) -> anyhow::Result<ChildProcess> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let group = ProcessGroup::spawn(
            cmd.stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out),
        )?;
        Ok(ChildProcess { group, log })
    }

    /// Kills the process and its group now (SIGKILL) and reaps it.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.group.kill()
    }

    /// The process's resident memory now, in MiB (0 where it cannot be read).
    pub fn rss_mib(&self) -> f64 {
        proc_status_kib(&self.group.id().to_string(), "VmRSS:") as f64 / 1024.0
    }

    /// The last `n` lines of its log, headed by the log's file name.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(n).collect();
        let name = self
            .log
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default();
        format!(
            "{name}, last lines:\n{}",
            lines.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// Waits up to `limit` until it accepts connections at `addr`; the log's
    /// tail in the error when it does not.
    pub fn wait_listening(
        &self,
        addr: std::net::SocketAddr,
        limit: Duration,
    ) -> anyhow::Result<()> {
        wait_for(limit, &format!("a listener on {addr}"), || {
            Ok(std::net::TcpStream::connect(addr).is_ok())
        })
        .with_context(|| self.log_tail(30))
    }
}

/// Polls `ready` every 100 ms until it holds or `limit` passes (an error of
/// `ready` counts as not yet).
pub fn wait_for(
    limit: Duration,
    what: &str,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if ready().unwrap_or(false) {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("waited {limit:?} for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A JSON document in a file of the system's temporary directory (named
/// after `prefix`, this process and a counter), removed when dropped: the
/// step and context files handed to a command line.
pub struct TempJson(PathBuf);

impl TempJson {
    /// Writes `value` to a new file.
    pub fn new(prefix: &str, value: &serde_json::Value) -> anyhow::Result<TempJson> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}.json",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, value.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(TempJson(path))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempJson {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A free port on 127.0.0.1 (bound, then released for a child process to take).
pub fn free_port() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}
