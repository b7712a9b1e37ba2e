//! Backend-side counters read from the Prometheus endpoints the manifest
//! declares (`[services.<name>.metrics]`): how many requests and new TCP
//! connections the backends saw, summed over every service that declares one.

use super::http::{get, probe_client};
use crate::manifest::Manifest;
use crate::stack::Backend;
use std::time::Duration;

/// Summed counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackendCounters {
    /// Requests (all paths, or the one asked for).
    pub requests: u64,
    /// Accepted connections; `None` when a backend declares no such counter.
    pub connections: Option<u64>,
    /// Backends that answered.
    pub read: usize,
}

/// Read every declared metrics endpoint; `path` keeps only request series
/// whose `path` label equals it. `None` when no backend could be read.
pub async fn read(manifest: &Manifest, backend: &dyn Backend, path: Option<&str>) -> Option<BackendCounters> {
    let client = probe_client(Duration::from_millis(1000));
    let mut total = BackendCounters {
        connections: Some(0),
        ..Default::default()
    };
    for svc in &manifest.services {
        let Some(decl) = &svc.metrics else { continue };
        let Some(addr) = backend.endpoint(&svc.name, &decl.port) else {
            continue;
        };
        let answer = get(&client, addr, &decl.path, None).await;
        if answer.status != 200 {
            continue;
        }
        total.read += 1;
        total.requests += sum_series(&answer.body, &decl.requests, path);
        total.connections = match (&decl.connections, total.connections) {
            (Some(name), Some(sum)) => Some(sum + sum_series(&answer.body, name, None)),
            _ => None,
        };
    }
    (total.read > 0).then_some(total)
}

/// Sum of the samples of `metric` in a Prometheus text exposition, optionally
/// only those labelled `path="<path>"`.
pub fn sum_series(text: &str, metric: &str, path: Option<&str>) -> u64 {
    let wanted = path.map(|p| format!("path=\"{p}\""));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let name = name_labels.split('{').next()?;
            if name != metric {
                return None;
            }
            if let Some(w) = &wanted
                && !name_labels.contains(w.as_str())
            {
                return None;
            }
            value.trim().parse::<f64>().ok().map(|v| v as u64)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_series_by_name_and_path() {
        let text = "# HELP x\nhttp_requests_total{method=\"GET\",path=\"/a\",status=\"200\"} 3\n\
                    http_requests_total{method=\"GET\",path=\"/a\",status=\"503\"} 2\n\
                    http_requests_total{method=\"GET\",path=\"/b\",status=\"200\"} 7\n\
                    http_connections_accepted_total 4\n";
        assert_eq!(sum_series(text, "http_requests_total", None), 12);
        assert_eq!(sum_series(text, "http_requests_total", Some("/a")), 5);
        assert_eq!(sum_series(text, "http_connections_accepted_total", None), 4);
        assert_eq!(sum_series(text, "missing", None), 0);
    }
}
