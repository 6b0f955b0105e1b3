//! The step-config JSON format (README "Step config"): snake_case keys,
//! unknown keys refused, and every problem collected rather than the first.
//!
//! Each top-level field is read on its own, so one bad field does not hide the
//! problems of the others. A field that cannot be read is left at the value
//! that triggers no further checks (the method becomes POST, which accepts a
//! body), so [`crate::validate`] reports only real problems of the rest.

use crate::model::{
    Body, Jitter, KeyValue, Method, Problem, RetryPolicy, Signing, SigningScheme,
    StatusPattern, StepConfig,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A config read from JSON, with every problem found while reading it.
#[derive(Debug)]
pub struct ParsedConfig {
    /// The config; fields that could not be read are left at neutral values.
    pub config: StepConfig,
    /// Shape problems (unknown keys, wrong types, unknown names).
    pub problems: Vec<Problem>,
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "query",
    "body",
    "signing",
    "retry",
    "timeout_ms",
    "expected_status",
    "continue_on_error",
    "response_schema",
    "max_response_bytes",
    "follow_redirects",
    "decompress",
    "outputs",
];

/// Reads a step config from JSON text.
pub fn parse_step_config(text: &str) -> ParsedConfig {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => parse_step_config_value(&value),
        Err(err) => ParsedConfig {
            config: StepConfig::get(""),
            problems: vec![Problem::new("", format!("not valid JSON: {err}"))],
        },
    }
}

/// Reads a step config from a parsed JSON value.
pub fn parse_step_config_value(value: &Value) -> ParsedConfig {
    let mut problems = Vec::new();
    let mut config = StepConfig::get("");
    let Some(object) = value.as_object() else {
        problems.push(Problem::new(
            "",
            format!("a step config must be a JSON object, not {}", type_name(value)),
        ));
        return ParsedConfig { config, problems };
    };
    let mut p = Reader {
        problems: &mut problems,
    };
    for key in object.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            p.problem(
                key,
                format!("unknown field; expected one of: {}", TOP_LEVEL_KEYS.join(", ")),
            );
        }
    }
    match object.get("url") {
        Some(v) => config.url = p.typed("url", v).unwrap_or_default(),
        None => p.problem("url", "missing; give the absolute https:// URL to call"),
    }
    if let Some(v) = object.get("method") {
        // Unreadable → POST: the method that triggers no follow-up checks.
        config.method = p.method(v).unwrap_or(Method::Post);
    }
    if let Some(v) = object.get("headers") {
        config.headers = p.key_values("headers", v);
    }
    if let Some(v) = object.get("query") {
        config.query = p.key_values("query", v);
    }
    if let Some(v) = nonnull(object, "body") {
        config.body = p.body(v);
    }
    if let Some(v) = nonnull(object, "signing") {
        config.signing = p.signing(v);
    }
    if let Some(v) = nonnull(object, "retry") {
        config.retry = p.retry(v);
    }
    if let Some(v) = nonnull(object, "timeout_ms") {
        config.timeout_ms = p.typed("timeout_ms", v);
    }
    if let Some(v) = nonnull(object, "expected_status") {
        config.expected_status = p.expected_status(v);
    }
    if let Some(v) = nonnull(object, "continue_on_error") {
        config.continue_on_error = p.typed("continue_on_error", v).unwrap_or(false);
    }
    if let Some(v) = nonnull(object, "response_schema") {
        if v.is_object() || v.is_boolean() {
            config.response_schema = Some(v.clone());
        } else {
            p.problem(
                "response_schema",
                format!("must be a JSON Schema (an object or a boolean), not {}", type_name(v)),
            );
        }
    }
    if let Some(v) = nonnull(object, "max_response_bytes") {
        config.max_response_bytes = p.typed("max_response_bytes", v);
    }
    if let Some(v) = nonnull(object, "follow_redirects") {
        config.follow_redirects = p.typed("follow_redirects", v);
    }
    if let Some(v) = nonnull(object, "decompress") {
        config.decompress = p.typed("decompress", v);
    }
    if let Some(v) = nonnull(object, "outputs") {
        config.outputs = p.outputs(v);
    }
    ParsedConfig { config, problems }
}

fn nonnull<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

/// Collects problems while reading fields.
struct Reader<'a> {
    problems: &'a mut Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// Deserialises one field with serde, turning its error into a problem
    /// at the exact path inside the field (`retry.intervals_ms[1]`).
    fn typed<T: DeserializeOwned>(&mut self, path: &str, value: &Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(err) => {
                let inner = err.path().to_string();
                let full = match inner.as_str() {
                    "." | "" => path.to_string(),
                    i if i.starts_with('[') => format!("{path}{i}"),
                    i => format!("{path}.{i}"),
                };
                self.problem(&full, describe_serde_error(&err.into_inner().to_string()));
                None
            }
        }
    }

    fn method(&mut self, value: &Value) -> Option<Method> {
        let name: String = self.typed("method", value)?;
        let method = Method::parse(&name);
        if method.is_none() {
            self.problem(
                "method",
                format!("unknown method {name:?}; use one of {}", Method::names()),
            );
        }
        method
    }

    fn key_values(&mut self, path: &str, value: &Value) -> Vec<KeyValue> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Kv {
            key: String,
            value: String,
        }
        let Some(items) = value.as_array() else {
            self.problem(
                path,
                format!(
                    "must be a list of {{\"key\": …, \"value\": …}} objects, not {}",
                    type_name(value)
                ),
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                self.typed::<Kv>(&format!("{path}[{i}]"), item)
                    .map(|kv| KeyValue::new(kv.key, kv.value))
            })
            .collect()
    }

    fn body(&mut self, value: &Value) -> Option<Body> {
        let Some(object) = value.as_object() else {
            self.problem(
                "body",
                format!(
                    "must be an object: {{\"json\": …}}, {{\"form\": […]}} or {{\"text\": \"…\"}}, not {}",
                    type_name(value)
                ),
            );
            return None;
        };
        let kinds: Vec<&str> = ["json", "form", "text"]
            .into_iter()
            .filter(|k| object.contains_key(*k))
            .collect();
        let allowed: &[&str] = match kinds.as_slice() {
            ["json"] | ["form"] => &[],
            ["text"] => &["content_type"],
            [] => {
                self.problem("body", "give exactly one of \"json\", \"form\" or \"text\"");
                return None;
            }
            _ => {
                self.problem(
                    "body",
                    format!("give only one of \"json\", \"form\" or \"text\", not {}", kinds.join(" and ")),
                );
                return None;
            }
        };
        let kind = kinds[0];
        for key in object.keys() {
            if key != kind && !allowed.contains(&key.as_str()) {
                self.problem(&format!("body.{key}"), format!("unknown field for a {kind} body"));
            }
        }
        let inner = &object[kind];
        match kind {
            "json" => Some(Body::Json(inner.clone())),
            "form" => Some(Body::Form(self.key_values("body.form", inner))),
            _ => {
                let text = self.typed::<String>("body.text", inner)?;
                let content_type = match nonnull(object, "content_type") {
                    Some(ct) => Some(self.typed::<String>("body.content_type", ct)?),
                    None => None,
                };
                Some(Body::Text { text, content_type })
            }
        }
    }

    fn signing(&mut self, value: &Value) -> Option<Signing> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Secrets {
            One(String),
            Many(Vec<String>),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            secret: Value,
            #[serde(default)]
            scheme: Option<String>,
            #[serde(default)]
            header: Option<String>,
        }
        let raw: Raw = self.typed("signing", value)?;
        let secrets = match Secrets::deserialize(&raw.secret) {
            Ok(Secrets::One(s)) => vec![s],
            Ok(Secrets::Many(v)) => v,
            Err(_) => {
                // Never echo the value: it is a secret.
                self.problem("signing.secret", "must be a string or a list of strings");
                return None;
            }
        };
        let scheme = match raw.scheme.as_deref() {
            None => None,
            Some("persona") => Some(SigningScheme::Persona),
            Some("standard-webhooks") => Some(SigningScheme::StandardWebhooks),
            Some("github") => Some(SigningScheme::Github),
            Some(other) => {
                self.problem(
                    "signing.scheme",
                    format!(
                        "unknown scheme {other:?}; use \"persona\", \"standard-webhooks\" or \"github\""
                    ),
                );
                return None;
            }
        };
        Some(Signing {
            secrets,
            scheme,
            header: raw.header,
        })
    }

    fn retry(&mut self, value: &Value) -> Option<RetryPolicy> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            intervals_ms: Option<Vec<u32>>,
            initial_ms: Option<u32>,
            multiplier: Option<f64>,
            max_interval_ms: Option<u32>,
            max_attempts: Option<u32>,
            jitter: Option<String>,
            retry_on_status: Option<Vec<u16>>,
            deadline_ms: Option<u32>,
            idempotency_key: Option<bool>,
            max_retry_after_ms: Option<u32>,
        }
        let raw: Raw = self.typed("retry", value)?;
        let jitter = match raw.jitter.as_deref() {
            None => None,
            Some("none") => Some(Jitter::None),
            Some("full") => Some(Jitter::Full),
            Some(other) => {
                self.problem(
                    "retry.jitter",
                    format!("unknown jitter {other:?}; use \"full\" or \"none\""),
                );
                return None;
            }
        };
        Some(RetryPolicy {
            intervals_ms: raw.intervals_ms,
            initial_ms: raw.initial_ms,
            multiplier: raw.multiplier,
            max_interval_ms: raw.max_interval_ms,
            max_attempts: raw.max_attempts,
            jitter,
            retry_on_status: raw.retry_on_status,
            deadline_ms: raw.deadline_ms,
            idempotency_key: raw.idempotency_key,
            max_retry_after_ms: raw.max_retry_after_ms,
        })
    }

    fn expected_status(&mut self, value: &Value) -> Option<Vec<StatusPattern>> {
        let Some(items) = value.as_array() else {
            self.problem(
                "expected_status",
                format!("must be a list of codes or patterns such as [201, \"2xx\"], not {}", type_name(value)),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("expected_status[{i}]");
            match item {
                Value::String(s) => out.push(StatusPattern::Pattern(s.clone())),
                Value::Number(_) => out.push(StatusPattern::Code(self.typed(&path, item)?)),
                other => {
                    self.problem(&path, format!("must be a status code or a pattern such as \"2xx\", not {}", type_name(other)));
                    return None;
                }
            }
        }
        Some(out)
    }

    fn outputs(&mut self, value: &Value) -> Vec<KeyValue> {
        let Some(object) = value.as_object() else {
            self.problem(
                "outputs",
                format!("must be an object mapping names to JSON Pointers, not {}", type_name(value)),
            );
            return Vec::new();
        };
        object
            .iter()
            .filter_map(|(name, pointer)| {
                self.typed::<String>(&format!("outputs.{name}"), pointer)
                    .map(|p| KeyValue::new(name.clone(), p))
            })
            .collect()
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Rewrites serde's messages into the terms of the config format, e.g.
/// "invalid value: integer `-5`, expected u32" → "must be a whole number from
/// 0 to 4294967295, not -5".
fn describe_serde_error(message: &str) -> String {
    let integer_max = [("u16", u64::from(u16::MAX)), ("u32", u64::from(u32::MAX)), ("u64", u64::MAX)]
        .into_iter()
        .find(|(ty, _)| message.ends_with(&format!("expected {ty}")))
        .map(|(_, max)| max);
    let quoted = message.replace('`', "\"");
    match integer_max {
        Some(max) => {
            let got = quoted
                .split_once(": ")
                .and_then(|(_, rest)| rest.rsplit_once(", expected"))
                .map_or("something else", |(got, _)| got)
                .trim_start_matches("integer ")
                .replace('"', "");
            format!("must be a whole number from 0 to {max}, not {got}")
        }
        None => quoted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> ParsedConfig {
        parse_step_config_value(&v)
    }

    #[test]
    fn full_config_reads_every_field() {
        let parsed = parse(json!({
            "url": "https://api.example.com/orders",
            "method": "post",
            "headers": [{"key": "X-A", "value": "1"}, {"key": "X-A", "value": "2"}],
            "query": [{"key": "q", "value": "a b"}],
            "body": {"json": {"sku": "A-1", "qty": 2}},
            "signing": {"secret": ["s1", "s2"], "scheme": "github"},
            "retry": {"intervals_ms": [100, 200], "jitter": "none"},
            "timeout_ms": 500,
            "expected_status": [201, "2xx", "200-204"],
            "continue_on_error": true,
            "response_schema": {"type": "object"},
            "max_response_bytes": 2048,
            "follow_redirects": false,
            "decompress": false,
            "outputs": {"id": "/data/id"}
        }));
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let c = parsed.config;
        assert_eq!(c.method, Method::Post);
        assert_eq!(c.headers.len(), 2);
        assert_eq!(c.query, vec![KeyValue::new("q", "a b")]);
        assert_eq!(c.body, Some(Body::Json(json!({"sku": "A-1", "qty": 2}))));
        let signing = c.signing.expect("signing");
        assert_eq!(signing.secrets, vec!["s1", "s2"]);
        assert_eq!(signing.scheme, Some(SigningScheme::Github));
        assert_eq!(c.retry.expect("retry").intervals_ms, Some(vec![100, 200]));
        assert_eq!(c.timeout_ms, Some(500));
        assert_eq!(
            c.expected_status,
            Some(vec![
                StatusPattern::Code(201),
                StatusPattern::Pattern("2xx".into()),
                StatusPattern::Pattern("200-204".into())
            ])
        );
        assert!(c.continue_on_error);
        assert_eq!(c.max_response_bytes, Some(2048));
        assert_eq!(c.decompress, Some(false));
        assert_eq!(c.outputs, vec![KeyValue::new("id", "/data/id")]);
    }

    #[test]
    fn collects_every_shape_problem() {
        let parsed = parse(json!({
            "url": 7,
            "method": "FETCH",
            "headerz": [],
            "timeout_ms": -5,
            "max_response_bytes": "big",
            "body": {"json": {}, "text": "x"}
        }));
        let paths: Vec<&str> = parsed.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["headerz", "url", "method", "body", "timeout_ms", "max_response_bytes"],
            "{:?}",
            parsed.problems
        );
        assert!(parsed.problems[2].message.contains("FETCH"));
        assert_eq!(parsed.problems[4].message, "must be a whole number from 0 to 4294967295, not -5");
        assert_eq!(parsed.problems[5].message, "must be a whole number from 0 to 18446744073709551615, not string big");
        // The unreadable method does not produce follow-up problems.
        assert_eq!(parsed.config.method, Method::Post);
    }

    #[test]
    fn nested_problems_name_the_exact_path() {
        let parsed = parse(json!({"url": "u", "retry": {"intervals_ms": [100, -5]}, "signing": {"secret": "s", "sheme": "x"}}));
        let got: Vec<(&str, &str)> = parsed.problems.iter().map(|p| (p.path.as_str(), p.message.as_str())).collect();
        assert_eq!(got[0], ("signing.sheme", "unknown field \"sheme\", expected one of \"secret\", \"scheme\", \"header\""));
        assert_eq!(got[1], ("retry.intervals_ms[1]", "must be a whole number from 0 to 4294967295, not -5"));
    }

    #[test]
    fn missing_url_and_non_object() {
        assert_eq!(parse(json!({})).problems[0].path, "url");
        assert!(parse(json!([1])).problems[0].message.contains("a list"));
        assert!(parse_step_config("{").problems[0].message.contains("not valid JSON"));
    }

    #[test]
    fn bad_secret_is_never_echoed() {
        let parsed = parse(json!({"url": "https://x.test", "signing": {"secret": {"k": "hunter2"}}}));
        assert_eq!(parsed.problems.len(), 1);
        assert!(!parsed.problems[0].message.contains("hunter2"));
    }

    #[test]
    fn key_value_items_are_checked_one_by_one() {
        let parsed = parse(json!({"url": "https://x.test", "headers": [{"key": "a", "value": "b"}, {"key": "c"}, {"key": "d", "value": 1}]}));
        let paths: Vec<&str> = parsed.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["headers[1]", "headers[2].value"]);
        assert_eq!(parsed.config.headers, vec![KeyValue::new("a", "b")]);
    }

    #[test]
    fn text_body_with_content_type_and_unknown_body_field() {
        let parsed = parse(json!({"url": "u", "method": "POST", "body": {"text": "hi", "content_type": "text/csv"}}));
        assert!(parsed.problems.is_empty());
        assert_eq!(
            parsed.config.body,
            Some(Body::Text { text: "hi".into(), content_type: Some("text/csv".into()) })
        );
        let parsed = parse(json!({"url": "u", "method": "POST", "body": {"json": 1, "content_type": "x"}}));
        assert_eq!(parsed.problems[0].path, "body.content_type");
    }
}
