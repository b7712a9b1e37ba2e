//! One HTTP client for observers: no proxy (traffic stays on loopback), no
//! connection reuse (a probe must see a dead listener at once).

use crate::history::TransportError;
use crate::load::classify::classify;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub error: TransportError,
    pub body: String,
    pub header: Option<String>,
}

pub fn probe_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// GET `path` on `addr`; `header` names a response header to capture.
pub async fn get(client: &reqwest::Client, addr: SocketAddr, path: &str, header: Option<&str>) -> Answer {
    let url = format!("http://{addr}{path}");
    match client.get(&url).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let header = header
                .and_then(|h| resp.headers().get(h))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match resp.text().await {
                Ok(body) => Answer {
                    status,
                    error: TransportError::None,
                    body,
                    header,
                },
                Err(e) => Answer {
                    status,
                    error: classify(&e),
                    body: String::new(),
                    header,
                },
            }
        }
        Err(e) => Answer {
            status: 0,
            error: classify(&e),
            body: String::new(),
            header: None,
        },
    }
}
