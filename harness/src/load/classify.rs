//! What kind of transport failure a reqwest error is. Checkers need to tell
//! a refused connection (nothing listening: expected after shutdown) from a
//! reset (a request cut off: a drain failure), and a TLS handshake the
//! client refused from both.

use crate::history::TransportError;
use std::error::Error as _;
use tokio_rustls::rustls;
use std::io::ErrorKind;

pub fn classify(err: &reqwest::Error) -> TransportError {
    if err.is_timeout() {
        return TransportError::Timeout;
    }
    let mut source = err.source();
    while let Some(s) = source {
        // rustls reports a refused certificate or a failed handshake as its
        // own error (inside an io::Error on the way up).
        if s.is::<rustls::Error>() {
            return TransportError::Tls;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                return TransportError::Tls;
            }
            match io.kind() {
                ErrorKind::ConnectionRefused => return TransportError::Refused,
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof => {
                    return TransportError::Reset;
                }
                ErrorKind::TimedOut => return TransportError::Timeout,
                _ => {}
            }
        }
        source = s.source();
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
