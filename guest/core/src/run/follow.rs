//! Follow-up requests: a page's next link, a job's status URL. Each is a
//! request like the first (its headers, the auth header, and per attempt a
//! fresh token and signature), and each is locked to the first request's
//! origin: a URL a response names on another origin is refused (`denied`)
//! unless the config lists that origin, so a hostile response cannot steer
//! the step — and its credentials — elsewhere.

use super::plan::Plan;
use crate::model::{KeyValue, Method, StepError};
use crate::request::PreparedRequest;
use crate::signing::Signer;

/// Headers that carry credentials or per-destination meaning, dropped when
/// a request goes to another origin (RFC 9110 §15.4 leaves it to the client).
const CROSS_ORIGIN_DROPPED: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "idempotency-key",
    "webhook-id",
    "webhook-timestamp",
];

/// Removes credentials (and the signature, which names its destination's
/// secret) from headers bound for another origin.
pub(super) fn drop_credentials(plan: &Plan, headers: &mut Vec<KeyValue>) {
    let signature: Vec<String> = plan
        .signer
        .as_ref()
        .map(Signer::header_names)
        .unwrap_or_default();
    headers.retain(|kv| {
        let name = kv.key.to_ascii_lowercase();
        !CROSS_ORIGIN_DROPPED.contains(&name.as_str())
            && !signature.contains(&name)
            && plan.auth_header.as_ref() != Some(&name)
    });
}

/// A follow-up request and whether it stays on the first request's origin
/// (only then are a fetched token and a signature sent).
pub(super) struct FollowUp {
    pub(super) request: PreparedRequest,
    pub(super) same_origin: bool,
}

/// The request for `target` (absolute, or relative to `base`), or `denied`
/// when it leaves the first request's origin for one `allowed` does not
/// list. `what` names it in messages ("page 3's next link"), `field` the
/// config list that would allow it. A GET carries no body.
pub(super) fn request_to(
    plan: &Plan,
    base: &url::Url,
    target: &str,
    method: Method,
    allowed: &[String],
    what: &str,
    field: &str,
) -> Result<FollowUp, StepError> {
    let first = &plan.request;
    let url = base
        .join(target.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            StepError::InvalidResponse(format!("{what} {target:?} is not a usable http(s) URL"))
        })?;
    let same_origin = url.origin() == first.url.origin();
    if !same_origin
        && !allowed
            .iter()
            .any(|a| url::Url::parse(a).is_ok_and(|a| a.origin() == url.origin()))
    {
        return Err(StepError::Denied(format!(
            "{what} leads to {}, another origin than the first request's ({}); list it in {field} to follow it",
            url.origin().ascii_serialization(),
            first.url.origin().ascii_serialization()
        )));
    }
    let mut request = first.clone();
    request.url = url;
    request.method = method;
    if method == Method::Get {
        request.body = std::sync::Arc::default();
        request
            .headers
            .retain(|kv| !kv.key.eq_ignore_ascii_case("content-type"));
    }
    if !same_origin {
        drop_credentials(plan, &mut request.headers);
    }
    Ok(FollowUp {
        request,
        same_origin,
    })
}
