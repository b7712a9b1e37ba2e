//! What kind of transport failure an error is (reqwest's, hyper's, io's). Checkers need to tell
//! a refused connection (nothing listening: expected after shutdown) from a
//! reset (a request cut off: a drain failure), and a TLS handshake the
//! client refused from both.

use crate::history::TransportError;
use std::error::Error as _;
use std::io::ErrorKind;
use tokio_rustls::rustls;

/// An io::Error carrying a rustls error, possibly inside further io::Errors
/// (hyper-util wraps tokio-rustls's; `source()` skips the wrapped errors).
fn wraps_rustls(io: &std::io::Error) -> bool {
    let mut inner = io.get_ref();
    while let Some(e) = inner {
        if e.is::<rustls::Error>() {
            return true;
        }
        inner = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
    }
    false
}

/// The kind of failure an error chain shows (rustls's refusal, or the io
/// error underneath), if any link of it shows one; `err` itself included.
pub fn classify_chain(err: &(dyn std::error::Error + 'static)) -> Option<TransportError> {
    let mut source = Some(err);
    while let Some(s) = source {
        // rustls reports a refused certificate or a failed handshake as its
        // own error (inside an io::Error on the way up).
        if s.is::<rustls::Error>() {
            return Some(TransportError::Tls);
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if wraps_rustls(io) {
                return Some(TransportError::Tls);
            }
            match io.kind() {
                ErrorKind::ConnectionRefused => return Some(TransportError::Refused),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof => {
                    return Some(TransportError::Reset);
                }
                ErrorKind::TimedOut => return Some(TransportError::Timeout),
                _ => {}
            }
        }
        source = s.source();
    }
    None
}

pub fn classify(err: &reqwest::Error) -> TransportError {
    if err.is_timeout() {
        return TransportError::Timeout;
    }
    if let Some(kind) = err.source().and_then(classify_chain) {
        return kind;
    }
    let text = format!("{err:?}").to_ascii_lowercase();
    if text.contains("incompletemessage") || text.contains("connection closed") || text.contains("reset") {
        return TransportError::Reset;
    }
    if err.is_connect() {
        return TransportError::Refused;
    }
    if err.is_body() || err.is_decode() {
        return TransportError::Truncated;
    }
    TransportError::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::certs::CertSet;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc;

    /// A TLS server on loopback presenting the run's `name` certificate; one
    /// GET through a client that trusts only the run's CA and asks for `localhost`.
    async fn get_through_tls(name: &str) -> Result<reqwest::Response, reqwest::Error> {
        let dir = std::env::temp_dir().join(format!("chaosgate-classify-{}-{}", std::process::id(), fastrand::u32(..)));
        let certs = CertSet::generate(&dir, "localhost").expect("certs");
        let chain = vec![CertificateDer::from_pem_file(&certs.paths[name].cert).expect("cert")];
        let key = PrivateKeyDer::from_pem_file(&certs.paths[name].key).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = [0u8; 1024];
                        let _ = tls.read(&mut buf).await;
                        let _ = tls
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                            .await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        let ca = reqwest::Certificate::from_pem(&certs.ca_pem().expect("ca")).expect("ca pem");
        let client = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .resolve("localhost", addr)
            .build()
            .expect("client");
        let answer = client.get(format!("https://localhost:{}/", addr.port())).send().await;
        let _ = std::fs::remove_dir_all(&dir);
        answer
    }

    #[tokio::test]
    async fn a_refused_certificate_is_a_tls_failure() {
        for name in ["wrong-host", "expired"] {
            let err = get_through_tls(name).await.expect_err("the verifying client refuses it");
            assert_eq!(classify(&err), TransportError::Tls, "{name}: {err:?}");
        }
        let ok = get_through_tls("valid").await.expect("the valid certificate is accepted");
        assert_eq!(ok.status(), 200);
    }
}
