//! The request body (`body`) and its kinds.

use super::KeyValue;
use crate::model::JsonText;
use https_step_core_derive::Mirror;
use serde::Deserialize;

/// Default `Content-Type` of a text body.
pub const DEFAULT_TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// Default `Content-Type` of a binary body, and of a multipart part that
/// carries bytes or a file.
pub const DEFAULT_BINARY_CONTENT_TYPE: &str = "application/octet-stream";

/// The request body: in JSON exactly one of `{"json": …}`, `{"form": […]}`,
/// `{"text": "…", "content_type": "…"}`, `{"binary": {…}}` or
/// `{"multipart": […]}`.
#[derive(Debug, Clone, PartialEq, Mirror)]
pub enum Body {
    /// A JSON document, sent with `Content-Type: application/json`; its strings
    /// may hold templates.
    Json(JsonText),
    /// Fields sent as `application/x-www-form-urlencoded` (WHATWG URL §5).
    Form(Vec<KeyValue>),
    /// Raw text with its own content type.
    Text(TextBody),
    /// Bytes given as base64, sent raw.
    Binary(BinaryBody),
    /// `multipart/form-data` (RFC 7578), parts in order.
    Multipart(Vec<MultipartPart>),
}

/// A text body and its media type.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
pub struct TextBody {
    /// The text, sent as UTF-8.
    pub text: String,
    /// `Content-Type` to send. Default: `text/plain; charset=utf-8`.
    pub content_type: Option<String>,
}

/// Bytes sent as they are: a document, an image, a PDF.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BinaryBody {
    /// The bytes, base64-encoded (RFC 4648 §4, padding optional, line
    /// breaks ignored); may be a `{{ }}` template, e.g. a previous step's
    /// `body_base64`.
    pub base64: String,
    /// `Content-Type` to send; may be a template. Default:
    /// `application/octet-stream`.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_BINARY_CONTENT_TYPE)))]
    pub content_type: Option<String>,
}

/// One part of a `multipart/form-data` body (RFC 7578): a text field
/// (`value`) or bytes (`base64`), optionally as a file (`filename`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(extend("oneOf" = [
    {"required": ["value"], "properties": {"value": {"type": "string"}}},
    {"required": ["base64"], "properties": {"base64": {"type": "string"}}}
])))]
#[serde(deny_unknown_fields)]
pub struct MultipartPart {
    /// The field name (not a template); names may repeat.
    pub name: String,
    /// Text content, sent as UTF-8; may be a template. Give this or `base64`.
    pub value: Option<String>,
    /// Binary content, base64-encoded as for a binary body; may be a
    /// template. Give this or `value`.
    pub base64: Option<String>,
    /// The part's file name, which makes it a file upload; may be a
    /// template. Default: none.
    pub filename: Option<String>,
    /// The part's `Content-Type`; may be a template. Default:
    /// `application/octet-stream` for a file or `base64` part, none (which
    /// means `text/plain`, RFC 7578 §4.4) for a text field.
    pub content_type: Option<String>,
}
