//! The checkers, fed hand-made histories (Jepsen style).
//!
//! Every checker is a pure function of a `History`, so each one is shown to
//! pass, to fail with the numbers in its `measured` line, and to say
//! inconclusive when the history cannot prove anything (fault not landed, too
//! few requests or probes, no relevant fault at all).
//!
//! Times: histories are in microseconds; the helpers here take milliseconds.
//! Most histories put their fault at `T0` = 10 s.

use chaosgate::check::verdict::{Outcome, Verdict};
use chaosgate::check::{CHECKS, CheckInput, judge};
use chaosgate::history::{
    CleanupObservation, ExitInfo, FaultDetail, FaultRecord, History, Micros, ProbeKind, ProbeSample, RequestRecord, ServiceEvent,
    ServiceEventKind, TransportError,
};
use chaosgate::scenario::Settings;
use rstest::rstest;
use std::collections::BTreeMap;

use Outcome::{Fail, Inconclusive, Pass};
use TransportError as TE;

const APP: &str = "app";
const REDIS: &str = "redis";
/// The moment of the fault, in ms.
const T0: u64 = 10_000;
/// The grace period the stack declares, in ms.
const GRACE_MS: u64 = 5_000;
/// In the outage histories, Redis is down from T0, started again at `UP` and ready at `BACK`.
const UP: u64 = T0 + 4_000;
const BACK: u64 = UP + 200;

const UP_BODY: &str = r#"{"status":"ok","components":{"redis":"up"}}"#;
const DOWN_BODY: &str = r#"{"status":"unavailable","components":{"redis":"down"}}"#;

// ---- helpers ---------------------------------------------------------------

fn ms(t: u64) -> Micros {
    t * 1000
}

fn input<'a>(h: &'a History, settings: &'a Settings) -> CheckInput<'a> {
    CheckInput {
        history: h,
        settings,
        probed_service: APP,
        dependency_services: vec![REDIS.into()],
        roles: BTreeMap::from([
            (REDIS.to_string(), "redis".to_string()),
            (APP.to_string(), "app".to_string()),
            ("nginx".to_string(), "entry".to_string()),
        ]),
    }
}

fn check(id: &str, h: &History) -> Verdict {
    check_with(id, h, &Settings::default())
}

fn check_with(id: &str, h: &History, settings: &Settings) -> Verdict {
    let v = judge(id, &input(h, settings));
    assert_eq!(v.requirement, id);
    v
}

/// The outcome is `outcome` and `measured` says each of `needles`.
#[track_caller]
fn expect(v: &Verdict, outcome: Outcome, needles: &[&str]) {
    assert_eq!(v.outcome, outcome, "{}: wrong outcome: {v:#?}", v.requirement);
    for needle in needles {
        assert!(
            v.measured.contains(needle),
            "{}: measured {:?} does not contain {:?}",
            v.requirement,
            v.measured,
            needle
        );
    }
}

#[track_caller]
fn expect_evidence(v: &Verdict, needle: &str) {
    assert!(
        v.evidence.iter().any(|e| e.contains(needle)),
        "{}: no evidence line contains {needle:?}: {:#?}",
        v.requirement,
        v.evidence
    );
}

fn history(faults: Vec<FaultRecord>) -> History {
    History {
        faults,
        versions: vec![String::new()],
        routes: vec!["GET /api/slow".into()],
        ..History::default()
    }
}

fn req(start_ms: u64, end_ms: u64, status: u16, error: TransportError) -> RequestRecord {
    RequestRecord {
        start: ms(start_ms),
        end: ms(end_ms),
        status,
        route: 0,
        version: 0,
        error,
        bytes: if status == 0 { 0 } else { 512 },
    }
}

/// `n` requests in flight at T0: started about 1 s before it, done 1 s after.
fn in_flight(n: usize, status: u16, error: TransportError) -> Vec<RequestRecord> {
    (0..n as u64).map(|i| req(T0 - 1000 + i * 10, T0 + 1000, status, error)).collect()
}

/// Steady load: a 20 ms request every 50 ms in [from, to).
fn steady_load(from_ms: u64, to_ms: u64) -> Vec<RequestRecord> {
    (from_ms..to_ms).step_by(50).map(|t| req(t, t + 20, 200, TE::None)).collect()
}

fn probe_of(service: &str, at_ms: u64, kind: ProbeKind, status: u16) -> ProbeSample {
    ProbeSample {
        at: ms(at_ms),
        service: service.into(),
        probe: kind,
        status,
        error: if status == 0 { TE::Refused } else { TE::None },
        latency_us: 800,
        body: None,
    }
}

fn probe(at_ms: u64, kind: ProbeKind, status: u16) -> ProbeSample {
    probe_of(APP, at_ms, kind, status)
}

/// Probes of the app every 100 ms in [from, to), each answering `status` (0: refused).
fn probes(kind: ProbeKind, from_ms: u64, to_ms: u64, status: u16) -> Vec<ProbeSample> {
    (from_ms..to_ms).step_by(100).map(|t| probe(t, kind, status)).collect()
}

/// Aggregate probes every 100 ms in [from, to), answering `status` with `body`.
fn aggs(from_ms: u64, to_ms: u64, status: u16, body: &str) -> Vec<ProbeSample> {
    (from_ms..to_ms)
        .step_by(100)
        .map(|t| ProbeSample {
            body: Some(body.into()),
            ..probe(t, ProbeKind::Aggregate, status)
        })
        .collect()
}

fn code(c: i32) -> Option<ExitInfo> {
    Some(ExitInfo {
        code: Some(c),
        signal: None,
    })
}

fn killed_by(sig: i32) -> Option<ExitInfo> {
    Some(ExitInfo {
        code: None,
        signal: Some(sig),
    })
}

/// Two Redis connections before the signal, all gone after, nothing left.
fn clean() -> CleanupObservation {
    CleanupObservation {
        redis_clients_before: vec!["127.0.0.1:50001".into(), "127.0.0.1:50002".into()],
        redis_clients_left: vec![],
        redis_checked: true,
        still_listening: vec![],
        surviving_processes: vec![],
    }
}

fn signal_fault(
    service: &str,
    signal: &str,
    at_ms: u64,
    exit: Option<ExitInfo>,
    exit_after_ms: u64,
    killed: bool,
    cleanup: Option<CleanupObservation>,
) -> FaultRecord {
    FaultRecord {
        index: 0,
        label: format!("{signal} to {service}"),
        service: service.into(),
        injected_at: ms(at_ms),
        healed_at: Some(ms(at_ms + exit_after_ms + 500)),
        provokes: Vec::new(),
        landed: true,
        proof: format!("{signal} delivered to pid 4242 (kill(2) returned 0)"),
        detail: FaultDetail::Signal {
            signal: signal.into(),
            pid: 4242,
            in_flight: 12,
            exited_at: (exit.is_some() && !killed).then(|| ms(at_ms + exit_after_ms)),
            exit,
            grace_ms: GRACE_MS,
            killed_after_grace: killed,
            cleanup,
            // Judged as a SIGTERM to the probed service, not as a declared stop.
            declared_stop: false,
        },
    }
}

fn sigterm_fault(at_ms: u64, exit: Option<ExitInfo>, exit_after_ms: u64, killed: bool, cleanup: Option<CleanupObservation>) -> FaultRecord {
    signal_fault(APP, "SIGTERM", at_ms, exit, exit_after_ms, killed, cleanup)
}

/// A SIGTERM to the app at T0 that landed: exit 0 after 800 ms, nothing left behind.
fn sigterm() -> FaultRecord {
    sigterm_fault(T0, code(0), 800, false, Some(clean()))
}

/// A `[deploy]` command the harness ran (section 4).
fn release_step() -> FaultRecord {
    FaultRecord {
        index: 0,
        label: "deploy v2".into(),
        service: APP.into(),
        injected_at: ms(T0),
        healed_at: None,
        provokes: Vec::new(),
        landed: true,
        proof: "`release deploy v2` exited 0".into(),
        detail: FaultDetail::Release(chaosgate::history::ReleaseObservation {
            step: "deploy".into(),
            version: Some("v2".into()),
            exit_code: Some(0),
            ..Default::default()
        }),
    }
}

fn not_landed(mut f: FaultRecord) -> FaultRecord {
    f.landed = false;
    f.proof = "signal not delivered: ESRCH: No such process".into();
    f
}

fn outage_fault(service: &str, down_ms: u64, restarted_ms: Option<u64>, ready_ms: Option<u64>) -> FaultRecord {
    FaultRecord {
        index: 0,
        label: format!("outage of {service}"),
        service: service.into(),
        injected_at: ms(down_ms),
        healed_at: ready_ms.map(ms),
        provokes: Vec::new(),
        landed: true,
        proof: format!("SIGKILL delivered; {service} gone from the process table"),
        detail: FaultDetail::Outage {
            signal: "SIGKILL".into(),
            down_at: Some(ms(down_ms)),
            restarted_at: restarted_ms.map(ms),
            ready_at: ready_ms.map(ms),
        },
    }
}

/// Redis killed at T0, started again at UP, ready at BACK.
fn redis_outage() -> FaultRecord {
    outage_fault(REDIS, T0, Some(UP), Some(BACK))
}

// ---- the table of checks ---------------------------------------------------

#[test]
fn every_check_is_inconclusive_on_an_empty_history() {
    let h = history(vec![]);
    for (id, _) in CHECKS {
        let v = check(id, &h);
        assert_eq!(v.outcome, Inconclusive, "{id} judged an empty history: {v:#?}");
    }
}

#[test]
fn no_check_passes_on_faults_that_did_not_land() {
    let mut h = history(vec![
        not_landed(sigterm()),
        not_landed(redis_outage()),
        not_landed(env_restart("v2", &["v2"], true)),
        not_landed(bad_start(None, code(1), Some(100), false, true)),
        not_landed(reload(Some(4242), Some(300))),
        not_landed(release_step()),
    ]);
    h.requests = in_flight(12, 200, TE::None);
    for kind in [ProbeKind::Ready, ProbeKind::Live] {
        h.probes.extend(probes(kind, 9_000, 20_000, 200));
    }
    for (id, _) in CHECKS {
        let v = check(id, &h);
        assert_eq!(v.outcome, Inconclusive, "{id}: {v:#?}");
        assert!(v.measured.contains("did not"), "{id}: {}", v.measured);
    }
}

#[rstest]
#[case::unknown_id("XX-NOPE")]
fn judge_says_inconclusive_without_a_checker(#[case] id: &str) {
    let v = check(id, &history(vec![sigterm()]));
    expect(&v, Inconclusive, &["no checker for this requirement"]);
}

/// A checker that panics yields inconclusive, not a crash of the run. The
/// only way to make one panic from outside is arithmetic overflow, which
/// only panics with debug assertions on: here a margin whose microseconds
/// do not fit in a u64.
#[cfg(debug_assertions)]
#[test]
fn judge_turns_a_crashing_checker_into_inconclusive() {
    let settings = Settings {
        drain_margin_ms: u64::MAX,
        ..Settings::default()
    };
    let v = check_with("GS-DRAIN", &history(vec![sigterm()]), &settings);
    expect(&v, Inconclusive, &["the checker crashed"]);
}

#[test]
fn merge_keeps_the_worse_outcome_and_both_evidences() {
    let pass = Verdict::new("GS-DRAIN", Pass, "12 of 12 completed", "all").with_evidence("first run");
    let fail = Verdict::new("GS-DRAIN", Fail, "3 of 12 failed", "all").with_evidence("second run");
    for merged in [pass.clone().merge(fail.clone()), fail.clone().merge(pass.clone())] {
        assert_eq!(merged.outcome, Fail);
        assert_eq!(merged.measured, "3 of 12 failed");
        expect_evidence(&merged, "first run");
        expect_evidence(&merged, "second run");
        expect_evidence(&merged, "also: pass: 12 of 12 completed");
    }
    let inconclusive = Verdict::new("GS-DRAIN", Inconclusive, "too few", "all");
    assert_eq!(pass.clone().merge(inconclusive.clone()).outcome, Inconclusive);
    assert_eq!(inconclusive.merge(fail).outcome, Fail);
    let skipped = Verdict::new("GS-DRAIN", Outcome::Skipped, "deselected", "all");
    let merged = skipped.merge(pass);
    assert_eq!(merged.outcome, Pass);
    assert!(!merged.evidence.iter().any(|e| e.contains("skipped")), "{merged:#?}");
}

// ---- HC-READY --------------------------------------------------------------

/// Readiness around a SIGTERM at T0; the app is started again at T0 + 1.5 s.
fn ready_after_sigterm(samples: Vec<ProbeSample>) -> History {
    let mut h = history(vec![sigterm()]);
    h.events.push(ServiceEvent {
        at: ms(T0 + 1_500),
        service: APP.into(),
        kind: ServiceEventKind::Started { pid: 4343 },
    });
    h.probes = samples;
    // The entry's probes are not the app's: always 2xx, never judged.
    h.probes
        .extend((9_000..12_000).step_by(100).map(|t| probe_of("nginx", t, ProbeKind::Ready, 200)));
    h.probes.sort_by_key(|p| p.at);
    h
}

/// Ready until `down_from`, then 503 until the exit at T0 + 800 ms (or at
/// once, if that is later), then refused until the restart.
fn ready_until(down_from_ms: u64) -> Vec<ProbeSample> {
    let exit = down_from_ms.max(T0 + 800);
    let mut p = probes(ProbeKind::Ready, 9_000, down_from_ms, 200);
    p.extend(probes(ProbeKind::Ready, down_from_ms, exit, 503));
    p.extend(probes(ProbeKind::Ready, exit, T0 + 1_500, 0));
    // Ready again after the restart: not held against the SIGTERM.
    p.extend(probes(ProbeKind::Ready, T0 + 1_500, T0 + 3_000, 200));
    p
}

#[rstest]
#[case::falls_at_once(T0, "not ready +0 ms after SIGTERM (503)")]
#[case::falls_after_300_ms(T0 + 300, "not ready +300 ms after SIGTERM (503)")]
#[case::falls_at_the_limit(T0 + 500, "not ready +500 ms after SIGTERM (503)")]
fn hc_ready_passes_when_readiness_falls_within_the_limit(#[case] down_from: u64, #[case] needle: &str) {
    let v = check("HC-READY", &ready_after_sigterm(ready_until(down_from)));
    expect(&v, Pass, &[needle]);
}

#[test]
fn hc_ready_fails_when_readiness_stays_2xx_past_the_limit() {
    let v = check("HC-READY", &ready_after_sigterm(ready_until(T0 + 1_000)));
    expect(
        &v,
        Fail,
        &["readiness still 2xx +900 ms after SIGTERM", "first not-ready answer at +1000 ms"],
    );
    expect_evidence(&v, "4 of them answered 2xx later than 500 ms after the signal");
}

#[test]
fn hc_ready_fails_when_readiness_never_falls() {
    let p = probes(ProbeKind::Ready, 9_000, T0 + 800, 200);
    let v = check("HC-READY", &ready_after_sigterm(p));
    expect(
        &v,
        Fail,
        &["ready answered 2xx to all 8 probes after SIGTERM", "the last at +700 ms"],
    );
}

#[test]
fn hc_ready_fails_when_readiness_comes_back_before_the_restart() {
    let mut p = probes(ProbeKind::Ready, 9_000, T0 + 100, 200);
    p.extend(probes(ProbeKind::Ready, T0 + 100, T0 + 600, 503));
    p.extend(probes(ProbeKind::Ready, T0 + 600, T0 + 900, 200));
    let v = check("HC-READY", &ready_after_sigterm(p));
    expect(
        &v,
        Fail,
        &["readiness still 2xx +800 ms after SIGTERM", "first not-ready answer at +100 ms"],
    );
}

#[test]
fn hc_ready_is_inconclusive_without_probes_after_sigterm() {
    let v = check("HC-READY", &ready_after_sigterm(probes(ProbeKind::Ready, 9_000, T0, 200)));
    expect(
        &v,
        Inconclusive,
        &["no readiness probe was answered or refused between SIGTERM and the restart"],
    );
}

/// Readiness around a Redis outage: down from T0, restarted at UP, ready at BACK.
fn ready_during_outage(f: FaultRecord, samples: Vec<ProbeSample>) -> History {
    let mut h = history(vec![f]);
    h.probes = samples;
    h
}

/// 2xx until `down_ms`, 503 until `up_ms`, 2xx after, up to 30 s.
fn ready_probes(down_ms: u64, up_ms: u64) -> Vec<ProbeSample> {
    let mut p = probes(ProbeKind::Ready, 9_000, down_ms, 200);
    p.extend(probes(ProbeKind::Ready, down_ms, up_ms, 503));
    p.extend(probes(ProbeKind::Ready, up_ms, 30_000, 200));
    p
}

#[test]
fn hc_ready_passes_when_readiness_follows_the_dependency() {
    let v = check("HC-READY", &ready_during_outage(redis_outage(), ready_probes(T0 + 300, BACK + 300)));
    expect(
        &v,
        Pass,
        &[
            "not ready +300 ms after redis went down",
            "(20 probes, none 2xx)",
            "ready again +300 ms after it returned",
        ],
    );
}

#[test]
fn hc_ready_fails_on_a_2xx_sample_during_the_outage() {
    let mut p = ready_probes(T0 + 300, BACK + 300);
    let at = p.iter().position(|s| s.at == ms(13_000)).expect("a probe at 13 s");
    p[at].status = 200;
    let v = check("HC-READY", &ready_during_outage(redis_outage(), p));
    expect(&v, Fail, &["ready answered 2xx to 1 of 20 probes while redis was down"]);
    expect_evidence(&v, "first 2xx while down at +3000 ms");
}

#[test]
fn hc_ready_tolerates_2xx_within_the_detection_allowance() {
    // Default allowance: 2 s after the dependency went down.
    let v = check(
        "HC-READY",
        &ready_during_outage(redis_outage(), ready_probes(T0 + 1_900, BACK + 300)),
    );
    expect(&v, Pass, &["not ready +1900 ms after redis went down"]);
}

#[test]
fn hc_ready_fails_when_readiness_never_returns() {
    let v = check("HC-READY", &ready_during_outage(redis_outage(), ready_probes(T0 + 300, 30_000)));
    expect(&v, Fail, &["readiness never came back after redis returned"]);
}

#[test]
fn hc_ready_fails_when_readiness_returns_too_late() {
    // Default: ready again within 5 s of the dependency's return.
    let v = check(
        "HC-READY",
        &ready_during_outage(redis_outage(), ready_probes(T0 + 300, BACK + 5_800)),
    );
    expect(&v, Fail, &["ready again only +5800 ms after redis returned"]);
}

#[test]
fn hc_ready_is_inconclusive_with_too_few_probes_during_the_outage() {
    let p: Vec<ProbeSample> = ready_probes(T0 + 300, BACK + 300)
        .into_iter()
        .filter(|s| s.at < ms(12_000) || s.at >= ms(13_800))
        .collect();
    let v = check("HC-READY", &ready_during_outage(redis_outage(), p));
    expect(&v, Inconclusive, &["only 2 readiness probes during the redis outage (need 3)"]);
}

#[test]
fn hc_ready_is_inconclusive_when_the_dependency_never_came_back() {
    let f = outage_fault(REDIS, T0, Some(UP), None);
    let v = check("HC-READY", &ready_during_outage(f, ready_probes(T0 + 300, 30_000)));
    expect(&v, Inconclusive, &["redis never came back"]);
}

#[test]
fn hc_ready_judges_every_fault_and_the_worst_wins() {
    let mut h = ready_after_sigterm(ready_until(T0 + 300));
    // A later Redis outage during which readiness stays 2xx.
    h.faults.push(outage_fault(REDIS, 30_000, Some(34_000), Some(34_200)));
    h.probes.extend(probes(ProbeKind::Ready, 30_000, 40_000, 200));
    h.probes.sort_by_key(|p| p.at);
    let v = check("HC-READY", &h);
    expect(&v, Fail, &["ready answered 2xx to 20 of 20 probes while redis was down"]);
    expect_evidence(&v, "also: pass: not ready +300 ms after SIGTERM");
}

// ---- HC-LIVE ---------------------------------------------------------------

#[test]
fn hc_live_passes_when_liveness_holds_through_the_outage() {
    let v = check(
        "HC-LIVE",
        &ready_during_outage(redis_outage(), probes(ProbeKind::Live, 9_000, 20_000, 200)),
    );
    expect(&v, Pass, &["40 of 40 liveness probes 2xx while redis was down"]);
}

#[rstest]
#[case::answers_503(503, "35 of 40 liveness probes failed while redis was down (first: 503 at +500 ms)")]
#[case::refused(0, "35 of 40 liveness probes failed while redis was down (first: refused at +500 ms)")]
fn hc_live_fails_when_liveness_depends_on_the_dependency(#[case] status: u16, #[case] needle: &str) {
    let mut p = probes(ProbeKind::Live, 9_000, T0 + 500, 200);
    p.extend(probes(ProbeKind::Live, T0 + 500, UP, status));
    p.extend(probes(ProbeKind::Live, UP, 20_000, 200));
    let v = check("HC-LIVE", &ready_during_outage(redis_outage(), p));
    expect(&v, Fail, &[needle]);
}

#[test]
fn hc_live_is_inconclusive_with_too_few_probes() {
    let p = vec![probe(T0 + 100, ProbeKind::Live, 200), probe(T0 + 3_000, ProbeKind::Live, 200)];
    let v = check("HC-LIVE", &ready_during_outage(redis_outage(), p));
    expect(&v, Inconclusive, &["only 2 liveness probes during the outage (need 3)"]);
}

// ---- HC-AGG ----------------------------------------------------------------

/// /health: `before` until T0 + 300, `during` until BACK, UP_BODY after.
fn agg_history(before: (u16, &str), during: (u16, &str)) -> History {
    let mut p = aggs(9_000, T0 + 300, before.0, before.1);
    p.extend(aggs(T0 + 300, BACK, during.0, during.1));
    p.extend(aggs(BACK, 20_000, 200, UP_BODY));
    ready_during_outage(redis_outage(), p)
}

#[test]
fn hc_agg_passes_when_health_names_the_failed_dependency() {
    let mut h = agg_history((200, UP_BODY), (503, DOWN_BODY));
    // A refused probe while down is not 2xx, and has no body to judge.
    let at = h.probes.iter().position(|s| s.at == ms(13_000)).expect("a probe at 13 s");
    h.probes[at].status = 0;
    h.probes[at].error = TE::Refused;
    h.probes[at].body = None;
    let v = check("HC-AGG", &h);
    expect(
        &v,
        Pass,
        &["2xx before the outage; 20 of 20 probes non-2xx naming redis while it was down"],
    );
    expect_evidence(&v, DOWN_BODY);
}

/// Regression (seen in a 5-run loop of the reference): a probe sent just before
/// the kill and answered after it rightly says 503; it is not a "before" sample.
#[test]
fn hc_agg_ignores_a_probe_in_flight_when_the_dependency_died() {
    let mut h = agg_history((200, UP_BODY), (503, DOWN_BODY));
    h.probes.push(ProbeSample {
        latency_us: 5_000,
        body: Some(DOWN_BODY.into()),
        ..probe(T0 - 2, ProbeKind::Aggregate, 503)
    });
    h.probes.sort_by_key(|p| p.at);
    let v = check("HC-AGG", &h);
    assert_eq!(v.outcome, Pass, "{v:?}");
}

#[test]
fn hc_agg_accepts_the_dependency_named_by_its_role() {
    let mut p = aggs(9_000, T0, 200, UP_BODY);
    p.extend(aggs(T0, 20_000, 503, DOWN_BODY));
    let h = ready_during_outage(outage_fault("cache", T0, Some(UP), Some(BACK)), p);
    let settings = Settings::default();
    let mut inp = input(&h, &settings);
    inp.dependency_services = vec!["cache".into()];
    // Without its role, "cache" is named nowhere in the body.
    expect(&judge("HC-AGG", &inp), Fail, &["before the outage /health answered 200"]);
    inp.roles.insert("cache".into(), "redis".into());
    expect(&judge("HC-AGG", &inp), Pass, &["non-2xx naming cache while it was down"]);
}

const NO_REDIS_BODY: &str = r#"{"status":"unavailable","components":{"cache":"down"}}"#;

#[rstest]
#[case::ok_while_down((200, UP_BODY), (200, UP_BODY), "/health answered 2xx to 20 of 20 probes while redis was down")]
#[case::body_does_not_name_the_dependency((200, UP_BODY), (503, NO_REDIS_BODY), "/health while redis was down did not name it in a JSON body")]
#[case::body_is_not_json((200, UP_BODY), (503, "redis is down"), "did not name it in a JSON body: \"redis is down\"")]
#[case::body_before_is_not_json((200, "OK"), (503, DOWN_BODY), "before the outage /health answered 200 with body \"OK\"")]
#[case::down_before_the_outage((503, DOWN_BODY), (503, DOWN_BODY), "before the outage /health answered 503")]
fn hc_agg_fails(#[case] before: (u16, &str), #[case] during: (u16, &str), #[case] needle: &str) {
    let v = check("HC-AGG", &agg_history(before, during));
    expect(&v, Fail, &[needle]);
}

#[test]
fn hc_agg_is_inconclusive_without_a_sample_before_the_outage() {
    let mut h = agg_history((200, UP_BODY), (503, DOWN_BODY));
    h.probes.retain(|p| p.at >= ms(T0));
    let v = check("HC-AGG", &h);
    expect(
        &v,
        Inconclusive,
        &["0 aggregate probes before and 20 during the outage (need 1 and 3)"],
    );
}

#[test]
fn hc_agg_is_inconclusive_with_too_few_samples_during_the_outage() {
    let mut h = agg_history((200, UP_BODY), (503, DOWN_BODY));
    h.probes.retain(|p| p.at < ms(12_000) || p.at >= ms(13_800));
    let v = check("HC-AGG", &h);
    expect(&v, Inconclusive, &["during the outage (need 1 and 3)", "and 2 during"]);
}

// ---- health checks without a relevant fault --------------------------------

#[rstest]
#[case::no_fault(vec![], "in this scenario")]
#[case::outage_of_a_service_that_is_no_dependency(vec![outage_fault("nginx", T0, Some(UP), Some(BACK))], "in this scenario")]
#[case::outage_not_landed(vec![not_landed(redis_outage())], "the fault did not take effect: signal not delivered")]
fn health_checks_without_a_landed_outage_are_inconclusive(
    #[case] faults: Vec<FaultRecord>,
    #[case] needle: &str,
    #[values("HC-READY", "HC-LIVE", "HC-AGG")] id: &str,
) {
    let mut h = history(faults);
    for kind in [ProbeKind::Ready, ProbeKind::Live] {
        h.probes.extend(probes(kind, 9_000, 20_000, 200));
    }
    h.probes.extend(aggs(9_000, 20_000, 200, UP_BODY));
    expect(&check(id, &h), Inconclusive, &[needle]);
}

// ---- GS-SIGTERM ------------------------------------------------------------

#[rstest]
#[case::status_0(code(0), false, Pass, "exited by itself 800 ms after SIGTERM with status 0")]
#[case::status_143(
    code(143),
    false,
    Pass,
    "exited by itself 800 ms after SIGTERM with death by SIGTERM (143), counted clean"
)]
#[case::death_by_signal_15(killed_by(15), false, Pass, "death by SIGTERM (143), counted clean")]
#[case::status_1(code(1), false, Fail, "exited 800 ms after SIGTERM with exit status 1")]
#[case::death_by_sigkill(killed_by(9), false, Fail, "exited 800 ms after SIGTERM with killed by signal 9 (SIGKILL)")]
#[case::killed_after_grace(killed_by(9), true, Fail, "still running 5000 ms after SIGTERM; killed with SIGKILL")]
#[case::exit_not_observed(None, false, Inconclusive, "the exit after SIGTERM was not observed")]
fn gs_sigterm(#[case] exit: Option<ExitInfo>, #[case] killed: bool, #[case] outcome: Outcome, #[case] needle: &str) {
    let h = history(vec![sigterm_fault(T0, exit, 800, killed, Some(clean()))]);
    let v = check("GS-SIGTERM", &h);
    expect(&v, outcome, &[needle]);
    if outcome != Inconclusive {
        assert!(v.expected.contains("within the 5.0 s grace period"), "{}", v.expected);
    }
}

#[test]
fn gs_sigterm_judges_every_sigterm_and_the_worst_wins() {
    let h = history(vec![sigterm(), sigterm_fault(30_000, code(1), 300, false, Some(clean()))]);
    let v = check("GS-SIGTERM", &h);
    expect(&v, Fail, &["exited 300 ms after SIGTERM with exit status 1"]);
    expect_evidence(&v, "also: pass: exited by itself 800 ms after SIGTERM with status 0");
}

// ---- shutdown checks without a landed SIGTERM ------------------------------

#[rstest]
#[case::no_fault(vec![], "no SIGTERM was sent to the service in this scenario")]
#[case::not_landed(vec![not_landed(sigterm())], "the fault did not take effect: signal not delivered")]
#[case::sigterm_to_another_service(
    vec![signal_fault("nginx", "SIGTERM", T0, code(0), 300, false, Some(clean()))],
    "no SIGTERM was sent to the service"
)]
#[case::sighup_to_the_app(
    vec![signal_fault(APP, "SIGHUP", T0, None, 0, false, None)],
    "no SIGTERM was sent to the service"
)]
fn shutdown_checks_without_a_landed_sigterm_are_inconclusive(
    #[case] faults: Vec<FaultRecord>,
    #[case] needle: &str,
    #[values("GS-SIGTERM", "GS-DRAIN", "GS-CLEANUP")] id: &str,
) {
    let mut h = history(faults);
    h.requests = in_flight(12, 200, TE::None);
    expect(&check(id, &h), Inconclusive, &[needle]);
}

// ---- GS-DRAIN --------------------------------------------------------------

fn drain_history(requests: Vec<RequestRecord>) -> History {
    let mut h = history(vec![sigterm()]);
    h.requests = requests;
    h.requests.sort_by_key(|r| r.start);
    h
}

#[rstest]
#[case::one_short_of_the_minimum(7, Inconclusive, "only 7 requests were in flight at SIGTERM (need 8); all 7 completed with 2xx")]
#[case::exactly_the_minimum(8, Pass, "SIGTERM with 8 requests in flight: 8 of 8 completed with 2xx")]
#[case::twelve(12, Pass, "12 of 12 completed with 2xx (the last +1000 ms after the signal)")]
fn gs_drain_counts_successful_requests_in_flight(#[case] n: usize, #[case] outcome: Outcome, #[case] needle: &str) {
    let v = check("GS-DRAIN", &drain_history(in_flight(n, 200, TE::None)));
    expect(&v, outcome, &[needle]);
}

#[rstest]
fn gs_drain_one_short_of_the_minimum_is_never_a_pass(#[values(1, 2, 3, 8, 20)] min: u32) {
    let settings = Settings {
        drain_min_in_flight: min,
        ..Settings::default()
    };
    let short = check_with("GS-DRAIN", &drain_history(in_flight(min as usize - 1, 200, TE::None)), &settings);
    expect(
        &short,
        Inconclusive,
        &[&format!("only {} requests were in flight at SIGTERM (need {min})", min - 1)],
    );
    let enough = check_with("GS-DRAIN", &drain_history(in_flight(min as usize, 200, TE::None)), &settings);
    expect(&enough, Pass, &[&format!("{min} of {min} completed with 2xx")]);
}

#[rstest]
#[case::resets(vec![(9, 200, TE::None), (3, 0, TE::Reset)], "SIGTERM with 12 requests in flight: 3 of 12 failed (3 × reset)")]
#[case::mixed(
    vec![(9, 200, TE::None), (1, 502, TE::None), (2, 200, TE::Truncated)],
    "3 of 12 failed (1 × 502, 2 × truncated)"
)]
#[case::redirect_is_not_a_full_response(vec![(7, 200, TE::None), (1, 302, TE::None)], "1 of 8 failed (1 × 302)")]
#[case::too_few_but_one_failed(vec![(1, 200, TE::None), (1, 0, TE::Refused)], "1 of 2 failed (1 × refused)")]
fn gs_drain_fails_on_any_failed_request_in_flight(#[case] groups: Vec<(usize, u16, TransportError)>, #[case] needle: &str) {
    let requests = groups
        .into_iter()
        .flat_map(|(n, status, error)| in_flight(n, status, error))
        .collect();
    let v = check("GS-DRAIN", &drain_history(requests));
    expect(&v, Fail, &[needle]);
}

#[test]
fn gs_drain_leaves_out_requests_started_within_the_margin_and_says_how_many() {
    let mut requests = in_flight(8, 200, TE::None);
    // Three started 50 ms before the signal, cut off: may not have reached the app.
    requests.extend((0..3).map(|i| req(T0 - 50 + i, T0 + 5, 0, TE::Reset)));
    let v = check("GS-DRAIN", &drain_history(requests));
    expect(&v, Pass, &["8 of 8 completed with 2xx"]);
    expect_evidence(&v, "3 more started within 100 ms of the signal were left out");
    assert!(
        v.reading.as_deref().unwrap_or("").contains("at least 100 ms before the signal"),
        "{:?}",
        v.reading
    );
}

#[test]
fn gs_drain_leaving_out_the_margin_can_leave_too_few() {
    let mut requests = in_flight(7, 200, TE::None);
    requests.extend([req(T0 - 20, T0 + 900, 200, TE::None), req(T0 - 10, T0 + 900, 200, TE::None)]);
    let v = check("GS-DRAIN", &drain_history(requests));
    expect(&v, Inconclusive, &["only 7 requests were in flight"]);
    expect_evidence(&v, "2 more started within 100 ms");
}

#[test]
fn gs_drain_in_flight_boundaries() {
    let mut requests = in_flight(8, 200, TE::None);
    requests.extend([
        // Started exactly the margin before the signal: judged.
        req(T0 - 100, T0 + 500, 0, TE::Reset),
        // Ended exactly at the signal: not in flight.
        req(T0 - 2_000, T0, 0, TE::Reset),
        // Started at the signal: within the margin, left out.
        req(T0, T0 + 10, 0, TE::Reset),
        // Started after the signal: not in flight.
        req(T0 + 1, T0 + 20, 0, TE::Reset),
    ]);
    let v = check("GS-DRAIN", &drain_history(requests));
    expect(&v, Fail, &["SIGTERM with 9 requests in flight: 1 of 9 failed (1 × reset)"]);
    expect_evidence(&v, "1 more started within 100 ms of the signal were left out");
    expect_evidence(&v, "GET /api/slow started -100 ms ended +500 ms: reset");
}

// ---- GS-CLEANUP ------------------------------------------------------------

#[rstest]
#[case::clean(|_: &mut CleanupObservation| {}, Pass, "2 Redis connection(s) gone from CLIENT LIST, no listener, no process left")]
#[case::surviving_process(
    |c: &mut CleanupObservation| c.surviving_processes = vec!["4250 refstack-child".into()],
    Fail,
    "processes outlived it: 4250 refstack-child"
)]
#[case::leftover_redis_client(
    |c: &mut CleanupObservation| c.redis_clients_left = vec!["127.0.0.1:50002".into()],
    Fail,
    "1 of 2 Redis connections still open (127.0.0.1:50002)"
)]
#[case::still_listening(|c: &mut CleanupObservation| c.still_listening = vec!["127.0.0.1:38080".into()], Fail, "still listening: 127.0.0.1:38080")]
#[case::everything_left(
    |c: &mut CleanupObservation| {
        c.redis_clients_left = vec!["127.0.0.1:50001".into()];
        c.still_listening = vec!["127.0.0.1:38080".into()];
        c.surviving_processes = vec!["4250 refstack-child".into()];
    },
    Fail,
    "1 of 2 Redis connections still open (127.0.0.1:50001); still listening: 127.0.0.1:38080; processes outlived it: 4250 refstack-child"
)]
#[case::process_left_and_redis_not_checked(
    |c: &mut CleanupObservation| {
        c.redis_checked = false;
        c.surviving_processes = vec!["4250 refstack-child".into()];
    },
    Fail,
    "processes outlived it"
)]
#[case::redis_not_checked(|c: &mut CleanupObservation| c.redis_checked = false, Inconclusive, "Redis's client list could not be read")]
#[case::no_connection_before(|c: &mut CleanupObservation| c.redis_clients_before.clear(), Inconclusive, "held no Redis connection before the signal")]
fn gs_cleanup(#[case] change: fn(&mut CleanupObservation), #[case] outcome: Outcome, #[case] needle: &str) {
    let mut c = clean();
    change(&mut c);
    let v = check("GS-CLEANUP", &history(vec![sigterm_fault(T0, code(0), 800, false, Some(c))]));
    expect(&v, outcome, &[needle]);
}

#[test]
fn gs_cleanup_is_inconclusive_when_nothing_was_observed_after_the_exit() {
    let v = check("GS-CLEANUP", &history(vec![sigterm_fault(T0, code(0), 800, false, None)]));
    expect(&v, Inconclusive, &[]);
}

// ---- CF-ENV ----------------------------------------------------------------

fn env_restart(value: &str, observed: &[&str], ready: bool) -> FaultRecord {
    FaultRecord {
        index: 0,
        label: format!("app restarted with APP_VERSION={value:?}"),
        service: APP.into(),
        injected_at: ms(T0),
        healed_at: Some(ms(T0 + 2_000)),
        provokes: Vec::new(),
        landed: true,
        proof: format!("restarted with APP_VERSION={value:?}; ready again after 300 ms"),
        detail: FaultDetail::EnvRestart {
            variable: "APP_VERSION".into(),
            value: value.into(),
            ready_at: ready.then(|| ms(T0 + 300)),
            observed: observed.iter().map(|s| s.to_string()).collect(),
        },
    }
}

#[rstest]
#[case::follows_the_variable(&["v2", "v2", "v2"], Pass, r#"APP_VERSION="v2" → served "v2" in 3 of 3 probes"#)]
#[case::ignores_the_variable(&["v1", "v1", "v1"], Fail, r#"APP_VERSION="v2" but the service showed "v1""#)]
#[case::follows_it_only_sometimes(&["v2", "(no header)", "v2"], Fail, r#"but the service showed "(no header)""#)]
#[case::nothing_read_back(&[], Inconclusive, "the changed value could not be read back")]
fn cf_env(#[case] observed: &[&str], #[case] outcome: Outcome, #[case] needle: &str) {
    let v = check("CF-ENV", &history(vec![env_restart("v2", observed, true)]));
    expect(&v, outcome, &[needle]);
    if outcome == Fail {
        expect_evidence(&v, &format!("observed: {}", observed.join(", ")));
    }
}

#[rstest]
#[case::no_fault(vec![], "no env-change fault in this scenario")]
#[case::not_landed(vec![not_landed(env_restart("v2", &[], false))], "the restart with a changed variable did not happen")]
#[case::never_ready(vec![env_restart("v2", &[], false)], "the restart with a changed variable did not happen")]
fn cf_env_inconclusive(#[case] faults: Vec<FaultRecord>, #[case] needle: &str) {
    expect(&check("CF-ENV", &history(faults)), Inconclusive, &[needle]);
}

// ---- CF-VALIDATE -----------------------------------------------------------

/// A start of the app with APP_PORT missing (`value` None) or malformed.
fn bad_start(value: Option<&str>, exit: Option<ExitInfo>, after_ms: Option<u64>, served: bool, names: bool) -> FaultRecord {
    FaultRecord {
        index: 2,
        label: "app started without APP_PORT".into(),
        service: APP.into(),
        injected_at: ms(T0),
        healed_at: Some(ms(T0 + 6_000)),
        provokes: Vec::new(),
        landed: true,
        proof: "started with no APP_PORT".into(),
        detail: FaultDetail::BadConfigStart {
            defect: if value.is_some() { "malformed" } else { "missing" }.into(),
            variable: "APP_PORT".into(),
            value: value.map(Into::into),
            exit,
            exited_after_ms: after_ms,
            deadline_ms: 5_000,
            served,
            message_names_variable: names,
            log_tail: "refstack starting\nlistening on 127.0.0.1:38080".into(),
        },
    }
}

#[rstest]
#[case::refused(code(1), Some(120), false, true, Pass, "1 bad configurations, each refused at startup")]
#[case::exit_zero(
    code(0),
    Some(120),
    false,
    true,
    Fail,
    "APP_PORT missing: exited after 120 ms with exit status 0, not a non-zero status"
)]
#[case::still_running(None, None, false, true, Fail, "APP_PORT missing: still running 5000 ms after start")]
#[case::message_does_not_name_the_variable(
    code(1),
    Some(120),
    false,
    false,
    Fail,
    "APP_PORT missing: exited after 120 ms (exit status 1) but its output does not name APP_PORT"
)]
#[case::served(code(1), Some(900), true, true, Fail, "APP_PORT missing: answered HTTP while misconfigured")]
#[case::still_running_and_served(
    None,
    None,
    true,
    false,
    Fail,
    "still running 5000 ms after start, answered HTTP while misconfigured"
)]
fn cf_validate(
    #[case] exit: Option<ExitInfo>,
    #[case] after_ms: Option<u64>,
    #[case] served: bool,
    #[case] names: bool,
    #[case] outcome: Outcome,
    #[case] needle: &str,
) {
    let v = check("CF-VALIDATE", &history(vec![bad_start(None, exit, after_ms, served, names)]));
    expect(&v, outcome, &[needle]);
    if outcome == Fail {
        expect_evidence(&v, "  output: listening on 127.0.0.1:38080");
    }
}

#[test]
fn cf_validate_fails_if_any_bad_configuration_is_accepted() {
    let h = history(vec![
        bad_start(None, code(1), Some(120), false, true),
        bad_start(Some("not-a-port"), code(0), Some(80), false, true),
    ]);
    let v = check("CF-VALIDATE", &h);
    expect(&v, Fail, &[r#"APP_PORT="not-a-port": exited after 80 ms with exit status 0"#]);
    expect_evidence(&v, "APP_PORT missing: exited after 120 ms (exit status 1), naming it");
}

#[test]
fn cf_validate_passes_when_every_bad_configuration_is_refused() {
    let h = history(vec![
        bad_start(None, code(1), Some(120), false, true),
        bad_start(Some("not-a-port"), code(2), Some(80), false, true),
    ]);
    expect(&check("CF-VALIDATE", &h), Pass, &["2 bad configurations, each refused at startup"]);
}

#[rstest]
#[case::no_fault(vec![], "no bad-config fault in this scenario")]
#[case::not_landed(vec![not_landed(bad_start(None, None, None, false, false))], "a bad-config start did not happen")]
fn cf_validate_inconclusive(#[case] faults: Vec<FaultRecord>, #[case] needle: &str) {
    expect(&check("CF-VALIDATE", &history(faults)), Inconclusive, &[needle]);
}

/// A failed bad-config start must not be hidden by a later one that did not land.
#[test]
fn cf_validate_a_fault_that_did_not_land_does_not_hide_a_failure() {
    let h = history(vec![
        bad_start(None, code(0), Some(120), false, true),
        not_landed(bad_start(Some("not-a-port"), None, None, false, false)),
    ]);
    expect(
        &check("CF-VALIDATE", &h),
        Fail,
        &["APP_PORT missing: exited after 120 ms with exit status 0"],
    );
}

// ---- CF-HOT ----------------------------------------------------------------

/// `banner = "hi-42"` reloaded by SIGHUP at T0 into pid 4242.
fn reload(pid_after: Option<u32>, observed_after_ms: Option<u64>) -> FaultRecord {
    FaultRecord {
        index: 0,
        label: r#"banner = "hi-42" reloaded by SIGHUP on app"#.into(),
        service: APP.into(),
        injected_at: ms(T0),
        healed_at: None,
        provokes: Vec::new(),
        landed: true,
        proof: r#"wrote banner="hi-42" into app.toml; SIGHUP delivered to pid 4242"#.into(),
        detail: FaultDetail::ConfigReload {
            setting: "banner".into(),
            value: "hi-42".into(),
            signal: "HUP".into(),
            pid_before: 4242,
            pid_after,
            observed_at: observed_after_ms.map(|d| ms(T0 + d)),
        },
    }
}

fn reload_history(faults: Vec<FaultRecord>) -> History {
    let mut h = history(faults);
    h.requests = steady_load(9_000, 14_000);
    h
}

/// Make the requests started at these times fail with a reset.
fn reset_at(h: &mut History, starts_ms: &[u64]) {
    for r in &mut h.requests {
        if starts_ms.iter().any(|&s| ms(s) == r.start) {
            r.status = 0;
            r.error = TE::Reset;
        }
    }
}

#[test]
fn cf_hot_passes_when_the_value_takes_effect_in_the_same_process() {
    let v = check("CF-HOT", &reload_history(vec![reload(Some(4242), Some(300))]));
    expect(
        &v,
        Pass,
        &[
            r#"banner="hi-42" in effect +300 ms after HUP, PID 4242 unchanged"#,
            "requests meanwhile, none failed",
        ],
    );
}

#[test]
fn cf_hot_fails_when_the_pid_changes() {
    let v = check("CF-HOT", &reload_history(vec![reload(Some(4343), Some(300))]));
    expect(&v, Fail, &["PID changed from 4242 to", "4343"]);
}

#[test]
fn cf_hot_fails_on_failed_requests_during_the_reload() {
    let mut h = reload_history(vec![reload(Some(4242), Some(300))]);
    reset_at(&mut h, &[T0 + 100, T0 + 150]);
    let v = check("CF-HOT", &h);
    // Requests ending at or after T0 and starting by T0 + 300 ms: 7.
    expect(&v, Fail, &["2 of 7 requests failed during the reload"]);
}

#[test]
fn cf_hot_ignores_failed_requests_outside_the_reload() {
    let mut h = reload_history(vec![reload(Some(4242), Some(300))]);
    reset_at(&mut h, &[T0 - 500, T0 + 2_000]);
    expect(&check("CF-HOT", &h), Pass, &["none failed"]);
}

#[rstest]
#[case::still_running(Some(4242), r#"banner="hi-42" not in effect 3000 ms after HUP (PID 4242 still running)"#)]
#[case::gone(None, r#"banner="hi-42" not in effect 3000 ms after HUP (PID 4242 gone)"#)]
fn cf_hot_fails_when_the_value_is_never_observed(#[case] pid_after: Option<u32>, #[case] needle: &str) {
    let v = check("CF-HOT", &reload_history(vec![reload(pid_after, None)]));
    expect(&v, Fail, &[needle]);
}

#[rstest]
#[case::no_fault(vec![], "no reload-config fault in this scenario")]
#[case::not_landed(vec![not_landed(reload(Some(4242), None))], "the reload did not happen: signal not delivered")]
fn cf_hot_inconclusive(#[case] faults: Vec<FaultRecord>, #[case] needle: &str) {
    expect(&check("CF-HOT", &reload_history(faults)), Inconclusive, &[needle]);
}

// ---- once known gaps --------------------------------------------------------

/// Readiness answered 2xx up to +400 ms, then nothing until a 503 at +700 ms:
/// when it fell is unknown, and no probe saw it ready past the limit.
#[test]
fn hc_ready_a_gap_in_the_probes_is_not_evidence_of_failure() {
    let mut p = probes(ProbeKind::Ready, 9_000, T0 + 500, 200);
    p.extend(probes(ProbeKind::Ready, T0 + 700, T0 + 1_500, 503));
    let v = check("HC-READY", &ready_after_sigterm(p));
    assert_ne!(v.outcome, Fail, "{v:#?}");
    expect(
        &v,
        Inconclusive,
        &[
            "no readiness answer between +400 and +700 ms after SIGTERM",
            "first not-ready answer at +700 ms",
        ],
    );
}

/// The same gap, but a probe in it saw readiness still 2xx past the limit.
#[test]
fn hc_ready_a_2xx_in_the_gap_past_the_limit_is_a_failure() {
    let mut p = probes(ProbeKind::Ready, 9_000, T0 + 500, 200);
    p.push(probe(T0 + 600, ProbeKind::Ready, 200));
    p.extend(probes(ProbeKind::Ready, T0 + 700, T0 + 1_500, 503));
    let v = check("HC-READY", &ready_after_sigterm(p));
    expect(
        &v,
        Fail,
        &["readiness still 2xx +600 ms after SIGTERM", "first not-ready answer at +700 ms"],
    );
}

/// Not ready at +100 ms, ready again at +200 ms (within the limit), not ready
/// for good from +300 ms: a pass, which says where readiness settled.
#[test]
fn hc_ready_a_flap_within_the_limit_passes_and_says_so() {
    let mut p = probes(ProbeKind::Ready, 9_000, T0, 200);
    p.push(probe(T0 + 100, ProbeKind::Ready, 503));
    p.push(probe(T0 + 200, ProbeKind::Ready, 200));
    p.extend(probes(ProbeKind::Ready, T0 + 300, T0 + 1_500, 503));
    let v = check("HC-READY", &ready_after_sigterm(p));
    expect(
        &v,
        Pass,
        &[
            "not ready +100 ms after SIGTERM (503)",
            "not ready for good from +300 ms (503)",
            "11 later probes all not ready",
        ],
    );
}

/// Ready again within the limit and no probe after that: nothing is proven.
#[test]
fn hc_ready_ready_again_with_no_later_probe_is_inconclusive() {
    let mut p = probes(ProbeKind::Ready, 9_000, T0, 200);
    p.push(probe(T0 + 100, ProbeKind::Ready, 503));
    p.push(probe(T0 + 200, ProbeKind::Ready, 200));
    let v = check("HC-READY", &ready_after_sigterm(p));
    expect(&v, Inconclusive, &["ready again at +200 ms, and no readiness answer after that"]);
}

/// One bad-config start refused, one that did not land: inconclusive, not a
/// pass, with the refused one still in the evidence.
#[test]
fn cf_validate_without_a_failure_a_fault_that_did_not_land_is_inconclusive() {
    let h = history(vec![
        bad_start(None, code(1), Some(120), false, true),
        not_landed(bad_start(Some("not-a-port"), None, None, false, false)),
    ]);
    let v = check("CF-VALIDATE", &h);
    expect(&v, Inconclusive, &["a bad-config start did not happen"]);
    expect_evidence(&v, "APP_PORT missing: exited after 120 ms (exit status 1), naming it");
}

#[test]
fn cf_hot_fails_when_the_value_takes_effect_past_the_deadline() {
    let v = check("CF-HOT", &reload_history(vec![reload(Some(4242), Some(3_500))]));
    expect(
        &v,
        Fail,
        &[r#"banner="hi-42" in effect only +3500 ms after HUP, past the 3000 ms deadline"#],
    );
}

#[test]
fn cf_hot_names_the_new_pid_or_says_the_process_is_gone() {
    let v = check("CF-HOT", &reload_history(vec![reload(Some(4343), Some(300))]));
    expect(&v, Fail, &["PID changed from 4242 to 4343"]);
    assert!(!v.measured.contains("Some("), "{}", v.measured);
    let v = check("CF-HOT", &reload_history(vec![reload(None, Some(300))]));
    expect(&v, Fail, &["PID 4242 gone"]);
}

/// An exit recorded before the signal (clocks read out of order) proves nothing.
#[test]
fn gs_sigterm_an_exit_before_the_signal_is_inconclusive() {
    let mut f = sigterm();
    if let FaultDetail::Signal { exited_at, .. } = &mut f.detail {
        *exited_at = Some(ms(T0 - 10));
    }
    let v = check("GS-SIGTERM", &history(vec![f]));
    expect(&v, Inconclusive, &["the exit was recorded 10 ms before SIGTERM"]);
}

/// Readiness 2xx at +0, +100, +200 ms, then not ready from +300 ms to the
/// restart at +1500 ms: 12 probes from the fall on, 11 after the first.
#[test]
fn hc_ready_pass_counts_only_the_probes_after_the_fall() {
    let v = check("HC-READY", &ready_after_sigterm(ready_until(T0 + 300)));
    expect(&v, Pass, &["11 later probes all not ready"]);
}

// ---- verdict rules: missing capabilities, the baseline ----------------------

/// A capability the standard requires and the stack does not declare: the
/// requirement fails, naming the manifest field, instead of "did not land".
#[test]
fn a_capability_the_stack_lacks_fails_naming_the_field() {
    let mut h = history(vec![not_landed(reload(None, None))]);
    h.missing.push(chaosgate::history::MissingCapability {
        requirements: vec!["CF-HOT".into()],
        what: "a setting that can be changed without restarting the service".into(),
        field: "[services.<app>.config] reload = { ... }".into(),
    });
    let v = check("CF-HOT", &h);
    expect(
        &v,
        Fail,
        &["lacks a setting that can be changed", "`[services.<app>.config] reload"],
    );
    expect_evidence(&v, "what the check saw");
    // Only the requirements it names.
    assert_eq!(check("CF-ENV", &h).outcome, Inconclusive);
}

/// A stack that already fails its ordinary load before any fault: the
/// verdicts judged from the load are inconclusive, pass and fail alike.
#[test]
fn a_failing_baseline_makes_load_verdicts_inconclusive() {
    let mut requests = in_flight(12, 200, TE::None);
    // 100 requests before the signal, 40 of them 503.
    for i in 0..100 {
        requests.push(req(2_000 + i * 10, 2_005 + i * 10, if i % 5 < 2 { 503 } else { 200 }, TE::None));
    }
    let mut h = drain_history(requests);
    h.load_window = Some((ms(1_000), ms(20_000)));
    assert_eq!(check("GS-DRAIN", &h).outcome, Pass, "without the baseline it passes");
    h.baseline = chaosgate::check::baseline::of(&h);
    let b = h.baseline.clone().expect("a baseline");
    assert!(b.fails(), "{b:?}");
    let v = check("GS-DRAIN", &h);
    expect(&v, Inconclusive, &["before any fault, 40 of 100 requests (40.0 %)", "503: 40"]);
    expect_evidence(&v, "what the check would have said (pass)");
    // Probe-judged requirements are not the load's.
    assert!(!chaosgate::check::baseline::LOAD_JUDGED.contains(&"HC-READY"));
}

/// A healthy baseline changes nothing.
#[test]
fn a_clean_baseline_changes_nothing() {
    let mut requests = in_flight(12, 200, TE::None);
    for i in 0..100 {
        requests.push(req(2_000 + i * 10, 2_005 + i * 10, 200, TE::None));
    }
    let mut h = drain_history(requests);
    h.load_window = Some((ms(1_000), ms(20_000)));
    h.baseline = chaosgate::check::baseline::of(&h);
    assert!(!h.baseline.as_ref().unwrap().fails());
    assert_eq!(check("GS-DRAIN", &h).outcome, Pass);
}

/// Every kind of fault, recorded as not landed, in one history with load,
/// probes and Redis state that would otherwise look healthy: no check may
/// pass on it (a fault that did not happen proves nothing).
#[test]
fn no_check_passes_when_no_fault_of_any_kind_landed() {
    use chaosgate::history::{BurstObservation, HttpsTally};
    let detail_of = |kind: usize| -> FaultDetail {
        match kind {
            0 => FaultDetail::Outage {
                signal: "SIGKILL".into(),
                down_at: Some(ms(T0)),
                restarted_at: Some(ms(UP)),
                ready_at: Some(ms(BACK)),
            },
            1 => FaultDetail::Pause { resumed_at: Some(ms(UP)) },
            2 => FaultDetail::Burst(BurstObservation {
                path: "/limited".into(),
                rate_per_s: 200.0,
                duration_ms: 2_000,
                sent: 400,
                statuses: [(200, 50), (429, 350)].into_iter().collect(),
                limit_rate_per_s: 20.0,
                limit_burst: 10,
                backend_requests: Some(50),
                ..Default::default()
            }),
            3 => FaultDetail::BackendTraffic {
                window_ms: 2_000,
                client_requests: 1_000,
                backend_requests: Some(1_000),
                backend_connections: Some(2),
                kernel_connections: Some(2),
            },
            4 => FaultDetail::Gzip {
                answers: vec![],
                min_length: 1000,
            },
            5 => FaultDetail::Cache {
                path: "/cached".into(),
                header: "X-Cache-Status".into(),
                answers: vec![(200, Some("MISS".into())), (200, Some("HIT".into()))],
                backend_requests: Some(1),
            },
            6 => FaultDetail::AllDown {
                services: vec![APP.into()],
                down_at: Some(ms(T0)),
                restarted_at: Some(ms(UP)),
                access_log_502: Some(10),
            },
            7 => FaultDetail::CertReload {
                certificate: "expired".into(),
                via: "signal HUP".into(),
                pid_before: 1,
                pid_after: Some(1),
                reloaded_at: Some(ms(T0)),
                served_at: Some(ms(T0 + 100)),
                before: None,
                after: None,
                https: HttpsTally::default(),
            },
            8 => FaultDetail::BrokenReload {
                pid_before: 1,
                pid_after: Some(1),
                test_failed: true,
                test_output: "emerg".into(),
                served_after: 10,
                reloaded_at: Some(ms(T0)),
            },
            _ => FaultDetail::Flood {
                requested: 500,
                accepted: 500,
                queue_total: Some(400),
                queue_base_list: Some(100),
                enqueued_until: ms(T0),
            },
        }
    };
    let mut faults: Vec<FaultRecord> = (0..10)
        .map(|kind| {
            let mut f = redis_outage();
            f.index = kind;
            f.detail = detail_of(kind);
            not_landed(f)
        })
        .collect();
    faults.extend([
        not_landed(sigterm()),
        not_landed(env_restart("v2", &["v2"], true)),
        not_landed(bad_start(None, code(1), Some(100), false, true)),
        not_landed(reload(Some(4242), Some(300))),
    ]);
    let mut h = history(faults);
    h.requests = steady_load(1_000, 20_000);
    for kind in [ProbeKind::Ready, ProbeKind::Live] {
        h.probes.extend(probes(kind, 1_000, 20_000, 200));
    }
    for (id, _) in CHECKS {
        let v = check(id, &h);
        assert_ne!(v.outcome, Pass, "{id} passed on faults that did not land: {v:#?}");
    }
}
