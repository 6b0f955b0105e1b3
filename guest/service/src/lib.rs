//! The step as an HTTP service (README "HTTP service"): a component of the
//! world `workflow:https-step/https-step-service` that exports
//! `wasi:http/incoming-handler`, for engines that run only such components
//! (`wasmtime serve`, Spin, wasmCloud) and scale them out themselves.
//!
//! # How to build and run
//! Built from source by `guest/artifact/build.rs` (for `wasm32-unknown-unknown`,
//! then made a component, so it imports nothing beyond the proxy world);
//! `https-step service-component FILE` writes it out, and
//! `wasmtime serve FILE` serves it.
//!
//! # Routes
//! - `POST /run` with `{"step": {…}, "context": {…}}`: the output JSON of
//!   `https-step run` — status 200 when ok (or continued), 422 when the step
//!   failed;
//! - `POST /validate` with `{"step": {…}}`: the problems, `[{"path",
//!   "message"}]`, as `https-step validate --json`;
//! - `GET /health`: `{"ok": true, …}`;
//! - a request body that is unusable is 400, one over [`MAX_REQUEST_BYTES`]
//!   413 (read and dropped up to 8 MiB past the cap first, so the client
//!   hears the answer); another path 404, another method 405; each with a
//!   JSON error.
//!
//! The step's semantics are `https-step-core`'s and its requests go through
//! `https-step-wasi`, the same code as the step component's; waki's
//! server-side bindings carry the incoming side ([`incoming`]).

mod incoming;

use https_step_core::{StepFailure, parse_step_config};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::HashMap;
use waki::bindings::wasi::http::types::{IncomingRequest, Method, ResponseOutparam};

/// Largest request body accepted: 1 MiB (a step config and its context;
/// files travel as base64 in them, so larger uploads need the step
/// component in a host of its own).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// How long the request body may take to arrive, in milliseconds, so a client
/// that stops sending cannot hold an instance.
pub const REQUEST_BODY_TIMEOUT_MS: u64 = 10_000;

/// The exported handler.
struct Service;

waki::bindings::export!(Service with_types_in waki::bindings);

impl waki::bindings::exports::wasi::http::incoming_handler::Guest for Service {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let reply = route(request);
        let response = waki::Response::builder()
            .status_code(reply.status)
            .header("content-type", "application/json")
            .body(reply.body);
        let response = reply
            .allow
            .iter()
            .fold(response, |r, allow| r.header("allow", *allow));
        match response.build() {
            Ok(response) => waki::handle_response(response_out, response),
            Err(code) => ResponseOutparam::set(response_out, Err(code)),
        }
    }
}

/// A response: status, JSON body and, for a 405, the methods allowed.
struct Reply {
    status: u16,
    body: String,
    allow: Option<&'static str>,
}

impl Reply {
    fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            body,
            allow: None,
        }
    }

    /// An error of the service itself (not of a step): `{"ok": false,
    /// "error": {"kind", "message"}}`.
    fn error(status: u16, kind: &str, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"ok": false, "error": {"kind": kind, "message": message}}).to_string(),
        )
    }
}

fn route(request: IncomingRequest) -> Reply {
    let path = request.path_with_query().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default().to_string();
    let method = request.method();
    let (allowed, handler): (&'static str, fn(&[u8]) -> Reply) = match path.as_str() {
        "/run" => ("POST", run),
        "/validate" => ("POST", validate),
        "/health" => {
            ("GET", |_| {
                Reply::json(200, json!({"ok": true, "service": "https-step", "version": env!("CARGO_PKG_VERSION")}).to_string())
            })
        }
        other => {
            return Reply::error(
                404,
                "not-found",
                &format!("no route {other:?}; use POST /run, POST /validate or GET /health"),
            );
        }
    };
    let wanted = if allowed == "GET" {
        Method::Get
    } else {
        Method::Post
    };
    if !same_method(&method, &wanted) {
        let mut reply = Reply::error(
            405,
            "method-not-allowed",
            &format!("{path} takes {allowed}"),
        );
        reply.allow = Some(allowed);
        return reply;
    }
    if allowed == "GET" {
        return handler(&[]);
    }
    match incoming::read_body(request, MAX_REQUEST_BYTES, REQUEST_BODY_TIMEOUT_MS) {
        Ok(body) => handler(&body),
        Err(incoming::BodyError::TooLarge(n)) => Reply::error(
            413,
            "request-too-large",
            &format!(
                "the request body is {n} bytes or more; at most {MAX_REQUEST_BYTES} are accepted"
            ),
        ),
        Err(incoming::BodyError::Timeout) => Reply::error(
            408,
            "request-timeout",
            &format!("the request body did not arrive within {REQUEST_BODY_TIMEOUT_MS} ms"),
        ),
        Err(incoming::BodyError::Broken(why)) => Reply::error(
            400,
            "bad-request",
            &format!("the request body could not be read: {why}"),
        ),
    }
}

fn same_method(a: &Method, b: &Method) -> bool {
    matches!(
        (a, b),
        (Method::Get, Method::Get) | (Method::Post, Method::Post)
    )
}

/// `POST /run`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest<'a> {
    #[serde(borrow)]
    step: &'a RawValue,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
}

/// `POST /validate`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateRequest<'a> {
    #[serde(borrow)]
    step: &'a RawValue,
}

/// The request body as `T`, or the 400 that says why it is not.
fn body_as<'a, T: Deserialize<'a>>(body: &'a [u8], shape: &str) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| {
        Reply::error(
            400,
            "bad-request",
            &format!("the request body is not {shape}: {e}"),
        )
    })
}

fn run(body: &[u8]) -> Reply {
    let request: RunRequest<'_> = match body_as(body, r#"{"step": {…}, "context": {…}}"#) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let context = request.context.map_or("{}", RawValue::get).to_string();
    let result = match https_step_core::validate::ready(parse_step_config(request.step.get())) {
        Ok(config) => https_step_core::run(
            config,
            context,
            &mut https_step_wasi::Wasi::new(MemoryStore::default()),
        ),
        Err(problems) => Err(StepFailure::invalid_config(problems)),
    };
    Reply::json(
        if result.is_ok() { 200 } else { 422 },
        https_step_core::output::step_result_json(&result),
    )
}

fn validate(body: &[u8]) -> Reply {
    let request: ValidateRequest<'_> = match body_as(body, r#"{"step": {…}}"#) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let problems = https_step_core::validate::every_problem(parse_step_config(request.step.get()));
    Reply::json(
        200,
        https_step_core::output::problems_json(&problems).to_string(),
    )
}

/// OAuth 2.0 tokens for one request only: the proxy world has no
/// `wasi:keyvalue`, so nothing outlives the request (each `/run` of an
/// OAuth 2.0 step fetches its token).
#[derive(Default)]
struct MemoryStore(HashMap<String, Vec<u8>>);

impl https_step_wasi::TokenStore for MemoryStore {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.0.get(key).cloned())
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        self.0.insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<(), String> {
        self.0.remove(key);
        Ok(())
    }

    fn increment(&mut self, key: &str) -> Result<u64, String> {
        let n = self
            .0
            .get(key)
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        self.0.insert(key.to_string(), n.to_string().into_bytes());
        Ok(n)
    }
}
