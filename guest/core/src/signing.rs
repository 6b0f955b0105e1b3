//! HMAC-SHA256 request signing (the step) and verification (for receivers:
//! hosts, tests, anyone checking a request the step sent).
//!
//! Schemes:
//! - `persona`: `Persona-Signature: t=<unix s>,v1=<hex HMAC(secret, "<t>.<body>")>`,
//!   the Stripe shape; with several secrets, one `t=…,v1=…` per secret,
//!   space-separated.
//! - `standard-webhooks` (Standard Webhooks 1.0): `webhook-id`,
//!   `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC(key, "<id>.<t>.<body>")>`
//!   where the secret is `whsec_<base64 key>`; several signatures space-separated.
//! - `github`: `X-Hub-Signature-256: sha256=<hex HMAC(secret, body)>`.
//!
//! The signature covers exactly the body bytes sent. Secrets never appear in
//! errors or `Debug` output.

use crate::headers::{RESERVED_HEADERS, is_valid_name};
use crate::model::{DEFAULT_SIGNING_SCHEME, KeyValue, Problem, Signing, SigningScheme};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Default timestamp tolerance of [`Verifier`]: 5 minutes, as Standard
/// Webhooks and Stripe recommend against replay.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// Standard Webhooks keys must be 24 to 64 bytes (Standard Webhooks 1.0,
/// "Signature scheme").
const WHSEC_MIN_BYTES: usize = 24;
const WHSEC_MAX_BYTES: usize = 64;

/// Header carrying the signature when `signing.header` is not set.
pub fn default_header(scheme: SigningScheme) -> &'static str {
    match scheme {
        SigningScheme::Persona => "Persona-Signature",
        SigningScheme::StandardWebhooks => "webhook-signature",
        SigningScheme::Github => "X-Hub-Signature-256",
    }
}

/// Signing settings checked and decoded once per run.
#[derive(Clone)]
pub struct Signer {
    scheme: SigningScheme,
    header: String,
    /// HMAC keys, one per secret (decoded for standard-webhooks).
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("scheme", &self.scheme)
            .field("header", &self.header)
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .finish()
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length (RFC 2104 §2), so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Decodes a `whsec_<base64>` secret into its key.
fn whsec_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix("whsec_").ok_or(
        "standard-webhooks secrets look like whsec_<base64>; this one lacks the whsec_ prefix",
    )?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "the part after whsec_ is not valid base64".to_string())?;
    if !(WHSEC_MIN_BYTES..=WHSEC_MAX_BYTES).contains(&key.len()) {
        return Err(format!(
            "the key decodes to {} bytes; Standard Webhooks keys are {WHSEC_MIN_BYTES} to {WHSEC_MAX_BYTES} bytes",
            key.len()
        ));
    }
    Ok(key)
}

impl Signer {
    /// Checks `signing` (path `signing`), reporting every problem. Messages
    /// never contain a secret.
    pub fn new(signing: &Signing) -> Result<Signer, Vec<Problem>> {
        let scheme = signing.scheme.unwrap_or(DEFAULT_SIGNING_SCHEME);
        let mut problems = Vec::new();
        if signing.secrets.is_empty() {
            problems.push(Problem::new("signing.secret", "give at least one secret"));
        }
        let mut keys = Vec::new();
        for (i, secret) in signing.secrets.iter().enumerate() {
            let path = if signing.secrets.len() == 1 {
                "signing.secret".to_string()
            } else {
                format!("signing.secret[{i}]")
            };
            if secret.is_empty() {
                problems.push(Problem::new(path, "is empty"));
                continue;
            }
            match scheme {
                SigningScheme::StandardWebhooks => match whsec_key(secret) {
                    Ok(key) => keys.push(key),
                    Err(msg) => problems.push(Problem::new(path, msg)),
                },
                _ => keys.push(secret.as_bytes().to_vec()),
            }
        }
        let header = signing
            .header
            .clone()
            .unwrap_or_else(|| default_header(scheme).to_string());
        if !is_valid_name(&header) {
            problems.push(Problem::new(
                "signing.header",
                format!("{header:?} is not a valid header name"),
            ));
        } else if RESERVED_HEADERS.contains(&header.to_ascii_lowercase().as_str())
            || (scheme == SigningScheme::StandardWebhooks
                && ["webhook-id", "webhook-timestamp"]
                    .contains(&header.to_ascii_lowercase().as_str()))
        {
            problems.push(Problem::new(
                "signing.header",
                format!("{header} cannot carry the signature"),
            ));
        }
        if problems.is_empty() {
            Ok(Signer {
                scheme,
                header,
                keys,
            })
        } else {
            Err(problems)
        }
    }

    /// The scheme.
    pub fn scheme(&self) -> SigningScheme {
        self.scheme
    }

    /// Names of the headers this signer sets (lower-case), so that a
    /// configured header of the same name is replaced, not duplicated.
    pub fn header_names(&self) -> Vec<String> {
        let mut names = vec![self.header.to_ascii_lowercase()];
        if self.scheme == SigningScheme::StandardWebhooks {
            names.extend(["webhook-id".to_string(), "webhook-timestamp".to_string()]);
        }
        names
    }

    /// The headers that sign `body` at `timestamp` (unix seconds);
    /// `message_id` is the Standard Webhooks `webhook-id`.
    pub fn sign(&self, body: &[u8], timestamp: u64, message_id: &str) -> Vec<KeyValue> {
        let t = timestamp.to_string();
        match self.scheme {
            SigningScheme::Persona => {
                let value = self
                    .keys
                    .iter()
                    .map(|k| {
                        format!(
                            "t={t},v1={}",
                            hex::encode(
                                hmac(k, &[t.as_bytes(), b".", body]).finalize().into_bytes()
                            )
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                vec![KeyValue::new(&self.header, value)]
            }
            SigningScheme::StandardWebhooks => {
                let value = self
                    .keys
                    .iter()
                    .map(|k| {
                        let mac = hmac(k, &[message_id.as_bytes(), b".", t.as_bytes(), b".", body]);
                        format!(
                            "v1,{}",
                            base64::engine::general_purpose::STANDARD
                                .encode(mac.finalize().into_bytes())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                vec![
                    KeyValue::new("webhook-id", message_id),
                    KeyValue::new("webhook-timestamp", t),
                    KeyValue::new(&self.header, value),
                ]
            }
            SigningScheme::Github => {
                let value = self
                    .keys
                    .iter()
                    .map(|k| {
                        format!(
                            "sha256={}",
                            hex::encode(hmac(k, &[body]).finalize().into_bytes())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                vec![KeyValue::new(&self.header, value)]
            }
        }
    }
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A header the scheme needs is missing.
    #[error("missing header {0}")]
    MissingHeader(String),
    /// A header is not in the scheme's format.
    #[error("malformed {0} header")]
    Malformed(String),
    /// The timestamp is outside the tolerance (replay protection).
    #[error("timestamp {timestamp} is more than {tolerance} s away from now ({now})")]
    Stale {
        /// Signed timestamp.
        timestamp: u64,
        /// Verifier's clock.
        now: u64,
        /// Allowed distance.
        tolerance: u64,
    },
    /// No signature matches any of the secrets.
    #[error("no signature matches")]
    Mismatch,
}

/// Verifies requests signed by the step. Comparison is constant-time
/// (`Mac::verify_slice`); any of several signatures may match any secret.
#[derive(Debug, Clone)]
pub struct Verifier {
    signer: Signer,
    tolerance_secs: u64,
}

impl Verifier {
    /// A verifier for the same settings the step was given.
    pub fn new(signing: &Signing) -> Result<Verifier, Vec<Problem>> {
        Ok(Verifier {
            signer: Signer::new(signing)?,
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        })
    }

    /// Changes the timestamp tolerance (default [`DEFAULT_TOLERANCE_SECS`]).
    pub fn tolerance_secs(mut self, secs: u64) -> Self {
        self.tolerance_secs = secs;
        self
    }

    /// Checks the signature headers of a request with `body`, at `now`
    /// (unix seconds). `headers` are name/value pairs, names in any case.
    pub fn verify(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> Result<(), VerifyError> {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| VerifyError::MissingHeader(name.to_string()))
        };
        let header = self.signer.header.as_str();
        let value = get(header)?;
        let malformed = || VerifyError::Malformed(header.to_string());
        let fresh = |t: &str| -> Result<(), VerifyError> {
            let timestamp: u64 = t.parse().map_err(|_| malformed())?;
            if timestamp.abs_diff(now) > self.tolerance_secs {
                return Err(VerifyError::Stale {
                    timestamp,
                    now,
                    tolerance: self.tolerance_secs,
                });
            }
            Ok(())
        };
        // (signed message parts, candidate signature bytes)
        let mut candidates: Vec<(Vec<Vec<u8>>, Vec<u8>)> = Vec::new();
        match self.signer.scheme {
            SigningScheme::Persona => {
                for sig in value.split_whitespace() {
                    let mut t = None;
                    let mut v1 = Vec::new();
                    for part in sig.split(',') {
                        match part.split_once('=') {
                            Some(("t", x)) => t = Some(x),
                            Some(("v1", x)) => v1.push(hex::decode(x).map_err(|_| malformed())?),
                            _ => {}
                        }
                    }
                    let t = t.ok_or_else(malformed)?;
                    fresh(t)?;
                    for s in v1 {
                        candidates
                            .push((vec![t.as_bytes().to_vec(), b".".to_vec(), body.to_vec()], s));
                    }
                }
            }
            SigningScheme::StandardWebhooks => {
                let id = get("webhook-id")?;
                let t = get("webhook-timestamp")?;
                fresh(t)?;
                for sig in value.split_whitespace() {
                    // Other versions (e.g. v1a) are skipped, as the spec allows.
                    if let Some(b64) = sig.strip_prefix("v1,") {
                        let s = base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .map_err(|_| malformed())?;
                        let msg = [id.as_bytes(), b".", t.as_bytes(), b".", body]
                            .map(<[u8]>::to_vec)
                            .to_vec();
                        candidates.push((msg, s));
                    }
                }
            }
            SigningScheme::Github => {
                for sig in value.split_whitespace() {
                    let s = sig
                        .strip_prefix("sha256=")
                        .and_then(|s| hex::decode(s).ok())
                        .ok_or_else(malformed)?;
                    candidates.push((vec![body.to_vec()], s));
                }
            }
        }
        if candidates.is_empty() {
            return Err(malformed());
        }
        let matches = candidates.iter().any(|(parts, sig)| {
            let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            self.signer
                .keys
                .iter()
                .any(|k| hmac(k, &parts).verify_slice(sig).is_ok())
        });
        if matches {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing(scheme: SigningScheme, secrets: &[&str]) -> Signing {
        Signing {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            scheme: Some(scheme),
            header: None,
        }
    }

    fn pairs(kvs: &[KeyValue]) -> Vec<(String, String)> {
        kvs.iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect()
    }

    /// Standard Webhooks spec test vector (standard-webhooks/standard-webhooks,
    /// spec/standard-webhooks.md and the reference libraries' tests).
    #[test]
    fn standard_webhooks_spec_vector() {
        let signer = Signer::new(&signing(
            SigningScheme::StandardWebhooks,
            &["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"],
        ))
        .expect("valid");
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let headers = signer.sign(body, 1649367553, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk");
        assert_eq!(
            headers,
            vec![
                KeyValue::new("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
                KeyValue::new("webhook-timestamp", "1649367553"),
                KeyValue::new(
                    "webhook-signature",
                    "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
                ),
            ]
        );
    }

    /// GitHub docs, "Validating webhook deliveries", testing section.
    #[test]
    fn github_docs_vector() {
        let signer = Signer::new(&signing(
            SigningScheme::Github,
            &["It's a Secret to Everybody"],
        ))
        .expect("valid");
        assert_eq!(
            signer.sign(b"Hello, World!", 0, ""),
            vec![KeyValue::new(
                "X-Hub-Signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
            )]
        );
    }

    /// Computed for this project and cross-checked with Python's `hmac`:
    /// `hmac.new(b"wbhsec_5f2b2c7e-persona-test", b"1700000000." + body, hashlib.sha256).hexdigest()`.
    #[test]
    fn persona_vector_cross_checked_with_python() {
        let signer = Signer::new(&signing(
            SigningScheme::Persona,
            &["wbhsec_5f2b2c7e-persona-test"],
        ))
        .expect("valid");
        let body =
            br#"{"data":{"attributes":{"status":"approved"},"id":"inq_4QKc8SNRXmULmkPbEkyv8wKs"}}"#;
        assert_eq!(
            signer.sign(body, 1_700_000_000, ""),
            vec![KeyValue::new(
                "Persona-Signature",
                "t=1700000000,v1=f0b327b947ee3b8fc8126fa369fcd2159c880a79b263eb3dc6b92d5e8c38891e"
            )]
        );
    }

    #[test]
    fn rotation_gives_one_signature_per_secret_and_each_verifies() {
        for (scheme, secrets) in [
            (SigningScheme::Persona, ["old-secret", "new-secret"]),
            (SigningScheme::Github, ["old-secret", "new-secret"]),
            (
                SigningScheme::StandardWebhooks,
                [
                    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                ],
            ),
        ] {
            let both = signing(scheme, &secrets);
            let headers = pairs(
                &Signer::new(&both)
                    .expect("valid")
                    .sign(b"{}", 1000, "msg_1"),
            );
            let value = &headers.last().expect("signature").1;
            assert_eq!(value.split(' ').count(), 2, "{value}");
            for one in secrets {
                let verifier = Verifier::new(&signing(scheme, &[one])).expect("valid");
                assert_eq!(verifier.verify(&headers, b"{}", 1000), Ok(()), "{scheme:?}");
            }
            let stranger = Verifier::new(&signing(
                scheme,
                &[if scheme == SigningScheme::StandardWebhooks {
                    "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                } else {
                    "x"
                }],
            ))
            .expect("valid");
            assert_eq!(
                stranger.verify(&headers, b"{}", 1000),
                Err(VerifyError::Mismatch)
            );
        }
    }

    #[test]
    fn verifier_rejects_tampering_staleness_and_garbage() {
        let s = signing(SigningScheme::Persona, &["k"]);
        let headers = pairs(&Signer::new(&s).expect("valid").sign(b"body", 1000, ""));
        let v = Verifier::new(&s).expect("valid");
        assert_eq!(
            v.verify(&headers, b"body!", 1000),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            v.verify(&headers, b"body", 1301),
            Err(VerifyError::Stale { .. })
        ));
        assert_eq!(
            v.clone()
                .tolerance_secs(400)
                .verify(&headers, b"body", 1301),
            Ok(())
        );
        assert_eq!(
            v.verify(&[], b"body", 1000),
            Err(VerifyError::MissingHeader("Persona-Signature".into()))
        );
        let bad = vec![("persona-signature".to_string(), "t=1000,v1=zz".to_string())];
        assert_eq!(
            v.verify(&bad, b"body", 1000),
            Err(VerifyError::Malformed("Persona-Signature".into()))
        );
    }

    #[test]
    fn invalid_secrets_are_problems_without_the_secret() {
        let sw = |secret: &str| {
            Signer::new(&signing(SigningScheme::StandardWebhooks, &[secret])).expect_err("invalid")
        };
        for (secret, needle) in [
            ("C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "prefix"),
            ("whsec_not*base64!", "base64"),
            ("whsec_c2hvcnQ=", "5 bytes"),
            ("", "empty"),
        ] {
            let problems = sw(secret);
            assert!(
                problems[0].message.contains(needle),
                "{secret}: {problems:?}"
            );
            assert!(secret.is_empty() || !problems[0].message.contains(secret));
        }
        let none = Signer::new(&Signing {
            secrets: vec![],
            scheme: None,
            header: None,
        })
        .expect_err("no secret");
        assert_eq!(none[0].path, "signing.secret");
        let bad_header = Signer::new(&Signing {
            secrets: vec!["k".into()],
            scheme: None,
            header: Some("Content-Length".into()),
        });
        assert_eq!(bad_header.expect_err("reserved")[0].path, "signing.header");
        let signer = Signer::new(&signing(SigningScheme::Persona, &["hunter2"])).expect("valid");
        assert!(!format!("{signer:?}").contains("hunter2"));
    }
}
