//! The properties the fuzz targets check (`fuzz/`, `cargo +nightly fuzz run
//! <name>`), as plain functions that panic when a property fails, so the same
//! checks also run over the committed corpora in `cargo test`.
//!
//! Each takes arbitrary bytes and derives its inputs from them.

use https_step_core::model::{KeyValue, Signing, SigningScheme, StepConfig};
use https_step_core::template::{Source, render_config};
use serde_json::json;

/// Splits `data` into up to `n` UTF-8 strings at 0xFF bytes.
fn parts(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data
        .splitn(n, |&b| b == 0xff)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    out.resize(n, String::new());
    out
}

/// Config parsing and validation never panic, and a config that validates
/// always builds a request.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = https_step_core::parse_step_config(text);
    let problems = https_step_core::validate(&parsed.config);
    if parsed.problems.is_empty() && problems.is_empty() {
        let (rendered, render_problems) = render_config(parsed.config.clone(), &Source::StandIn);
        assert!(
            render_problems.is_empty(),
            "validate accepted what rendering refuses: {render_problems:?}"
        );
        if let Err(p) = https_step_core::request::prepare(&rendered, &mut |n| vec![7; n]) {
            panic!("validate accepted a config whose request cannot be built: {p}\n{text}");
        }
    }
}

/// A rendered URL's host and port never differ from the template's, whatever
/// the context values are.
pub fn template_url(data: &[u8]) {
    let [path, value] = <[String; 2]>::try_from(parts(data, 2)).unwrap_or_default();
    let config = StepConfig::get(format!("https://api.test:8443/{path}"));
    let context = json!({"v": value, "n": 7});
    let (stand_in, p1) = render_config(config.clone(), &Source::StandIn);
    let (real, p2) = render_config(config, &Source::Context(&context));
    if !p1.is_empty() || !p2.is_empty() {
        return;
    }
    let (Ok(a), Ok(b)) = (url::Url::parse(&stand_in.url), url::Url::parse(&real.url)) else {
        return;
    };
    assert_eq!(
        (a.host_str(), a.port()),
        (b.host_str(), b.port()),
        "template {path:?} with value {value:?}: {}",
        real.url
    );
    assert_eq!(
        (b.host_str(), b.port()),
        (Some("api.test"), Some(8443)),
        "{}",
        real.url
    );
}

/// Query parameters survive building the URL: the url crate decodes them back
/// to exactly what was configured, in order.
pub fn query(data: &[u8]) {
    let [k1, v1, k2, v2] = <[String; 4]>::try_from(parts(data, 4)).unwrap_or_default();
    if k1.is_empty() || k2.is_empty() || [&k1, &v1, &k2, &v2].iter().any(|s| s.contains("{{")) {
        return;
    }
    let mut config = StepConfig::get("https://api.test/search?fixed=1");
    config.query = vec![KeyValue::new(&k1, &v1), KeyValue::new(&k2, &v2)];
    let request = https_step_core::request::prepare(&config, &mut |n| vec![7; n])
        .expect("a valid base URL builds");
    let pairs: Vec<(String, String)> = request
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(
        pairs,
        vec![("fixed".into(), "1".into()), (k1, v1), (k2, v2)],
        "{}",
        request.url
    );
}

/// Header checks agree with the `http` crate: a name is valid exactly when
/// `http` accepts it, and a value the step accepts is one `http` accepts.
pub fn headers(data: &[u8]) {
    let [name, value] = <[String; 2]>::try_from(parts(data, 2)).unwrap_or_default();
    assert_eq!(
        https_step_core::headers::is_valid_name(&name),
        http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
        "name {name:?}"
    );
    if https_step_core::headers::check_value("v", &value).is_none() {
        assert!(
            http::HeaderValue::from_str(&value).is_ok(),
            "value {value:?} accepted by the step, refused by http"
        );
    }
}

/// `Retry-After` parsing never panics, reads delta-seconds exactly, and reads
/// every HTTP-date that httpdate reads.
pub fn retry_after(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = 1_700_000_000;
    let parsed = https_step_core::retry::parse_retry_after(text, now);
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let expected = t
            .parse::<u64>()
            .map_or(u64::MAX, |s| s.saturating_mul(1000));
        assert_eq!(parsed, Some(expected), "{text:?}");
    } else if httpdate::parse_http_date(t).is_ok() {
        assert!(parsed.is_some(), "{text:?} is an HTTP-date");
    }
}

/// Signatures match an independent HMAC-SHA256 (ring) and verify.
pub fn signing(data: &[u8]) {
    let [secret, body] = <[String; 2]>::try_from(parts(data, 2)).unwrap_or_default();
    if secret.is_empty() {
        return;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for scheme in [SigningScheme::Persona, SigningScheme::Github] {
        let signing = Signing {
            secrets: vec![secret.clone()],
            scheme: Some(scheme),
            header: None,
        };
        let signer = https_step_core::Signer::new(&signing)
            .expect("any non-empty secret is valid for these schemes");
        let headers = signer.sign(body.as_bytes(), 1_700_000_000, "");
        let value = &headers[0].value;
        let expected = match scheme {
            SigningScheme::Persona => format!(
                "t=1700000000,v1={}",
                hex(ring::hmac::sign(&key, format!("1700000000.{body}").as_bytes()).as_ref())
            ),
            _ => format!(
                "sha256={}",
                hex(ring::hmac::sign(&key, body.as_bytes()).as_ref())
            ),
        };
        assert_eq!(value, &expected);
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        let verifier = https_step_core::Verifier::new(&signing).expect("valid");
        assert_eq!(
            verifier.verify(&pairs, body.as_bytes(), 1_700_000_000),
            Ok(())
        );
    }
}

/// Any schema either compiles or is a problem, and checking any instance
/// against a compiled one terminates without panicking, with the
/// stop-at-first-violation mode agreeing with the full report.
pub fn schema(data: &[u8]) {
    let [schema, instance] = <[String; 2]>::try_from(parts(data, 2)).unwrap_or_default();
    let (Ok(schema), Ok(instance)) = (
        serde_json::from_str(&schema),
        serde_json::from_str(&instance),
    ) else {
        return;
    };
    let Ok(compiled) = https_step_core::response_schema::ResponseSchema::compile(&schema) else {
        return;
    };
    let report = compiled.check(&instance);
    assert_eq!(
        report.is_ok(),
        compiled.is_valid(&instance),
        "{schema} / {instance}: {report:?}"
    );
    if let Err(problems) = report {
        assert!(
            !problems.is_empty()
                && problems.len() <= https_step_core::response_schema::MAX_VIOLATIONS + 1
        );
    }
}
