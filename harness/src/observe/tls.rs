//! Reads the certificate a TLS server presents: a handshake that accepts any
//! chain (an expired certificate must be read, not refused), then the leaf's
//! dates, serial, names and issuer parsed with x509-parser.

use crate::history::ServedCert;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};
use x509_parser::prelude::*;

/// Accepts every chain but still checks the handshake signatures; the caller
/// judges the certificate itself.
#[derive(Debug)]
struct RecordOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for RecordOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Handshake with `addr` asking for `host`; describe the served leaf.
/// `ca_pem` is the CA the harness trusts (to say whether the leaf is its).
pub async fn read_served_cert(addr: SocketAddr, host: &str, ca_pem: &[u8], timeout: Duration) -> Result<ServedCert, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordOnly(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("bad host name {host}: {e}"))?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
        let chain: Vec<Vec<u8>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.to_vec())
            .collect();
        Ok::<_, String>(chain)
    };
    let chain = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| format!("TLS handshake with {addr} timed out"))??;
    describe(&chain, host, ca_pem, ::time::OffsetDateTime::now_utc().unix_timestamp())
}

/// Describe the leaf of a DER chain as seen at `now` (unix seconds).
pub fn describe(chain: &[Vec<u8>], host: &str, ca_pem: &[u8], now: i64) -> Result<ServedCert, String> {
    let leaf = chain.first().ok_or("the server presented no certificate")?;
    let (_, cert) = parse_x509_certificate(leaf).map_err(|e| format!("unparsable certificate: {e}"))?;
    let validity = cert.validity();
    let not_after = validity.not_after.timestamp();
    let names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let ca_subject = x509_parser::pem::parse_x509_pem(ca_pem)
        .ok()
        .and_then(|(_, pem)| pem.parse_x509().ok().map(|c| c.subject().to_string()));
    Ok(ServedCert {
        serial: cert.raw_serial_as_string(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: rfc3339(validity.not_before.timestamp()),
        not_after: rfc3339(not_after),
        days_left: (not_after - now) as f64 / 86_400.0,
        chain_len: chain.len(),
        host_matches: names.iter().any(|n| n.eq_ignore_ascii_case(host)),
        issued_by_ca: ca_subject.is_some_and(|s| s == cert.issuer().to_string()),
    })
}

fn rfc3339(unix: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&::time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Describe a PEM certificate file (what the server should serve after a swap).
pub fn describe_file(path: &str, host: &str) -> Option<ServedCert> {
    let pem = std::fs::read(path).ok()?;
    let (_, parsed) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    describe(&[parsed.contents], host, b"", ::time::OffsetDateTime::now_utc().unix_timestamp()).ok()
}
