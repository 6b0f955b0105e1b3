//! The tenant's TLS client: webpki roots plus the tenant's own certificates,
//! which also pin a server's exact certificate, and failures described in
//! words a workflow author can act on. No wasmtime types.
//!
//! Pinning: a certificate listed in `ca_certs` that is byte for byte the
//! certificate the server presents is accepted even where a chain check
//! refuses it — a self-signed certificate made the usual way
//! (`openssl req -x509`, which marks it CA:TRUE) is such a case, and
//! `curl --cacert` accepts it too. Its validity dates and its names (DNS or
//! IP subject alternative names) are still checked, and the handshake still
//! proves the server holds its key.

use crate::Error;
use crate::error::CertificateProblem;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A rustls client config trusting the webpki roots and `extra`
/// certificates, and accepting a server whose certificate is one of `extra`.
pub(crate) fn client_config(
    extra: Vec<CertificateDer<'static>>,
    identity: Option<ClientIdentity>,
) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in &extra {
        roots
            .add(cert.clone())
            .map_err(|e| Error::certificate(CertificateProblem::UnusableCa, Some(Box::new(e))))?;
    }
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| Error::certificate(CertificateProblem::TlsSettings, Some(Box::new(e))))?;
    let verifier = Arc::new(PinningVerifier {
        webpki,
        pinned: extra,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::certificate(CertificateProblem::TlsSettings, Some(Box::new(e))))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some(id) => builder
            .with_client_auth_cert(id.chain, id.key)
            .map_err(|e| {
                let problem = CertificateProblem::UnusableClientIdentity { of: id.source };
                Error::certificate(problem, Some(Box::new(e)))
            }),
    }
}

/// A client certificate chain and its private key, presented (mTLS,
/// RFC 8446 §4.4.2) only to the origins it is configured for.
#[derive(Debug)]
pub(crate) struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
    /// Where it came from, for messages (file names, never the key).
    source: String,
}

impl ClientIdentity {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1); `source` names them in errors.
    pub(crate) fn from_pem(
        chain_pem: &[u8],
        key_pem: &[u8],
        source: &str,
    ) -> Result<ClientIdentity, Error> {
        use rustls_pki_types::pem::PemObject;
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                let problem = CertificateProblem::NotPem {
                    of: source.to_string(),
                };
                Error::certificate(problem, Some(Box::new(e)))
            })?;
        if chain.is_empty() {
            let problem = CertificateProblem::NoCertificate {
                of: source.to_string(),
            };
            return Err(Error::certificate(problem, None));
        }
        // The parse error names the PEM problem only, never key material.
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            let problem = CertificateProblem::NotPemKey {
                of: source.to_string(),
            };
            Error::certificate(problem, Some(Box::new(e)))
        })?;
        Ok(ClientIdentity {
            chain,
            key,
            source: source.to_string(),
        })
    }
}

/// webpki chain verification, then the pinned certificates.
#[derive(Debug)]
struct PinningVerifier {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(_)
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                check_pinned(end_entity, server_name, now).map(|()| ServerCertVerified::assertion())
            }
            result => result,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A pinned certificate must still be valid now and name the server.
fn check_pinned(
    der: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let bad = |e: CertificateError| rustls::Error::InvalidCertificate(e);
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|_| bad(CertificateError::BadEncoding))?;
    let at = |t: x509_parser::time::ASN1Time| {
        UnixTime::since_unix_epoch(Duration::from_secs(
            u64::try_from(t.timestamp()).unwrap_or(0),
        ))
    };
    let validity = cert.validity();
    if now.as_secs() < u64::try_from(validity.not_before.timestamp()).unwrap_or(0) {
        return Err(bad(CertificateError::NotValidYetContext {
            time: now,
            not_before: at(validity.not_before),
        }));
    }
    if now.as_secs() > u64::try_from(validity.not_after.timestamp()).unwrap_or(0) {
        return Err(bad(CertificateError::ExpiredContext {
            time: now,
            not_after: at(validity.not_after),
        }));
    }
    let end_entity =
        webpki::EndEntityCert::try_from(der).map_err(|_| bad(CertificateError::BadEncoding))?;
    end_entity
        .verify_is_valid_for_subject_name(server_name)
        .map_err(|e| match e {
            webpki::Error::CertNotValidForName(context) => {
                bad(CertificateError::NotValidForNameContext {
                    expected: context.expected,
                    presented: context.presented,
                })
            }
            _ => bad(CertificateError::NotValidForName),
        })
}

/// A failed TLS handshake, described for a workflow author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFailure {
    /// The TLS alert (RFC 8446 §6.2) the server sent, or this host sent when
    /// it refused the server's certificate; `None` when none was exchanged.
    pub alert: Option<u8>,
    /// What went wrong and what to do about it.
    pub message: String,
}

fn date(t: UnixTime) -> String {
    httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(t.as_secs()))
}

/// Describes the error of a failed TLS connect.
pub(crate) fn describe(err: &std::io::Error) -> TlsFailure {
    let Some(error) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        let message = match err.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                "the server closed the connection during the TLS handshake (handshake aborted); check that it speaks TLS on this port".to_string()
            }
            _ => format!("the TLS handshake failed: {err}"),
        };
        return TlsFailure {
            alert: None,
            message,
        };
    };
    let (alert, message) = match error {
        rustls::Error::InvalidCertificate(cert) => certificate(cert),
        rustls::Error::AlertReceived(alert) => (Some(u8::from(*alert)), received(*alert)),
        rustls::Error::PeerIncompatible(why) => (
            Some(u8::from(AlertDescription::HandshakeFailure)),
            format!(
                "the server's TLS settings are incompatible with this host's (TLS 1.2 and 1.3, modern cipher suites): {why:?}"
            ),
        ),
        other => (None, format!("the TLS handshake failed: {other}")),
    };
    TlsFailure { alert, message }
}

fn certificate(error: &CertificateError) -> (Option<u8>, String) {
    let expired = u8::from(AlertDescription::CertificateExpired);
    let bad = u8::from(AlertDescription::BadCertificate);
    match error {
        CertificateError::ExpiredContext { not_after, .. } => {
            (Some(expired), format!("the server's certificate expired on {}", date(*not_after)))
        }
        CertificateError::Expired => (Some(expired), "the server's certificate has expired".into()),
        CertificateError::NotValidYetContext { not_before, .. } => (
            Some(expired),
            format!("the server's certificate is not valid before {} (check the clocks of the server and this host)", date(*not_before)),
        ),
        CertificateError::NotValidYet => (Some(expired), "the server's certificate is not valid yet".into()),
        CertificateError::NotValidForNameContext { expected, presented } => (
            Some(bad),
            format!(
                "the server's certificate is not valid for {}: it names {}",
                expected.to_str(),
                if presented.is_empty() { "no host at all".to_string() } else { presented.iter().map(|n| plain_name(n)).collect::<Vec<_>>().join(", ") }
            ),
        ),
        CertificateError::NotValidForName => (Some(bad), "the server's certificate is not valid for this host name".into()),
        CertificateError::UnknownIssuer => (
            Some(u8::from(AlertDescription::UnknownCA)),
            "the server's certificate is not issued by a trusted CA (unknown issuer); add its CA certificate, or the server's own certificate, to the tenant's ca_certs (--ca-cert)".into(),
        ),
        CertificateError::Other(other)
            if other.0.downcast_ref::<webpki::Error>().is_some_and(|e| matches!(e, webpki::Error::CaUsedAsEndEntity)) =>
        {
            (
                Some(bad),
                "the server presents a CA certificate (basicConstraints CA:TRUE) as its own certificate; give the server a leaf certificate, or list exactly this certificate in ca_certs to pin it".into(),
            )
        }
        other => (Some(bad), format!("the server's certificate was refused: {other}")),
    }
}

/// `example.com` for webpki's `DnsName("example.com")`, `192.0.2.1` for
/// `IpAddress(192.0.2.1)` (its Debug spelling of a presented name); display only.
fn plain_name(presented: &str) -> &str {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|n| n.strip_suffix(')'))
        })
        .unwrap_or(presented)
}

fn received(alert: AlertDescription) -> String {
    let why = match alert {
        AlertDescription::ProtocolVersion => {
            "no TLS version in common (this host speaks TLS 1.2 and 1.3)"
        }
        AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity => {
            "no cipher suite or key exchange in common, or the server wants something this host did not send"
        }
        AlertDescription::CertificateRequired => "the server requires a client certificate",
        AlertDescription::UnrecognisedName => "the server does not know this host name (SNI)",
        _ => "the server ended the handshake",
    };
    format!("the server refused the handshake with TLS alert {alert:?}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn every_failure_says_why() {
        let t = |secs| UnixTime::since_unix_epoch(Duration::from_secs(secs));
        let cases = [
            (
                CertificateError::ExpiredContext {
                    time: t(1_700_000_000),
                    not_after: t(1_577_836_800),
                },
                "expired on Wed, 01 Jan 2020 00:00:00 GMT",
            ),
            (
                CertificateError::NotValidYetContext {
                    time: t(0),
                    not_before: t(1_577_836_800),
                },
                "not valid before Wed, 01 Jan 2020",
            ),
            (
                CertificateError::NotValidForNameContext {
                    expected: ServerName::try_from("api.test").expect("name").to_owned(),
                    presented: vec![
                        "DnsName(\"other.test\")".into(),
                        "IpAddress(192.0.2.1)".into(),
                    ],
                },
                "not valid for api.test: it names other.test, 192.0.2.1",
            ),
            (
                CertificateError::UnknownIssuer,
                "add its CA certificate, or the server's own certificate, to the tenant's ca_certs",
            ),
            (
                CertificateError::Other(rustls::OtherError(Arc::new(
                    webpki::Error::CaUsedAsEndEntity,
                ))),
                "presents a CA certificate (basicConstraints CA:TRUE)",
            ),
        ];
        for (error, text) in cases {
            let failure = describe(&io(rustls::Error::InvalidCertificate(error)));
            assert!(failure.message.contains(text), "{failure:?}");
            assert!(failure.alert.is_some());
        }
        let failure = describe(&io(rustls::Error::AlertReceived(
            AlertDescription::ProtocolVersion,
        )));
        assert_eq!(failure.alert, Some(70));
        assert!(
            failure.message.contains("no TLS version in common"),
            "{failure:?}"
        );
        let failure = describe(&io(rustls::Error::AlertReceived(
            AlertDescription::HandshakeFailure,
        )));
        assert!(failure.message.contains("no cipher suite"), "{failure:?}");
        let failure = describe(&std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert_eq!(failure.alert, None);
        assert!(failure.message.contains("handshake aborted"), "{failure:?}");
    }
}
