//! Conversion between the WIT bindings and `https-step-core` types: the shared
//! types through [`Mirror`], the step config by hand because its JSON fields
//! travel as text.

use crate::bindings::workflow::https_step::types as wit;
use https_step_core::{self as core, Mirror};

https_step_core::mirror_wit_types!(wit);

/// Converts a WIT config. JSON carried as text (the JSON body, the response
/// schema) is parsed here; text that is not JSON becomes a problem.
pub fn config_from_wit(c: wit::StepConfig) -> (core::StepConfig, Vec<core::Problem>) {
    let mut problems = Vec::new();
    let mut json = |path: &str, text: String| match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => Some(v),
        Err(err) => {
            problems.push(core::Problem::new(path, format!("is not valid JSON: {err}")));
            None
        }
    };
    let body = match c.body {
        None => None,
        Some(wit::Body::Json(text)) => json("body.json", text).map(core::Body::Json),
        Some(wit::Body::Form(fields)) => Some(core::Body::Form(fields.mirror())),
        Some(wit::Body::Text(t)) => Some(core::Body::Text { text: t.text, content_type: t.content_type }),
    };
    let response_schema = c.response_schema.and_then(|s| json("response_schema", s));
    let config = core::StepConfig {
        url: c.url,
        method: c.method.mirror(),
        headers: c.headers.mirror(),
        query: c.query.mirror(),
        body,
        signing: c.signing.mirror(),
        retry: c.retry.mirror(),
        timeout_ms: c.timeout_ms,
        expected_status: c.expected_status.mirror(),
        continue_on_error: c.continue_on_error,
        response_schema,
        max_response_bytes: c.max_response_bytes,
        follow_redirects: c.follow_redirects,
        decompress: c.decompress,
        outputs: c.outputs.mirror(),
    };
    (config, problems)
}
