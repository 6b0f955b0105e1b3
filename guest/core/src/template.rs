//! `{{ path }}` templates: values pulled from the workflow context into the
//! URL, header and query values, form fields, the text body, every string of a
//! JSON body, and the signing secret.
//!
//! Syntax: `{{ steps.create_user.output.id }}`, `{{ items[0].sku }}`; spaces
//! inside the braces are ignored; `{{{{` is a literal `{{`. A key is any run
//! of characters other than `.`, `[`, `]`, `{`, `}` and white space.
//!
//! Values are inserted safely for where they land: percent-encoded in the URL
//! (only after `https://host/`, so a value never changes the host, port or
//! path structure), refused in a header when they hold CR, LF or NUL, and
//! typed in a JSON body (a string that is exactly one placeholder takes the
//! value's JSON type). An unknown path is an error naming the path and the
//! field. Values under `secrets` may not go into the URL or query, and are
//! redacted (`***`) from everything the step reports.

use crate::headers::check_value;
use crate::model::{
    ApiKeyIn, Auth, Body, DEFAULT_SIGNING_SCHEME, Problem, SigningScheme, StepConfig,
};
use crate::request::encode_query_component;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// One step of a context path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPart {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A path into the workflow context, e.g. `items[0].sku`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextPath(Vec<PathPart>);

impl fmt::Display for ContextPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            match part {
                PathPart::Key(k) if i == 0 => write!(f, "{k}")?,
                PathPart::Key(k) => write!(f, ".{k}")?,
                PathPart::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl ContextPath {
    /// Parses `a.b[0].c`.
    pub fn parse(text: &str) -> Result<ContextPath, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(
                "an empty {{ }} names nothing; write a path such as {{ steps.create.id }}".into(),
            );
        }
        let mut parts = Vec::new();
        let mut rest = text;
        let mut expect_key = true;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                let (index, tail) = after
                    .split_once(']')
                    .ok_or_else(|| format!("{text:?}: a [ is not closed"))?;
                let n = index
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("{text:?}: [{index}] is not an array index"))?;
                parts.push(PathPart::Index(n));
                rest = tail;
                expect_key = false;
            } else if let Some(after) = rest.strip_prefix('.') {
                if expect_key {
                    return Err(format!("{text:?}: a key is missing before '.'"));
                }
                rest = after;
                expect_key = true;
            } else {
                if !expect_key {
                    return Err(format!("{text:?}: write '.' between keys"));
                }
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let key = &rest[..end];
                if key.is_empty()
                    || key.contains(|c: char| c.is_whitespace() || matches!(c, ']' | '{' | '}'))
                {
                    return Err(format!("{text:?}: {key:?} is not a valid key"));
                }
                parts.push(PathPart::Key(key.to_string()));
                rest = &rest[end..];
                expect_key = false;
            }
        }
        if expect_key {
            return Err(format!("{text:?}: the path ends with '.'"));
        }
        Ok(ContextPath(parts))
    }

    /// Whether the path names a workflow secret (`secrets.…`).
    pub fn is_secret(&self) -> bool {
        matches!(self.0.first(), Some(PathPart::Key(k)) if k == "secrets")
    }

    /// The value at this path, or the longest prefix that exists.
    fn lookup<'a>(&self, root: &'a Value) -> Result<&'a Value, String> {
        let mut value = root;
        for (i, part) in self.0.iter().enumerate() {
            let next = match part {
                PathPart::Key(k) => value.get(k.as_str()),
                PathPart::Index(n) => value.get(*n),
            };
            value = next.ok_or_else(|| {
                let found = ContextPath(self.0[..i].to_vec());
                match (i, value) {
                    (0, _) => format!("the workflow context has no {self}"),
                    (_, Value::Array(a)) => format!(
                        "the workflow context has no {self}: {found} has {} items",
                        a.len()
                    ),
                    _ => format!(
                        "the workflow context has no {self}: {found} has no {}",
                        ContextPath(vec![part.clone()])
                    ),
                }
            })?;
        }
        Ok(value)
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text taken as is.
    Literal(String),
    /// A value from the context.
    Placeholder(ContextPath),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Segment>);

impl Template {
    /// Parses `text`; the error explains the syntax problem.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("{{") {
            literal.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(tail) = after.strip_prefix("{{{{") {
                literal.push_str("{{");
                rest = tail;
                continue;
            }
            let inner = &after[2..];
            let end = inner
                .find("}}")
                .ok_or("a {{ is not closed by }} (write {{{{ for a literal {{)")?;
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(Segment::Placeholder(ContextPath::parse(&inner[..end])?));
            rest = &inner[end + 2..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template(segments))
    }

    /// The context paths used.
    pub fn paths(&self) -> impl Iterator<Item = &ContextPath> {
        self.0.iter().filter_map(|s| match s {
            Segment::Placeholder(p) => Some(p),
            Segment::Literal(_) => None,
        })
    }

    /// The single path when the template is exactly one placeholder.
    fn sole_path(&self) -> Option<&ContextPath> {
        match self.0.as_slice() {
            [Segment::Placeholder(p)] => Some(p),
            _ => None,
        }
    }
}

/// A value as text: strings as they are, anything else as compact JSON.
fn as_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// Where values come from: the workflow context, or — for checking a config
/// without one — a stand-in that gives `x` for every path.
pub enum Source<'a> {
    /// The workflow context.
    Context(&'a Value),
    /// Static checking: every placeholder is `x`.
    StandIn,
}

impl Source<'_> {
    /// The value at `path`, borrowed from the context (a value of many
    /// megabytes is copied only where it lands).
    fn get(&self, path: &ContextPath) -> Result<Cow<'_, Value>, String> {
        match self {
            Source::Context(root) => path.lookup(root).map(Cow::Borrowed),
            Source::StandIn => Ok(Cow::Owned(Value::String("x".into()))),
        }
    }
}

/// Renders a template as text.
fn render_text(
    text: &str,
    field: &str,
    source: &Source<'_>,
    problems: &mut Vec<Problem>,
) -> String {
    let template = match Template::parse(text) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem::new(field, e));
            return text.to_string();
        }
    };
    let mut out = String::new();
    for segment in &template.0 {
        match segment {
            Segment::Literal(l) => out.push_str(l),
            Segment::Placeholder(p) => match source.get(p) {
                Ok(v) => out.push_str(&as_text(&v)),
                Err(e) => problems.push(Problem::new(field, format!("{{{{ {p} }}}}: {e}"))),
            },
        }
    }
    out
}

/// Renders the URL: values are percent-encoded for the path or the query,
/// whichever they land in, and may only appear after `scheme://authority/`.
fn render_url(url: &str, field: &str, source: &Source<'_>, problems: &mut Vec<Problem>) -> String {
    let Ok(template) = Template::parse(url) else {
        return render_text(url, field, source, problems);
    };
    let mut out = String::new();
    for segment in &template.0 {
        match segment {
            Segment::Literal(l) => out.push_str(l),
            Segment::Placeholder(p) => {
                // The authority ends at the first '/', '?' or '#' after "://".
                let authority_done = out
                    .split_once("://")
                    .is_some_and(|(_, after)| after.contains(['/', '?', '#']));
                if !authority_done {
                    problems.push(Problem::new(
                        field,
                        format!("{{{{ {p} }}}} is in the scheme, host or port; templates may only fill the path or query, after https://host/"),
                    ));
                    return url.to_string();
                }
                if p.is_secret() {
                    problems.push(secret_in_url(field, p));
                    continue;
                }
                match source.get(p) {
                    // Encoding every reserved character keeps '/', '?', '#', '@'
                    // from changing the URL's structure (RFC 3986 §2.2).
                    Ok(v) => out.push_str(&encode_query_component(&as_text(&v))),
                    Err(e) => problems.push(Problem::new(field, format!("{{{{ {p} }}}}: {e}"))),
                }
            }
        }
    }
    out
}

fn secret_in_url(field: &str, p: &ContextPath) -> Problem {
    Problem::new(
        field,
        format!(
            "{{{{ {p} }}}} would put a secret into the URL, which servers and proxies log; send it in a header or the body instead"
        ),
    )
}

/// Renders strings inside a JSON body; a string that is exactly one
/// placeholder takes the value's JSON type.
fn render_json(
    value: &Value,
    field: &str,
    source: &Source<'_>,
    problems: &mut Vec<Problem>,
) -> Value {
    match value {
        Value::String(s) => {
            if let Ok(t) = Template::parse(s)
                && let Some(p) = t.sole_path()
            {
                return match source.get(p) {
                    Ok(v) => v.into_owned(),
                    Err(e) => {
                        problems.push(Problem::new(field, format!("{{{{ {p} }}}}: {e}")));
                        Value::Null
                    }
                };
            }
            Value::String(render_text(s, field, source, problems))
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| render_json(v, &format!("{field}[{i}]"), source, problems))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        render_json(v, &format!("{field}.{k}"), source, problems),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Renders a field in place; a field without `{{` is left untouched (no
/// copy: a body of many megabytes stays where it is).
fn render_field(value: &mut String, field: &str, source: &Source<'_>, problems: &mut Vec<Problem>) {
    if value.contains("{{") {
        *value = render_text(value, field, source, problems);
    }
}

/// Renders a base64 field. Without a context, a templated one stands in as
/// empty (valid base64), so only its template syntax is checked.
fn render_base64(
    value: &mut String,
    field: &str,
    source: &Source<'_>,
    problems: &mut Vec<Problem>,
) {
    let templated = value.contains("{{");
    render_field(value, field, source, problems);
    if templated && matches!(source, Source::StandIn) {
        value.clear();
    }
}

/// Renders every templated field of `config` from `source`, in place,
/// collecting every problem (syntax, placement, unknown paths, unsafe header
/// values). Fields with a problem are left as they were.
pub fn render_config(mut config: StepConfig, source: &Source<'_>) -> (StepConfig, Vec<Problem>) {
    let mut problems = Vec::new();
    let url = std::mem::take(&mut config.url);
    config.url = render_url(&url, "url", source, &mut problems);
    for (i, kv) in config.headers.iter_mut().enumerate() {
        let field = format!("headers[{i}].value");
        let before = problems.len();
        let templated = kv.value.contains("{{");
        render_field(&mut kv.value, &field, source, &mut problems);
        // Only a rendered value is checked here; literal values are validate's.
        if problems.len() == before
            && templated
            && let Some(p) = check_value(&field, &kv.value)
        {
            problems.push(Problem::new(
                field,
                format!("a {{{{ }}}} value here is unusable: {}", p.message),
            ));
        }
    }
    for (i, kv) in config.query.iter_mut().enumerate() {
        let field = format!("query[{i}].value");
        if let Ok(t) = Template::parse(&kv.value)
            && let Some(p) = t.paths().find(|p| p.is_secret())
        {
            problems.push(secret_in_url(&field, p));
            continue;
        }
        // Encoded later, with every other query value.
        render_field(&mut kv.value, &field, source, &mut problems);
    }
    match &mut config.body {
        None => {}
        Some(Body::Json(text)) => match text.parse("body.json") {
            Ok(v) => *text = render_json(&v, "body.json", source, &mut problems).into(),
            Err(p) => problems.push(p),
        },
        Some(Body::Form(fields)) => {
            for (i, kv) in fields.iter_mut().enumerate() {
                render_field(
                    &mut kv.value,
                    &format!("body.form[{i}].value"),
                    source,
                    &mut problems,
                );
            }
        }
        Some(Body::Text(t)) => render_field(&mut t.text, "body.text", source, &mut problems),
        Some(Body::Binary(b)) => {
            render_base64(&mut b.base64, "body.binary.base64", source, &mut problems);
            if let Some(ct) = &mut b.content_type {
                render_field(ct, "body.binary.content_type", source, &mut problems);
            }
        }
        Some(Body::Multipart(parts)) => {
            for (i, part) in parts.iter_mut().enumerate() {
                let at = |field: &str| format!("body.multipart[{i}].{field}");
                if let Some(value) = &mut part.value {
                    render_field(value, &at("value"), source, &mut problems);
                }
                if let Some(b64) = &mut part.base64 {
                    render_base64(b64, &at("base64"), source, &mut problems);
                }
                for (value, field) in [
                    (&mut part.filename, "filename"),
                    (&mut part.content_type, "content_type"),
                ] {
                    if let Some(value) = value {
                        render_field(value, &at(field), source, &mut problems);
                    }
                }
            }
        }
    }
    if let Some(signing) = &mut config.signing {
        let scheme = signing.scheme.unwrap_or(DEFAULT_SIGNING_SCHEME);
        for (i, secret) in signing.secrets.iter_mut().enumerate() {
            let templated = secret.contains("{{");
            render_field(
                secret,
                &format!("signing.secret[{i}]"),
                source,
                &mut problems,
            );
            if templated && matches!(source, Source::StandIn) {
                // A stand-in for a secret that only the context can give: any
                // valid secret of the scheme, so the rest of the config is checked.
                *secret = match scheme {
                    SigningScheme::StandardWebhooks => {
                        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()
                    }
                    _ => "stand-in".into(),
                };
            }
        }
    }
    if let Some(auth) = &mut config.auth {
        render_auth(auth, source, &mut problems);
    }
    (config, problems)
}

/// Renders the credentials of `auth`. A key sent in the query may not come
/// from `secrets` (the URL is logged), as for `query`.
fn render_auth(auth: &mut Auth, source: &Source<'_>, problems: &mut Vec<Problem>) {
    let render = |value: &mut String, field: &str, problems: &mut Vec<Problem>| {
        render_field(value, field, source, problems)
    };
    match auth {
        Auth::Basic(b) => {
            render(&mut b.username, "auth.basic.username", problems);
            render(&mut b.password, "auth.basic.password", problems);
        }
        Auth::Bearer(b) => render(&mut b.token, "auth.bearer.token", problems),
        Auth::ApiKey(k) => {
            let in_query = k.placement() == ApiKeyIn::Query;
            for (value, field) in [
                (&mut k.name, "auth.api_key.name"),
                (&mut k.value, "auth.api_key.value"),
            ] {
                if in_query
                    && let Ok(t) = Template::parse(value)
                    && let Some(p) = t.paths().find(|p| p.is_secret())
                {
                    problems.push(secret_in_url(field, p));
                    continue;
                }
                render(value, field, problems);
            }
        }
        Auth::Oauth2ClientCredentials(o) => {
            const AT: &str = "auth.oauth2_client_credentials";
            o.token_url = render_url(&o.token_url, &format!("{AT}.token_url"), source, problems);
            render(&mut o.client_id, &format!("{AT}.client_id"), problems);
            render(
                &mut o.client_secret,
                &format!("{AT}.client_secret"),
                problems,
            );
            for (value, field) in [(&mut o.scope, "scope"), (&mut o.audience, "audience")] {
                if let Some(value) = value {
                    render(value, &format!("{AT}.{field}"), problems);
                }
            }
            // Sent in the token request's body, so secrets are allowed.
            for (i, kv) in o.params.iter_mut().enumerate() {
                render(&mut kv.value, &format!("{AT}.params[{i}].value"), problems);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyValue, Method, Signing};
    use serde_json::json;

    fn ctx() -> Value {
        json!({
            "steps": {"create_user": {"output": {"id": "usr 1/2?x#y@z", "age": 42, "vip": true, "tags": ["a", "b"]}}},
            "items": [{"sku": "BOOK-42", "qty": 2}],
            "name": "Zoë Ångström",
            "evil": "a\r\nX-Injected: 1",
            "secrets": {"api_key": "sk_live_abcdef", "nested": ["pa\"ss\\word"]}
        })
    }

    fn rendered(c: &StepConfig, source: &Source<'_>) -> StepConfig {
        let (r, problems) = render_config(c.clone(), source);
        assert!(problems.is_empty(), "{problems:?}");
        r
    }

    fn problems(c: &StepConfig, source: &Source<'_>) -> Vec<Problem> {
        let (_, problems) = render_config(c.clone(), source);
        assert!(!problems.is_empty());
        problems
    }

    #[test]
    fn paths() {
        assert_eq!(
            ContextPath::parse(" steps.create_user.output.id ")
                .expect("ok")
                .to_string(),
            "steps.create_user.output.id"
        );
        assert_eq!(
            ContextPath::parse("items[0].sku").expect("ok").0,
            vec![
                PathPart::Key("items".into()),
                PathPart::Index(0),
                PathPart::Key("sku".into())
            ]
        );
        assert_eq!(
            ContextPath::parse("a[1][2]").expect("ok").to_string(),
            "a[1][2]"
        );
        for bad in ["", "a..b", ".a", "a.", "a[x]", "a[1", "a b", "a[0]b"] {
            assert!(ContextPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn templates_and_escape() {
        let t = Template::parse("a {{x}} b {{{{ literal }} {{ y[1] }}").expect("ok");
        assert_eq!(
            t.paths().map(ToString::to_string).collect::<Vec<_>>(),
            ["x", "y[1]"]
        );
        assert_eq!(t.0[2], Segment::Literal(" b {{ literal }} ".into()));
        assert!(Template::parse("a {{ x").is_err());
        assert!(Template::parse("{{ }}").is_err());
    }

    #[test]
    fn url_values_are_encoded_where_they_land() {
        let mut c = StepConfig::get(
            "https://api.test/users/{{ steps.create_user.output.id }}/n/{{name}}?q={{ steps.create_user.output.id }}&a={{items[0].qty}}",
        );
        c.query = vec![KeyValue::new("who", "{{ name }}")];
        let r = rendered(&c, &Source::Context(&ctx()));
        assert_eq!(
            r.url,
            "https://api.test/users/usr%201%2F2%3Fx%23y%40z/n/Zo%C3%AB%20%C3%85ngstr%C3%B6m?q=usr%201%2F2%3Fx%23y%40z&a=2"
        );
        assert_eq!(
            r.query[0].value, "Zoë Ångström",
            "query values are encoded with the rest later"
        );
        let parsed = url::Url::parse(&r.url).expect("valid");
        assert_eq!((parsed.host_str(), parsed.port()), (Some("api.test"), None));
    }

    #[test]
    fn host_templates_and_secrets_in_urls_are_refused() {
        let c = StepConfig::get("https://{{ name }}.test/x");
        assert!(
            problems(&c, &Source::StandIn)[0]
                .message
                .contains("scheme, host or port")
        );
        let c = StepConfig::get("https://api.test:{{ port }}/x");
        problems(&c, &Source::StandIn);
        let mut c = StepConfig::get("https://api.test/{{ secrets.api_key }}");
        c.query = vec![KeyValue::new("key", "{{ secrets.api_key }}")];
        let problems = problems(&c, &Source::StandIn);
        assert_eq!(
            problems.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
            ["url", "query[0].value"]
        );
        assert!(problems[0].message.contains("secret"));
    }

    #[test]
    fn json_bodies_keep_types() {
        let mut c = StepConfig::get("https://api.test/");
        c.method = Method::Post;
        c.body = Some(Body::Json(
            json!({
                "id": "{{ steps.create_user.output.age }}",
                "vip": "{{steps.create_user.output.vip}}",
                "tags": "{{ steps.create_user.output.tags }}",
                "label": "user {{ steps.create_user.output.age }}",
                "nested": [{"sku": "{{ items[0].sku }}"}],
                "literal": "{{{{ not a template }}"
            })
            .into(),
        ));
        let r = rendered(&c, &Source::Context(&ctx()));
        assert_eq!(
            r.body,
            Some(Body::Json(json!({"id": 42, "vip": true, "tags": ["a", "b"], "label": "user 42", "nested": [{"sku": "BOOK-42"}], "literal": "{{ not a template }}"}).into()))
        );
    }

    #[test]
    fn unknown_paths_and_unsafe_header_values_name_the_field() {
        let mut c = StepConfig::get("https://api.test/{{ steps.nope.id }}");
        c.headers = vec![
            KeyValue::new("X-Name", "{{ evil }}"),
            KeyValue::new("X-Item", "{{ items[3].sku }}"),
        ];
        let problems = problems(&c, &Source::Context(&ctx()));
        let got: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            got[0],
            (
                "url",
                "{{ steps.nope.id }}: the workflow context has no steps.nope.id: steps has no nope"
            )
        );
        assert_eq!(got[1].0, "headers[0].value");
        assert!(got[1].1.contains("CR, LF"), "{}", got[1].1);
        assert!(!got[1].1.contains("Injected"), "the value is never echoed");
        assert_eq!(
            got[2],
            (
                "headers[1].value",
                "{{ items[3].sku }}: the workflow context has no items[3].sku: items has 1 items"
            )
        );
    }

    #[test]
    fn secrets_render_into_signing_and_headers() {
        let mut c = StepConfig::get("https://api.test/");
        c.headers = vec![KeyValue::new(
            "Authorization",
            "Bearer {{ secrets.api_key }}",
        )];
        c.signing = Some(Signing {
            secrets: vec!["{{ secrets.nested[0] }}".into()],
            scheme: None,
            header: None,
        });
        let context = ctx();
        let r = rendered(&c, &Source::Context(&context));
        assert_eq!(r.headers[0].value, "Bearer sk_live_abcdef");
        let secrets = r
            .signing
            .as_ref()
            .map(|s| s.secrets.clone())
            .unwrap_or_default();
        assert_eq!(secrets, ["pa\"ss\\word"]);
    }

    #[test]
    fn stand_in_checks_without_a_context() {
        let mut c = StepConfig::get("https://api.test/{{ a.b }}");
        c.signing = Some(Signing {
            secrets: vec!["{{ secrets.whsec }}".into()],
            scheme: Some(SigningScheme::StandardWebhooks),
            header: None,
        });
        let r = rendered(&c, &Source::StandIn);
        assert_eq!(r.url, "https://api.test/x");
        // The stand-in secret is a usable Standard Webhooks key.
        assert!(
            r.signing
                .as_ref()
                .is_some_and(|s| crate::signing::Signer::new(s).is_ok())
        );
        c.headers = vec![KeyValue::new("X", "{{ a. }}")];
        assert_eq!(problems(&c, &Source::StandIn)[0].path, "headers[0].value");
    }
}
