//! Planning: the config rendered from the workflow context and checked,
//! once per run, into everything the attempts need.

use super::AttemptLimits;
use super::redact::Redactor;
use crate::auth::GrantPlan;
use crate::model::{KeyValue, Problem, ResponseFormat, StepConfig};
use crate::request::{PreparedRequest, prepare};
use crate::response_schema::ResponseSchema;
use crate::retry::RetryPlan;
use crate::sequence::{PagePlan, PollPlan};
use crate::signing::Signer;
use crate::status::StatusSet;
use crate::template::Source;
use crate::validate::render_and_check;

/// Everything needed to run a checked config.
pub(super) struct Plan {
    pub(super) request: PreparedRequest,
    pub(super) expected: StatusSet,
    pub(super) signer: Option<Signer>,
    pub(super) retry: RetryPlan,
    pub(super) schema: Option<ResponseSchema>,
    pub(super) outputs: Vec<KeyValue>,
    pub(super) follow_redirects: bool,
    pub(super) format: ResponseFormat,
    pub(super) pagination: Option<PagePlan>,
    pub(super) poll: Option<PollPlan>,
    pub(super) max_total_response_bytes: u64,
    /// The header `auth` adds (lower-case), dropped when a redirect leaves the origin.
    pub(super) auth_header: Option<String>,
    /// The rendered OAuth 2.0 grant whose token each attempt sends.
    pub(super) oauth2: Option<GrantPlan>,
    pub(super) limits: AttemptLimits,
}

/// Renders and checks `config` against the workflow `context`; `random`
/// gives random bytes (a multipart boundary).
pub(super) fn plan(
    config: StepConfig,
    context: String,
    random: &mut dyn FnMut(usize) -> Vec<u8>,
) -> Result<(Plan, Redactor), Vec<Problem>> {
    let parsed = serde_json::from_str::<serde_json::Value>(&context);
    // The text is dropped once parsed: a context carrying a file is held once.
    drop(context);
    let context = parsed.map_err(|err| {
        let mut problems = vec![Problem::new(
            "context",
            format!("the workflow context is not valid JSON: {err}"),
        )];
        problems.extend(crate::validate::validate(&config));
        problems
    })?;
    let (rendered, checked) = render_and_check(config, &Source::Context(&context))?;
    let mut secrets: Vec<String> = rendered
        .signing
        .iter()
        .flat_map(|s| s.secrets.clone())
        .collect();
    secrets.extend(rendered.auth.iter().flat_map(crate::auth::secrets));
    let redactor = Redactor::new(&context, &secrets);
    // Everything the context gives is in `rendered` now; without it, a file
    // body is decoded next to one copy of its base64, not two.
    drop(context);
    let plan = Plan {
        request: prepare(&rendered, random).map_err(|p| vec![p])?,
        expected: checked.expected,
        signer: checked.signer,
        retry: checked.retry,
        schema: checked.schema,
        outputs: rendered.outputs.clone(),
        follow_redirects: checked.follow_redirects,
        format: checked.format,
        pagination: checked.pagination,
        poll: checked.poll,
        max_total_response_bytes: checked.max_total_response_bytes,
        auth_header: rendered
            .auth
            .as_ref()
            .and_then(crate::auth::header_name)
            .map(|n| n.to_ascii_lowercase()),
        oauth2: checked.grant,
        limits: AttemptLimits {
            timeout_ms: checked.timeout_ms,
            max_response_bytes: checked.max_response_bytes,
            decompress: checked.decompress,
        },
    };
    Ok((plan, redactor))
}
