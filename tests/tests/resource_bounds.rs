//! Resource bounds of a run, measured on this process: an endless response
//! body is cut at the cap without the host buffering it, and a compressed
//! body that expands past the cap (a "bomb", in each coding) stops there.

use base64::Engine as _;
use https_step_host::Tenant;
use https_step_tests::loopback::{LoopbackServer, Reply};
use https_step_tests::shared::{reset_peak_rss, status_kib, step_runtime, tokio};
use std::io::Write as _;
use std::sync::{Arc, Mutex};

/// Peak RSS is one figure per process: the tests take turns measuring it.
static MEASURING: Mutex<()> = Mutex::new(());

#[test]
fn endless_body_is_cut_at_the_cap_with_bounded_host_memory() -> anyhow::Result<()> {
    let _turn = MEASURING.lock().unwrap_or_else(|p| p.into_inner());
    let runtime = step_runtime();
    tokio().block_on(async {
        let server = LoopbackServer::http(Arc::new(|_: &_| Reply::Endless { status: 200 })).await?;
        let tenant = Arc::new(Tenant::builder("t").allow(&server.origin())?.build()?);
        let cap: u64 = 8 * 1024 * 1024;
        let config = https_step_core::parse_step_config(&format!(
            r#"{{"url": "{}/stream", "max_response_bytes": {cap}, "timeout_ms": 30000}}"#,
            server.origin()
        ))
        .config;
        assert!(
            reset_peak_rss(),
            "cannot reset the peak RSS of this process"
        );
        let before = status_kib("VmRSS:");
        for _ in 0..3 {
            let result = runtime
                .run(&tenant, &config, "{}", Arc::new(|_: &str| {}))
                .await?;
            let failure = result.expect_err("an endless body cannot succeed");
            assert_eq!(
                failure.error.kind(),
                "response-too-large",
                "{}",
                failure.error
            );
        }
        let grown_mib = status_kib("VmHWM:").saturating_sub(before) / 1024;
        // The guest holds at most the cap (plus Vec growth) in its own linear
        // memory; the host must not buffer the stream on top of that.
        assert!(
            grown_mib < 96,
            "peak RSS grew by {grown_mib} MiB for an {} MiB cap",
            cap >> 20
        );
        eprintln!("peak RSS growth over 3 endless-body runs with an 8 MiB cap: {grown_mib} MiB");
        Ok(())
    })
}

/// 64 MiB of zeros compressed at quality 11 by the reference brotli library
/// (Google's C implementation, through PyPI `brotlicffi` 1.2.1.0): 106 bytes.
const BROTLI_BOMB_64_MIB: &str = "y///P/gnAOKxQCD3/o///3/wTwDEYRGA7v0f////4J8AiMMCAN37P/7//8E/ARCHBQC693/8//+DfwIgDgsAdO//+P//B/8EQBwWAOje//H//w/+CYA4LADQvf/L//8//BMAcVgAoHv/Bw==";

#[test]
fn compression_bombs_stop_at_the_decoded_cap_with_bounded_memory() -> anyhow::Result<()> {
    let zeros = vec![0u8; 64 << 20];
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&zeros)?;
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    zlib.write_all(&zeros)?;
    drop(zeros);
    let bombs = [
        ("gzip", gzip.finish()?),
        ("deflate", zlib.finish()?),
        (
            "br",
            base64::engine::general_purpose::STANDARD.decode(BROTLI_BOMB_64_MIB)?,
        ),
    ];
    let _turn = MEASURING.lock().unwrap_or_else(|p| p.into_inner());
    let runtime = step_runtime();
    tokio().block_on(async {
        let cap: u64 = 8 * 1024 * 1024;
        for (coding, body) in bombs {
            let compressed = body.len();
            let server = LoopbackServer::http_unrecorded(Arc::new(move |_: &_| Reply::Respond {
                status: 200,
                headers: vec![("content-encoding".into(), coding.into()), ("content-type".into(), "application/json".into())],
                body: body.clone(),
                delay_ms: 0,
            }))
            .await?;
            let tenant = Arc::new(Tenant::builder("t").allow(&server.origin())?.build()?);
            let config = https_step_core::parse_step_config(&format!(r#"{{"url": "{}/bomb", "max_response_bytes": {cap}}}"#, server.origin())).config;
            assert!(reset_peak_rss(), "cannot reset the peak RSS of this process");
            let before = status_kib("VmRSS:");
            for _ in 0..3 {
                let failure = runtime.run(&tenant, &config, "{}", Arc::new(|_: &str| {})).await?.expect_err("a bomb cannot succeed");
                assert_eq!(failure.error.kind(), "response-too-large", "{coding}: {}", failure.error);
                assert!(failure.error.to_string().contains("decodes to more"), "{}", failure.error);
            }
            let grown_mib = status_kib("VmHWM:").saturating_sub(before) / 1024;
            // The guest keeps at most the cap of decoded bytes (plus Vec growth)
            // and a decoder window; never the 64 MiB the bomb expands to.
            assert!(grown_mib < 40, "{coding}: peak RSS grew by {grown_mib} MiB for an {} MiB cap", cap >> 20);
            eprintln!("{coding} bomb: 64 MiB of zeros in {compressed} bytes, cap {} MiB: peak RSS growth over 3 runs {grown_mib} MiB", cap >> 20);
        }
        Ok(())
    })
}
