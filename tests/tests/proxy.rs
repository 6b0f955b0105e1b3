//! The tenant's outbound proxy against a real, maintained forward proxy:
//! proxy.py (pinned in `tests/servers/requirements.txt`, provisioned on first
//! use like the httpbin test's server) with basic authentication, on
//! 127.0.0.1 with a port it picks, killed by its process id.
//!
//! Checked: an https target is reached through a CONNECT tunnel (TLS end to
//! end, the proxy logs `CONNECT host:port`), an http target with an
//! absolute-form request (the proxy logs `GET host:port/path`); the target saw
//! each request; an origin the allowlist refuses never reaches the proxy;
//! `no_proxy` goes direct; wrong proxy credentials are a clear error; and the
//! proxy password appears in no output, error or progress line.

use anyhow::{Context as _, Result, bail};
use https_step_host::{StepRuntime, Tenant};
use https_step_tests::loopback::{LoopbackServer, Reply};
use https_step_tests::python::Server;
use https_step_tests::shared::{step_runtime, tokio};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USER: &str = "workflow";
const PASSWORD: &str = "pr0xy-pa55word";

/// The running proxy (killed with its [`Server`]).
struct ForwardProxy {
    _server: Server,
    port: u16,
    log: PathBuf,
}

impl ForwardProxy {
    fn start(dir: &Path) -> Result<ForwardProxy> {
        let (port_file, log) = (dir.join("proxy.port"), dir.join("proxy.log"));
        let auth = format!("{USER}:{PASSWORD}");
        let mut args: Vec<OsString> = [
            "-m",
            "proxy",
            "--hostname",
            "127.0.0.1",
            "--port",
            "0",
            "--num-workers",
            "1",
            "--num-acceptors",
            "1",
        ]
        .into_iter()
        .chain(["--basic-auth", &auth, "--log-level", "INFO", "--port-file"])
        .map(OsString::from)
        .collect();
        args.extend([
            port_file.clone().into(),
            "--log-file".into(),
            log.clone().into(),
        ]);
        let mut server = Server::start(Path::new(env!("CARGO_TARGET_TMPDIR")), &args)?;
        let port = server.await_port(|| {
            std::fs::read_to_string(&port_file)
                .ok()?
                .trim()
                .parse()
                .ok()
        })?;
        Ok(ForwardProxy {
            _server: server,
            port,
            log,
        })
    }

    /// The access-log lines so far.
    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("access_log"))
            .map(str::to_string)
            .collect()
    }

    /// Waits (the proxy's worker writes its log after the connection ends)
    /// for an access-log line containing `needle`.
    fn wait_for(&self, needle: &str) -> Result<String> {
        let started = Instant::now();
        loop {
            if let Some(line) = self.log_lines().into_iter().find(|l| l.contains(needle)) {
                return Ok(line);
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!(
                    "the proxy never logged {needle:?}; its log: {:?}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn run(
    runtime: &StepRuntime,
    tenant: &Arc<Tenant>,
    url: &str,
    lines: &Arc<Mutex<Vec<String>>>,
) -> Result<u16, String> {
    let config =
        https_step_core::parse_step_config(&format!(r#"{{"url": "{url}", "timeout_ms": 10000}}"#))
            .config;
    let sink = lines.clone();
    let progress = Arc::new(move |line: &str| sink.lock().expect("lines").push(line.to_string()));
    let result = match runtime.run(tenant, &config, "{}", progress).await {
        Ok(Ok(outcome)) => Ok(outcome.response.map_or(0, |r| r.status)),
        Ok(Err(failure)) => Err(format!("{}: {}", failure.error.kind(), failure.error)),
        Err(host) => Err(host.to_string()),
    };
    lines.lock().expect("lines").push(format!("{result:?}"));
    result
}

#[test]
fn requests_go_through_a_real_forward_proxy_and_refused_origins_never_reach_it() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("https-step-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let proxy = ForwardProxy::start(&dir)?;
    let result = tokio().block_on(async {
        let reply = Arc::new(|_: &_| Reply::json(200, &serde_json::json!({"via": "proxy?"})));
        let https = LoopbackServer::https(reply.clone()).await?;
        let http = LoopbackServer::http(reply.clone()).await?;
        let refused = LoopbackServer::http(reply).await?;
        let proxy_url = format!("http://{USER}:{PASSWORD}@127.0.0.1:{}", proxy.port);
        let ca = https
            .ca_pem()
            .context("the https server's certificate")?
            .to_string();
        let tenant = |proxy_url: &str, no_proxy: &[String]| -> Result<Arc<Tenant>> {
            Ok(Arc::new(
                Tenant::builder("proxied")
                    .allow(&https.origin())?
                    .allow(&http.origin())?
                    .ca_certs_pem(ca.as_bytes())?
                    .proxy(proxy_url, no_proxy)?
                    .build()?,
            ))
        };
        let lines = Arc::new(Mutex::new(Vec::new()));
        let proxied = tenant(&proxy_url, &[])?;

        assert_eq!(
            run(
                step_runtime(),
                &proxied,
                &format!("{}/tunnel", https.origin()),
                &lines
            )
            .await,
            Ok(200)
        );
        proxy.wait_for(&format!("CONNECT 127.0.0.1:{}", https.port()))?;
        assert_eq!(
            https.requests().len(),
            1,
            "the https target saw the request through the tunnel"
        );

        assert_eq!(
            run(
                step_runtime(),
                &proxied,
                &format!("{}/plain?q=1", http.origin()),
                &lines
            )
            .await,
            Ok(200)
        );
        proxy.wait_for(&format!("GET 127.0.0.1:{}/plain", http.port()))?;
        let seen = http.requests();
        assert_eq!(seen.len(), 1);
        assert!(
            seen[0].header_values("proxy-authorization").is_empty(),
            "the proxy consumed its credentials"
        );

        // Not in the allowlist: refused before the proxy is contacted.
        let err = run(
            step_runtime(),
            &proxied,
            &format!("{}/nope", refused.origin()),
            &lines,
        )
        .await
        .expect_err("refused origin");
        assert!(err.starts_with("denied:"), "{err}");
        std::thread::sleep(Duration::from_millis(500));
        let refused_port = format!(":{}", refused.port());
        assert!(
            proxy.log_lines().iter().all(|l| !l.contains(&refused_port)),
            "{:?}",
            proxy.log_lines()
        );
        assert!(refused.requests().is_empty());

        // no_proxy: straight to the target, the proxy sees nothing new.
        let before = proxy.log_lines().len();
        let direct = tenant(&proxy_url, &["127.0.0.1".to_string()])?;
        assert_eq!(
            run(
                step_runtime(),
                &direct,
                &format!("{}/direct", http.origin()),
                &lines
            )
            .await,
            Ok(200)
        );
        assert_eq!(http.requests().len(), 2);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(proxy.log_lines().len(), before, "{:?}", proxy.log_lines());

        // Wrong credentials: the CONNECT is refused with 407, said plainly.
        let wrong = tenant(
            &format!("http://{USER}:wrong-password@127.0.0.1:{}", proxy.port),
            &[],
        )?;
        let err = run(
            step_runtime(),
            &wrong,
            &format!("{}/tunnel", https.origin()),
            &lines,
        )
        .await
        .expect_err("407");
        assert!(err.contains("requires authentication (407)"), "{err}");
        assert_eq!(https.requests().len(), 1);

        let printed = lines.lock().expect("lines").join("\n");
        for secret in [PASSWORD, "wrong-password"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
        anyhow::Ok(())
    });
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn policy_files_name_the_proxy_and_bad_entries_are_load_errors() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("https-step-proxy-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let load = |text: &str| {
        let path = dir.join("policy.toml");
        std::fs::write(&path, text).expect("write");
        Tenant::from_policy_file(&path)
            .and_then(|b| b.build())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        load(
            "proxy = \"http://u:p@proxy.internal:3128\"\nno_proxy = [\"corp.test\", \"10.0.0.0/8\"]\n"
        ),
        Ok(())
    );
    let err = load("proxy = \"https://u:s3cret-pw@proxy.internal\"\n").expect_err("https proxy");
    assert!(
        err.contains("not supported") && !err.contains("s3cret-pw"),
        "{err}"
    );
    assert!(
        load("proxy = \"http://p:1\"\nno_proxy = [\"bad name!\"]\n")
            .expect_err("entry")
            .contains("no_proxy")
    );
    assert!(
        load("no_proxy = [\"corp.test\"]\n")
            .expect_err("no proxy")
            .contains("no proxy")
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
