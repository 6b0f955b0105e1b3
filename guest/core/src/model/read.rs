//! Reading the step-config JSON (README "Step config") with every problem
//! collected rather than the first.
//!
//! The shape itself is the model's serde binding ([`super`]); this module only
//! makes it report all at once: each top-level field is deserialised on its
//! own, and each item of a list on its own, so one bad field does not hide the
//! problems of the others. A field that cannot be read is left at the value
//! that triggers no further checks (an unreadable method becomes POST, which
//! accepts a body; a list keeps its readable items), so [`crate::validate`]
//! reports only real problems of the rest.

use super::shapes::type_name;
use super::{Problem, StepConfig};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};

/// A config read from JSON, with every problem found while reading it.
#[derive(Debug)]
pub struct ParsedConfig {
    /// The config; fields that could not be read are left at neutral values.
    pub config: StepConfig,
    /// Shape problems (unknown keys, wrong types, unknown names).
    pub problems: Vec<Problem>,
}

/// Reads a step config from JSON text.
pub fn parse_step_config(text: &str) -> ParsedConfig {
    // A well-formed config, the common case, is read in one pass over the text.
    if let Ok(config) = serde_json::from_str::<StepConfig>(text) {
        return ParsedConfig {
            config,
            problems: Vec::new(),
        };
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) => parse_step_config_value(&value),
        Err(err) => ParsedConfig {
            config: StepConfig::default(),
            problems: vec![Problem::new("", format!("not valid JSON: {err}"))],
        },
    }
}

/// Reads a step config from a parsed JSON value.
pub fn parse_step_config_value(value: &Value) -> ParsedConfig {
    if let Ok(config) = StepConfig::deserialize_from(value) {
        return ParsedConfig {
            config,
            problems: Vec::new(),
        };
    }
    let Some(object) = value.as_object() else {
        let problem = Problem::new(
            "",
            format!(
                "a step config must be a JSON object, not {}",
                type_name(value)
            ),
        );
        return ParsedConfig {
            config: StepConfig::default(),
            problems: vec![problem],
        };
    };
    let fields = field_names::<StepConfig>();
    // null stands for "not given", as an absent key does.
    let given = |key: &str| object.get(key).filter(|v| !v.is_null());
    let mut problems: Vec<Problem> = object
        .keys()
        .filter(|key| !fields.contains(&key.as_str()))
        .map(|key| {
            Problem::new(
                key,
                format!("unknown field; expected one of: {}", fields.join(", ")),
            )
        })
        .collect();
    let mut readable = Map::new();
    for &field in fields {
        let Some(v) = given(field) else {
            if field == "url" {
                problems.push(Problem::new(
                    "url",
                    "missing; give the absolute https:// URL to call",
                ));
            }
            continue;
        };
        match read_field(field, v) {
            Ok(()) => {
                readable.insert(field.to_string(), v.clone());
            }
            Err((mut found, neutral)) => {
                problems.append(&mut found);
                if let Some(neutral) = neutral {
                    readable.insert(field.to_string(), neutral);
                }
            }
        }
    }
    readable
        .entry("url")
        .or_insert_with(|| Value::String(String::new()));
    let config = match StepConfig::deserialize_from(&Value::Object(readable)) {
        Ok(config) => config,
        Err(problem) => {
            // Every field was readable alone; say so rather than lose it.
            problems.push(problem);
            StepConfig::default()
        }
    };
    ParsedConfig { config, problems }
}

impl StepConfig {
    fn deserialize_from(value: &Value) -> Result<StepConfig, Problem> {
        serde_path_to_error::deserialize::<_, StepConfig>(value).map_err(|err| {
            let path = err.path().to_string();
            let path = if path == "." { String::new() } else { path };
            Problem::new(path, describe_serde_error(&err.into_inner().to_string()))
        })
    }
}

/// Reads `field` alone; for a list whose items are at fault, each item
/// alone, so every bad item is reported with its own index. On failure, the
/// problems and what the field is replaced with so that it causes no
/// follow-up problems: POST for a method (it accepts a body), the readable
/// items of a list; otherwise nothing (the field is left out).
fn read_field(field: &str, value: &Value) -> Result<(), (Vec<Problem>, Option<Value>)> {
    let alone = |v: &Value| {
        let mut object = Map::new();
        object.insert(field.to_string(), v.clone());
        object
            .entry("url")
            .or_insert_with(|| Value::String(String::new()));
        StepConfig::deserialize_from(&Value::Object(object)).map(drop)
    };
    let Err(problem) = alone(value) else {
        return Ok(());
    };
    let item_prefix = format!("{field}[");
    match value {
        _ if field == "method" => Err((vec![problem], Some(Value::String("POST".into())))),
        Value::Array(items) if problem.path.starts_with(&item_prefix) => {
            let mut problems = Vec::new();
            let mut readable = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match alone(&Value::Array(vec![item.clone()])) {
                    Ok(()) => readable.push(item.clone()),
                    Err(mut p) => {
                        // `headers[0].value` → `headers[3].value`: the item's real index.
                        if let Some(rest) = p.path.strip_prefix(&format!("{field}[0]")) {
                            p.path = format!("{field}[{i}]{rest}");
                        }
                        problems.push(p);
                    }
                }
            }
            Err((problems, Some(Value::Array(readable))))
        }
        _ => Err((vec![problem], None)),
    }
}

/// The field names a derived `Deserialize` declares, in declaration order:
/// serde passes them to `deserialize_struct`, which this probe stops at.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    // The probe always "fails": it only records the names.
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// Rewrites serde's messages into the terms of the config format, e.g.
/// "invalid value: integer `-5`, expected u32" → "must be a whole number from
/// 0 to 4294967295, not -5".
fn describe_serde_error(message: &str) -> String {
    let integer_max = [
        ("u16", u64::from(u16::MAX)),
        ("u32", u64::from(u32::MAX)),
        ("u64", u64::MAX),
    ]
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
    use crate::model::{Body, KeyValue, Method, SigningScheme, StatusPattern, TextBody};
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
        assert_eq!(
            c.body,
            Some(Body::Json(json!({"sku": "A-1", "qty": 2}).into()))
        );
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
            vec![
                "headerz",
                "url",
                "method",
                "body",
                "timeout_ms",
                "max_response_bytes"
            ],
            "{:?}",
            parsed.problems
        );
        assert!(parsed.problems[2].message.contains("FETCH"));
        assert_eq!(
            parsed.problems[4].message,
            "must be a whole number from 0 to 4294967295, not -5"
        );
        assert_eq!(
            parsed.problems[5].message,
            "must be a whole number from 0 to 18446744073709551615, not string big"
        );
        // The unreadable method does not produce follow-up problems.
        assert_eq!(parsed.config.method, Method::Post);
    }

    #[test]
    fn nested_problems_name_the_exact_path() {
        let parsed = parse(
            json!({"url": "u", "retry": {"intervals_ms": [100, -5]}, "signing": {"secret": "s", "sheme": "x"}}),
        );
        let got: Vec<(&str, &str)> = parsed
            .problems
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            got[0],
            (
                "signing.sheme",
                "unknown field \"sheme\", expected one of \"secret\", \"scheme\", \"header\""
            )
        );
        assert_eq!(
            got[1],
            (
                "retry.intervals_ms[1]",
                "must be a whole number from 0 to 4294967295, not -5"
            )
        );
    }

    #[test]
    fn missing_url_and_non_object() {
        assert_eq!(parse(json!({})).problems[0].path, "url");
        assert!(parse(json!([1])).problems[0].message.contains("a list"));
        assert!(
            parse_step_config("{").problems[0]
                .message
                .contains("not valid JSON")
        );
    }

    #[test]
    fn bad_secret_is_never_echoed() {
        let parsed =
            parse(json!({"url": "https://x.test", "signing": {"secret": {"k": "hunter2"}}}));
        assert_eq!(parsed.problems.len(), 1);
        assert!(!parsed.problems[0].message.contains("hunter2"));
    }

    #[test]
    fn key_value_items_are_checked_one_by_one() {
        let parsed = parse(
            json!({"url": "https://x.test", "headers": [{"key": "a", "value": "b"}, {"key": "c"}, {"key": "d", "value": 1}]}),
        );
        let paths: Vec<&str> = parsed.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["headers[1]", "headers[2].value"]);
        assert_eq!(parsed.config.headers, vec![KeyValue::new("a", "b")]);
    }

    #[test]
    fn text_body_with_content_type_and_unknown_body_field() {
        let parsed = parse(
            json!({"url": "u", "method": "POST", "body": {"text": "hi", "content_type": "text/csv"}}),
        );
        assert!(parsed.problems.is_empty());
        assert_eq!(
            parsed.config.body,
            Some(Body::Text(TextBody {
                text: "hi".into(),
                content_type: Some("text/csv".into())
            }))
        );
        let parsed =
            parse(json!({"url": "u", "method": "POST", "body": {"json": 1, "content_type": "x"}}));
        // serde reports a body's own checks at `body`; the message names the key.
        assert_eq!(parsed.problems[0].path, "body");
        assert!(
            parsed.problems[0]
                .message
                .contains("belongs to a text body"),
            "{}",
            parsed.problems[0].message
        );
    }

    #[test]
    fn field_names_come_from_the_model_in_declaration_order() {
        let fields = field_names::<StepConfig>();
        assert_eq!(fields.first(), Some(&"url"));
        assert_eq!(fields.last(), Some(&"response_format"));
        assert!(fields.contains(&"decompress"));
    }
}
