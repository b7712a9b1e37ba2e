//! Keep-alive load across proxy reloads: nginx closes idle client keep-alive
//! connections when it reloads, and a request the client sends on such a
//! connection as it closes fails (reset, no response). A client that retries
//! idempotent requests on a new connection (RFC 9110 §9.2.2, RFC 9112
//! §9.3.1) never sees it; goose does not retry. Measured from the history
//! and reported as a finding (a risk for clients), not as an NX-RELOAD
//! failure: NX-RELOAD is judged with a new connection per request.

use crate::history::{FaultDetail, Finding, History, Micros, RequestRecord, TransportError};

pub const FINDING_ID: &str = "F-RELOAD-KEEPALIVE";

/// A window after each reload: the new workers are serving well before this.
const WINDOW_AFTER_US: Micros = 1_000_000;

/// What the keep-alive load saw across the landed reloads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReloadRace {
    pub tls: bool,
    pub reloads: usize,
    /// Requests started in the reload windows (from the swap until 1 s after
    /// the reload's effect was seen).
    pub requests: usize,
    pub failed: usize,
    /// Of the failed: sent on a connection an earlier request had used.
    pub on_reused: usize,
    /// Of the failed: no response at all (status 0, the request died before
    /// any response header arrived), by how.
    pub no_response: usize,
    pub reset: usize,
    pub other: usize,
    /// Failed requests' start and end relative to their reload's signal, ms.
    pub start_ms: Vec<f64>,
    pub end_ms: Vec<f64>,
    /// Per reload: (what, failed, requests).
    pub per_reload: Vec<(String, usize, usize)>,
    /// The whole load: requests, requests on a reused connection, connections opened.
    pub total_requests: usize,
    pub total_reused: u64,
    pub opened: u64,
}

/// Measure, when the load kept connections alive and a reload landed.
pub fn measure(h: &History) -> Option<ReloadRace> {
    if !h.connections.keepalive {
        return None;
    }
    let mut race = ReloadRace {
        tls: h.connections.tls,
        total_requests: h.requests.len(),
        total_reused: h.connections.reused,
        opened: h.connections.opened,
        ..ReloadRace::default()
    };
    for f in h.faults.iter().filter(|f| f.landed) {
        let (what, reloaded_at, effect) = match &f.detail {
            FaultDetail::CertReload {
                certificate,
                via,
                reloaded_at,
                served_at,
                ..
            } => (format!("`{certificate}` ({via})"), *reloaded_at, served_at.or(*reloaded_at)),
            FaultDetail::BrokenReload { reloaded_at, .. } => ("broken config".to_string(), *reloaded_at, f.healed_at),
            _ => continue,
        };
        let signal = reloaded_at.unwrap_or(f.injected_at);
        let end = effect.unwrap_or(signal).max(signal) + WINDOW_AFTER_US;
        let reqs: Vec<&RequestRecord> = h.requests_between(f.injected_at, end).collect();
        let failed: Vec<&&RequestRecord> = reqs.iter().filter(|r| !h.as_expected(r)).collect();
        race.reloads += 1;
        race.requests += reqs.len();
        race.failed += failed.len();
        race.per_reload.push((what, failed.len(), reqs.len()));
        for r in failed {
            if h.connections.failed_on_reused.binary_search(&r.start).is_ok() {
                race.on_reused += 1;
            }
            if r.status == 0 {
                race.no_response += 1;
                match r.error {
                    TransportError::Reset => race.reset += 1,
                    _ => race.other += 1,
                }
            }
            race.start_ms.push((r.start as f64 - signal as f64) / 1000.0);
            race.end_ms.push((r.end as f64 - signal as f64) / 1000.0);
        }
    }
    (race.reloads > 0).then_some(race)
}

fn span(values: &[f64]) -> String {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) => format!("{lo:.1}..{hi:.1} ms (median {:.1})", v[v.len() / 2]),
        _ => "-".into(),
    }
}

impl ReloadRace {
    pub fn finding(&self) -> Finding {
        let scheme = if self.tls { "HTTPS" } else { "HTTP" };
        let per: Vec<String> = self.per_reload.iter().map(|(w, f, n)| format!("{w} {f}/{n}")).collect();
        let when = if self.failed == 0 {
            "none failed this run".to_string()
        } else {
            format!(
                "{} on a reused connection, {} with no response at all ({} reset, {} other); started {} after the reload signal, failed {} after it",
                self.on_reused,
                self.no_response,
                self.reset,
                self.other,
                span(&self.start_ms),
                span(&self.end_ms)
            )
        };
        Finding {
            id: FINDING_ID.into(),
            title: "nginx closes idle keep-alive connections at reload: a client that does not retry sees failed requests".into(),
            evidence: format!(
                "keep-alive {scheme} load (no retries) across {} reload(s): {} of {} requests in the reload windows failed ({:.2} %); {when}; \
                 per reload: {}; whole load: {} requests, {} on a reused connection, {} connections opened. \
                 A client must retry an idempotent request that fails on a reused connection before any response byte \
                 (RFC 9110 §9.2.2, RFC 9112 §9.3.1); NX-RELOAD is judged with a new connection per request",
                self.reloads,
                self.failed,
                self.requests,
                if self.requests == 0 {
                    0.0
                } else {
                    100.0 * self.failed as f64 / self.requests as f64
                },
                per.join(", "),
                self.total_requests,
                self.total_reused,
                self.opened,
            ),
        }
    }
}

/// Add the finding to the history when it applies.
pub fn record(h: &mut History) {
    if let Some(race) = measure(h) {
        h.findings.push(race.finding());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{FaultRecord, HttpsTally, LoadConnections};

    fn req(start: Micros, end: Micros, status: u16, error: TransportError) -> RequestRecord {
        RequestRecord {
            start,
            end,
            status,
            route: 0,
            version: 0,
            error,
            bytes: 0,
        }
    }

    fn swap(injected_at: Micros, reloaded_at: Micros, served_at: Micros) -> FaultRecord {
        FaultRecord {
            index: 0,
            label: "certificate `renewed` put in place and reloaded".into(),
            service: "nginx".into(),
            injected_at,
            healed_at: None,
            provokes: Vec::new(),
            landed: true,
            proof: String::new(),
            detail: FaultDetail::CertReload {
                certificate: "renewed".into(),
                via: "signal SIGHUP".into(),
                pid_before: 10,
                pid_after: Some(10),
                reloaded_at: Some(reloaded_at),
                served_at: Some(served_at),
                before: None,
                after: None,
                https: HttpsTally::default(),
            },
        }
    }

    fn history(keepalive: bool) -> History {
        let mut h = History::default();
        // Requests every 1 ms from 0.9 s to 3 s; two reset on a reused
        // connection 3 and 5 ms after the signal at 1 s, one 502 later.
        for i in 0..2100u64 {
            let start = 900_000 + i * 1_000;
            h.requests.push(req(start, start + 800, 200, TransportError::None));
        }
        h.requests[103] = req(1_003_000, 1_003_200, 0, TransportError::Reset);
        h.requests[105] = req(1_005_000, 1_005_100, 0, TransportError::Reset);
        h.requests[400] = req(1_300_000, 1_300_500, 502, TransportError::None);
        h.faults.push(swap(950_000, 1_000_000, 1_050_000));
        h.connections = LoadConnections {
            keepalive,
            tls: true,
            opened: 12,
            reused: 2_080,
            failed_on_reused: vec![1_003_000, 1_005_000],
            reused_after: vec![(1_003_000, 1_002_900), (1_005_000, 1_004_950)],
        };
        h
    }

    #[test]
    fn counts_failures_on_reused_connections_and_their_timing() {
        let race = measure(&history(true)).expect("measured");
        assert_eq!(race.reloads, 1);
        // From the swap (0.95 s) until 1 s after the new certificate (2.05 s).
        assert_eq!(race.requests, 1_100);
        assert_eq!((race.failed, race.on_reused, race.no_response, race.reset), (3, 2, 2, 2));
        assert_eq!(race.start_ms, vec![3.0, 5.0, 300.0]);
        let f = race.finding();
        assert_eq!(f.id, FINDING_ID);
        assert!(f.evidence.contains("keep-alive HTTPS load"), "{}", f.evidence);
        assert!(f.evidence.contains("3 of 1100 requests"), "{}", f.evidence);
        assert!(
            f.evidence
                .contains("2 on a reused connection, 2 with no response at all (2 reset, 0 other)"),
            "{}",
            f.evidence
        );
        assert!(
            f.evidence.contains("started 3.0..300.0 ms (median 5.0) after the reload signal"),
            "{}",
            f.evidence
        );
        assert!(f.evidence.contains("must retry an idempotent request"), "{}", f.evidence);
    }

    #[test]
    fn nothing_without_keepalive_or_without_a_reload() {
        assert_eq!(measure(&history(false)), None);
        let mut h = history(true);
        h.faults.clear();
        assert_eq!(measure(&h), None);
        let mut h = history(true);
        record(&mut h);
        assert_eq!(h.findings.len(), 1);
    }
}
