//! Time series derived from a [`History`]: load, errors, latency, in-flight
//! requests and served versions per time bucket, with the fault windows and
//! service events on the same axis.
//!
//! Pure functions of the record, for the HTML report's charts and for checks
//! that ask "when was the error rate above 5 %?" ([`windows_where`]). Times
//! are microseconds on the history's clock; buckets start at 0, so bucket `i`
//! covers `[i * bucket, (i + 1) * bucket)`.

use crate::history::{History, Micros, RequestRecord, ServiceEvent, ServiceEventKind};
use serde::{Deserialize, Serialize};

/// The bucket width used unless a caller picks another.
pub const DEFAULT_BUCKET_MS: u64 = 1_000;

/// Every series of one history, bucket by bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub bucket_ms: u64,
    /// End of the record: the latest time anything in the history mentions.
    pub end: Micros,
    /// Served version names, by index as in [`History::versions`] (0 is "no version header").
    pub versions: Vec<String>,
    pub buckets: Vec<Bucket>,
    /// Each fault as a shaded window.
    pub windows: Vec<FaultWindow>,
    /// Service events (started, ready, signalled, exited), in time order.
    pub events: Vec<TimelineEvent>,
    /// The state of each alert the stack declares, as its monitoring reported it.
    #[serde(default)]
    pub alerts: Vec<AlertStates>,
    /// Moments a deployment step moved traffic (the proxy reloaded or
    /// restarted by the stack's controller), and a bad canary's abort.
    #[serde(default)]
    pub marks: Vec<Mark>,
}

/// A moment drawn across the version-share chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub at: Micros,
    /// "step" (traffic moved) or "abort" (the move that ended an aborted canary).
    pub label: String,
}

fn release_marks(h: &History) -> Vec<Mark> {
    let mut marks = Vec::new();
    for f in &h.faults {
        let crate::history::FaultDetail::Release(obs) = &f.detail else {
            continue;
        };
        let moves: Vec<&crate::history::PlatformCall> = obs.calls.iter().filter(|c| c.moves_traffic()).collect();
        let aborted = obs.step == "canary" && obs.exit_code != Some(0);
        for (i, c) in moves.iter().enumerate() {
            let last = i + 1 == moves.len();
            marks.push(Mark {
                at: c.at,
                label: if aborted && last { "abort".into() } else { "step".into() },
            });
        }
    }
    marks
}

/// One declared alert over time: 1 firing, 0.5 pending, 0 inactive; `None`
/// where the monitoring could not be read or did not know the rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertStates {
    pub requirement: String,
    pub alert: String,
    pub states: Vec<(Micros, Option<f64>)>,
}

/// What happened in one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub start: Micros,
    pub end: Micros,
    /// Requests that started in the bucket.
    pub requests: u32,
    pub requests_per_s: f64,
    /// Of those, not ok: a transport error (or no status) or a status ≥ 500.
    pub errors: u32,
    pub errors_per_s: f64,
    /// `errors / requests`; `None` when no request started in the bucket.
    pub error_rate: Option<f64>,
    /// Of those, answered with a 4xx (counted apart: not a server error).
    pub client_errors: u32,
    /// Of those, not what their route expects ([`History::as_expected`]).
    pub unexpected: u32,
    /// Requests that finished in the bucket (latencies are theirs).
    pub finished: u32,
    /// Latency (end − start) percentiles in ms of the requests that finished
    /// in the bucket, nearest-rank; `None` when none finished.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Requests in flight at the bucket's start (`start ≤ t < end`).
    pub in_flight: u32,
    /// Requests started in the bucket, by version index (index 0: no version header).
    pub version_counts: Vec<u32>,
    /// Share of each version among the requests started in the bucket that
    /// carried a version header, by version index (index 0 is always 0).
    pub version_share: Vec<f64>,
}

/// A fault from injection until it was healed (or the record ended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    pub index: usize,
    pub label: String,
    pub service: String,
    pub from: Micros,
    /// `healed_at`, or the end of the record when the fault was never healed.
    pub to: Micros,
    pub healed: bool,
    pub landed: bool,
}

/// A service event reduced to what a time axis shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub at: Micros,
    pub service: String,
    pub kind: EventKind,
    /// One line: "started (pid 41)", "ready after 18 ms", "SIGTERM", "exit status 0".
    pub label: String,
}

/// The kinds of [`ServiceEventKind`], without their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Started,
    Ready,
    Signalled,
    Exited,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Ready => "ready",
            EventKind::Signalled => "signalled",
            EventKind::Exited => "exited",
        }
    }
}

/// A span of time, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub from: Micros,
    pub to: Micros,
}

impl TimeWindow {
    pub fn duration_us(&self) -> Micros {
        self.to.saturating_sub(self.from)
    }
}

impl Timeline {
    /// The windows of this timeline's buckets where `predicate` holds.
    pub fn windows_where(&self, predicate: impl Fn(&Bucket) -> bool) -> Vec<TimeWindow> {
        windows_where(&self.buckets, predicate)
    }

    /// Whether any request carried a version header of more than one version.
    pub fn has_several_versions(&self) -> bool {
        let served = |i: usize| self.buckets.iter().any(|b| b.version_counts.get(i).is_some_and(|&n| n > 0));
        (1..self.versions.len()).filter(|&i| served(i)).count() > 1
    }
}

/// Derives every series of `history` in buckets of `bucket_ms` (at least 1).
pub fn timeline(history: &History, bucket_ms: u64) -> Timeline {
    let bucket_ms = bucket_ms.max(1);
    let width = bucket_ms * 1_000;
    let end = record_end(history);
    let count = end.div_ceil(width).max(1) as usize;
    let versions = version_names(history);
    let mut buckets: Vec<Bucket> = (0..count)
        .map(|i| empty_bucket(i as Micros * width, width, versions.len()))
        .collect();
    let mut latencies: Vec<Vec<Micros>> = vec![Vec::new(); count];
    // In-flight at each bucket start, as a difference array: a request is in
    // flight at the starts of buckets ceil(start/w) .. ceil(end/w) - 1.
    let mut in_flight_delta = vec![0i64; count + 1];
    let index = |t: Micros| ((t / width) as usize).min(count - 1);
    for request in &history.requests {
        let bucket = &mut buckets[index(request.start)];
        bucket.requests += 1;
        if !history.as_expected(request) {
            bucket.unexpected += 1;
        }
        if is_error(request) {
            bucket.errors += 1;
        } else if (400..500).contains(&request.status) {
            bucket.client_errors += 1;
        }
        let version = usize::from(request.version).min(versions.len() - 1);
        bucket.version_counts[version] += 1;
        let end = request.end.max(request.start);
        latencies[index(end)].push(end - request.start);
        let first = (request.start.div_ceil(width) as usize).min(count);
        let last = (end.div_ceil(width) as usize).min(count);
        if first < last {
            in_flight_delta[first] += 1;
            in_flight_delta[last] -= 1;
        }
    }
    let seconds = bucket_ms as f64 / 1e3;
    let mut in_flight = 0i64;
    for ((bucket, mut finished), delta) in buckets.iter_mut().zip(latencies).zip(in_flight_delta) {
        in_flight += delta;
        bucket.in_flight = in_flight.max(0) as u32;
        bucket.requests_per_s = f64::from(bucket.requests) / seconds;
        bucket.errors_per_s = f64::from(bucket.errors) / seconds;
        bucket.error_rate = (bucket.requests > 0).then(|| f64::from(bucket.errors) / f64::from(bucket.requests));
        finished.sort_unstable();
        bucket.finished = finished.len() as u32;
        bucket.p50_ms = percentile_ms(&finished, 50.0);
        bucket.p95_ms = percentile_ms(&finished, 95.0);
        bucket.p99_ms = percentile_ms(&finished, 99.0);
        let versioned: u32 = bucket.version_counts.iter().skip(1).sum();
        if versioned > 0 {
            for (share, &n) in bucket.version_share.iter_mut().zip(&bucket.version_counts).skip(1) {
                *share = f64::from(n) / f64::from(versioned);
            }
        }
    }
    Timeline {
        bucket_ms,
        end,
        versions,
        buckets,
        windows: fault_windows(history, end),
        events: history.events.iter().map(timeline_event).collect(),
        alerts: alert_states(history),
        marks: release_marks(history),
    }
}

fn alert_states(history: &History) -> Vec<AlertStates> {
    let m = &history.monitoring;
    let Some(declared) = &m.declared else { return Vec::new() };
    if m.samples.is_empty() {
        return Vec::new();
    }
    declared
        .iter()
        .map(|(requirement, d)| AlertStates {
            requirement: requirement.clone(),
            alert: d.alert.clone(),
            states: m
                .samples
                .iter()
                .map(|s| {
                    let level = match s.rules.get(&d.alert).map(|r| r.state.as_str()) {
                        Some("firing") => Some(1.0),
                        _ if s.is_firing(&d.alert) => Some(1.0),
                        Some("pending") => Some(0.5),
                        Some("inactive") => Some(0.0),
                        _ => None,
                    };
                    (s.at, level)
                })
                .collect(),
        })
        .collect()
}

/// The time windows made of consecutive buckets where `predicate` holds,
/// e.g. `|b| b.error_rate.is_some_and(|r| r > 0.05)` or
/// `|b| b.p95_ms.is_some_and(|ms| ms > 2_000.0)`.
pub fn windows_where(series: &[Bucket], predicate: impl Fn(&Bucket) -> bool) -> Vec<TimeWindow> {
    let mut windows: Vec<TimeWindow> = Vec::new();
    for bucket in series.iter().filter(|b| predicate(b)) {
        match windows.last_mut() {
            Some(last) if last.to == bucket.start => last.to = bucket.end,
            _ => windows.push(TimeWindow {
                from: bucket.start,
                to: bucket.end,
            }),
        }
    }
    windows
}

/// Not ok for the error rate: no response, or a server error. A 4xx is the
/// client's doing and is counted apart.
fn is_error(request: &RequestRecord) -> bool {
    request.error.is_error() || request.status == 0 || request.status >= 500
}

/// Nearest-rank percentile of sorted microsecond values, in ms.
fn percentile_ms(sorted: &[Micros], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e3)
}

fn empty_bucket(start: Micros, width: Micros, versions: usize) -> Bucket {
    Bucket {
        start,
        end: start + width,
        requests: 0,
        requests_per_s: 0.0,
        errors: 0,
        errors_per_s: 0.0,
        error_rate: None,
        client_errors: 0,
        unexpected: 0,
        finished: 0,
        p50_ms: None,
        p95_ms: None,
        p99_ms: None,
        in_flight: 0,
        version_counts: vec![0; versions],
        version_share: vec![0.0; versions],
    }
}

/// The history's version names, with index 0 present even in a history
/// built by hand without it.
fn version_names(history: &History) -> Vec<String> {
    if history.versions.is_empty() {
        vec![String::new()]
    } else {
        history.versions.clone()
    }
}

/// The latest time the history mentions; a timeline's axis runs from 0 to here.
pub fn record_end(history: &History) -> Micros {
    let requests = history.requests.iter().map(|r| r.end.max(r.start));
    let probes = history.probes.iter().map(|p| p.at);
    let events = history.events.iter().map(|e| e.at);
    let faults = history
        .faults
        .iter()
        .map(|f| f.healed_at.unwrap_or(f.injected_at).max(f.injected_at));
    let load = history.load_window.map(|(_, to)| to);
    requests.chain(probes).chain(events).chain(faults).chain(load).max().unwrap_or(0)
}

/// A fault never healed lasts until the next fault on the same service
/// supersedes it (a certificate swapped again, say), else to the end.
fn fault_windows(history: &History, end: Micros) -> Vec<FaultWindow> {
    let superseded_at = |f: &crate::history::FaultRecord| {
        history
            .faults
            .iter()
            .filter(|g| g.service == f.service && g.injected_at > f.injected_at)
            .map(|g| g.injected_at)
            .min()
    };
    history
        .faults
        .iter()
        .map(|f| FaultWindow {
            index: f.index,
            label: f.label.clone(),
            service: f.service.clone(),
            from: f.injected_at,
            to: f.healed_at.or_else(|| superseded_at(f)).unwrap_or(end).max(f.injected_at),
            healed: f.healed_at.is_some(),
            landed: f.landed,
        })
        .collect()
}

fn timeline_event(event: &ServiceEvent) -> TimelineEvent {
    let (kind, label) = match &event.kind {
        ServiceEventKind::Started { pid } => (EventKind::Started, format!("started (pid {pid})")),
        ServiceEventKind::Ready { after_ms } => (EventKind::Ready, format!("ready after {after_ms} ms")),
        ServiceEventKind::Signalled { signal, .. } => (EventKind::Signalled, signal.clone()),
        ServiceEventKind::Exited { exit, .. } => (EventKind::Exited, exit.describe()),
    };
    TimelineEvent {
        at: event.at,
        service: event.service.clone(),
        kind,
        label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{ExitInfo, FaultDetail, FaultRecord, TransportError};

    #[test]
    fn declared_alerts_become_state_series() {
        use crate::history::{AlertSample, DeclaredAlert, RuleState};
        let mut h = History::default();
        h.monitoring.declared = Some(
            [(
                "AL-CERT".to_string(),
                DeclaredAlert {
                    alert: "CertificateExpiringSoon".into(),
                    query: None,
                },
            )]
            .into(),
        );
        let sample = |at: Micros, state: Option<&str>| AlertSample {
            at,
            firing: Vec::new(),
            rules: state
                .map(|s| {
                    [(
                        "CertificateExpiringSoon".to_string(),
                        RuleState {
                            state: s.into(),
                            evaluated_at: Some(at),
                        },
                    )]
                    .into()
                })
                .unwrap_or_default(),
            values: Default::default(),
            error: None,
        };
        h.monitoring.samples = vec![
            sample(1_000, None),
            sample(2_000, Some("inactive")),
            sample(3_000, Some("pending")),
            sample(4_000, Some("firing")),
        ];
        let t = timeline(&h, 1_000);
        assert_eq!(t.alerts.len(), 1);
        assert_eq!(t.alerts[0].requirement, "AL-CERT");
        assert_eq!(
            t.alerts[0].states,
            vec![(1_000, None), (2_000, Some(0.0)), (3_000, Some(0.5)), (4_000, Some(1.0))]
        );
        assert!(timeline(&History::default(), 1_000).alerts.is_empty());
    }

    fn request(start_ms: u64, end_ms: u64, status: u16, version: u16) -> RequestRecord {
        RequestRecord {
            start: start_ms * 1_000,
            end: end_ms * 1_000,
            status,
            route: 0,
            version,
            error: TransportError::None,
            bytes: 10,
        }
    }

    fn refused(at_ms: u64) -> RequestRecord {
        RequestRecord {
            status: 0,
            version: 0,
            error: TransportError::Refused,
            ..request(at_ms, at_ms + 1, 0, 0)
        }
    }

    fn history(requests: Vec<RequestRecord>) -> History {
        History {
            requests,
            versions: vec![String::new(), "v1".to_string(), "v2".to_string()],
            ..History::default()
        }
    }

    #[test]
    fn counts_rates_and_errors_per_bucket() {
        let h = history(vec![
            request(100, 200, 200, 1),
            request(300, 400, 503, 1),
            request(500, 600, 404, 1),
            refused(700),
            request(1_200, 1_300, 200, 1),
        ]);
        let t = timeline(&h, 1_000);
        assert_eq!(t.end, 1_300_000);
        assert_eq!(t.buckets.len(), 2);
        let b = &t.buckets[0];
        assert_eq!((b.start, b.end), (0, 1_000_000));
        assert_eq!((b.requests, b.errors, b.client_errors, b.unexpected), (4, 2, 1, 3));
        assert_eq!(b.requests_per_s, 4.0);
        assert_eq!(b.errors_per_s, 2.0);
        assert_eq!(b.error_rate, Some(0.5));
        assert_eq!(t.buckets[1].error_rate, Some(0.0));
        // A 250 ms bucket scales the rate.
        let quarter = timeline(&h, 250);
        assert_eq!(quarter.buckets.len(), 6);
        assert_eq!(quarter.buckets[0].requests_per_s, 4.0);
        assert_eq!(quarter.buckets[3].requests_per_s, 0.0);
        assert_eq!(quarter.buckets[3].error_rate, None);
    }

    #[test]
    fn unexpected_follows_what_the_route_expects() {
        let mut h = history(vec![request(0, 10, 503, 1), request(20, 30, 200, 1)]);
        h.route_expect = vec![vec![503]];
        let b = &timeline(&h, 1_000).buckets[0];
        // A 503 the route asks for is expected, and still a server error.
        assert_eq!((b.errors, b.unexpected), (1, 1));
    }

    #[test]
    fn latency_percentiles_are_of_requests_finished_in_the_bucket() {
        // 100 requests start at 0 and finish in bucket 1 with latencies 1001..=1100 ms.
        let mut requests: Vec<_> = (1..=100).map(|i| request(0, 1_000 + i, 200, 1)).collect();
        // One long request finishes in bucket 2; none finish in bucket 0.
        requests.push(request(500, 2_500, 200, 1));
        let t = timeline(&history(requests), 1_000);
        assert_eq!(t.buckets[0].finished, 0);
        assert_eq!(t.buckets[0].p50_ms, None);
        let b = &t.buckets[1];
        assert_eq!(b.finished, 100);
        assert_eq!(b.p50_ms, Some(1_050.0));
        assert_eq!(b.p95_ms, Some(1_095.0));
        assert_eq!(b.p99_ms, Some(1_099.0));
        assert_eq!(t.buckets[2].p50_ms, Some(2_000.0));
        assert_eq!(t.buckets[2].p99_ms, Some(2_000.0));
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let us = [1_000, 2_000, 3_000, 4_000];
        assert_eq!(percentile_ms(&us, 50.0), Some(2.0));
        assert_eq!(percentile_ms(&us, 95.0), Some(4.0));
        assert_eq!(percentile_ms(&us[..1], 99.0), Some(1.0));
        assert_eq!(percentile_ms(&[], 50.0), None);
    }

    #[test]
    fn in_flight_is_counted_at_each_bucket_start() {
        let h = history(vec![
            request(0, 2_500, 200, 1),     // in flight at 0, 1 s and 2 s
            request(500, 1_000, 200, 1),   // ends exactly at 1 s: not in flight then
            request(999, 1_001, 200, 1),   // in flight at 1 s
            request(2_000, 2_000, 200, 1), // zero length: never in flight
        ]);
        let t = timeline(&h, 1_000);
        let in_flight: Vec<u32> = t.buckets.iter().map(|b| b.in_flight).collect();
        assert_eq!(in_flight, vec![1, 2, 1]);
        // Same as asking every request directly.
        for b in &t.buckets {
            assert_eq!(b.in_flight as usize, h.requests.iter().filter(|r| r.in_flight_at(b.start)).count());
        }
    }

    #[test]
    fn version_share_ignores_requests_without_a_version() {
        let h = history(vec![
            request(0, 10, 200, 1),
            request(10, 20, 200, 1),
            request(20, 30, 200, 1),
            request(30, 40, 200, 2),
            refused(50),
        ]);
        let t = timeline(&h, 1_000);
        assert_eq!(t.buckets[0].version_counts, vec![1, 3, 1]);
        assert_eq!(t.buckets[0].version_share, vec![0.0, 0.75, 0.25]);
        assert!(t.has_several_versions());
        let one = timeline(&history(vec![request(0, 10, 200, 1), refused(20)]), 1_000);
        assert!(!one.has_several_versions());
    }

    #[test]
    fn faults_become_windows_and_events_get_labels() {
        let mut h = history(vec![request(0, 4_000, 200, 1)]);
        let fault = |index, injected_at, healed_at| FaultRecord {
            index,
            label: format!("fault {index}"),
            service: "app".to_string(),
            injected_at,
            healed_at,
            provokes: Vec::new(),
            landed: index == 0,
            proof: String::new(),
            detail: FaultDetail::Pause { resumed_at: healed_at },
        };
        h.faults = vec![fault(0, 1_000_000, Some(2_000_000)), fault(1, 3_000_000, None)];
        h.events = vec![
            ServiceEvent {
                at: 5,
                service: "app".to_string(),
                kind: ServiceEventKind::Started { pid: 7 },
            },
            ServiceEvent {
                at: 3_500_000,
                service: "app".to_string(),
                kind: ServiceEventKind::Exited {
                    pid: 7,
                    exit: ExitInfo {
                        code: Some(0),
                        signal: None,
                    },
                },
            },
        ];
        let t = timeline(&h, 1_000);
        assert_eq!(t.end, 4_000_000);
        let w: Vec<_> = t.windows.iter().map(|w| (w.from, w.to, w.healed, w.landed)).collect();
        assert_eq!(w, vec![(1_000_000, 2_000_000, true, true), (3_000_000, 4_000_000, false, false)]);
        let e: Vec<_> = t.events.iter().map(|e| (e.at, e.kind, e.label.as_str())).collect();
        assert_eq!(
            e,
            vec![
                (5, EventKind::Started, "started (pid 7)"),
                (3_500_000, EventKind::Exited, "exit status 0")
            ]
        );
    }

    #[test]
    fn a_fault_never_healed_ends_where_the_next_on_its_service_begins() {
        let mut h = history(vec![request(0, 9_000, 200, 1)]);
        let swap = |index, service: &str, injected_at| FaultRecord {
            index,
            label: format!("swap {index}"),
            service: service.to_string(),
            injected_at,
            healed_at: None,
            provokes: Vec::new(),
            landed: true,
            proof: String::new(),
            detail: FaultDetail::Pause { resumed_at: None },
        };
        h.faults = vec![swap(0, "nginx", 1_000_000), swap(1, "app", 2_000_000), swap(2, "nginx", 5_000_000)];
        let t = timeline(&h, 1_000);
        let w: Vec<_> = t.windows.iter().map(|w| (w.from, w.to, w.healed)).collect();
        assert_eq!(
            w,
            vec![
                (1_000_000, 5_000_000, false),
                (2_000_000, 9_000_000, false),
                (5_000_000, 9_000_000, false)
            ]
        );
    }

    #[test]
    fn windows_where_merges_consecutive_buckets() {
        let h = history(vec![
            refused(100),
            refused(1_100),
            request(2_100, 2_200, 200, 1),
            refused(3_100),
            request(3_200, 3_300, 200, 1),
        ]);
        let t = timeline(&h, 1_000);
        let high = t.windows_where(|b| b.error_rate.is_some_and(|r| r > 0.05));
        assert_eq!(
            high,
            vec![
                TimeWindow { from: 0, to: 2_000_000 },
                TimeWindow {
                    from: 3_000_000,
                    to: 4_000_000
                }
            ]
        );
        assert_eq!(high[0].duration_us(), 2_000_000);
        let slow = windows_where(&t.buckets, |b| b.p95_ms.is_some_and(|ms| ms > 2_000.0));
        assert!(slow.is_empty());
    }

    #[test]
    fn an_empty_history_has_one_empty_bucket() {
        let t = timeline(&History::default(), 0);
        assert_eq!(t.bucket_ms, 1);
        assert_eq!(t.buckets.len(), 1);
        assert_eq!(t.buckets[0].version_counts, vec![0]);
        assert!(t.windows.is_empty() && t.events.is_empty());
    }

    #[test]
    fn serializes_to_json() {
        let t = timeline(&history(vec![request(0, 10, 200, 1)]), 1_000);
        let json = serde_json::to_value(&t).expect("serializes");
        assert_eq!(json["buckets"][0]["requests"], 1);
        assert_eq!(json["buckets"][0]["p50_ms"], 10.0);
        let back: Timeline = serde_json::from_value(json).expect("parses");
        assert_eq!(back, t);
    }
}
