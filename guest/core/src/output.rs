//! The output JSON of a run (README "CLI"): one object per run, the same
//! from `https-step run`, the Restate service and the HTTP service component.

use crate::model::{
    Attempt, KeyValue, PagesOutcome, Problem, Response, StepError, StepFailure, StepOutcome,
};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

fn error_json(e: &StepError) -> Value {
    let mut obj = Map::new();
    obj.insert("kind".into(), e.kind().into());
    obj.insert("message".into(), e.to_string().into());
    if let StepError::Auth(a) = e
        && let Some(code) = &a.code
    {
        obj.insert("code".into(), code.as_str().into());
    }
    if let Some(problems) = e.problems() {
        obj.insert("problems".into(), problems_json(problems));
    }
    Value::Object(obj)
}

/// Problems as the output writes them, `[{"path", "message"}]`: in an
/// `invalid-config` error and as `validate --json` and `POST /validate`
/// print them.
pub fn problems_json(problems: &[Problem]) -> Value {
    problems
        .iter()
        .map(|p| json!({"path": p.path, "message": p.message}))
        .collect()
}

fn attempt_json(a: &Attempt) -> Value {
    let mut v = json!({
        "attempt": a.number,
        "status": a.status,
        "error": a.error.as_ref().map(error_json),
        "elapsed_ms": a.elapsed_ms,
        "wait_ms": a.wait_ms,
        "wait_reason": a.wait_reason.map(|r| r.as_str()),
    });
    // Only paginated steps and polled jobs number their requests.
    for (key, n) in [("page", a.page), ("poll", a.poll)] {
        if let Some(n) = n {
            v[key] = n.into();
        }
    }
    if let Some(limit) = &a.host_limit {
        v["host_limit"] = limit.as_str().into();
    }
    v
}

/// The output object, serialised field by field: the response JSON goes in
/// as the text it is (`RawValue`), never as a parsed tree, so a paginated
/// step's million items cost the host their bytes, not a `Value` each.
#[derive(Serialize)]
struct Output<'a> {
    ok: bool,
    continued: bool,
    status: Option<u16>,
    headers: Vec<[&'a str; 2]>,
    body: Option<&'a str>,
    body_base64: Option<&'a str>,
    content_type: Option<&'a str>,
    body_sha256: Option<&'a str>,
    json: Option<&'a RawValue>,
    outputs: Map<String, Value>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pagination: Option<PagesJson<'a>>,
    attempts: Vec<Value>,
    error: Option<Value>,
}

/// `pages`, `truncated` and `stopped` of a paginated step.
#[derive(Serialize)]
struct PagesJson<'a> {
    pages: Vec<Value>,
    truncated: bool,
    stopped: &'a str,
}

impl<'a> Output<'a> {
    fn new(
        ok: bool,
        continued: bool,
        response: Option<&'a Response>,
        outputs: &[KeyValue],
        attempts: &[Attempt],
        error: Option<&StepError>,
    ) -> Self {
        let parsed = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
        Output {
            ok,
            continued,
            status: response.map(|r| r.status),
            headers: response
                .map(|r| {
                    r.headers
                        .iter()
                        .map(|kv| [kv.key.as_str(), kv.value.as_str()])
                        .collect()
                })
                .unwrap_or_default(),
            body: response.map(|r| r.body.as_str()),
            body_base64: response.and_then(|r| r.body_base64.as_deref()),
            content_type: response.and_then(|r| r.content_type.as_deref()),
            body_sha256: response.and_then(|r| r.body_sha256.as_deref()),
            // The guest hands over JSON it serialised; text that is not (a
            // faulty guest) becomes null rather than breaking the output.
            json: response
                .and_then(|r| r.json.as_deref())
                .and_then(|text| serde_json::from_str::<&RawValue>(text).ok()),
            outputs: outputs
                .iter()
                .map(|kv| (kv.key.clone(), parsed(&kv.value)))
                .collect(),
            pagination: None,
            attempts: attempts.iter().map(attempt_json).collect(),
            error: error.map(error_json),
        }
    }

    fn paged(mut self, pages: Option<&'a PagesOutcome>) -> Self {
        self.pagination = pages.map(|p| PagesJson {
            pages: p
                .pages
                .iter()
                .map(|s| json!({"page": s.page, "status": s.status, "items": s.items}))
                .collect(),
            truncated: p.truncated,
            stopped: p.stopped.as_str(),
        });
        self
    }

    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!(r#"{{"ok":false,"error":{{"kind":"internal","message":"the output could not be written: {e}"}}}}"#))
    }
}

/// The output object of a step that ran (successfully, continued or failed), as JSON text.
pub fn step_result_json(result: &Result<StepOutcome, StepFailure>) -> String {
    match result {
        Ok(o) => Output::new(
            true,
            o.continued_error.is_some(),
            o.response.as_ref(),
            &o.outputs,
            &o.attempts,
            o.continued_error.as_ref(),
        )
        .paged(o.pagination.as_ref())
        .text(),
        Err(f) => Output::new(
            false,
            false,
            f.response.as_ref(),
            &[],
            &f.attempts,
            Some(&f.error),
        )
        .paged(f.pagination.as_ref())
        .text(),
    }
}

/// The output object of a step that could not be run at all (the host
/// failed: `error.kind` is the host's, e.g. `load` or `guest-trap`), as JSON
/// text.
pub fn unrun_json(kind: &str, message: &str) -> String {
    let mut out = Output::new(false, false, None, &[], &[], None);
    out.error = Some(json!({"kind": kind, "message": message}));
    out.text()
}
