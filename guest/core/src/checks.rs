//! Checks of single fields shared by [`crate::validate`] and [`crate::auth`]:
//! absolute URLs and JSON Pointers.

use crate::model::Problem;

/// Longest URL accepted. Servers commonly refuse request lines over 8 KiB
/// (RFC 9112 §3 recommends supporting at least 8000 octets).
pub const MAX_URL_LEN: usize = 8000;

/// The problems of an absolute `https://` (or `http://`) URL in `field`
/// (`url`, an OAuth 2.0 `token_url`).
pub(crate) fn check_url_field(field: &str, raw: &str, problems: &mut Vec<Problem>) {
    let raw = raw.trim();
    if raw.is_empty() {
        problems.push(Problem::new(
            field,
            "is empty; give the absolute https:// URL to call",
        ));
        return;
    }
    if raw.len() > MAX_URL_LEN {
        problems.push(Problem::new(
            field,
            format!(
                "is {} characters long; at most {MAX_URL_LEN} are allowed",
                raw.len()
            ),
        ));
        return;
    }
    match url::Url::parse(raw) {
        Err(err) => problems.push(Problem::new(
            field,
            format!("{raw:?} is not a valid absolute URL: {err}"),
        )),
        Ok(url) => {
            if !matches!(url.scheme(), "https" | "http") {
                problems.push(Problem::new(
                    field,
                    format!("scheme {:?} is not supported; use https:// (or http:// where the host allows it)", url.scheme()),
                ));
                // Other checks would only restate that this is not a web URL.
                return;
            }
            if url.host_str().is_none_or(str::is_empty) {
                problems.push(Problem::new(field, "has no host"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                problems.push(Problem::new(
                    field,
                    "must not contain credentials (user:password@); send them in an Authorization header instead",
                ));
            }
            if url.fragment().is_some() {
                problems.push(Problem::new(
                    field,
                    "has a #fragment, which is never sent to the server; remove it",
                ));
            }
        }
    }
}

/// The problem of a JSON Pointer (RFC 6901) in `field`, if any.
pub(crate) fn check_pointer(field: &str, p: &str, problems: &mut Vec<Problem>) {
    let bad_escape = p
        .match_indices('~')
        .any(|(i, _)| !matches!(p.as_bytes().get(i + 1), Some(b'0' | b'1')));
    if !(p.is_empty() || p.starts_with('/')) || bad_escape {
        problems.push(Problem::new(
            field,
            format!("{p:?} is not a JSON Pointer; write \"/data/id\" (RFC 6901: start with /, escape ~ as ~0 and / as ~1)"),
        ));
    }
}
