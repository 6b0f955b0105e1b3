//! Semantic validation of a [`StepConfig`]: every problem, all at once.

use crate::auth::GrantPlan;
use crate::headers::check_header;
use crate::model::read::ParsedConfig;
use crate::model::{
    Auth, BinaryBody, Body, MAX_MAX_RESPONSE_BYTES, MAX_TIMEOUT_MS, Method, MultipartPart, Problem,
    ResponseFormat, StepConfig, TextBody,
};
use crate::response_schema::ResponseSchema;
use crate::retry::RetryPlan;
use crate::sequence::{PagePlan, PollPlan};
use crate::signing::Signer;
use crate::status::{StatusSet, parse_patterns};
use crate::template::{Source, render_config};

pub use crate::checks::MAX_URL_LEN;
/// Most headers a step may configure.
pub const MAX_HEADERS: usize = 100;

/// A valid config as the run uses it: what checking it produced, every
/// optional field resolved with its default (the defaults' one home is
/// [`crate::model::config`]; this is the one place they are applied).
#[derive(Debug)]
pub(crate) struct Checked {
    /// Statuses that count as success.
    pub(crate) expected: StatusSet,
    /// The signer, when `signing` is set.
    pub(crate) signer: Option<Signer>,
    /// The retry policy.
    pub(crate) retry: RetryPlan,
    /// The compiled response schema, when `response_schema` is set.
    pub(crate) schema: Option<ResponseSchema>,
    pub(crate) timeout_ms: u32,
    pub(crate) max_response_bytes: u64,
    pub(crate) decompress: bool,
    pub(crate) follow_redirects: bool,
    pub(crate) format: ResponseFormat,
    pub(crate) max_total_response_bytes: u64,
    pub(crate) pagination: Option<PagePlan>,
    pub(crate) poll: Option<PollPlan>,
    /// The OAuth 2.0 grant whose token each attempt sends.
    pub(crate) grant: Option<GrantPlan>,
}

/// Returns every problem of `config`, templates included, without a
/// workflow context; empty when it can run.
pub fn validate(config: &StepConfig) -> Vec<Problem> {
    render_and_check(config.clone(), &Source::StandIn)
        .err()
        .unwrap_or_default()
}

/// A config read from JSON, ready to hand to the step — which validates it
/// again before sending anything — when its JSON had the right shape;
/// otherwise every problem at once: the shape's and, when the text was a
/// JSON object, [`validate`]'s of what could be read. Hosts use it so a
/// config the guest cannot even receive still gets a complete answer.
pub fn ready(parsed: ParsedConfig) -> Result<StepConfig, Vec<Problem>> {
    if parsed.problems.is_empty() {
        Ok(parsed.config)
    } else {
        Err(every_problem(parsed))
    }
}

/// Every problem of a config read from JSON, at once: the shape's and, when
/// the text was a JSON object, [`validate`]'s of what could be read.
pub fn every_problem(parsed: ParsedConfig) -> Vec<Problem> {
    let mut problems = parsed.problems;
    if !problems.first().is_some_and(Problem::is_whole_document) {
        problems.extend(validate(&parsed.config));
    }
    problems
}

/// Renders `config`'s templates from `source` and checks the result: the
/// rendered config and its checked parts, or every problem of both stages.
pub(crate) fn render_and_check(
    config: StepConfig,
    source: &Source<'_>,
) -> Result<(StepConfig, Checked), Vec<Problem>> {
    let (rendered, mut problems) = render_config(config, source);
    match check(&rendered) {
        Ok(checked) if problems.is_empty() => Ok((rendered, checked)),
        Ok(_) => Err(problems),
        Err(rest) => {
            // A field whose template is broken is reported once, for the template.
            let related = |a: &str, b: &str| a.starts_with(b) || b.starts_with(a);
            let rest: Vec<Problem> = rest
                .into_iter()
                .filter(|p| !problems.iter().any(|t| related(&t.path, &p.path)))
                .collect();
            problems.extend(rest);
            Err(problems)
        }
    }
}

/// Checks a config whose templates are rendered: the checked parts, or
/// every problem.
pub(crate) fn check(config: &StepConfig) -> Result<Checked, Vec<Problem>> {
    let mut problems = Vec::new();
    check_url(config, &mut problems);
    check_headers(config, &mut problems);
    check_query(config, &mut problems);
    check_body(config, &mut problems);
    check_response_format(config, &mut problems);
    let plans = crate::sequence::plan(config, &mut problems);
    problems.extend(crate::auth::check(config));
    check_limits(config, &mut problems);
    let expected = match &config.expected_status {
        Some(patterns) => keep(parse_patterns(patterns), &mut problems),
        None => Some(StatusSet::default()),
    };
    let signer = config
        .signing
        .as_ref()
        .map(|s| keep(Signer::new(s), &mut problems));
    let retry = match &config.retry {
        Some(policy) => keep(
            RetryPlan::new(policy, config.method, config.timeout_ms()),
            &mut problems,
        ),
        None => Some(RetryPlan::none()),
    };
    let schema = config.response_schema.as_ref().map(|s| {
        keep(
            s.parse("response_schema")
                .and_then(|s| ResponseSchema::compile(&s))
                .map_err(|p| vec![p]),
            &mut problems,
        )
    });
    check_outputs(config, &mut problems);
    match (expected, signer, retry, schema, plans) {
        (Some(expected), signer, Some(retry), schema, Some((pagination, poll)))
            if problems.is_empty() =>
        {
            Ok(Checked {
                expected,
                signer: signer.flatten(),
                retry,
                schema: schema.flatten(),
                timeout_ms: config.timeout_ms(),
                max_response_bytes: config.max_response_bytes(),
                decompress: config.decompress(),
                follow_redirects: config.follow_redirects(),
                format: config.response_format(),
                max_total_response_bytes: config.max_total_response_bytes(),
                pagination,
                poll,
                grant: crate::auth::grant_plan(config.auth.as_ref()),
            })
        }
        _ => Err(problems),
    }
}

/// Output names become `{{ steps.<step>.outputs.<name> }}` paths, so they must
/// be path keys; pointers must be RFC 6901 JSON Pointers.
fn check_outputs(config: &StepConfig, problems: &mut Vec<Problem>) {
    for kv in &config.outputs {
        let path = format!("outputs.{}", kv.key);
        if kv.key.is_empty()
            || !kv
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            problems.push(Problem::new(
                &path,
                "output names may hold only letters, digits, _ and -",
            ));
        }
        crate::checks::check_pointer(&path, &kv.value, problems);
    }
}

/// The value of a check, its problems moved to `problems`.
fn keep<T>(result: Result<T, Vec<Problem>>, problems: &mut Vec<Problem>) -> Option<T> {
    result.map_err(|mut p| problems.append(&mut p)).ok()
}

fn check_url(config: &StepConfig, problems: &mut Vec<Problem>) {
    crate::checks::check_url_field("url", &config.url, problems);
}

fn check_headers(config: &StepConfig, problems: &mut Vec<Problem>) {
    if config.headers.len() > MAX_HEADERS {
        problems.push(Problem::new(
            "headers",
            format!(
                "has {} entries; at most {MAX_HEADERS} are allowed",
                config.headers.len()
            ),
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
            format!("a {} request cannot carry a body; use POST, PUT, PATCH, DELETE or OPTIONS, or remove the body", config.method),
        ));
    }
    let content_type_header = config
        .headers
        .iter()
        .position(|kv| kv.key.eq_ignore_ascii_case("content-type"));
    match body {
        Body::Json(_) => {}
        Body::Form(fields) => {
            for (i, kv) in fields.iter().enumerate() {
                if kv.key.is_empty() {
                    problems.push(Problem::new(format!("body.form[{i}].key"), "is empty"));
                }
            }
        }
        Body::Text(TextBody { content_type, .. }) => {
            check_media_type("body.content_type", content_type.as_deref(), problems)
        }
        Body::Binary(BinaryBody {
            base64,
            content_type,
        }) => {
            problems.extend(crate::body::check_base64("body.binary.base64", base64));
            check_media_type(
                "body.binary.content_type",
                content_type.as_deref(),
                problems,
            );
            if content_type.is_some() && content_type_header.is_some() {
                problems.push(Problem::new(
                    "body.binary.content_type",
                    "a Content-Type header is configured too; give the media type once (here, or as the header)",
                ));
            }
        }
        Body::Multipart(parts) => {
            if let Some(i) = content_type_header {
                problems.push(Problem::new(
                    format!("headers[{i}].key"),
                    "a multipart body gets its Content-Type (with the boundary) from the step, so header and body always agree; remove this header",
                ));
            }
            if parts.is_empty() {
                problems.push(Problem::new("body.multipart", "has no parts; give at least one {\"name\": …, \"value\": …} or remove the body"));
            }
            for (i, part) in parts.iter().enumerate() {
                check_part(&format!("body.multipart[{i}]"), part, problems);
            }
        }
    }
}

fn check_part(at: &str, part: &MultipartPart, problems: &mut Vec<Problem>) {
    if part.name.is_empty() {
        problems.push(Problem::new(
            format!("{at}.name"),
            "is empty; every part needs a field name",
        ));
    }
    match (&part.value, &part.base64) {
        (Some(_), Some(_)) => problems.push(Problem::new(
            at,
            "give either \"value\" (text) or \"base64\" (bytes), not both",
        )),
        (None, None) => problems.push(Problem::new(
            at,
            "has no content; give \"value\" (text) or \"base64\" (bytes)",
        )),
        (None, Some(b64)) => {
            problems.extend(crate::body::check_base64(&format!("{at}.base64"), b64))
        }
        (Some(_), None) => {}
    }
    check_media_type(
        &format!("{at}.content_type"),
        part.content_type.as_deref(),
        problems,
    );
}

/// A media type given as a body field goes into a header: the header rules apply.
fn check_media_type(path: &str, value: Option<&str>, problems: &mut Vec<Problem>) {
    if let Some(value) = value {
        problems.extend(
            check_header(path, "Content-Type", value)
                .into_iter()
                .map(|mut p| {
                    p.path = path.into();
                    p
                }),
        );
    }
}

/// `response_format` against what needs JSON.
fn check_response_format(config: &StepConfig, problems: &mut Vec<Problem>) {
    let format = config.response_format();
    if matches!(format, ResponseFormat::Text | ResponseFormat::Binary) {
        let body_signal = matches!(&config.auth, Some(Auth::Oauth2ClientCredentials(o)) if o.refresh_on.as_ref().is_some_and(|r| r.body.is_some()));
        for (given, field) in [
            (config.response_schema.is_some(), "response_schema"),
            (!config.outputs.is_empty(), "outputs"),
            (
                body_signal,
                "auth.oauth2_client_credentials.refresh_on.body",
            ),
        ] {
            if given {
                problems.push(Problem::new(
                    "response_format",
                    format!("is {} and never parses JSON, but {field} needs JSON; use \"json\" or \"auto\", or remove {field}", format.as_str()),
                ));
            }
        }
    }
    if format == ResponseFormat::Json && config.method == Method::Head {
        problems.push(Problem::new(
            "response_format",
            "is json, but a HEAD response has no body; use \"auto\" or another method",
        ));
    }
}

fn check_limits(config: &StepConfig, problems: &mut Vec<Problem>) {
    if let Some(t) = config.timeout_ms
        && (t == 0 || t > MAX_TIMEOUT_MS)
    {
        problems.push(Problem::new(
            "timeout_ms",
            format!("must be from 1 to {MAX_TIMEOUT_MS} milliseconds (5 minutes), not {t}"),
        ));
    }
    if let Some(m) = config.max_response_bytes
        && (m == 0 || m > MAX_MAX_RESPONSE_BYTES)
    {
        problems.push(Problem::new(
            "max_response_bytes",
            format!("must be from 1 to {MAX_MAX_RESPONSE_BYTES} (64 MiB), not {m}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyValue, StatusPattern};
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
        c.headers = vec![
            KeyValue::new("X-Evil", "a\r\nInjected: 1"),
            KeyValue::new("Bad Name", "v"),
        ];
        c.body = Some(Body::Json(json!({"a": 1}).into()));
        c.timeout_ms = Some(3_600_000);
        c.expected_status = Some(vec![
            StatusPattern::Code(99),
            StatusPattern::Pattern("7xx".into()),
        ]);
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
        assert!(
            validate(&StepConfig::get(long))[0]
                .message
                .contains("characters long")
        );
    }

    #[test]
    fn body_never_with_get_or_head() {
        for m in Method::ALL {
            let mut c = StepConfig::get("https://x.test");
            c.method = m;
            c.body = Some(Body::Text(TextBody {
                text: "x".into(),
                content_type: None,
            }));
            assert_eq!(validate(&c).is_empty(), m.allows_body(), "{m}");
            assert_eq!(
                m.allows_body(),
                !matches!(m, Method::Get | Method::Head),
                "{m}"
            );
        }
    }

    #[test]
    fn templates_schema_and_outputs_are_checked_without_context() {
        let mut c = StepConfig::get("https://{{ host }}/x");
        c.headers = vec![
            KeyValue::new("X-A", "{{ a..b }}"),
            KeyValue::new("Bad Name", "v"),
        ];
        c.response_schema = Some(json!({"type": 7}).into());
        c.outputs = vec![
            KeyValue::new("id", "data/id"),
            KeyValue::new("bad name", "/x~2"),
        ];
        let paths: Vec<String> = validate(&c).into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "url",
                "headers[0].value",
                "headers[1].key",
                "response_schema",
                "outputs.id",
                "outputs.bad name",
                "outputs.bad name"
            ]
        );
    }

    fn part(name: &str, value: Option<&str>, base64: Option<&str>) -> crate::model::MultipartPart {
        crate::model::MultipartPart {
            name: name.into(),
            value: value.map(Into::into),
            base64: base64.map(Into::into),
            filename: None,
            content_type: None,
        }
    }

    #[test]
    fn every_body_misuse_at_once() {
        let mut c = StepConfig::get("https://x.test");
        c.headers = vec![KeyValue::new(
            "Content-Type",
            "multipart/form-data; boundary=mine",
        )];
        c.body = Some(Body::Multipart(vec![
            part("", Some("a"), None),
            part("both", Some("a"), Some("AA==")),
            part("none", None, None),
            part("bad", None, Some("not base64!")),
            crate::model::MultipartPart {
                content_type: Some("text/plain\r\nX: y".into()),
                ..part("ct", Some("v"), None)
            },
        ]));
        assert_eq!(
            paths(&c),
            [
                "body",
                "headers[0].key",
                "body.multipart[0].name",
                "body.multipart[1]",
                "body.multipart[2]",
                "body.multipart[3].base64",
                "body.multipart[4].content_type"
            ]
        );
        c.method = Method::Post;
        c.headers.clear();
        c.body = Some(Body::Multipart(vec![]));
        assert_eq!(paths(&c), ["body.multipart"]);
    }

    #[test]
    fn binary_bodies_and_response_formats() {
        let mut c = StepConfig::get("https://x.test");
        c.method = Method::Put;
        c.body = Some(Body::Binary(BinaryBody {
            base64: "JVBERi0xLjQ=".into(),
            content_type: Some("application/pdf".into()),
        }));
        assert!(validate(&c).is_empty());
        c.headers = vec![KeyValue::new("content-type", "application/pdf")];
        c.body = Some(Body::Binary(BinaryBody {
            base64: "JVBERi0xLjQ*".into(),
            content_type: Some("application/pdf".into()),
        }));
        assert_eq!(
            paths(&c),
            ["body.binary.base64", "body.binary.content_type"]
        );
        // A template stands in as valid base64 until the context gives it.
        c.headers.clear();
        c.body = Some(Body::Binary(BinaryBody {
            base64: "{{ steps.download.body_base64 }}".into(),
            content_type: None,
        }));
        assert!(validate(&c).is_empty());

        let mut c = StepConfig::get("https://x.test");
        c.response_format = Some(ResponseFormat::Binary);
        c.outputs = vec![KeyValue::new("id", "/id")];
        c.response_schema = Some(serde_json::json!(true).into());
        assert_eq!(paths(&c), ["response_format", "response_format"]);
        c.response_format = Some(ResponseFormat::Json);
        assert!(validate(&c).is_empty());
        c.method = Method::Head;
        assert_eq!(paths(&c), ["response_format"]);
    }
}
