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
use https_step_tests::python::Server;
use https_step_tests::run_cli;
use serde_json::{Value, json};
use std::path::Path;

/// Starts `app` (`httpbin` or `multipart`, see `servers/werkzeug_server.py`)
/// on Werkzeug over HTTPS with a fresh certificate in `dir`; the server and
/// its port.
fn start(dir: &Path, app: &str) -> Result<(Server, u16)> {
    // What `openssl req -x509 -addext subjectAltName=IP:127.0.0.1` makes:
    // self-signed, basicConstraints CA:TRUE, the IP as a SAN.
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    std::fs::write(dir.join("cert.pem"), cert.pem())?;
    std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/werkzeug_server.py");
    let args = [
        script,
        app.into(),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    ];
    let mut server = Server::start(Path::new(env!("CARGO_TARGET_TMPDIR")), &args)?;
    let port = server.printed_port()?;
    Ok((server, port))
}

/// Runs one step through the CLI code path; the output JSON.
async fn step(runtime: &StepRuntime, dir: &Path, origin: &str, config: Value) -> Result<Value> {
    let path = dir.join("step.json");
    std::fs::write(&path, config.to_string())?;
    let ca = dir.join("cert.pem");
    let args: Vec<String> = [
        "run",
        &path.display().to_string(),
        "--allow",
        origin,
        "--ca-cert",
        &ca.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let run = run_cli(runtime, &args).await;
    let out: Value = serde_json::from_str(run.stdout.trim())
        .with_context(|| format!("stdout {:?}, stderr {:?}", run.stdout, run.stderr))?;
    if run.exit != 0 {
        bail!("step {config} failed: {out:#}\n{}", run.stderr);
    }
    Ok(out)
}

fn header<'a>(out: &'a Value, name: &str) -> Option<&'a str> {
    out["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))?[1]
        .as_str()
}

#[test]
fn every_method_body_coding_and_a_pinned_self_signed_certificate_work_against_werkzeug_httpbin()
-> Result<()> {
    let dir = std::env::temp_dir().join(format!("https-step-httpbin-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (server, port) = start(&dir, "httpbin")?;
    let origin = format!("https://127.0.0.1:{port}");
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

/// Deterministic bytes that are not text: every byte value, in no order a
/// compressor or a lucky parser would like.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Multipart and binary uploads read back by Werkzeug's form parser (what
/// a Flask app sees in `request.form` and `request.files`): names with
/// quotes, backslashes and non-ASCII characters, repeated names, a 3 MiB
/// file and a PDF, each file's name, type and SHA-256; then a raw binary body.
#[test]
fn multipart_and_binary_uploads_are_read_back_exactly_by_werkzeug() -> Result<()> {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let dir = std::env::temp_dir().join(format!(
        "https-step-werkzeug-multipart-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let (server, port) = start(&dir, "multipart")?;
    let origin = format!("https://127.0.0.1:{port}");
    let runtime = https_step_tests::shared::step_runtime();
    let big = noise(3 << 20);
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let result = https_step_tests::shared::tokio().block_on(async {
        let upload = json!({
            "url": format!("{origin}/upload"),
            "method": "POST",
            "body": {"multipart": [
                {"name": "applicant", "value": "Zoë Ångström"},
                {"name": "say \"hi\"", "value": "quoted name"},
                {"name": "path\\to", "value": "backslash name"},
                {"name": "tag", "value": "a"},
                {"name": "tag", "value": "b"},
                {"name": "scan", "filename": "scan.bin", "base64": b64(&big)},
                {"name": "cv", "filename": "résumé \"final\" 履歴書.pdf", "content_type": "application/pdf", "base64": b64(&pdf)}
            ]}
        });
        let out = step(runtime, &dir, &origin, upload).await?;
        let seen = &out["json"];
        assert!(seen["content_type"].as_str().is_some_and(|c| c.starts_with("multipart/form-data; boundary=https-step-")), "{seen:#}");
        assert_eq!(
            seen["form"],
            json!([["applicant", "Zoë Ångström"], ["say \"hi\"", "quoted name"], ["path\\to", "backslash name"], ["tag", "a"], ["tag", "b"]]),
            "{seen:#}"
        );
        assert_eq!(
            seen["files"],
            json!([
                {"name": "scan", "filename": "scan.bin", "content_type": "application/octet-stream", "size": big.len(), "sha256": sha256_hex(&big)},
                {"name": "cv", "filename": "résumé \"final\" 履歴書.pdf", "content_type": "application/pdf", "size": pdf.len(), "sha256": sha256_hex(&pdf)}
            ]),
            "{seen:#}"
        );

        let raw = step(runtime, &dir, &origin, json!({
            "url": format!("{origin}/upload"),
            "method": "PUT",
            "body": {"binary": {"base64": b64(&big), "content_type": "image/tiff"}}
        })).await?;
        assert_eq!(raw["json"]["content_type"], json!("image/tiff"));
        assert_eq!(raw["json"]["raw"], json!({"size": big.len(), "sha256": sha256_hex(&big)}), "{:#}", raw["json"]);
        Ok::<_, anyhow::Error>(())
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    result
}
