//! Observations of proxy features under the running load, recorded like
//! faults (with proof) so checkers judge them from the history: gzip,
//! the proxy cache, and upstream connection reuse.

use super::Nemesis;
use super::proxy::{http_addr, proxy_service, wire_client};
use crate::history::{FaultDetail, FaultRecord, GzipAnswer};
use crate::observe::backend_metrics;
use std::time::Duration;

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    gzip: bool,
    header: Option<&str>,
) -> Option<(u16, String, Option<String>, u64, Option<String>)> {
    let mut req = client.get(url);
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    let h = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let content_type = h("content-type").unwrap_or_default();
    let encoding = h("content-encoding");
    let extra = header.and_then(h);
    let bytes = resp.bytes().await.ok()?.len() as u64;
    Some((status, content_type, encoding, bytes, extra))
}

/// GET the declared large and small paths with and without gzip.
pub async fn gzip_probe(n: &Nemesis<'_>, index: usize, target: &str) -> FaultRecord {
    let label = "gzip probe".to_string();
    let empty = FaultDetail::Gzip {
        answers: vec![],
        min_length: 0,
    };
    let Some((svc, decl)) = proxy_service(n, target) else {
        return n.not_landed(index, label, target, "no service declares [proxy]".into(), empty);
    };
    let (Some(gz), Some(addr)) = (&decl.gzip, http_addr(n, svc)) else {
        return n.lacks(
            index,
            label,
            &svc.name,
            &["NX-GZIP"],
            "gzip for responses above 1000 bytes",
            "[services.<proxy>.proxy] gzip = { large, small }",
            empty,
        );
    };
    let injected_at = n.now();
    let client = wire_client(Duration::from_secs(5));
    let mut answers = Vec::new();
    for path in [&gz.large, &gz.small] {
        let url = format!("http://{addr}{path}");
        if let (Some(zipped), Some(plain)) = (fetch(&client, &url, true, None).await, fetch(&client, &url, false, None).await) {
            answers.push(GzipAnswer {
                path: path.clone(),
                status: zipped.0,
                content_type: zipped.1,
                encoding: zipped.2,
                wire_bytes: zipped.3,
                identity_bytes: plain.3,
            });
        }
    }
    let landed = answers.len() == 2 && answers.iter().all(|a| a.status == 200);
    let proof = answers
        .iter()
        .map(|a| {
            format!(
                "{} {} {}: {} B with gzip asked ({}), {} B without",
                a.path,
                a.status,
                a.content_type,
                a.wire_bytes,
                a.encoding.as_deref().unwrap_or("identity"),
                a.identity_bytes
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    FaultRecord {
        index,
        label,
        service: svc.name.clone(),
        injected_at,
        healed_at: None,
        provokes: Vec::new(),
        landed,
        proof: if landed {
            proof
        } else {
            format!("not every gzip path answered 200: {proof}")
        },
        detail: FaultDetail::Gzip {
            answers,
            min_length: gz.min_length,
        },
    }
}

/// GET the cacheable path 5 times; read the cache header and the backend's count.
pub async fn cache_probe(n: &Nemesis<'_>, index: usize, target: &str) -> FaultRecord {
    let label = "cache probe".to_string();
    let empty = FaultDetail::Cache {
        path: String::new(),
        header: String::new(),
        answers: vec![],
        backend_requests: None,
    };
    let Some((svc, decl)) = proxy_service(n, target) else {
        return n.not_landed(index, label, target, "no service declares [proxy]".into(), empty);
    };
    let (Some(cache), Some(addr)) = (&decl.cache, http_addr(n, svc)) else {
        return n.lacks(
            index,
            label,
            &svc.name,
            &["NX-CACHE"],
            "a proxy cache for 200 responses",
            "[services.<proxy>.proxy] cache = { path, header, backend_path }",
            empty,
        );
    };
    let backend_path = cache
        .backend_path
        .clone()
        .unwrap_or_else(|| cache.path.split('?').next().unwrap_or("").to_string());
    let injected_at = n.now();
    let before = backend_metrics::read(n.manifest, n.backend, Some(&backend_path)).await;
    let client = wire_client(Duration::from_secs(5));
    let url = format!("http://{addr}{}", cache.path);
    let mut answers = Vec::new();
    for _ in 0..5 {
        match fetch(&client, &url, false, Some(&cache.header)).await {
            Some(a) => answers.push((a.0, a.4)),
            None => answers.push((0, None)),
        }
    }
    let after = backend_metrics::read(n.manifest, n.backend, Some(&backend_path)).await;
    let backend_requests = before.zip(after).map(|(b, a)| a.requests.saturating_sub(b.requests));
    let landed = answers.iter().all(|(s, _)| *s == 200);
    let shown: Vec<String> = answers
        .iter()
        .map(|(s, h)| format!("{s} {}", h.as_deref().unwrap_or("-")))
        .collect();
    FaultRecord {
        index,
        label,
        service: svc.name.clone(),
        injected_at,
        healed_at: None,
        provokes: Vec::new(),
        landed,
        proof: format!(
            "5 GETs of {}: {}; backend counted {} on {backend_path}",
            cache.path,
            shown.join(", "),
            backend_requests.map(|b| b.to_string()).unwrap_or_else(|| "(unreadable)".into())
        ),
        detail: FaultDetail::Cache {
            path: cache.path.clone(),
            header: cache.header.clone(),
            answers,
            backend_requests,
        },
    }
}

/// Backend requests and new connections over `window` of the running load.
pub async fn backend_traffic(n: &Nemesis<'_>, index: usize, target: &str, window: Duration) -> FaultRecord {
    let label = format!("backend counters over {:.1} s", window.as_secs_f64());
    let injected_at = n.now();
    // The backends: every app the proxy could send to.
    let ports: Vec<u16> = n
        .manifest
        .services
        .iter()
        .filter(|s| s.role == crate::manifest::Role::App)
        .flat_map(|s| s.ports.iter().filter_map(|p| n.backend.endpoint(&s.name, p)).map(|a| a.port()))
        .collect();
    let (client_before, _) = n.recorder.request_counts();
    let before = backend_metrics::read(n.manifest, n.backend, None).await;
    let sockets_before = crate::observe::sockets::connections_to_ports(&ports);
    tokio::time::sleep(window).await;
    let sockets_after = crate::observe::sockets::connections_to_ports(&ports);
    let after = backend_metrics::read(n.manifest, n.backend, None).await;
    let (client_after, _) = n.recorder.request_counts();
    let kernel_connections = (!ports.is_empty()).then(|| sockets_after.difference(&sockets_before).count() as u64);
    let (requests, connections) = match before.zip(after) {
        Some((b, a)) => (
            Some(a.requests.saturating_sub(b.requests)),
            b.connections.zip(a.connections).map(|(b, a)| a.saturating_sub(b)),
        ),
        None => (None, None),
    };
    let client_requests = client_after - client_before;
    let landed = client_requests > 0 && (requests.is_some_and(|r| r > 0) || kernel_connections.is_some());
    let show = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "(unreadable)".into());
    FaultRecord {
        index,
        label,
        service: target.to_string(),
        injected_at,
        healed_at: Some(n.now()),
        provokes: Vec::new(),
        landed,
        proof: format!(
            "{client_requests} requests through the proxy; backends counted {} requests on {} new connections; \
             the kernel saw {} new connections to the backends' ports",
            show(requests),
            show(connections),
            show(kernel_connections)
        ),
        detail: FaultDetail::BackendTraffic {
            window_ms: window.as_millis() as u64,
            client_requests,
            backend_requests: requests,
            backend_connections: connections,
            kernel_connections,
        },
    }
}
