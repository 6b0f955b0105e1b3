//! The step config's JSON Schema (`guest/core/schema/step-config.schema.json`)
//! is generated from the model: this test fails when the committed file
//! drifts from it, and checks the schema against the README's full example,
//! an unknown key, and every case's config.
//!
//! Regenerate after a model change:
//! `HTTPS_STEP_BLESS=1 cargo test --release -p https-step-tests --test config_schema`.

use https_step_core::model::schema::step_config_schema;
use https_step_core::response_schema::ResponseSchema;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn committed_path() -> PathBuf {
    root().join("guest/core/schema/step-config.schema.json")
}

fn compiled() -> ResponseSchema {
    ResponseSchema::compile(&step_config_schema())
        .expect("the generated schema is a usable JSON Schema")
}

#[test]
fn committed_schema_matches_the_model() {
    let generated = serde_json::to_string_pretty(&step_config_schema()).expect("serialises") + "\n";
    let path = committed_path();
    if std::env::var_os("HTTPS_STEP_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the schema");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what the model generates; regenerate it with \
         HTTPS_STEP_BLESS=1 cargo test --release -p https-step-tests --test config_schema",
        path.display()
    );
}

#[test]
fn every_field_states_a_description() {
    let schema = step_config_schema();
    let properties = schema["properties"].as_object().expect("properties");
    for (name, property) in properties {
        let described = property.get("description").is_some()
            || property["$ref"].as_str().is_some_and(|r| {
                let def = r.trim_start_matches("#/$defs/");
                schema["$defs"][def].get("description").is_some()
            });
        assert!(described, "{name} has no description");
    }
    assert_eq!(schema["additionalProperties"], json!(false));
    assert_eq!(schema["required"], json!(["url"]));
}

fn readme_example() -> Value {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let section = readme
        .split("## Step config (JSON)")
        .nth(1)
        .expect("README has a Step config section");
    let block = section
        .split("```json")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a json block");
    serde_json::from_str(block).expect("the README example is JSON")
}

#[test]
fn readme_example_validates_and_reads_cleanly() {
    let example = readme_example();
    compiled()
        .check(&example)
        .expect("the README's full example satisfies the schema");
    let parsed = https_step_core::parse_step_config_value(&example);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
}

#[test]
fn unknown_keys_and_wrong_shapes_are_rejected() {
    let schema = compiled();
    let mut example = readme_example();
    example["retries"] = json!(3);
    assert!(
        !schema.is_valid(&example),
        "an unknown top-level key must be rejected"
    );
    for bad in [
        json!({"url": "https://x.test", "body": {"json": 1, "text": "x"}}),
        json!({"url": "https://x.test", "retry": {"max_attemps": 2}}),
        json!({"url": "https://x.test", "signing": {"secret": 5}}),
        json!({"url": "https://x.test", "method": "FETCH"}),
        json!({"url": "https://x.test", "outputs": {"id": 1}}),
        json!({"method": "GET"}),
    ] {
        assert!(!schema.is_valid(&bad), "the schema accepts {bad}");
        assert!(
            !https_step_core::parse_step_config_value(&bad)
                .problems
                .is_empty(),
            "the reader accepts {bad}"
        );
    }
}

/// The schema and the step agree on every config the cases use: a config
/// that reads and validates without a problem satisfies the schema.
#[test]
fn every_readable_case_config_satisfies_the_schema() {
    let schema = compiled();
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("tests/cases")).expect("cases") {
        let path = entry.expect("entry").path();
        // The suite fills `$SERVER` and `$PORT` with its own server's origin.
        let text = std::fs::read_to_string(&path)
            .expect("read")
            .replace("$SERVER", "https://127.0.0.1:8443")
            .replace("$PORT", "8443");
        let case: Value = serde_json::from_str(&text).expect("case JSON");
        let Some(step) = case.get("step") else {
            continue;
        };
        let parsed = https_step_core::parse_step_config_value(step);
        if !parsed.problems.is_empty() || !https_step_core::validate(&parsed.config).is_empty() {
            continue;
        }
        if let Err(problems) = schema.check(step) {
            panic!(
                "{}: the step accepts the config, the schema does not: {problems:?}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 50, "only {checked} case configs checked");
}
