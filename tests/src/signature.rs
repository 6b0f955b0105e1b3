//! Server-side signature checks for conformance cases: each request must
//! verify with the step's own [`https_step_core::Verifier`] *and* with an
//! independent implementation written here on `ring`'s HMAC, straight from
//! the schemes' published descriptions.

use crate::loopback::Recorded;
use base64::Engine as _;
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Verifies `request` against `signing` (a step-config `signing` object) both ways.
pub fn verify_both(signing: &Value, request: &Recorded) -> Result<(), String> {
    let parsed = https_step_core::parse_step_config_value(
        &serde_json::json!({"url": "https://x", "signing": signing}),
    );
    let config = parsed
        .config
        .signing
        .ok_or("the case's signing object is invalid")?;
    let verifier = https_step_core::Verifier::new(&config).map_err(|p| format!("{p:?}"))?;
    verifier
        .verify(&request.headers, &request.body, now())
        .map_err(|e| format!("the step's verifier says: {e}"))?;
    independent(&config, request).map_err(|e| format!("the independent check says: {e}"))
}

fn mac(key: &[u8], message: &[u8]) -> Vec<u8> {
    ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), message)
        .as_ref()
        .to_vec()
}

fn header<'a>(r: &'a Recorded, name: &str) -> Result<&'a str, String> {
    match r.header_values(name).as_slice() {
        [one] => Ok(one),
        other => Err(format!("expected one {name} header, got {other:?}")),
    }
}

/// Accepts when any signature in the header matches any secret.
fn independent(s: &https_step_core::Signing, r: &Recorded) -> Result<(), String> {
    use https_step_core::SigningScheme;
    let scheme = s.scheme.unwrap_or(SigningScheme::Persona);
    let header_name = s
        .header
        .clone()
        .unwrap_or_else(|| https_step_core::signing::default_header(scheme).to_string());
    let value = header(r, &header_name)?;
    let expected: Vec<String> = match scheme {
        SigningScheme::Persona => {
            // t=<ts>,v1=<hex HMAC(secret, "<ts>.<body>")>
            let t = value
                .split([',', ' '])
                .find_map(|p| p.strip_prefix("t="))
                .ok_or("no t= in the Persona signature")?;
            s.secrets
                .iter()
                .map(|k| {
                    format!(
                        "v1={}",
                        hex::encode(mac(k.as_bytes(), &[t.as_bytes(), b".", &r.body].concat()))
                    )
                })
                .collect()
        }
        SigningScheme::StandardWebhooks => {
            // v1,<base64(HMAC(base64decode(secret minus whsec_), "<id>.<ts>.<body>"))>
            let id = header(r, "webhook-id")?;
            let t = header(r, "webhook-timestamp")?;
            s.secrets
                .iter()
                .map(|k| {
                    let key = base64::engine::general_purpose::STANDARD
                        .decode(k.trim_start_matches("whsec_"))
                        .unwrap_or_default();
                    let sig = mac(
                        &key,
                        &[id.as_bytes(), b".", t.as_bytes(), b".", &r.body].concat(),
                    );
                    format!(
                        "v1,{}",
                        base64::engine::general_purpose::STANDARD.encode(sig)
                    )
                })
                .collect()
        }
        SigningScheme::Github => s
            .secrets
            .iter()
            .map(|k| format!("sha256={}", hex::encode(mac(k.as_bytes(), &r.body))))
            .collect(),
    };
    let present: Vec<&str> = value.split([' ', ',']).collect();
    let joined = value.split(' ').collect::<Vec<_>>();
    let found = expected.iter().any(|e| {
        // Persona: "t=..,v1=.." items split on ',', others are whole items.
        present.contains(&e.as_str()) || joined.contains(&e.as_str())
    });
    if found {
        Ok(())
    } else {
        Err(format!("none of {expected:?} is in {value:?}"))
    }
}
