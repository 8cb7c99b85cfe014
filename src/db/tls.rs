//! TLS to PostgreSQL, when `DATABASE_URL` asks for it with `sslmode`.
//!
//! `sslmode=require` means what it means to libpq: the connection is
//! encrypted, and the server's certificate is not checked against a CA (so
//! it protects against eavesdropping, not against someone who can intercept
//! and answer in the server's place). Managed PostgreSQL services sign with
//! CAs of their own, which no system store holds; a URL that needs the
//! certificate verified should reach the database over a network where that
//! holds, or through a verifying proxy. Without `sslmode` in the URL the
//! connection is plain, as before: most deployments reach their database
//! over loopback or a private network, where TLS only costs.

use super::DbError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::Socket;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector every connection uses; whether it is used at all is the
/// URL's `sslmode` (see [`apply_sslmode_default`]).
pub fn connector() -> Result<Connector, DbError> {
    // ring rather than aws-lc-rs: it builds without cmake on every machine
    // the project runs on. rustls marks it deprecated for lacking
    // post-quantum key exchange, which PostgreSQL's TLS does not use either.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Config(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
        .with_no_client_auth();
    Ok(Connector(MakeRustlsConnect::new(config)))
}

/// [`MakeRustlsConnect`] for every kind of host. tokio-postgres asks for a
/// TLS connector for each host before it knows whether TLS will be used,
/// and a Unix socket's path is no server name, which rustls refuses. TLS
/// never runs over a Unix socket, so such a host gets a placeholder name.
#[derive(Clone)]
pub struct Connector(MakeRustlsConnect);

impl MakeTlsConnect<Socket> for Connector {
    type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        let name = if ServerName::try_from(domain).is_ok() {
            domain
        } else {
            "localhost"
        };
        <MakeRustlsConnect as MakeTlsConnect<Socket>>::make_tls_connect(&mut self.0, name)
    }
}

/// A URL that does not name `sslmode` connects without TLS (tokio-postgres
/// would otherwise try TLS first, like libpq's `prefer`).
pub fn apply_sslmode_default(url: &str, cfg: &mut tokio_postgres::Config) {
    if !url.to_ascii_lowercase().contains("sslmode") {
        cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    }
}

/// Accepts the server's certificate chain as libpq's `sslmode=require`
/// does, but still checks that the server holds the key of the certificate
/// it sent (the handshake signatures).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
