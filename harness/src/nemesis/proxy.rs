//! What the reverse-proxy faults share: which service is the proxy, a client
//! that shows bytes as they came over the wire, and how the proxy reloads.

use super::Nemesis;
use crate::manifest::{ProxyDecl, Service, SignalName};
use nix::sys::signal::Signal;
use std::net::SocketAddr;
use std::time::Duration;

/// The proxy service: the fault's target if it declares `[proxy]`, else the first that does.
pub fn proxy_service<'m>(n: &Nemesis<'m>, target: &str) -> Option<(&'m Service, &'m ProxyDecl)> {
    let m = n.manifest;
    m.resolve(target)
        .filter(|s| s.proxy.is_some())
        .or_else(|| m.services.iter().find(|s| s.proxy.is_some()))
        .and_then(|s| s.proxy.as_ref().map(|p| (s, p)))
}

/// Address of the proxy's plain-HTTP (ready) port.
pub fn http_addr(n: &Nemesis<'_>, svc: &Service) -> Option<SocketAddr> {
    let port = svc.ready.port().or(svc.ports.first().map(String::as_str))?;
    n.backend.endpoint(&svc.name, port)
}

/// A client that never decompresses (so `Content-Encoding` and wire sizes stay
/// visible) and keeps connections (like a browser).
pub fn wire_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .timeout(timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Reload the proxy the way it declares; returns "signal HUP" / "restart" and
/// the PID after (for a restart, once it is ready again).
pub async fn reload(n: &Nemesis<'_>, svc: &Service, decl: &ProxyDecl) -> Result<(String, u32), String> {
    if decl.reload.restart {
        n.backend.stop(&svc.name, n.manifest.grace()).await.map_err(|e| e.to_string())?;
        let pid = n
            .backend
            .start(&svc.name, &crate::stack::EnvOverrides::default())
            .await
            .map_err(|e| e.to_string())?;
        n.backend
            .wait_ready(&svc.name, Duration::from_secs_f64(n.manifest.stack.ready_timeout_s))
            .await
            .map_err(|e| e.to_string())?;
        return Ok(("restart".into(), pid));
    }
    let name = decl.reload.signal.clone().unwrap_or_else(|| "HUP".into());
    let sig = Signal::from_str_lenient(&name).ok_or_else(|| format!("unknown reload signal {name}"))?;
    let pid = n.backend.signal(&svc.name, sig).await.map_err(|e| e.to_string())?;
    Ok((format!("signal {}", sig.as_str()), pid))
}
