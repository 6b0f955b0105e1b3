//! The step against a widely used server nobody on this project wrote:
//! httpbin on Werkzeug's threaded server (the stack under many Python
//! services), over HTTPS with a self-signed CA:TRUE certificate made the way
//! `openssl req -x509` makes one, pinned with `--ca-cert`.
//!
//! The server is provisioned on first use ([`https_step_tests::python::venv`]:
//! a virtual environment under `target/` with the packages pinned in
//! `tests/servers/requirements.txt`), reused by later runs. The server binds
//! 127.0.0.1 on a port the OS picks and is killed by its process id.

use anyhow::{Context as _, Result, bail};
use https_step_host::StepRuntime;
use https_step_tests::run_cli;
use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The running server; killed by its process id when dropped.
struct Httpbin {
    child: Child,
    port: u16,
}

impl Drop for Httpbin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> Result<Httpbin> {
    // What `openssl req -x509 -addext subjectAltName=IP:127.0.0.1` makes:
    // self-signed, basicConstraints CA:TRUE, the IP as a SAN.
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    std::fs::write(dir.join("cert.pem"), cert.pem())?;
    std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    let python = https_step_tests::python::venv(Path::new(env!("CARGO_TARGET_TMPDIR")))?.join("bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/httpbin_server.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(dir.join("cert.pem"))
        .arg(dir.join("key.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting httpbin")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line.trim().parse().with_context(|| format!("httpbin printed {line:?}, not its port"))?;
    Ok(Httpbin { child, port })
}

/// Runs one step through the CLI code path; the output JSON.
async fn step(runtime: &StepRuntime, dir: &Path, origin: &str, config: Value) -> Result<Value> {
    let path = dir.join("step.json");
    std::fs::write(&path, config.to_string())?;
    let ca = dir.join("cert.pem");
    let args: Vec<String> = ["run", &path.display().to_string(), "--allow", origin, "--ca-cert", &ca.display().to_string()]
        .map(String::from)
        .to_vec();
    let run = run_cli(runtime, &args).await;
    let out: Value = serde_json::from_str(run.stdout.trim()).with_context(|| format!("stdout {:?}, stderr {:?}", run.stdout, run.stderr))?;
    if run.exit != 0 {
        bail!("step {config} failed: {out:#}\n{}", run.stderr);
    }
    Ok(out)
}

fn header<'a>(out: &'a Value, name: &str) -> Option<&'a str> {
    out["headers"].as_array()?.iter().find(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))?[1].as_str()
}

#[test]
fn every_method_body_coding_and_a_pinned_self_signed_certificate_work_against_werkzeug_httpbin() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("https-step-httpbin-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let server = start(&dir)?;
    let origin = format!("https://127.0.0.1:{}", server.port);
    let runtime = https_step_tests::shared::step_runtime();
    let result = https_step_tests::shared::tokio().block_on(async {
        let url = format!("{origin}/anything/x");
        // httpbin echoes what Werkzeug parsed: method, headers, raw data, form, JSON.
        let get = step(runtime, &dir, &origin, json!({"url": url, "query": [{"key": "q", "value": "a b"}]})).await?;
        assert_eq!((get["status"].as_u64(), get["json"]["method"].as_str()), (Some(200), Some("GET")), "{get:#}");
        assert_eq!(get["json"]["args"], json!({"q": "a b"}));
        for framing in ["Content-Length", "Transfer-Encoding"] {
            assert!(get["json"]["headers"].get(framing).is_none(), "GET sent {framing}: {get:#}");
        }

        for (method, body, echoed) in [
            ("POST", json!({"json": {"sku": "A-1", "qty": 2}}), ("json", json!({"sku": "A-1", "qty": 2}))),
            ("PUT", json!({"form": [{"key": "name", "value": "Ada Lovelace"}]}), ("form", json!({"name": "Ada Lovelace"}))),
            ("PATCH", json!({"text": "plain words", "content_type": "text/plain"}), ("data", json!("plain words"))),
            ("DELETE", json!({"json": {"ids": [1, 2]}}), ("json", json!({"ids": [1, 2]}))),
        ] {
            let out = step(runtime, &dir, &origin, json!({"url": url, "method": method, "body": body})).await?;
            assert_eq!(out["json"]["method"].as_str(), Some(method), "{out:#}");
            assert_eq!(out["json"][echoed.0], echoed.1, "{method}: {out:#}");
            assert!(out["json"]["headers"].get("Transfer-Encoding").is_none(), "{method} went chunked: {out:#}");
        }
        // Werkzeug answers 501 to a chunked DELETE: without a body none is framed at all.
        let delete = step(runtime, &dir, &origin, json!({"url": url, "method": "DELETE"})).await?;
        assert_eq!((delete["status"].as_u64(), delete["json"]["data"].as_str()), (Some(200), Some("")), "{delete:#}");
        assert!(delete["json"]["headers"].get("Content-Length").is_none() && delete["json"]["headers"].get("Transfer-Encoding").is_none());

        let head = step(runtime, &dir, &origin, json!({"url": url, "method": "HEAD"})).await?;
        assert_eq!((head["status"].as_u64(), head["body"].as_str(), &head["json"]), (Some(200), Some(""), &Value::Null), "{head:#}");
        assert!(header(&head, "content-length").is_some_and(|n| n != "0"), "HEAD keeps the GET's Content-Length: {head:#}");
        let options = step(runtime, &dir, &origin, json!({"url": url, "method": "OPTIONS"})).await?;
        assert_eq!(options["status"].as_u64(), Some(200), "{options:#}");
        assert!(header(&options, "allow").is_some_and(|a| a.contains("DELETE")), "{options:#}");

        for (path, coding, flag) in [("gzip", "gzip", "gzipped"), ("deflate", "deflate", "deflated"), ("brotli", "br", "brotli")] {
            let out = step(runtime, &dir, &origin, json!({"url": format!("{origin}/{path}")})).await?;
            assert_eq!(header(&out, "content-encoding"), Some(coding), "{out:#}");
            assert_eq!(out["json"][flag], json!(true), "{path}: the decoded JSON says so: {out:#}");
            assert_eq!(out["json"]["headers"]["Accept-Encoding"], json!("gzip, deflate, br"));
        }
        // Off: nothing asked for, nothing decoded (httpbin compresses regardless),
        // so the gzip bytes come back as they are and are not JSON.
        let raw = step(runtime, &dir, &origin, json!({"url": format!("{origin}/gzip"), "decompress": false, "continue_on_error": true})).await?;
        assert!(raw["body_base64"].as_str().is_some_and(|b| b.starts_with("H4sI")), "undecoded gzip: {raw:#}");
        assert_eq!(raw["error"]["kind"], json!("invalid-response"));
        Ok::<_, anyhow::Error>(())
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    result
}
