//! Redirects within one attempt (RFC 9110 §15.4), when `follow_redirects`
//! is on: each hop is a new request the host checks against its policy.

use super::plan::Plan;
use super::{AttemptLimits, Effects, SendError};
use crate::model::StepError;
use crate::request::PreparedRequest;
use crate::response::RawResponse;
use crate::signing::Signer;

/// Most redirects followed in one attempt (as browsers' and curl's defaults
/// are in this range; Fetch allows 20).
pub const MAX_REDIRECTS: u32 = 10;

/// The request that follows a redirect, or why it is refused. `None` when
/// `raw` is not a redirect to follow.
fn redirect(
    plan: &Plan,
    request: &PreparedRequest,
    raw: &RawResponse,
) -> Option<Result<PreparedRequest, StepError>> {
    if !plan.follow_redirects || !matches!(raw.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = raw
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("location"))?;
    let location = String::from_utf8_lossy(&location.1);
    let next_url = match request.url.join(location.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => {
            return Some(Err(StepError::Protocol(format!(
                "the server redirected ({}) to an unusable Location {location:?}",
                raw.status
            ))));
        }
    };
    if request.url.scheme() == "https" && next_url.scheme() == "http" {
        return Some(Err(StepError::Denied(format!(
            "the server redirected ({}) from https to plain http ({next_url}); the step refuses the downgrade",
            raw.status
        ))));
    }
    let mut next = request.clone();
    // 303 always, and 301/302 after POST, continue as GET without a body
    // (RFC 9110 §15.4.2-4, as user agents do); 307/308 repeat the request.
    let to_get = raw.status == 303
        || (matches!(raw.status, 301 | 302) && request.method == crate::model::Method::Post);
    let signature: Vec<String> = plan
        .signer
        .as_ref()
        .map(Signer::header_names)
        .unwrap_or_default();
    if to_get && request.method != crate::model::Method::Get {
        next.method = crate::model::Method::Get;
        next.body = std::sync::Arc::default();
        // The signature covered the dropped body.
        next.headers.retain(|kv| {
            let name = kv.key.to_ascii_lowercase();
            name != "content-type" && !signature.contains(&name)
        });
    }
    if next_url.origin() != request.url.origin() {
        super::follow::drop_credentials(plan, &mut next.headers);
    }
    next.url = next_url;
    Some(Ok(next))
}

/// Sends `request`, following redirects when configured, all within the
/// attempt's time limit.
pub(super) fn send_following(
    plan: &Plan,
    request: &PreparedRequest,
    limits: AttemptLimits,
    fx: &mut dyn Effects,
) -> Result<RawResponse, SendError> {
    let started = fx.now_ms();
    let mut current = request.clone();
    let mut hops = 0;
    loop {
        let left = u64::from(limits.timeout_ms).saturating_sub(fx.now_ms().saturating_sub(started));
        let hop_limits = AttemptLimits {
            timeout_ms: u32::try_from(left).unwrap_or(u32::MAX).max(1),
            ..limits
        };
        let raw = fx.send(&current, hop_limits)?;
        match redirect(plan, &current, &raw) {
            None => return Ok(raw),
            Some(Err(error)) => {
                return Err(SendError {
                    error,
                    maybe_sent: true,
                    budget_spent: false,
                });
            }
            Some(Ok(next)) => {
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(SendError {
                        error: StepError::Protocol(format!(
                            "more than {MAX_REDIRECTS} redirects (the last to {})",
                            next.url
                        )),
                        maybe_sent: true,
                        budget_spent: false,
                    });
                }
                fx.progress(&format!(
                    "{} redirect {hops}: {} {}",
                    raw.status, next.method, next.url
                ));
                current = next;
            }
        }
    }
}
