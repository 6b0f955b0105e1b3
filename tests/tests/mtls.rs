//! Client certificates (mTLS): a loopback HTTPS server that requires a client
//! certificate issued by its own CA accepts the tenant's configured one, and
//! refuses a run of a tenant without it or with one configured for another
//! origin (a certificate is presented only where it is configured). A policy
//! file's unreadable or wrong key is a load error naming the file.

use https_step_host::{StepRuntime, Tenant};
use https_step_tests::loopback::{LoopbackServer, Reply};
use https_step_tests::shared::{step_runtime, tokio};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::sync::Arc;

struct Pki {
    ca_pem: String,
    server: (
        rustls_pki_types::CertificateDer<'static>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ),
    client_cert_pem: String,
    client_key_pem: String,
}

fn pki() -> anyhow::Result<Pki> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate()?;
    let server =
        CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&server_key, &issuer)?;
    let client_key = KeyPair::generate()?;
    let client = CertificateParams::new(vec!["workflow-client".to_string()])?
        .signed_by(&client_key, &issuer)?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        server: (
            server.der().clone(),
            rustls_pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        ),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    })
}

/// A server that requires a client certificate from `pki`'s CA.
async fn mtls_server(pki: &Pki) -> anyhow::Result<LoopbackServer> {
    use rustls_pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from_pem_slice(
        pki.ca_pem.as_bytes(),
    )?)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.0.clone()], pki.server.1.clone_key())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let reply = Arc::new(|_: &_| Reply::json(200, &serde_json::json!({"hello": "client"})));
    Ok(LoopbackServer::https_acceptor(acceptor, pki.ca_pem.clone(), reply).await?)
}

async fn status(runtime: &StepRuntime, tenant: &Arc<Tenant>, origin: &str) -> Result<u16, String> {
    let config = https_step_core::parse_step_config(&format!(
        r#"{{"url": "{origin}/x", "timeout_ms": 5000}}"#
    ))
    .config;
    match runtime
        .run(tenant, &config, "{}", Arc::new(|_: &str| {}))
        .await
    {
        Ok(Ok(outcome)) => Ok(outcome.response.map_or(0, |r| r.status)),
        Ok(Err(failure)) => Err(format!("{}: {}", failure.error.kind(), failure.error)),
        Err(host) => Err(host.to_string()),
    }
}

#[test]
fn the_configured_client_certificate_is_presented_only_to_its_origin() -> anyhow::Result<()> {
    let pki = pki()?;
    tokio().block_on(async {
        let server = mtls_server(&pki).await?;
        let origin = server.origin();
        let other = format!("https://127.0.0.1:{}", server.port().wrapping_add(1).max(1));
        let base = || {
            Tenant::builder("mtls")
                .allow(&origin)?
                .ca_certs_pem(pki.ca_pem.as_bytes())
        };
        let with_cert = Arc::new(
            base()?
                .client_cert_pem(
                    &origin,
                    pki.client_cert_pem.as_bytes(),
                    pki.client_key_pem.as_bytes(),
                )?
                .build()?,
        );
        let without = Arc::new(base()?.build()?);
        let elsewhere = Arc::new(
            base()?
                .client_cert_pem(
                    &other,
                    pki.client_cert_pem.as_bytes(),
                    pki.client_key_pem.as_bytes(),
                )?
                .build()?,
        );

        assert_eq!(status(step_runtime(), &with_cert, &origin).await, Ok(200));
        for (name, tenant) in [
            ("without a client certificate", &without),
            ("with one for another origin", &elsewhere),
        ] {
            let err = status(step_runtime(), tenant, &origin)
                .await
                .expect_err(name);
            assert!(
                err.starts_with("tls:") && err.contains("requires a client certificate"),
                "{name}: {err}"
            );
        }
        assert_eq!(
            server.requests().len(),
            1,
            "only the run with the certificate reached the server"
        );
        let output = format!("{:?}", status(step_runtime(), &with_cert, &origin).await);
        assert!(!output.contains("PRIVATE KEY"), "{output}");
        anyhow::Ok(())
    })
}

#[test]
fn a_wrong_or_unreadable_key_is_a_policy_load_error_naming_the_file() -> anyhow::Result<()> {
    let pki = pki()?;
    let dir = std::env::temp_dir().join(format!("https-step-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("client.pem"), &pki.client_cert_pem)?;
    std::fs::write(dir.join("not-a-key.pem"), &pki.client_cert_pem)?;
    let policy = |key: &str| {
        let path = dir.join(format!("policy-{key}.toml"));
        std::fs::write(
            &path,
            format!(
                "[[client_certs]]\norigin = \"https://partner.test\"\ncert = \"client.pem\"\nkey = \"{key}\"\n"
            ),
        )?;
        anyhow::Ok(
            Tenant::from_policy_file(&path)
                .map(drop)
                .expect_err("the policy must not load")
                .to_string(),
        )
    };
    let wrong = policy("not-a-key.pem")?;
    assert!(
        wrong.contains("not-a-key.pem") && wrong.contains("not a PEM private key"),
        "{wrong}"
    );
    let missing = policy("missing.pem")?;
    assert!(
        missing.contains("cannot read") && missing.contains("missing.pem"),
        "{missing}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
