//! Every default has one home — a constant next to its field in
//! [`crate::model::config`] — and is stated in three documents: the JSON
//! Schema's `default`s (generated from the constants), the WIT and the
//! README. These tests read each `default` of the schema back from what
//! validation resolves for configs that leave every optional field out, and
//! check that the WIT's and the README's docs state the same value, so none
//! of them can drift from the behaviour.

use crate::model::StepConfig;
use crate::model::{ApiKeyIn, Auth, BinaryBody, StatusPattern};
use crate::retry::Schedule;
use crate::validate::{Checked, check};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Every `default` in the schema, as `Type.field` (top-level fields are
/// `StepConfig`'s; a text body's is `Body.content_type`).
fn schema_defaults() -> BTreeMap<String, Value> {
    let schema = crate::model::schema::step_config_schema();
    let mut found = BTreeMap::new();
    let mut add = |owner: &str, properties: &Value| {
        for (field, property) in properties.as_object().into_iter().flatten() {
            if let Some(default) = property.get("default") {
                found.insert(format!("{owner}.{field}"), default.clone());
            }
        }
    };
    add("StepConfig", &schema["properties"]);
    for (name, def) in schema["$defs"].as_object().expect("$defs") {
        add(name, &def["properties"]);
        for alternative in def["oneOf"].as_array().into_iter().flatten() {
            add(name, &alternative["properties"]);
        }
    }
    found
}

fn checked(config: Value) -> (StepConfig, Checked) {
    let parsed = crate::parse_step_config(&config.to_string());
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let checked = check(&parsed.config).expect("a valid config");
    (parsed.config, checked)
}

/// What validation resolves each defaulted field to.
fn resolved() -> BTreeMap<String, Value> {
    let mut r = BTreeMap::new();
    let mut put = |key: &str, value: Value| {
        r.insert(key.to_string(), value);
    };
    let grant = json!({"token_url": "https://auth.test/t", "client_id": "i", "client_secret": "s", "refresh_on": {}});
    let (_, c) = checked(json!({
        "url": "https://api.test/", "method": "POST", "retry": {}, "signing": {"secret": "abcd"},
        "auth": {"oauth2_client_credentials": grant},
        "pagination": {"next": {"page": {"param": "p"}}, "items": "/items"},
    }));
    put("StepConfig.timeout_ms", json!(c.timeout_ms));
    let two_xx = crate::status::parse_patterns(&[StatusPattern::Pattern(
        crate::model::DEFAULT_EXPECTED_STATUS.into(),
    )]);
    assert_eq!(two_xx.as_ref().ok(), Some(&c.expected));
    put(
        "StepConfig.expected_status",
        json!([crate::model::DEFAULT_EXPECTED_STATUS]),
    );
    put("StepConfig.max_response_bytes", json!(c.max_response_bytes));
    put("StepConfig.follow_redirects", json!(c.follow_redirects));
    put("StepConfig.decompress", json!(c.decompress));
    put(
        "StepConfig.max_total_response_bytes",
        json!(c.max_total_response_bytes),
    );
    put("StepConfig.response_format", json!(c.format.as_str()));
    put(
        "Signing.scheme",
        json!(c.signer.as_ref().expect("a signer").scheme().as_str()),
    );
    let Schedule::Exponential {
        initial_ms,
        multiplier,
        max_interval_ms,
        max_attempts,
        jitter,
    } = c.retry.schedule
    else {
        panic!("the exponential form by default")
    };
    put("RetryPolicy.initial_ms", json!(initial_ms));
    put("RetryPolicy.multiplier", json!(multiplier));
    put("RetryPolicy.max_interval_ms", json!(max_interval_ms));
    put("RetryPolicy.max_attempts", json!(max_attempts));
    put("RetryPolicy.jitter", json!(jitter.as_str()));
    put(
        "RetryPolicy.retry_on_status",
        json!(c.retry.retry_on_status),
    );
    put(
        "RetryPolicy.max_retry_after_ms",
        json!(c.retry.max_retry_after_ms),
    );
    let grant = c.grant.expect("a grant");
    put(
        "Oauth2ClientCredentials.params",
        json!(
            grant
                .grant
                .params
                .iter()
                .map(|kv| &kv.key)
                .collect::<Vec<_>>()
        ),
    );
    put(
        "Oauth2ClientCredentials.client_auth",
        json!(grant.client_auth.as_str()),
    );
    put(
        "Oauth2ClientCredentials.expiry_margin_s",
        json!(grant.expiry_margin_s),
    );
    put(
        "Oauth2ClientCredentials.default_lifetime_s",
        json!(grant.default_lifetime_s),
    );
    put("TokenRefresh.status", json!(grant.refresh_status));
    let pages = c.pagination.expect("pagination");
    put("Pagination.max_pages", json!(pages.max_pages));
    put("Pagination.interval_ms", json!(pages.interval_ms));
    put("Pagination.allowed_origins", json!(pages.allowed_origins));
    put(
        "PageNumberNext.start",
        json!(pages.next.counter().map(|(_, start)| start)),
    );
    let next = |next: Value| {
        let (_, c) = checked(
            json!({"url": "https://api.test/", "pagination": {"next": next, "items": "/items"}}),
        );
        c.pagination.expect("pagination").next
    };
    match next(json!({"link_header": {}})) {
        crate::sequence::NextPage::LinkHeader { rel } => put("LinkHeaderNext.rel", json!(rel)),
        other => panic!("{other:?}"),
    }
    put(
        "OffsetNext.start",
        json!(
            next(json!({"offset": {"param": "o"}}))
                .counter()
                .map(|(_, s)| s)
        ),
    );
    let (config, c) = checked(
        json!({"url": "https://api.test/", "poll": {"until": {"pointer": "/s", "success": ["ok"]}}}),
    );
    let poll = c.poll.as_ref().expect("poll");
    // A config that leaves out even the method.
    put("StepConfig.method", json!(config.method.as_str()));
    put(
        "StepConfig.headers",
        json!(config.headers.iter().map(|kv| &kv.key).collect::<Vec<_>>()),
    );
    put(
        "StepConfig.query",
        json!(config.query.iter().map(|kv| &kv.key).collect::<Vec<_>>()),
    );
    put(
        "StepConfig.outputs",
        json!(
            config
                .outputs
                .iter()
                .map(|kv| (&kv.key, &kv.value))
                .collect::<BTreeMap<_, _>>()
        ),
    );
    put(
        "StepConfig.continue_on_error",
        json!(config.continue_on_error),
    );
    put("Poll.on_status", json!(poll.on_status));
    put(
        "Poll.status_url",
        json!(match poll.status_url {
            crate::model::StatusUrl::Location => "location",
            crate::model::StatusUrl::Pointer(_) => "a pointer",
        }),
    );
    put("Poll.interval_ms", json!(poll.interval_ms));
    put("Poll.max_polls", json!(poll.max_polls));
    put("Poll.allowed_origins", json!(poll.allowed_origins));
    put(
        "PollUntil.failure",
        json!(poll.until.as_ref().expect("until").failure),
    );
    let (config, _) = checked(
        json!({"url": "https://api.test/", "auth": {"api_key": {"name": "K", "value": "v"}}}),
    );
    let Some(Auth::ApiKey(key)) = config.auth else {
        panic!("an API key")
    };
    assert_eq!(key.placement(), ApiKeyIn::Header);
    put("ApiKeyAuth.in", json!(key.placement().as_str()));
    // The body kinds' media types, as the encoder applies them.
    let media_type = |body: crate::model::Body| {
        let encoded = crate::body::encode(&body, &mut || "b".into()).expect("encodes");
        json!(encoded.content_type.map(|c| c.into_owned()))
    };
    put(
        "Body.content_type",
        media_type(crate::model::Body::Text(crate::model::TextBody {
            text: "t".into(),
            content_type: None,
        })),
    );
    put(
        "BinaryBody.content_type",
        media_type(crate::model::Body::Binary(BinaryBody {
            base64: "AA==".into(),
            content_type: None,
        })),
    );
    r
}

#[test]
fn every_schema_default_is_the_default_validation_applies() {
    let schema = schema_defaults();
    let resolved = resolved();
    for (key, default) in &schema {
        assert_eq!(
            resolved.get(key),
            Some(default),
            "{key}: the schema says {default}, validation applies another value"
        );
    }
    let undocumented: Vec<&String> = resolved
        .keys()
        .filter(|k| !schema.contains_key(*k))
        .collect();
    assert!(
        undocumented.is_empty(),
        "defaults the schema does not state: {undocumented:?}"
    );
}

/// The repository root (this crate is `guest/core`).
fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The words a documented default must contain: the value as text, every
/// element of a list.
fn needles(default: &Value) -> Vec<String> {
    match default {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(needles).collect(),
        other => vec![other.to_string()],
    }
}

fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(if c == '_' { '-' } else { c });
        }
    }
    out
}

/// The WIT states the same defaults: every field that is an `option` in
/// `wit/https-step.wit` (so the component applies a default) and has one in
/// the schema says `Default:` with that value in its doc.
#[test]
fn the_wit_states_the_schema_defaults() {
    let mut wit = wit_parser::Resolve::default();
    let (package, _) = wit.push_dir(root().join("wit")).expect("the WIT parses");
    let types = wit.packages[package].interfaces["types"];
    let records: std::collections::HashMap<&str, &wit_parser::Record> = wit.interfaces[types]
        .types
        .iter()
        .filter_map(|(name, id)| match &wit.types[*id].kind {
            wit_parser::TypeDefKind::Record(r) => Some((name.as_str(), r)),
            _ => None,
        })
        .collect();
    let mut checked = 0;
    for (key, default) in schema_defaults() {
        let (owner, field) = key.split_once('.').expect("Type.field");
        // Where the WIT keeps it: a text body's media type is `text-body`'s,
        // the API key's JSON `in` is `location`.
        let (record, name) = match (owner, field) {
            ("Body", "content_type") => ("text-body".to_string(), "content-type".to_string()),
            ("ApiKeyAuth", "in") => ("api-key-auth".to_string(), "location".to_string()),
            _ => (kebab(owner), kebab(field)),
        };
        let fields = &records
            .get(record.as_str())
            .unwrap_or_else(|| panic!("no WIT record {record}"))
            .fields;
        let wit_field = fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name} in WIT record {record}"));
        let optional = matches!(wit_field.ty, wit_parser::Type::Id(id)
            if matches!(wit.types[id].kind, wit_parser::TypeDefKind::Option(_)));
        if !optional {
            continue;
        }
        let docs = wit_field.docs.contents.clone().unwrap_or_default();
        let stated = docs.split("Default:").nth(1).unwrap_or_else(|| {
            panic!(
                "{record}.{name} has a default ({default}) but its WIT doc states none: {docs:?}"
            )
        });
        for needle in needles(&default) {
            assert!(
                stated.contains(&needle),
                "{record}.{name}: the default is {default}, the WIT says {stated:?}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} defaults checked");
}

/// The README's table of top-level fields states the same defaults.
#[test]
fn the_readme_states_the_schema_defaults() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    for (key, default) in schema_defaults() {
        let Some(field) = key.strip_prefix("StepConfig.") else {
            continue;
        };
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{field}` |")))
            .unwrap_or_else(|| panic!("no README row for {field}"));
        let cell = row
            .trim_end_matches('|')
            .rsplit('|')
            .next()
            .unwrap_or_default();
        let empty = matches!(&default, Value::Array(a) if a.is_empty())
            || matches!(&default, Value::Object(o) if o.is_empty());
        if empty {
            assert!(
                cell.contains("none"),
                "{field}: the default is {default}, the README says {cell:?}"
            );
            continue;
        }
        for needle in needles(&default) {
            assert!(
                cell.contains(&needle),
                "{field}: the default is {default}, the README says {cell:?}"
            );
        }
    }
}
