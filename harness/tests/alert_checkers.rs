//! AL-CERT fed hand-made histories (certificate swaps plus monitoring
//! samples), the TLS-EXPIRY wrong-host self-test, and the `[monitoring]`
//! section's validation.

use chaosgate::check::verdict::{Outcome, Verdict};
use chaosgate::check::{CheckInput, judge};
use chaosgate::history::{
    AlertSample, DeclaredAlert, FaultDetail, FaultRecord, History, HttpsTally, Micros, MonitoringRecord, RequestRecord, RuleState,
    ServedCert, TransportError,
};
use chaosgate::scenario::Settings;
use std::collections::BTreeMap;

use Outcome::{Fail, Inconclusive, Pass};

const ALERT: &str = "CertificateExpiringSoon";

fn ms(t: u64) -> Micros {
    t * 1000
}

fn check(id: &str, h: &History) -> Verdict {
    let settings = Settings::default();
    let input = CheckInput {
        history: h,
        settings: &settings,
        probed_service: "nginx",
        dependency_services: vec![],
        roles: BTreeMap::new(),
    };
    judge(id, &input)
}

fn cert(days_left: f64, host_matches: bool) -> ServedCert {
    ServedCert {
        serial: format!("{days_left}"),
        subject: if host_matches {
            "CN=localhost"
        } else {
            "CN=wrong-host.localhost.invalid"
        }
        .into(),
        issuer: "CN=chaosgate run CA".into(),
        not_before: "2026-01-01T00:00:00Z".into(),
        not_after: "2027-01-01T00:00:00Z".into(),
        days_left,
        chain_len: 1,
        host_matches,
        issued_by_ca: true,
    }
}

/// A swap injected at `at_ms`, served 100 ms later.
fn swap(name: &str, at_ms: u64, before: f64, after: ServedCert, https: HttpsTally) -> FaultRecord {
    FaultRecord {
        index: 0,
        label: format!("certificate `{name}`"),
        service: "nginx".into(),
        injected_at: ms(at_ms),
        healed_at: None,
        provokes: Vec::new(),
        landed: true,
        proof: "hand-made".into(),
        detail: FaultDetail::CertReload {
            certificate: name.into(),
            via: "signal SIGHUP".into(),
            pid_before: 10,
            pid_after: Some(10),
            reloaded_at: Some(ms(at_ms + 10)),
            served_at: Some(ms(at_ms + 100)),
            before: Some(Box::new(cert(before, true))),
            after: Some(Box::new(after)),
            https,
        },
    }
}

/// Samples every 200 ms over `[from_ms, to_ms)`; `state(t)` gives (firing, days left per the query).
fn samples(from_ms: u64, to_ms: u64, state: impl Fn(u64) -> (bool, f64)) -> Vec<AlertSample> {
    (from_ms..to_ms)
        .step_by(200)
        .map(|t| {
            let (firing, days) = state(t);
            AlertSample {
                at: ms(t),
                firing: if firing { vec![ALERT.into()] } else { vec![] },
                rules: BTreeMap::from([(
                    ALERT.to_string(),
                    RuleState {
                        state: if firing { "firing" } else { "inactive" }.into(),
                        // Evaluated every second, on the second.
                        evaluated_at: Some(ms(t / 1000 * 1000)),
                    },
                )]),
                values: BTreeMap::from([("AL-CERT".to_string(), days)]),
                error: None,
            }
        })
        .collect()
}

fn monitoring(samples: Vec<AlertSample>) -> MonitoringRecord {
    MonitoringRecord {
        declared: Some(BTreeMap::from([(
            "AL-CERT".to_string(),
            DeclaredAlert {
                alert: ALERT.into(),
                query: Some("(probe_ssl_earliest_cert_expiry - time()) / 86400".into()),
            },
        )])),
        source: "prometheus (test)".into(),
        rules_loaded: Some(vec![ALERT.into()]),
        rule_defs: Vec::new(),
        time_scale: 1.0,
        samples,
        scraped_at: Some(0),
        delivery: None,
        notifications: Vec::new(),
    }
}

/// valid until 1 s; expired at 1 s; expiring at 5 s; renewed at 9 s; the
/// monitoring sees each 1.5 s after it is served. `fires(days)` is the rule.
fn history(fires: impl Fn(f64) -> bool, until_ms: u64) -> History {
    let faults = vec![
        swap("expired", 1_000, 90.0, cert(-1.0, true), HttpsTally::default()),
        swap("expiring", 5_000, -1.0, cert(10.0, true), HttpsTally::default()),
        swap("renewed", 9_000, 10.0, cert(365.0, true), HttpsTally::default()),
    ];
    let seen = |t: u64| match t {
        t if t < 2_600 => 90.0,
        t if t < 6_600 => -1.0,
        t if t < 10_600 => 10.0,
        _ => 365.0,
    };
    // The rule sees the value at its next evaluation (whole seconds).
    let judged = |t: u64| seen(t / 1000 * 1000);
    History {
        faults,
        monitoring: monitoring(samples(0, until_ms, |t| (fires(judged(t)), seen(t)))),
        requests: vec![RequestRecord {
            start: 0,
            end: 1,
            status: 200,
            route: 0,
            version: 0,
            error: TransportError::None,
            bytes: 1,
        }],
        ..History::default()
    }
}

#[test]
fn al_cert_passes_when_the_alert_fires_for_expired_and_expiring_and_resolves() {
    let v = check("AL-CERT", &history(|d| d < 14.0, 13_000));
    assert_eq!(v.outcome, Pass, "{v:#?}");
    assert!(v.measured.contains("after `expired` (-1.0 days)"), "{}", v.measured);
    assert!(v.measured.contains("after `expiring` (10.0 days)"), "{}", v.measured);
    assert!(v.measured.contains("after `renewed`"), "{}", v.measured);
    assert!(v.evidence.iter().any(|e| e.contains("query: 10.00 days")), "{:?}", v.evidence);
}

#[test]
fn al_cert_fails_when_only_an_expired_certificate_raises_the_alert() {
    // Still firing just after the swap (the old evaluation) must not count for `expiring`.
    let mut h = history(|d| d < 0.0, 40_000);
    h.faults.truncate(2);
    let v = check("AL-CERT", &h);
    assert_eq!(v.outcome, Fail, "{v:#?}");
    assert!(
        v.measured.contains("did not fire within 20000 ms of `expiring` (10.0 days left)"),
        "{}",
        v.measured
    );
}

#[test]
fn al_cert_fails_when_the_declared_rule_is_not_loaded() {
    let mut h = history(|_| false, 13_000);
    h.monitoring.rules_loaded = Some(vec!["SomethingElse".into()]);
    let v = check("AL-CERT", &h);
    assert_eq!(v.outcome, Fail, "{v:#?}");
    assert!(
        v.measured.contains("no alerting rule named `CertificateExpiringSoon`"),
        "{}",
        v.measured
    );
}

#[test]
fn al_cert_fails_when_the_monitoring_declares_no_alert_for_it() {
    let mut h = history(|_| false, 13_000);
    h.monitoring.declared = Some(BTreeMap::new());
    let v = check("AL-CERT", &h);
    assert_eq!(v.outcome, Fail, "{v:#?}");
    assert!(v.measured.contains("declares no alert for AL-CERT"), "{}", v.measured);
}

/// Monitoring is required: an expired certificate served to a stack with
/// none is a fail that says what is missing; with no certificate swapped in
/// there is nothing to notice yet.
#[test]
fn al_cert_fails_without_monitoring_once_a_bad_certificate_was_served() {
    let mut h = history(|d| d < 14.0, 13_000);
    h.monitoring = MonitoringRecord::default();
    let v = check("AL-CERT", &h);
    assert_eq!(v.outcome, Fail, "{v:#?}");
    assert!(v.measured.contains("has no monitoring"), "{}", v.measured);
    assert!(v.measured.contains("nothing could notice it"), "{}", v.measured);

    h.faults.clear();
    let v = check("AL-CERT", &h);
    assert_eq!(v.outcome, Inconclusive, "{v:#?}");
}

#[test]
fn al_cert_is_inconclusive_when_the_monitoring_never_answers() {
    let mut h = history(|d| d < 14.0, 13_000);
    for s in &mut h.monitoring.samples {
        s.error = Some("connection refused".into());
    }
    let v = check("AL-CERT", &h);
    assert_eq!(v.outcome, Inconclusive, "{v:#?}");
    assert!(v.measured.contains("never answered: connection refused"), "{}", v.measured);
}

#[test]
fn al_cert_fails_on_a_false_alarm_and_on_an_alert_that_never_resolves() {
    let v = check("AL-CERT", &history(|_| true, 40_000));
    assert_eq!(v.outcome, Fail, "{v:#?}");
    assert!(v.measured.contains("before any swap"), "{}", v.measured);
    assert!(v.measured.contains("still firing"), "{}", v.measured);
}

#[test]
fn al_cert_is_inconclusive_when_the_renewal_was_not_watched_long_enough() {
    let mut h = history(|d| d < 14.0, 13_000);
    // The alert never resolves, but the samples stop 3 s after the renewal.
    for s in h.monitoring.samples.iter_mut().filter(|s| s.at >= ms(9_100)) {
        s.firing = vec![ALERT.into()];
        s.rules.get_mut(ALERT).expect("rule").state = "firing".into();
    }
    let v = check("AL-CERT", &h);
    assert_eq!(v.outcome, Inconclusive, "{v:#?}");
    assert!(v.measured.contains("resolution watched for"), "{}", v.measured);
}

fn tls_history(wrong_host_https: HttpsTally) -> History {
    let faults = vec![
        swap("expired", 1_000, 90.0, cert(-1.0, true), HttpsTally::default()),
        swap("renewed", 3_000, -1.0, cert(365.0, true), HttpsTally::default()),
        swap("wrong-host", 5_000, 365.0, cert(90.0, false), wrong_host_https),
    ];
    History {
        faults,
        requests: (0..600)
            .map(|i| RequestRecord {
                start: ms(i * 10),
                end: ms(i * 10 + 5),
                status: 200,
                route: 0,
                version: 0,
                error: TransportError::None,
                bytes: 10,
            })
            .collect(),
        ..History::default()
    }
}

#[test]
fn tls_expiry_reports_the_wrong_host_self_test() {
    let v = check(
        "TLS-EXPIRY",
        &tls_history(HttpsTally {
            ok: 3,
            failed: 20,
            first_error: Some("certificate not valid for name \"localhost\"".into()),
        }),
    );
    assert_eq!(v.outcome, Pass, "{v:#?}");
    assert!(
        v.evidence
            .iter()
            .any(|e| e.starts_with("self-test: `wrong-host`") && e.contains("not valid for name")),
        "{:?}",
        v.evidence
    );
}

#[test]
fn tls_expiry_is_inconclusive_when_the_verifying_client_accepts_a_wrong_host() {
    let v = check(
        "TLS-EXPIRY",
        &tls_history(HttpsTally {
            ok: 30,
            failed: 0,
            first_error: None,
        }),
    );
    assert_eq!(v.outcome, Inconclusive, "{v:#?}");
    assert!(
        v.measured
            .starts_with("self-test failed: the verifying client accepted `wrong-host`"),
        "{}",
        v.measured
    );
}

/// A copy of the reference stack (in a temporary directory) with its
/// `[monitoring]` section replaced; (the copy's manifest, what loading it gave).
fn manifest_with(
    monitoring: &str,
) -> (
    std::path::PathBuf,
    Result<chaosgate::manifest::Manifest, chaosgate::input_error::InputErrors>,
) {
    let reference = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/stacks/reference"));
    let dir = std::env::temp_dir().join(format!("chaosgate-monitoring-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for entry in std::fs::read_dir(reference).expect("reference dir").flatten() {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy");
        }
    }
    let source = std::fs::read_to_string(reference.join("stack.toml")).expect("reference manifest");
    let start = source.find("[monitoring]\n").expect("the reference declares [monitoring]");
    // The section ends with its last alert.
    let alert_line = start + source[start..].find("AL-RDS-PERSIST = ").expect("its last alert");
    let end = alert_line + source[alert_line..].find('\n').map(|e| e + 1).unwrap_or(source.len() - alert_line);
    let file = dir.join("stack.toml");
    std::fs::write(&file, format!("{}{monitoring}{}", &source[..start], &source[end..])).expect("write");
    let loaded = chaosgate::manifest::load(&file);
    let _ = std::fs::remove_dir_all(&dir);
    (file, loaded)
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[test]
fn the_reference_declares_its_certificate_alert() {
    let m = chaosgate::manifest::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/stacks/reference"
    )))
    .unwrap_or_else(|e| panic!("{e}"));
    let mon = m.monitoring.expect("[monitoring]");
    assert_eq!((mon.service.as_str(), mon.port.as_str()), ("prometheus", "http"));
    assert_eq!(mon.alerts["AL-CERT"].alert, ALERT);
}

#[test]
fn monitoring_mistakes_are_located_and_say_what_is_expected() {
    let (file, loaded) = manifest_with(
        "[monitoring]\nservice = \"prom\"\nport = \"http\"\n\n[monitoring.alerts]\nAL-NOPE = { alert = \"X\" }\nAL-CERT = { alert = \"\" }\n",
    );
    let errors = loaded.expect_err("rejected").0;
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 3, "{shown:#?}");
    let find = |field: &str| {
        errors
            .iter()
            .find(|e| e.field == field)
            .unwrap_or_else(|| panic!("no error for {field}: {shown:#?}"))
    };
    let service = find("monitoring.service");
    assert!(service.to_string().contains("no service named `prom`"), "{service}");
    assert!(service.to_string().starts_with(&format!("{}:", file.display())), "{service}");
    assert!(service.line > 1);
    let id = find("monitoring.alerts.AL-NOPE");
    assert!(id.to_string().contains("expected a requirement ID as the key"), "{id}");
    assert_eq!(id.line, service.line + 4, "{id}");
    let empty = find("monitoring.alerts.AL-CERT.alert");
    assert!(empty.to_string().contains("expected the name of an alert"), "{empty}");

    let (_, loaded) = manifest_with("[monitoring]\nservice = \"prometheus\"\nport = \"grpc\"\n");
    let errors = loaded.expect_err("rejected").0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field, "monitoring.port");
    assert!(
        errors[0]
            .to_string()
            .contains("port `grpc` is not in the ports of `prometheus` (http)"),
        "{}",
        errors[0]
    );
}

#[test]
fn every_other_alert_fails_on_a_stack_without_monitoring() {
    // A calm run: load, no fault, and no [monitoring].
    let h = History {
        requests: history(|_| false, 1_000).requests,
        ..History::default()
    };
    for id in chaosgate::check::alert_fire::ALERT_IDS {
        let v = check(id, &h);
        assert_eq!(v.outcome, Fail, "{id}: {v:#?}");
        assert!(v.measured.contains("the stack has no monitoring"), "{id}: {}", v.measured);
    }
}

#[test]
fn an_alert_nothing_provoked_in_a_short_run_is_inconclusive_not_a_pass() {
    let mut h = history(|_| false, 5_000);
    h.monitoring.declared = Some(BTreeMap::from([(
        "AL-QUEUE".to_string(),
        DeclaredAlert {
            alert: ALERT.into(),
            query: None,
        },
    )]));
    h.monitoring.rule_defs = vec![chaosgate::history::RuleDef {
        name: ALERT.into(),
        expr: "sum(redis_key_size{key=~\"celery.*\"}) > 100".into(),
        for_s: 1.0,
    }];
    h.faults.clear();
    let v = check("AL-QUEUE", &h);
    assert_eq!(v.outcome, Inconclusive, "{v:#?}");
}

/// AL-WORKER provoked by a worker stopped from 1 s to 5 s; Prometheus has
/// the alert firing from 3 s to 6 s; the run is watched until `until_ms`; the
/// stack routes its alerts through an Alertmanager whose webhook received
/// `notified` (alert, status, at ms).
fn routed_history(notified: &[(&str, &str, u64)], until_ms: u64) -> History {
    const WORKER_DOWN: &str = "WorkerDown";
    let mut h = history(|_| false, until_ms);
    h.faults = vec![FaultRecord {
        index: 1,
        label: "worker down".into(),
        service: "worker".into(),
        injected_at: ms(1_000),
        healed_at: Some(ms(5_000)),
        provokes: vec!["AL-WORKER".into()],
        landed: true,
        proof: "hand-made".into(),
        detail: FaultDetail::Pause { resumed_at: None },
    }];
    h.monitoring.declared = Some(BTreeMap::from([(
        "AL-WORKER".to_string(),
        DeclaredAlert {
            alert: WORKER_DOWN.into(),
            query: None,
        },
    )]));
    h.monitoring.rules_loaded = Some(vec![WORKER_DOWN.into()]);
    h.monitoring.rule_defs = vec![chaosgate::history::RuleDef {
        name: WORKER_DOWN.into(),
        expr: "up{job=\"worker\"} == 0".into(),
        for_s: 1.0,
    }];
    for s in &mut h.monitoring.samples {
        let firing = (3_000..6_000).contains(&(s.at / 1000));
        s.firing = if firing { vec![WORKER_DOWN.into()] } else { vec![] };
        s.rules = BTreeMap::from([(
            WORKER_DOWN.to_string(),
            RuleState {
                state: if firing { "firing" } else { "inactive" }.into(),
                evaluated_at: Some(s.at / 1_000_000 * 1_000_000),
            },
        )]);
    }
    h.monitoring.delivery = Some(chaosgate::history::Delivery {
        service: "alertmanager".into(),
        webhook: "http://127.0.0.1:1/alerts".into(),
        error: None,
    });
    h.monitoring.notifications = notified
        .iter()
        .map(|(alert, status, at)| chaosgate::history::AlertNotification {
            at: ms(*at),
            alert: alert.to_string(),
            status: status.to_string(),
            receiver: "on-call".into(),
        })
        .collect();
    h
}

#[test]
fn a_routed_alert_passes_only_when_the_webhook_hears_it_fire_and_resolve() {
    let told = [("WorkerDown", "firing", 4_000), ("WorkerDown", "resolved", 7_000)];
    let v = check("AL-WORKER", &routed_history(&told, 30_000));
    assert_eq!(v.outcome, Pass, "{v:#?}");
    assert!(
        v.measured.contains("delivered to the webhook 3000 ms after the fault began"),
        "{}",
        v.measured
    );

    // Routed elsewhere: Prometheus fires, the webhook hears only other alerts.
    let v = check("AL-WORKER", &routed_history(&[("TaskQueueLong", "firing", 4_000)], 30_000));
    assert_eq!(v.outcome, Fail, "{v:#?}");
    assert!(v.measured.contains("delivered no such notification"), "{}", v.measured);
    assert!(v.measured.contains("TaskQueueLong firing (receiver on-call)"), "{}", v.measured);

    // Never told it is over.
    let v = check("AL-WORKER", &routed_history(&told[..1], 30_000));
    assert_eq!(v.outcome, Fail, "{v:#?}");
    assert!(v.measured.contains("send_resolved"), "{}", v.measured);

    // Paged before any fault: a false alarm, even though Prometheus was quiet then.
    let v = check(
        "AL-WORKER",
        &routed_history(&[("WorkerDown", "firing", 500), told[0], told[1]], 30_000),
    );
    assert_eq!(v.outcome, Fail, "{v:#?}");
    assert!(v.measured.contains("a false alarm"), "{}", v.measured);
}

#[test]
fn an_undelivered_alert_is_inconclusive_until_its_whole_budget_was_watched() {
    // Watched 12 s after the fault began; the budget is 20 s.
    let v = check("AL-WORKER", &routed_history(&[], 13_000));
    assert_eq!(v.outcome, Inconclusive, "{v:#?}");
    assert!(v.measured.contains("delivered no such notification"), "{}", v.measured);
}

#[test]
fn an_alert_router_that_is_not_a_service_is_located() {
    let (_, loaded) = manifest_with("[monitoring]\nservice = \"prometheus\"\nport = \"http\"\nalertmanager = \"am\"\n");
    let errors = loaded.expect_err("rejected").0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field, "monitoring.alertmanager");
    assert!(errors[0].to_string().contains("no service named `am`"), "{}", errors[0]);
}
