//! Semantic validation of a [`StepConfig`]: every problem, all at once.

use crate::headers::check_header;
use crate::model::{
    Body, MAX_MAX_RESPONSE_BYTES, MAX_TIMEOUT_MS, Problem, StepConfig,
};
use crate::retry::RetryPlan;
use crate::signing::Signer;
use crate::status::{StatusSet, parse_patterns};

/// Longest URL accepted. Servers commonly refuse request lines over 8 KiB
/// (RFC 9112 §3 recommends supporting at least 8000 octets).
pub const MAX_URL_LEN: usize = 8000;
/// Most headers a step may configure.
pub const MAX_HEADERS: usize = 100;

/// The parts of a valid config that checking it produced.
#[derive(Debug)]
pub struct Checked {
    /// Statuses that count as success.
    pub expected: StatusSet,
    /// The signer, when `signing` is set.
    pub signer: Option<Signer>,
    /// The retry policy with its defaults applied.
    pub retry: RetryPlan,
}

/// Returns every problem of `config`; empty when it can run.
pub fn validate(config: &StepConfig) -> Vec<Problem> {
    check(config).err().unwrap_or_default()
}

/// Checks `config` completely: the checked parts, or every problem.
pub fn check(config: &StepConfig) -> Result<Checked, Vec<Problem>> {
    let mut problems = Vec::new();
    check_url(config, &mut problems);
    check_headers(config, &mut problems);
    check_query(config, &mut problems);
    check_body(config, &mut problems);
    check_limits(config, &mut problems);
    let expected = match &config.expected_status {
        Some(patterns) => keep(parse_patterns(patterns), &mut problems),
        None => Some(StatusSet::default()),
    };
    let signer = config.signing.as_ref().map(|s| keep(Signer::new(s), &mut problems));
    let retry = match &config.retry {
        Some(policy) => keep(RetryPlan::new(policy, config.method, config.timeout_ms()), &mut problems),
        None => Some(RetryPlan::none()),
    };
    check_not_yet_supported(config, &mut problems);
    match (expected, signer, retry) {
        (Some(expected), signer, Some(retry)) if problems.is_empty() => Ok(Checked {
            expected,
            signer: signer.flatten(),
            retry,
        }),
        _ => Err(problems),
    }
}

/// The value of a check, its problems moved to `problems`.
fn keep<T>(result: Result<T, Vec<Problem>>, problems: &mut Vec<Problem>) -> Option<T> {
    result.map_err(|mut p| problems.append(&mut p)).ok()
}

fn has_template(s: &str) -> bool {
    s.contains("{{")
}

fn check_url(config: &StepConfig, problems: &mut Vec<Problem>) {
    let raw = config.url.trim();
    if raw.is_empty() {
        problems.push(Problem::new("url", "is empty; give the absolute https:// URL to call"));
        return;
    }
    if has_template(raw) {
        // Rendering happens at run time; it is reported by check_not_yet_supported.
        return;
    }
    if raw.len() > MAX_URL_LEN {
        problems.push(Problem::new("url", format!("is {} characters long; at most {MAX_URL_LEN} are allowed", raw.len())));
        return;
    }
    match url::Url::parse(raw) {
        Err(err) => problems.push(Problem::new("url", format!("{raw:?} is not a valid absolute URL: {err}"))),
        Ok(url) => {
            if !matches!(url.scheme(), "https" | "http") {
                problems.push(Problem::new(
                    "url",
                    format!("scheme {:?} is not supported; use https:// (or http:// where the host allows it)", url.scheme()),
                ));
                // Other checks would only restate that this is not a web URL.
                return;
            }
            if url.host_str().is_none_or(str::is_empty) {
                problems.push(Problem::new("url", "has no host"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                problems.push(Problem::new(
                    "url",
                    "must not contain credentials (user:password@); send them in an Authorization header instead",
                ));
            }
            if url.fragment().is_some() {
                problems.push(Problem::new("url", "has a #fragment, which is never sent to the server; remove it"));
            }
        }
    }
}

fn check_headers(config: &StepConfig, problems: &mut Vec<Problem>) {
    if config.headers.len() > MAX_HEADERS {
        problems.push(Problem::new(
            "headers",
            format!("has {} entries; at most {MAX_HEADERS} are allowed", config.headers.len()),
        ));
    }
    for (i, kv) in config.headers.iter().enumerate() {
        problems.extend(check_header(&format!("headers[{i}]"), &kv.key, &kv.value));
    }
}

fn check_query(config: &StepConfig, problems: &mut Vec<Problem>) {
    for (i, kv) in config.query.iter().enumerate() {
        if kv.key.is_empty() {
            problems.push(Problem::new(format!("query[{i}].key"), "is empty"));
        }
    }
}

fn check_body(config: &StepConfig, problems: &mut Vec<Problem>) {
    let Some(body) = &config.body else { return };
    if !config.method.allows_body() {
        problems.push(Problem::new(
            "body",
            format!("a {} request cannot carry a body; use POST, PUT or PATCH, or remove the body", config.method),
        ));
    }
    match body {
        Body::Json(_) => {}
        Body::Form(fields) => {
            for (i, kv) in fields.iter().enumerate() {
                if kv.key.is_empty() {
                    problems.push(Problem::new(format!("body.form[{i}].key"), "is empty"));
                }
            }
        }
        Body::Text { content_type, .. } => {
            if let Some(ct) = content_type {
                problems.extend(check_header("body.content_type", "Content-Type", ct).into_iter().map(|mut p| {
                    p.path = "body.content_type".into();
                    p
                }));
            }
        }
    }
}

fn check_limits(config: &StepConfig, problems: &mut Vec<Problem>) {
    if let Some(t) = config.timeout_ms {
        if t == 0 || t > MAX_TIMEOUT_MS {
            problems.push(Problem::new(
                "timeout_ms",
                format!("must be from 1 to {MAX_TIMEOUT_MS} milliseconds (5 minutes), not {t}"),
            ));
        }
    }
    if let Some(m) = config.max_response_bytes {
        if m == 0 || m > MAX_MAX_RESPONSE_BYTES {
            problems.push(Problem::new(
                "max_response_bytes",
                format!("must be from 1 to {MAX_MAX_RESPONSE_BYTES} (64 MiB), not {m}"),
            ));
        }
    }
}

/// Features of the contract that a later release implements. They are refused
/// rather than ignored, so a config never silently behaves differently.
fn check_not_yet_supported(config: &StepConfig, problems: &mut Vec<Problem>) {
    const SOON: &str = "is not supported yet by this version of the step; remove it";
    let mut templated = Vec::new();
    if has_template(&config.url) {
        templated.push("url".to_string());
    }
    for (name, list) in [("headers", &config.headers), ("query", &config.query)] {
        for (i, kv) in list.iter().enumerate() {
            if has_template(&kv.value) || has_template(&kv.key) {
                templated.push(format!("{name}[{i}]"));
            }
        }
    }
    match &config.body {
        Some(Body::Json(v)) if has_template(&v.to_string()) => templated.push("body.json".into()),
        Some(Body::Text { text, .. }) if has_template(text) => templated.push("body.text".into()),
        Some(Body::Form(fields)) if fields.iter().any(|kv| has_template(&kv.value)) => {
            templated.push("body.form".into())
        }
        _ => {}
    }
    for path in templated {
        problems.push(Problem::new(path, "{{ … }} templates are not supported yet by this version of the step"));
    }
    if config.response_schema.is_some() {
        problems.push(Problem::new("response_schema", SOON));
    }
    if config.follow_redirects == Some(true) {
        problems.push(Problem::new("follow_redirects", SOON));
    }
    if !config.outputs.is_empty() {
        problems.push(Problem::new("outputs", SOON));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyValue, Method, StatusPattern};
    use serde_json::json;

    fn paths(c: &StepConfig) -> Vec<String> {
        validate(c).into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn minimal_get_is_valid() {
        assert!(validate(&StepConfig::get("https://api.example.com/x?y=1")).is_empty());
    }

    #[test]
    fn reports_several_problems_at_once() {
        let mut c = StepConfig::get("htp//nope");
        c.headers = vec![KeyValue::new("X-Evil", "a\r\nInjected: 1"), KeyValue::new("Bad Name", "v")];
        c.body = Some(Body::Json(json!({"a": 1})));
        c.timeout_ms = Some(3_600_000);
        c.expected_status = Some(vec![StatusPattern::Code(99), StatusPattern::Pattern("7xx".into())]);
        c.max_response_bytes = Some(0);
        assert_eq!(
            paths(&c),
            vec![
                "url",
                "headers[0].value",
                "headers[1].key",
                "body",
                "timeout_ms",
                "max_response_bytes",
                "expected_status[0]",
                "expected_status[1]"
            ]
        );
    }

    #[test]
    fn url_rules() {
        for (url, needle) in [
            ("ftp://x.test/", "scheme"),
            ("https://user:pw@x.test/", "credentials"),
            ("https://x.test/#frag", "fragment"),
            ("/relative", "not a valid absolute URL"),
            ("", "empty"),
        ] {
            let problems = validate(&StepConfig::get(url));
            assert!(
                problems.iter().any(|p| p.message.contains(needle)),
                "{url}: {problems:?}"
            );
        }
        let long = format!("https://x.test/{}", "a".repeat(MAX_URL_LEN));
        assert!(validate(&StepConfig::get(long))[0].message.contains("characters long"));
    }

    #[test]
    fn body_only_with_post_put_patch() {
        for m in Method::ALL {
            let mut c = StepConfig::get("https://x.test");
            c.method = m;
            c.body = Some(Body::Text { text: "x".into(), content_type: None });
            assert_eq!(validate(&c).is_empty(), m.allows_body(), "{m}");
        }
    }

    #[test]
    fn later_features_are_refused_not_ignored() {
        let mut c = StepConfig::get("https://x.test/{{ id }}");
        c.response_schema = Some(json!({}));
        c.follow_redirects = Some(true);
        c.outputs = vec![KeyValue::new("id", "/id")];
        let problems = validate(&c);
        assert_eq!(
            problems.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
            vec!["url", "response_schema", "follow_redirects", "outputs"]
        );
        assert!(problems[0].message.contains("not supported yet"));
    }
}
