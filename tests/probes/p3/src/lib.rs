//! Experiment only (BENCHMARKS.md, "wasi:http 0.3"): the same request as
//! `https-step-probe-p2`, through wasi:http 0.3 — `client.send` is an async
//! import, the body a stream — as a `wasi:cli` 0.3 command.

use wasip3::http::types::{ErrorCode, Fields, Method, Request, Response, Scheme};
use wasip3::{wit_future, wit_stream};

struct Probe;

wasip3::cli::command::export!(Probe);

/// The benchmark step's body (`tests/src/bench.rs`).
const BODY: &[u8] = br#"{"sku":"BOOK-42","quantity":2,"customer":{"id":"c_1","name":"Ada Lovelace"},"tags":["gift","priority"]}"#;

impl wasip3::exports::cli::run::Guest for Probe {
    async fn run() -> Result<(), ()> {
        let authority = std::env::var("PROBE_AUTHORITY").map_err(drop)?;
        let headers = Fields::from_list(&[
            ("content-type".into(), b"application/json".to_vec()),
            ("content-length".into(), BODY.len().to_string().into_bytes()),
        ])
        .map_err(drop)?;
        let (mut body, contents) = wit_stream::new::<u8>();
        let (trailers, trailers_reader) =
            wit_future::new::<Result<Option<Fields>, ErrorCode>>(|| Ok(None));
        let (request, _transmitted) = Request::new(headers, Some(contents), trailers_reader, None);
        request.set_method(&Method::Post)?;
        request.set_scheme(Some(&Scheme::Http))?;
        request.set_authority(Some(&authority))?;
        request.set_path_with_query(Some("/v1/orders"))?;
        wasip3::spawn_local(async move {
            let _ = body.write_all(BODY.to_vec()).await;
            drop(body);
            let _ = trailers.write(Ok(None)).await;
        });
        let response = wasip3::http::client::send(request).await.map_err(drop)?;
        if response.get_status_code() != 201 {
            return Err(());
        }
        let (_done, done_reader) = wit_future::new::<Result<(), ErrorCode>>(|| Ok(()));
        let (contents, _trailers) = Response::consume_body(response, done_reader);
        let _ = contents.collect().await;
        Ok(())
    }
}
