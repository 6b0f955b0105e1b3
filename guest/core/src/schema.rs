//! `response_schema`: a JSON Schema (draft 2020-12) the response JSON must
//! satisfy, checked with the `jsonschema` crate (built without its network and
//! file features: a `$ref` to another document fails to compile, it is never
//! fetched).

use crate::model::Problem;
use serde_json::Value;

/// A compiled response schema.
pub struct ResponseSchema(jsonschema::Validator);

impl std::fmt::Debug for ResponseSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseSchema")
    }
}

/// Most violations reported for one response; the rest are counted.
pub const MAX_VIOLATIONS: usize = 50;

impl ResponseSchema {
    /// Compiles `schema`; a schema that is not valid draft 2020-12 is a problem
    /// at `response_schema`.
    pub fn compile(schema: &Value) -> Result<Self, Problem> {
        jsonschema::draft202012::new(schema)
            .map(ResponseSchema)
            .map_err(|e| Problem::new("response_schema", format!("is not a usable JSON Schema (draft 2020-12): {e}")))
    }

    /// Every violation of `instance`: the JSON Pointer of the offending value
    /// (`/` for the whole document) and what is wrong.
    pub fn check(&self, instance: &Value) -> Result<(), Vec<Problem>> {
        let mut problems: Vec<Problem> = Vec::new();
        let mut extra = 0usize;
        for error in self.0.iter_errors(instance) {
            if problems.len() == MAX_VIOLATIONS {
                extra += 1;
                continue;
            }
            let path = error.instance_path().to_string();
            let path = if path.is_empty() { "/".to_string() } else { path };
            problems.push(Problem::new(path, error.to_string()));
        }
        if extra > 0 {
            problems.push(Problem::new("/", format!("and {extra} more violations")));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_every_violation_with_its_path() {
        let schema = ResponseSchema::compile(&json!({
            "type": "object",
            "required": ["id", "status"],
            "properties": {
                "id": {"type": "string", "pattern": "^ord_"},
                "status": {"enum": ["open", "closed"]},
                "items": {"type": "array", "items": {"type": "integer", "minimum": 1}}
            }
        }))
        .expect("valid schema");
        assert_eq!(schema.check(&json!({"id": "ord_1", "status": "open", "items": [1, 2]})), Ok(()));
        let problems = schema.check(&json!({"id": "x_1", "items": [1, 0, "a"]})).expect_err("violations");
        let mut paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["/", "/id", "/items/1", "/items/2"], "{problems:?}");
        assert!(problems.iter().any(|p| p.message.contains("\"status\" is a required property")), "{problems:?}");
    }

    #[test]
    fn bad_schema_and_remote_refs_are_problems() {
        assert_eq!(ResponseSchema::compile(&json!({"type": 12})).expect_err("invalid").path, "response_schema");
        let remote = ResponseSchema::compile(&json!({"$ref": "https://example.com/schema.json"}));
        assert!(remote.is_err(), "a remote $ref must not be fetched");
    }
}
