//! The JSON Schema (draft 2020-12) of the step config, generated from the
//! model (feature `schema`). The committed copy,
//! `guest/core/schema/step-config.schema.json`, is what editors and workflow
//! UIs use; a test fails when it drifts from [`step_config_schema`].
//!
//! Derived types get their schema from `schemars`; the shapes of
//! [`super::shapes`] (hand-written serde) get theirs here, next to nothing
//! else, so each is described once more only in the form a schema needs.

use super::{Body, DEFAULT_TEXT_CONTENT_TYPE, Method, StatusPattern, StepConfig};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::borrow::Cow;

/// The schema of a step config, as JSON.
pub fn step_config_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<StepConfig>();
    schema.to_value()
}

impl JsonSchema for Method {
    fn schema_name() -> Cow<'static, str> {
        "Method".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // Any case is accepted; a pattern spells that without listing every casing.
        let names = Method::ALL.map(Method::as_str).join("|");
        json_schema!({
            "description": format!("HTTP method (RFC 9110 §9.3), in any case: {}.", Method::names()),
            "type": "string",
            "pattern": format!("^(?i:{names})$"),
        })
    }
}

impl JsonSchema for StatusPattern {
    fn schema_name() -> Cow<'static, str> {
        "StatusPattern".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An exact status code such as 201, a class such as \"2xx\" or a range such as \"200-299\".",
            "oneOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": "^([1-5]xx|[1-5][0-9]{2}(-[1-5][0-9]{2})?)$"}
            ]
        })
    }
}

impl JsonSchema for Body {
    fn schema_name() -> Cow<'static, str> {
        "Body".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let key_values = generator.subschema_for::<Vec<super::KeyValue>>();
        let binary = generator.subschema_for::<super::BinaryBody>();
        let part = generator.subschema_for::<super::MultipartPart>();
        json_schema!({
            "description": "The request body: exactly one of json, form, text, binary or multipart.",
            "oneOf": [
                {
                    "description": "A JSON document, sent with Content-Type: application/json; its strings may hold {{ }} templates.",
                    "type": "object",
                    "properties": {"json": true},
                    "required": ["json"],
                    "additionalProperties": false
                },
                {
                    "description": "Fields sent as application/x-www-form-urlencoded (WHATWG URL §5).",
                    "type": "object",
                    "properties": {"form": key_values},
                    "required": ["form"],
                    "additionalProperties": false
                },
                {
                    "description": "Text sent as UTF-8.",
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "content_type": {
                            "description": format!("Content-Type to send. Default: {DEFAULT_TEXT_CONTENT_TYPE}."),
                            "type": "string",
                            "default": DEFAULT_TEXT_CONTENT_TYPE
                        }
                    },
                    "required": ["text"],
                    "additionalProperties": false
                },
                {
                    "description": "Bytes given as base64 and sent raw, with Content-Length.",
                    "type": "object",
                    "properties": {"binary": binary},
                    "required": ["binary"],
                    "additionalProperties": false
                },
                {
                    "description": "multipart/form-data (RFC 7578): parts in order, names may repeat; the boundary and the Content-Type header are the step's.",
                    "type": "object",
                    "properties": {"multipart": {"type": "array", "items": part, "minItems": 1}},
                    "required": ["multipart"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// `signing.secret`.
pub(super) fn secrets(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The secret, or several (key rotation: one signature each); may be {{ secrets.… }}.",
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1}
        ]
    })
}

/// `response_schema`.
pub(super) fn response_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "JSON Schema (draft 2020-12) the response JSON must satisfy. Default: none.",
        "type": ["object", "boolean", "null"]
    })
}

/// `outputs`.
pub(super) fn outputs(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Named values taken from the response JSON by JSON Pointer (RFC 6901): name → pointer. Default: none.",
        "type": "object",
        "additionalProperties": {"type": "string"},
        "propertyNames": {"pattern": "^[A-Za-z0-9_-]+$"},
        "default": {}
    })
}
