//! The JSON shapes of the model that serde cannot derive: each keeps the
//! config format's own messages (README "Step config").

use super::{BinaryBody, Body, KeyValue, Method, MultipartPart, StatusPattern, TextBody};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// A JSON document carried as its text, the way the WIT carries it (a body
/// of `json`, a `response_schema`). Read once from the config; the guest
/// parses it where it is used, so JSON text is never re-serialised to cross
/// the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the text; a problem at `path` when it is not JSON (text given
    /// through the WIT by a host that did not check it).
    pub fn parse(&self, path: &str) -> Result<Value, super::Problem> {
        serde_json::from_str(&self.0)
            .map_err(|err| super::Problem::new(path, format!("is not valid JSON: {err}")))
    }
}

impl From<&Value> for JsonText {
    fn from(value: &Value) -> Self {
        JsonText(value.to_string())
    }
}

impl From<Value> for JsonText {
    fn from(value: Value) -> Self {
        JsonText::from(&value)
    }
}

impl crate::Mirror<String> for JsonText {
    fn mirror(self) -> String {
        self.0
    }
}

impl crate::Mirror<JsonText> for String {
    fn mirror(self) -> JsonText {
        JsonText(self)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // From text, the document's own bytes; from a `Value`, its serialisation.
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(JsonText(raw.get().to_string()))
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Method::parse(&name).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown method {name:?}; use one of {}",
                Method::names()
            ))
        })
    }
}

impl<'de> Deserialize<'de> for StatusPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(StatusPattern::Pattern(s)),
            n @ Value::Number(_) => u16::deserialize(n)
                .map(StatusPattern::Code)
                .map_err(de::Error::custom),
            other => Err(de::Error::custom(format!(
                "must be a status code or a pattern such as \"2xx\", not {}",
                type_name(&other)
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Every key any body kind may have; which combinations are allowed is
        /// checked below, so each mistake gets its own message.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Shape {
            json: Option<JsonText>,
            form: Option<Vec<KeyValue>>,
            text: Option<String>,
            binary: Option<BinaryBody>,
            multipart: Option<Vec<MultipartPart>>,
            content_type: Option<String>,
        }
        const KINDS: &str = "\"json\", \"form\", \"text\", \"binary\" or \"multipart\"";
        let shape = Shape::deserialize(d)?;
        let given = [
            ("json", shape.json.is_some()),
            ("form", shape.form.is_some()),
            ("text", shape.text.is_some()),
            ("binary", shape.binary.is_some()),
            ("multipart", shape.multipart.is_some()),
        ];
        let kinds: Vec<&str> = given
            .into_iter()
            .filter_map(|(name, given)| given.then_some(name))
            .collect();
        if kinds.len() > 1 {
            return Err(de::Error::custom(format!(
                "give only one of {KINDS}, not {}",
                kinds.join(" and ")
            )));
        }
        if shape.content_type.is_some() && shape.text.is_none() {
            return Err(de::Error::custom(
                "\"content_type\" next to the body kind belongs to a text body; a binary body and multipart parts have their own content_type, and a json or form body takes a Content-Type header",
            ));
        }
        if let Some(json) = shape.json {
            Ok(Body::Json(json))
        } else if let Some(form) = shape.form {
            Ok(Body::Form(form))
        } else if let Some(text) = shape.text {
            Ok(Body::Text(TextBody {
                text,
                content_type: shape.content_type,
            }))
        } else if let Some(binary) = shape.binary {
            Ok(Body::Binary(binary))
        } else if let Some(parts) = shape.multipart {
            Ok(Body::Multipart(parts))
        } else {
            Err(de::Error::custom(format!("give exactly one of {KINDS}")))
        }
    }
}

/// `signing.secret`: one string or a list of strings. The message never
/// echoes the value: it is a secret.
pub(super) fn secrets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let bad = || de::Error::custom("must be a string or a list of strings");
    match Value::deserialize(d)? {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// `response_schema`: a JSON Schema is an object or a boolean (JSON Schema
/// 2020-12 §4.3).
pub(super) fn response_schema<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<JsonText>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v @ (Value::Object(_) | Value::Bool(_)) => Ok(Some(JsonText::from(&v))),
        other => Err(de::Error::custom(format!(
            "must be a JSON Schema (an object or a boolean), not {}",
            type_name(&other)
        ))),
    }
}

/// `outputs`: an object mapping names to JSON Pointers, kept in its order.
pub(super) fn outputs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<KeyValue>, D::Error> {
    struct Outputs;
    impl<'de> Visitor<'de> for Outputs {
        type Value = Vec<KeyValue>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object mapping names to JSON Pointers")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((name, pointer)) = map.next_entry::<String, String>()? {
                out.push(KeyValue::new(name, pointer));
            }
            Ok(out)
        }
    }
    d.deserialize_map(Outputs)
}

/// How a JSON value is named in messages ("a string", "a list", …).
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
