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
/// whose path label (the manifest's `path_label`) equals it. `None` when no
/// backend could be read, or one lacks a declared series: a counter the
/// harness cannot see is unreadable, never 0.
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
        let label = path.map(|p| (decl.path_label.as_str(), p));
        match sum_series(&answer.body, &decl.requests, label) {
            Some(n) => total.requests += n,
            None => {
                tracing::warn!(
                    "{}: {} has no series `{}`{}: the backend counters are unreadable",
                    svc.name,
                    decl.path,
                    decl.requests,
                    label.map(|(l, _)| format!(" with a `{l}` label")).unwrap_or_default()
                );
                return None;
            }
        }
        total.connections = match (&decl.connections, total.connections) {
            (Some(name), Some(sum)) => sum_series(&answer.body, name, None).map(|n| sum + n),
            _ => None,
        };
    }
    (total.read > 0).then_some(total)
}

/// Sum of the samples of `metric` in a Prometheus text exposition, optionally
/// only those whose label `(name, value)` matches. `None` when the metric has
/// no sample at all, or (with a label) no sample carries that label: absent,
/// not zero.
pub fn sum_series(text: &str, metric: &str, label: Option<(&str, &str)>) -> Option<u64> {
    let wanted = label.map(|(name, value)| (format!("{name}=\""), format!("{name}=\"{value}\"")));
    let mut seen = false;
    let mut sum = 0u64;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name_labels, value)) = l.rsplit_once(' ') else { continue };
        if name_labels.split('{').next() != Some(metric) {
            continue;
        }
        if let Some((has_label, matches)) = &wanted {
            if !name_labels.contains(has_label.as_str()) {
                continue;
            }
            seen = true;
            if !name_labels.contains(matches.as_str()) {
                continue;
            }
        }
        seen = true;
        sum += value.trim().parse::<f64>().map(|v| v as u64).unwrap_or(0);
    }
    seen.then_some(sum)
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
        assert_eq!(sum_series(text, "http_requests_total", None), Some(12));
        assert_eq!(sum_series(text, "http_requests_total", Some(("path", "/a"))), Some(5));
        assert_eq!(sum_series(text, "http_requests_total", Some(("path", "/never"))), Some(0));
        assert_eq!(sum_series(text, "http_connections_accepted_total", None), Some(4));
        // Absent metric, or a label no sample has: unreadable, not 0.
        assert_eq!(sum_series(text, "missing", None), None);
        assert_eq!(sum_series(text, "http_requests_total", Some(("handler", "/a"))), None);
    }
}
