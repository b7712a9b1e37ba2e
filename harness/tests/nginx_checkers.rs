//! The nginx and TLS checkers (NX-*, TLS-EXPIRY) fed hand-made histories:
//! each passes, fails with its numbers in `measured`, and says inconclusive
//! when the history cannot prove anything.

use chaosgate::check::verdict::{Outcome, Verdict};
use chaosgate::check::{CheckInput, judge};
use chaosgate::history::{
    BurstObservation, FaultDetail, FaultRecord, GzipAnswer, History, Micros, RequestRecord, ServedCert, TransportError,
};
use chaosgate::scenario::Settings;
use std::collections::BTreeMap;

use Outcome::{Fail, Inconclusive, Pass};

const T0: u64 = 10_000;

fn ms(t: u64) -> Micros {
    t * 1000
}

fn check(id: &str, h: &History) -> Verdict {
    let settings = Settings::default();
    let input = CheckInput {
        history: h,
        settings: &settings,
        probed_service: "app",
        dependency_services: vec!["redis".into()],
        roles: BTreeMap::from([
            ("app".to_string(), "app".to_string()),
            ("app2".to_string(), "app".to_string()),
            ("nginx".to_string(), "entry".to_string()),
        ]),
    };
    judge(id, &input)
}

fn fault(service: &str, at_ms: u64, landed: bool, detail: FaultDetail) -> FaultRecord {
    FaultRecord {
        index: 0,
        label: "test".into(),
        service: service.into(),
        injected_at: ms(at_ms),
        healed_at: Some(ms(at_ms + 1_000)),
        provokes: Vec::new(),
        landed,
        proof: "hand-made".into(),
        detail,
    }
}

/// A request every 10 ms from `from_ms` to `to_ms`, each taking 5 ms.
fn steady(from_ms: u64, to_ms: u64, status: u16) -> Vec<RequestRecord> {
    (from_ms..to_ms)
        .step_by(10)
        .map(|t| RequestRecord {
            start: ms(t),
            end: ms(t + 5),
            status,
            route: 0,
            version: 0,
            error: TransportError::None,
            bytes: 64,
        })
        .collect()
}

fn history(requests: Vec<RequestRecord>, faults: Vec<FaultRecord>) -> History {
    History {
        requests,
        faults,
        ..History::default()
    }
}

fn burst(rate: f64, statuses: &[(u16, u32)], backend: u64) -> FaultDetail {
    FaultDetail::Burst(BurstObservation {
        path: "/api/limited".into(),
        rate_per_s: rate,
        duration_ms: 2000,
        sent: statuses.iter().map(|(_, c)| c).sum(),
        statuses: statuses.iter().copied().collect(),
        transport_errors: statuses.iter().filter(|(s, _)| *s == 0).map(|(_, c)| c).sum(),
        limit_rate_per_s: 20.0,
        limit_burst: 10,
        backend_requests: Some(backend),
    })
}

#[test]
fn nx_rate_passes_with_429s_above_and_none_below() {
    let h = history(
        vec![],
        vec![
            fault("nginx", T0, true, burst(8.0, &[(200, 16)], 16)),
            fault("nginx", T0 + 3000, true, burst(200.0, &[(200, 50), (429, 350)], 50)),
        ],
    );
    let v = check("NX-RATE", &h);
    assert_eq!(v.outcome, Pass, "{v:?}");
    assert!(v.measured.contains("350 × 429"), "{}", v.measured);
}

#[test]
fn nx_rate_fails_on_503_resets_or_a_backend_above_the_limit() {
    let below = fault("nginx", T0, true, burst(8.0, &[(200, 16)], 16));
    let with_503 = history(
        vec![],
        vec![
            below.clone(),
            fault("nginx", T0 + 3000, true, burst(200.0, &[(200, 50), (503, 350)], 50)),
        ],
    );
    let v = check("NX-RATE", &with_503);
    assert_eq!(v.outcome, Fail);
    assert!(v.measured.contains("350 × 503 and 0 × 429"), "{}", v.measured);
    let resets = history(
        vec![],
        vec![
            below.clone(),
            fault("nginx", T0 + 3000, true, burst(200.0, &[(200, 50), (429, 300), (0, 50)], 50)),
        ],
    );
    assert!(check("NX-RATE", &resets).measured.contains("50 requests without a response"));
    let unlimited = history(
        vec![],
        vec![below, fault("nginx", T0 + 3000, true, burst(200.0, &[(200, 400)], 400))],
    );
    let v = check("NX-RATE", &unlimited);
    assert_eq!(v.outcome, Fail);
    assert!(v.measured.contains("the backend saw 400 requests"), "{}", v.measured);
    let rejected_below = history(
        vec![],
        vec![
            fault("nginx", T0, true, burst(8.0, &[(200, 10), (429, 6)], 10)),
            fault("nginx", T0 + 3000, true, burst(200.0, &[(200, 50), (429, 350)], 50)),
        ],
    );
    assert_eq!(check("NX-RATE", &rejected_below).outcome, Fail);
}

#[test]
fn nx_rate_is_inconclusive_without_both_bursts() {
    let only_above = history(vec![], vec![fault("nginx", T0, true, burst(200.0, &[(200, 50), (429, 350)], 50))]);
    assert_eq!(check("NX-RATE", &only_above).outcome, Inconclusive);
    let not_landed = history(
        vec![],
        vec![
            fault("nginx", T0, false, burst(8.0, &[(0, 16)], 0)),
            fault("nginx", T0, true, burst(200.0, &[(429, 400)], 0)),
        ],
    );
    assert_eq!(check("NX-RATE", &not_landed).outcome, Inconclusive);
}

fn all_down() -> FaultDetail {
    FaultDetail::AllDown {
        services: vec!["app".into(), "app2".into()],
        down_at: Some(ms(T0)),
        restarted_at: Some(ms(T0 + 1500)),
        access_log_502: Some(149),
    }
}

#[test]
fn nx_502_passes_on_quick_502s_and_fails_on_anything_else() {
    let mut pass = history(steady(T0, T0 + 1490, 502), vec![fault("app", T0, true, all_down())]);
    // The standard's NX-502 includes AL-NGX-5XX firing: no monitoring, no pass.
    let v = check("NX-502", &pass);
    assert_eq!(v.outcome, Fail, "{v:#?}");
    assert!(
        v.measured
            .starts_with("AL-NGX-5XX (nginx 5xx rate > 1 %) cannot fire: the stack has no monitoring"),
        "{}",
        v.measured
    );
    assert!(v.measured.contains("149 of 149 requests got 502"), "{}", v.measured);
    pass.monitoring = monitoring_firing_from(T0 + 2_000, T0 + 30_000);
    let v = check("NX-502", &pass);
    assert_eq!(v.outcome, Pass, "{v:#?}");
    assert!(v.measured.contains("AL-NGX-5XX: fired 2000 ms after"), "{}", v.measured);
    let masked = history(steady(T0, T0 + 1490, 200), vec![fault("app", T0, true, all_down())]);
    let v = check("NX-502", &masked);
    assert_eq!(v.outcome, Fail);
    assert!(v.measured.contains("0 of 149 requests got 502"), "{}", v.measured);
    assert_eq!(
        check("NX-502", &history(vec![], vec![fault("app", T0, true, all_down())])).outcome,
        Inconclusive
    );
    assert_eq!(check("NX-502", &history(steady(T0, T0 + 1490, 502), vec![])).outcome, Inconclusive);
}

/// Monitoring that declares AL-NGX-5XX and samples it every 200 ms up to
/// `until_ms`, firing from `from_ms` on for 3 s.
fn monitoring_firing_from(from_ms: u64, until_ms: u64) -> chaosgate::history::MonitoringRecord {
    use chaosgate::history::{AlertSample, DeclaredAlert, MonitoringRecord, RuleState};
    const ALERT: &str = "NginxErrorRateHigh";
    MonitoringRecord {
        declared: Some(BTreeMap::from([(
            "AL-NGX-5XX".to_string(),
            DeclaredAlert {
                alert: ALERT.into(),
                query: None,
            },
        )])),
        rules_loaded: Some(vec![ALERT.into()]),
        samples: (0..until_ms)
            .step_by(200)
            .map(|t| {
                let firing = (from_ms..from_ms + 3_000).contains(&t);
                AlertSample {
                    at: ms(t),
                    firing: if firing { vec![ALERT.into()] } else { vec![] },
                    rules: BTreeMap::from([(
                        ALERT.to_string(),
                        RuleState {
                            state: if firing { "firing" } else { "inactive" }.into(),
                            evaluated_at: Some(ms(t)),
                        },
                    )]),
                    values: BTreeMap::new(),
                    error: None,
                }
            })
            .collect(),
        scraped_at: Some(0),
        ..MonitoringRecord::default()
    }
}

fn outage() -> FaultDetail {
    FaultDetail::Outage {
        signal: "SIGKILL".into(),
        down_at: Some(ms(T0)),
        restarted_at: Some(ms(T0 + 2000)),
        ready_at: Some(ms(T0 + 2100)),
    }
}

#[test]
fn nx_failover_needs_every_request_to_succeed_while_one_instance_is_down() {
    let pass = history(steady(T0 - 500, T0 + 2500, 200), vec![fault("app", T0, true, outage())]);
    assert_eq!(check("NX-FAILOVER", &pass).outcome, Pass);
    let mut reqs = steady(T0 - 500, T0 + 2500, 200);
    for r in reqs.iter_mut().filter(|r| r.start >= ms(T0) && r.start < ms(T0 + 2000)) {
        r.status = 502;
    }
    let v = check("NX-FAILOVER", &history(reqs, vec![fault("app", T0, true, outage())]));
    assert_eq!(v.outcome, Fail);
    assert!(
        v.measured.contains("200 of 200 requests failed while app was down"),
        "{}",
        v.measured
    );
    // An outage of a non-app service says nothing about failover.
    assert_eq!(
        check(
            "NX-FAILOVER",
            &history(steady(T0, T0 + 2000, 200), vec![fault("nginx", T0, true, outage())])
        )
        .outcome,
        Inconclusive
    );
}

fn traffic(requests: u64, connections: Option<u64>) -> FaultDetail {
    FaultDetail::BackendTraffic {
        window_ms: 2000,
        client_requests: requests,
        backend_requests: Some(requests),
        backend_connections: connections,
        kernel_connections: None,
    }
}

/// An app that counts no connections: the kernel's socket table counts them,
/// and every request through the proxy counts as one backend request.
#[test]
fn nx_keepalive_counts_connections_from_the_kernel_when_the_app_does_not() {
    let kernel = |conns| FaultDetail::BackendTraffic {
        window_ms: 2000,
        client_requests: 1500,
        backend_requests: None,
        backend_connections: None,
        kernel_connections: Some(conns),
    };
    let v = check("NX-KEEPALIVE", &history(vec![], vec![fault("entry", T0, true, kernel(1500))]));
    assert_eq!(v.outcome, Fail, "{v:#?}");
    assert!(v.evidence.iter().any(|e| e.contains("kernel's socket table")), "{v:#?}");
    let v = check("NX-KEEPALIVE", &history(vec![], vec![fault("entry", T0, true, kernel(3))]));
    assert_eq!(v.outcome, Pass, "{v:#?}");
}

#[test]
fn nx_keepalive_compares_new_connections_with_requests() {
    assert_eq!(
        check(
            "NX-KEEPALIVE",
            &history(vec![], vec![fault("entry", T0, true, traffic(2000, Some(12)))])
        )
        .outcome,
        Pass
    );
    let v = check(
        "NX-KEEPALIVE",
        &history(vec![], vec![fault("entry", T0, true, traffic(2000, Some(2000)))]),
    );
    assert_eq!(v.outcome, Fail);
    assert!(v.measured.contains("ratio 1.000"), "{}", v.measured);
    assert_eq!(
        check(
            "NX-KEEPALIVE",
            &history(vec![], vec![fault("entry", T0, true, traffic(2000, None))])
        )
        .outcome,
        Inconclusive
    );
    assert_eq!(
        check(
            "NX-KEEPALIVE",
            &history(vec![], vec![fault("entry", T0, true, traffic(20, Some(1)))])
        )
        .outcome,
        Inconclusive
    );
}

fn gzip(large_encoding: Option<&str>, small_encoding: Option<&str>) -> FaultDetail {
    let answer = |path: &str, enc: Option<&str>, size: u64| GzipAnswer {
        path: path.into(),
        status: 200,
        content_type: "application/json".into(),
        encoding: enc.map(str::to_string),
        wire_bytes: if enc.is_some() { size / 6 } else { size },
        identity_bytes: size,
    };
    FaultDetail::Gzip {
        answers: vec![answer("/large", large_encoding, 4194), answer("/small", small_encoding, 65)],
        min_length: 1000,
    }
}

#[test]
fn nx_gzip_wants_the_large_response_compressed_and_the_small_one_not() {
    assert_eq!(
        check(
            "NX-GZIP",
            &history(vec![], vec![fault("nginx", T0, true, gzip(Some("gzip"), None))])
        )
        .outcome,
        Pass
    );
    let v = check("NX-GZIP", &history(vec![], vec![fault("nginx", T0, true, gzip(None, None))]));
    assert_eq!(v.outcome, Fail);
    assert!(v.measured.contains("/large not gzip-encoded"), "{}", v.measured);
    assert_eq!(
        check(
            "NX-GZIP",
            &history(vec![], vec![fault("nginx", T0, true, gzip(Some("gzip"), Some("gzip")))])
        )
        .outcome,
        Fail
    );
    assert_eq!(
        check(
            "NX-GZIP",
            &history(vec![], vec![fault("nginx", T0, false, gzip(Some("gzip"), None))])
        )
        .outcome,
        Inconclusive
    );
}

fn cache(headers: &[&str], backend: u64) -> FaultDetail {
    FaultDetail::Cache {
        path: "/api/large?kb=2".into(),
        header: "X-Cache-Status".into(),
        answers: headers.iter().map(|h| (200, Some(h.to_string()))).collect(),
        backend_requests: Some(backend),
    }
}

#[test]
fn nx_cache_wants_repeats_served_from_the_cache() {
    assert_eq!(
        check(
            "NX-CACHE",
            &history(
                vec![],
                vec![fault("nginx", T0, true, cache(&["MISS", "HIT", "HIT", "HIT", "HIT"], 1))]
            )
        )
        .outcome,
        Pass
    );
    let v = check(
        "NX-CACHE",
        &history(vec![], vec![fault("nginx", T0, true, cache(&["", "", "", "", ""], 5))]),
    );
    assert_eq!(v.outcome, Fail);
    assert!(
        v.measured.contains("0 of 4 repeats were cache hits; backend counted 5 of 5"),
        "{}",
        v.measured
    );
    assert_eq!(check("NX-CACHE", &history(vec![], vec![])).outcome, Inconclusive);
}

fn cert(serial: &str, days_left: f64) -> ServedCert {
    ServedCert {
        serial: serial.into(),
        subject: "CN=localhost".into(),
        issuer: "CN=chaosgate run CA".into(),
        not_before: "2026-01-01T00:00:00Z".into(),
        not_after: "2027-01-01T00:00:00Z".into(),
        days_left,
        chain_len: 1,
        host_matches: true,
        issued_by_ca: true,
    }
}

fn swap(name: &str, at_ms: u64, before: ServedCert, after: ServedCert, via: &str) -> FaultRecord {
    fault(
        "nginx",
        at_ms,
        true,
        FaultDetail::CertReload {
            certificate: name.into(),
            via: via.into(),
            pid_before: 10,
            pid_after: Some(10),
            reloaded_at: Some(ms(at_ms + 10)),
            served_at: Some(ms(at_ms + 100)),
            before: Some(Box::new(before)),
            after: Some(Box::new(after)),
            https: Default::default(),
        },
    )
}

#[test]
fn tls_expiry_and_nx_reload_pass_when_the_renewal_drops_nothing() {
    let faults = vec![
        swap("expired", T0, cert("01", 90.0), cert("03", -1.0), "signal SIGHUP"),
        swap("renewed", T0 + 3000, cert("03", -1.0), cert("02", 365.0), "signal SIGHUP"),
    ];
    let h = history(steady(T0 - 500, T0 + 5000, 200), faults.clone());
    let v = check("TLS-EXPIRY", &h);
    assert_eq!(v.outcome, Pass, "{v:?}");
    assert!(v.measured.contains("365.0 days left, was -1.0"), "{}", v.measured);
    assert!(v.evidence.iter().any(|e| e.contains("EXPIRED")), "{:?}", v.evidence);
    assert_eq!(check("NX-RELOAD", &h).outcome, Pass);
    // A restart instead of a reload: requests fail across it.
    let mut reqs = steady(T0 - 500, T0 + 5000, 200);
    for r in reqs.iter_mut().filter(|r| r.start >= ms(T0 + 3000) && r.start < ms(T0 + 3300)) {
        r.status = 0;
        r.error = TransportError::Refused;
    }
    let h = history(reqs, faults);
    let v = check("TLS-EXPIRY", &h);
    assert_eq!(v.outcome, Fail);
    assert!(v.measured.contains("30 requests failed across the renewal"), "{}", v.measured);
    assert_eq!(check("NX-RELOAD", &h).outcome, Fail);
}

#[test]
fn tls_expiry_is_inconclusive_without_a_renewal() {
    let h = history(
        steady(T0, T0 + 2000, 200),
        vec![swap("expired", T0, cert("01", 90.0), cert("03", -1.0), "signal SIGHUP")],
    );
    assert_eq!(check("TLS-EXPIRY", &h).outcome, Inconclusive);
    assert_eq!(check("NX-RELOAD", &history(vec![], vec![])).outcome, Inconclusive);
}

#[test]
fn nx_reload_fails_when_a_broken_config_is_not_rejected() {
    let broken = |test_failed: bool, served_after: u32| {
        fault(
            "nginx",
            T0,
            true,
            FaultDetail::BrokenReload {
                pid_before: 10,
                pid_after: Some(10),
                test_failed,
                test_output: String::new(),
                served_after,
                reloaded_at: Some(ms(T0 + 10)),
            },
        )
    };
    assert_eq!(
        check("NX-RELOAD", &history(steady(T0 - 100, T0 + 2000, 200), vec![broken(true, 10)])).outcome,
        Pass
    );
    let v = check("NX-RELOAD", &history(steady(T0 - 100, T0 + 2000, 200), vec![broken(true, 0)]));
    assert_eq!(v.outcome, Fail);
    assert!(v.measured.contains("0/10 GETs 2xx after"), "{}", v.measured);
}
