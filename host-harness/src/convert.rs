//! Conversion between `https-step-core` types and the host's WIT bindings:
//! the shared types through [`Mirror`], the step config by hand because its
//! JSON fields travel as text.

use crate::runtime::bindings::workflow::https_step::types as wit;
use https_step_core::{self as core, Mirror};

https_step_core::mirror_wit_types!(wit);

/// Converts a config for the component.
pub fn config_to_wit(c: &core::StepConfig) -> wit::StepConfig {
    let c = c.clone();
    wit::StepConfig {
        url: c.url,
        method: c.method.mirror(),
        headers: c.headers.mirror(),
        query: c.query.mirror(),
        body: c.body.map(|b| match b {
            core::Body::Json(v) => wit::Body::Json(v.to_string()),
            core::Body::Form(fields) => wit::Body::Form(fields.mirror()),
            core::Body::Text { text, content_type } => wit::Body::Text(wit::TextBody { text, content_type }),
        }),
        signing: c.signing.mirror(),
        retry: c.retry.mirror(),
        timeout_ms: c.timeout_ms,
        expected_status: c.expected_status.mirror(),
        continue_on_error: c.continue_on_error,
        response_schema: c.response_schema.map(|s| s.to_string()),
        max_response_bytes: c.max_response_bytes,
        follow_redirects: c.follow_redirects,
        decompress: c.decompress,
        outputs: c.outputs.mirror(),
    }
}
