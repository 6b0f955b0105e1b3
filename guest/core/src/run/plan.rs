//! Planning: the config rendered from the workflow context and checked,
//! once per run, into everything the attempts need.

use super::AttemptLimits;
use crate::model::{Auth, KeyValue, Oauth2ClientCredentials, Problem, StepConfig};
use crate::request::{PreparedRequest, prepare};
use crate::retry::RetryPlan;
use crate::schema::ResponseSchema;
use crate::signing::Signer;
use crate::status::StatusSet;
use super::redact::Redactor;
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
    /// The header `auth` adds (lower-case), dropped when a redirect leaves the origin.
    pub(super) auth_header: Option<String>,
    /// The rendered OAuth 2.0 grant whose token each attempt sends.
    pub(super) oauth2: Option<Oauth2ClientCredentials>,
    pub(super) limits: AttemptLimits,
}

/// Renders and checks `config` against the workflow `context`.
pub(super) fn plan(config: &StepConfig, context: &str) -> Result<(Plan, Redactor), Vec<Problem>> {
    let context: serde_json::Value = serde_json::from_str(context).map_err(|err| {
        let mut problems = vec![Problem::new("context", format!("the workflow context is not valid JSON: {err}"))];
        problems.extend(crate::validate::validate(config));
        problems
    })?;
    let (rendered, checked) = render_and_check(config, &Source::Context(&context))?;
    let mut secrets = rendered.signing.as_ref().map(|s| s.secrets.clone()).unwrap_or_default();
    secrets.extend(rendered.auth.as_ref().map(crate::auth::secrets).unwrap_or_default());
    let plan = Plan {
        request: prepare(&rendered).map_err(|p| vec![p])?,
        expected: checked.expected,
        signer: checked.signer,
        retry: checked.retry,
        schema: checked.schema,
        outputs: rendered.outputs.clone(),
        follow_redirects: rendered.follow_redirects.unwrap_or(false),
        auth_header: rendered.auth.as_ref().and_then(crate::auth::header_name).map(|n| n.to_ascii_lowercase()),
        oauth2: match &rendered.auth {
            Some(Auth::Oauth2ClientCredentials(grant)) => Some(grant.clone()),
            _ => None,
        },
        limits: AttemptLimits {
            timeout_ms: rendered.timeout_ms(),
            max_response_bytes: rendered.max_response_bytes(),
            decompress: rendered.decompress(),
        },
    };
    Ok((plan, Redactor::new(&context, &secrets)))
}
