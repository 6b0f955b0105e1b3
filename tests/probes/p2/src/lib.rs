//! Experiment only (BENCHMARKS.md, "wasi:http 0.3"): a `wasi:cli` command
//! that POSTs the benchmark's JSON body to `PROBE_AUTHORITY` through
//! wasi:http 0.2 and reads the response, the transport's work without the
//! step's. Its twin `https-step-probe-p3` does the same through 0.3.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

struct Probe;

wasip2::cli::command::export!(Probe);

/// The benchmark step's body (`tests/src/bench.rs`).
const BODY: &[u8] = br#"{"sku":"BOOK-42","quantity":2,"customer":{"id":"c_1","name":"Ada Lovelace"},"tags":["gift","priority"]}"#;

impl wasip2::exports::cli::run::Guest for Probe {
    fn run() -> Result<(), ()> {
        let authority = std::env::var("PROBE_AUTHORITY").map_err(drop)?;
        let headers = Fields::from_list(&[
            ("content-type".into(), b"application/json".to_vec()),
            ("content-length".into(), BODY.len().to_string().into_bytes()),
        ])
        .map_err(drop)?;
        let request = OutgoingRequest::new(headers);
        request.set_method(&Method::Post)?;
        request.set_scheme(Some(&Scheme::Http))?;
        request.set_authority(Some(&authority))?;
        request.set_path_with_query(Some("/v1/orders"))?;
        let body = request.body()?;
        let future = outgoing_handler::handle(request, None).map_err(drop)?;
        {
            let stream = body.write()?;
            stream.blocking_write_and_flush(BODY).map_err(drop)?;
        }
        OutgoingBody::finish(body, None).map_err(drop)?;
        future.subscribe().block();
        let response = future.get().ok_or(())?.map_err(drop)?.map_err(drop)?;
        if response.status() != 201 {
            return Err(());
        }
        let incoming = response.consume()?;
        {
            let stream = incoming.stream()?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(_) => {}
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(_)) => return Err(()),
                }
            }
        }
        Ok(())
    }
}
