//! Each simulated user's HTTP/1.1 connection, on hyper's connection-level
//! client: a connection of its own, reused while the server keeps it open,
//! and nothing else between the user and the socket.
//!
//! Why not reqwest, which goose gives each user: on two cores shared with
//! nginx, reqwest's per-request machinery (URL parsing, the pool's checkout
//! and return, tower layers, connector clones) cost twice the CPU of the
//! exchange itself, and the load could not drive nginx anywhere near what
//! wrk does (profile and figures: `cargo bench -p chaosgate --bench load`).
//! What reqwest did that the load relies on is kept: keep-alive or a new
//! connection per request, verified TLS, a 30 s deadline, gzip asked for,
//! and one retry on a new connection when a kept-alive one was found closed
//! before the request was written (hyper's pool does the same).

use super::classify::classify_chain;
use crate::history::TransportError;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::pki_types::pem::PemObject;

/// How long one exchange (connect, request, whole answer) may take.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(30);

/// Where every user's requests go, resolved once for the whole load.
pub struct Target {
    /// What the `Host` header says.
    authority: String,
    /// What a new connection dials.
    connect: ConnectTo,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    user_agent: String,
}

enum ConnectTo {
    Addr(SocketAddr),
    Name(String, u16),
}

impl Target {
    /// `base_url` is `http://host:port` or, with `tls`, `https://name:port`
    /// dialled at `tls.addr`, verified against the run's CA only.
    pub fn new(base_url: &str, tls: Option<&super::LoadTls>) -> Result<Target, String> {
        let url = reqwest::Url::parse(base_url).map_err(|e| format!("load URL {base_url:?}: {e}"))?;
        let host = url
            .host_str()
            .ok_or_else(|| format!("load URL {base_url:?} has no host"))?
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("load URL {base_url:?} has no port"))?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let (connect, tls) = match tls {
            Some(tls) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&tls.ca_pem) {
                    let cert = cert.map_err(|e| format!("the run's CA: {e}"))?;
                    roots.add(cert).map_err(|e| format!("the run's CA: {e}"))?;
                }
                let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                let name = ServerName::try_from(tls.host.clone()).map_err(|e| format!("{}: {e}", tls.host))?;
                (ConnectTo::Addr(tls.addr), Some((TlsConnector::from(Arc::new(config)), name)))
            }
            None => match bare.parse::<std::net::IpAddr>() {
                Ok(ip) => (ConnectTo::Addr(SocketAddr::new(ip, port)), None),
                Err(_) => (ConnectTo::Name(bare, port), None),
            },
        };
        Ok(Target {
            authority,
            connect,
            tls,
            user_agent: concat!("chaosgate/", env!("CARGO_PKG_VERSION")).to_string(),
        })
    }
}

/// An answer, read to its end.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// It came on a connection an earlier request of this user had used.
    pub reused: bool,
}

/// A failed exchange, and whether it went out on a kept-alive connection.
pub struct Failure {
    pub error: TransportError,
    /// The answer's status when the failure came while reading its body.
    pub status: Option<StatusCode>,
    pub reused: bool,
}

/// One user's connection.
pub struct UserClient {
    target: Arc<Target>,
    keepalive: bool,
    conn: Option<SendRequest<Full<Bytes>>>,
    /// Connections this user has opened (shared with the load's tally).
    opened: Arc<AtomicU64>,
}

/// goose's session data must be cloneable: a clone dials its own connection.
impl Clone for UserClient {
    fn clone(&self) -> Self {
        UserClient::new(self.target.clone(), self.keepalive, self.opened.clone())
    }
}

impl UserClient {
    pub fn new(target: Arc<Target>, keepalive: bool, opened: Arc<AtomicU64>) -> Self {
        UserClient {
            target,
            keepalive,
            conn: None,
            opened,
        }
    }

    async fn open(&mut self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let tcp = match &self.target.connect {
            ConnectTo::Addr(addr) => TcpStream::connect(addr).await,
            ConnectTo::Name(host, port) => TcpStream::connect((host.as_str(), *port)).await,
        }
        .map_err(|e| classify_chain(&e).unwrap_or(TransportError::Refused))?;
        let _ = tcp.set_nodelay(true);
        self.opened.fetch_add(1, Ordering::SeqCst);
        match &self.target.tls {
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| classify_chain(&e).unwrap_or(TransportError::Tls))?;
                handshake(tls).await
            }
            None => handshake(tcp).await,
        }
    }

    /// The kept-alive connection if the server still holds it open, else a new one.
    async fn connection(&mut self) -> Result<(SendRequest<Full<Bytes>>, bool), TransportError> {
        if let Some(mut conn) = self.conn.take()
            && conn.ready().await.is_ok()
        {
            return Ok((conn, true));
        }
        Ok((self.open().await?, false))
    }

    /// Send one request and read its whole answer, within the exchange deadline.
    pub async fn exchange(&mut self, method: &Method, path: &str, body: Option<&Bytes>) -> Result<Answer, Failure> {
        match tokio::time::timeout(EXCHANGE_DEADLINE, self.exchange_unbounded(method, path, body)).await {
            Ok(result) => result,
            Err(_) => {
                self.conn = None;
                Err(Failure {
                    error: TransportError::Timeout,
                    status: None,
                    reused: false,
                })
            }
        }
    }

    fn request(&self, method: &Method, path: &str, body: Option<&Bytes>) -> Result<Request<Full<Bytes>>, Failure> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, self.target.authority.as_str())
            .header(hyper::header::USER_AGENT, self.target.user_agent.as_str())
            .header(hyper::header::ACCEPT, "*/*")
            .header(hyper::header::ACCEPT_ENCODING, "gzip");
        if body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        builder.body(Full::new(body.cloned().unwrap_or_default())).map_err(|_| Failure {
            error: TransportError::Other,
            status: None,
            reused: false,
        })
    }

    async fn exchange_unbounded(&mut self, method: &Method, path: &str, body: Option<&Bytes>) -> Result<Answer, Failure> {
        let failed = |error, reused| Failure {
            error,
            status: None,
            reused,
        };
        let (mut conn, mut reused) = self.connection().await.map_err(|e| failed(e, false))?;
        let mut request = self.request(method, path, body)?;
        let response = loop {
            match conn.try_send_request(request).await {
                Ok(response) => break response,
                // Closed under us before a byte of the request went out: the
                // request is handed back and is safe to send on a new connection.
                Err(mut e) if reused && e.message().is_some() => {
                    request = e.take_message().expect("checked");
                    conn = self.open().await.map_err(|e| failed(e, false))?;
                    reused = false;
                }
                Err(e) => {
                    let e = e.into_error();
                    return Err(failed(classify_hyper(&e), reused));
                }
            }
        };
        let (parts, incoming) = response.into_parts();
        match incoming.collect().await {
            Ok(collected) => {
                if self.keepalive && !conn.is_closed() {
                    self.conn = Some(conn);
                }
                Ok(Answer {
                    status: parts.status,
                    headers: parts.headers,
                    body: collected.to_bytes(),
                    reused,
                })
            }
            Err(e) => Err(Failure {
                error: match classify_hyper(&e) {
                    TransportError::Reset | TransportError::Other => TransportError::Truncated,
                    other => other,
                },
                status: Some(parts.status),
                reused,
            }),
        }
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| classify_hyper(&e))?;
    // The connection's own task: it ends when the server closes or the user drops its sender.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// hyper's own verdicts first (a message cut short is a reset), then the io
/// error underneath, as reqwest's errors are classified.
fn classify_hyper(e: &hyper::Error) -> TransportError {
    if let Some(kind) = classify_chain(e) {
        return kind;
    }
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return TransportError::Reset;
    }
    if e.is_timeout() {
        return TransportError::Timeout;
    }
    TransportError::Other
}
