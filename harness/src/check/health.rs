//! Section 1: health checks (HC-READY, HC-LIVE, HC-AGG).

use super::verdict::{Outcome, Verdict};
use super::{CheckInput, not_landed, outages, rel, sigterms};
use crate::history::{FaultDetail, FaultRecord, History, Micros, ProbeKind, ProbeSample, ServiceEventKind};

const READY_EXPECTED: &str =
    "non-2xx (or refused) while a hard dependency is down and from SIGTERM on; 2xx again once the dependency is back";

/// HC-READY: readiness falls at SIGTERM and while a dependency is down, and comes back.
pub fn hc_ready(input: &CheckInput<'_>) -> Verdict {
    let h = input.history;
    let svc = input.probed_service;
    let mut parts: Vec<Verdict> = sigterms(h, svc).map(|f| ready_after_sigterm(input, f)).collect();
    parts.extend(outages(h, &input.dependency_services).map(|(f, down, _)| ready_during_outage(input, f, down)));
    combine(
        "HC-READY",
        parts,
        "no SIGTERM to the service and no dependency outage in this scenario: nothing put readiness to the test",
        READY_EXPECTED,
    )
    .with_reading(format!(
        "not ready within {} ms of SIGTERM; within {} ms of a dependency going down; ready again within {} ms of it returning",
        input.settings.ready_after_sigterm_ms, input.settings.ready_dependency_detect_ms, input.settings.ready_recover_ms
    ))
}

fn combine(id: &str, parts: Vec<Verdict>, nothing: &str, expected: &str) -> Verdict {
    parts
        .into_iter()
        .reduce(Verdict::merge)
        .unwrap_or_else(|| Verdict::new(id, Outcome::Inconclusive, nothing, expected))
}

/// Whether a probe had its answer before `t`. A probe sent just before a
/// restart can be answered by the new process, so the sending time alone
/// would blame the old one for the new one's answer.
fn answered_before(p: &ProbeSample, t: Micros) -> bool {
    p.at.saturating_add(u64::from(p.latency_us)) < t
}

/// The moment the service was started again after `after`, if it was.
fn next_start(h: &History, service: &str, after: Micros) -> Micros {
    h.events
        .iter()
        .find(|e| e.service == service && e.at > after && matches!(e.kind, ServiceEventKind::Started { .. }))
        .map(|e| e.at)
        .unwrap_or(Micros::MAX)
}

fn describe(s: &ProbeSample) -> String {
    if s.status != 0 {
        format!("{}", s.status)
    } else {
        format!("{:?}", s.error).to_lowercase()
    }
}

fn ready_after_sigterm(input: &CheckInput<'_>, f: &FaultRecord) -> Verdict {
    const ID: &str = "HC-READY";
    if !f.landed {
        return not_landed(ID, f);
    }
    let h = input.history;
    let t0 = f.injected_at;
    let end = next_start(h, input.probed_service, t0);
    let limit_us = input.settings.ready_after_sigterm_ms * 1000;
    let samples: Vec<&ProbeSample> = h
        .probes_of(input.probed_service, ProbeKind::Ready)
        .filter(|s| s.at >= t0 && answered_before(s, end))
        .collect();
    let expected = format!(
        "not ready within {} ms of SIGTERM, and never ready again until restarted",
        input.settings.ready_after_sigterm_ms
    );
    if samples.is_empty() {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            "no readiness probe was answered or refused between SIGTERM and the restart",
            expected,
        );
    }
    let limit_ms = input.settings.ready_after_sigterm_ms;
    let evidence = format!("{} readiness probes between SIGTERM and the restart", samples.len());
    let Some(first) = samples.iter().copied().find(|s| !s.is_2xx()) else {
        let last = samples[samples.len() - 1];
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "ready answered 2xx to all {} probes after SIGTERM (the last at {})",
                samples.len(),
                rel(last.at, t0)
            ),
            expected,
        )
        .with_evidence(evidence);
    };
    let late_ready: Vec<&ProbeSample> = samples.iter().copied().filter(|s| s.is_2xx() && s.at > t0 + limit_us).collect();
    if let Some(last) = late_ready.last() {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "readiness still 2xx {} after SIGTERM; first not-ready answer at {}",
                rel(last.at, t0),
                rel(first.at, t0)
            ),
            expected,
        )
        .with_evidence(evidence)
        .with_evidence(format!(
            "{} of them answered 2xx later than {limit_ms} ms after the signal",
            late_ready.len()
        ));
    }
    if first.at - t0 > limit_us {
        // No probe saw it ready past the limit: it fell somewhere in the gap before `first`.
        let gap_from = samples.iter().rev().find(|s| s.at < first.at).map(|s| s.at).unwrap_or(t0);
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!(
                "no readiness answer between +{} and +{} ms after SIGTERM: whether it fell within {limit_ms} ms is unknown; first not-ready answer at {}",
                (gap_from - t0) / 1000,
                (first.at - t0) / 1000,
                rel(first.at, t0)
            ),
            expected,
        )
        .with_evidence(evidence);
    }
    // 2xx answers within the limit after a first fall: readiness settled at the last fall.
    let Some(settled) = samples.iter().copied().rev().take_while(|s| !s.is_2xx()).last() else {
        let last = samples[samples.len() - 1];
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!(
                "not ready {} after SIGTERM but ready again at {}, and no readiness answer after that before the restart",
                rel(first.at, t0),
                rel(last.at, t0)
            ),
            expected,
        )
        .with_evidence(evidence);
    };
    let later = samples.iter().filter(|s| s.at > settled.at).count();
    let fell = if settled.at == first.at {
        format!("not ready {} after SIGTERM ({})", rel(first.at, t0), describe(first))
    } else {
        format!(
            "not ready {} after SIGTERM ({}), ready again within the limit, not ready for good from {} ({})",
            rel(first.at, t0),
            describe(first),
            rel(settled.at, t0),
            describe(settled)
        )
    };
    Verdict::new(ID, Outcome::Pass, format!("{fell}; {later} later probes all not ready"), expected).with_evidence(evidence)
}

fn outage_window(f: &FaultRecord) -> Option<(Micros, Micros, Option<Micros>)> {
    match &f.detail {
        FaultDetail::Outage {
            down_at: Some(d),
            restarted_at: Some(r),
            ready_at,
            ..
        } => Some((*d, *r, *ready_at)),
        _ => None,
    }
}

fn ready_during_outage(input: &CheckInput<'_>, f: &FaultRecord, _down: Option<Micros>) -> Verdict {
    const ID: &str = "HC-READY";
    let Some((down, restarted, back)) = outage_window(f).filter(|_| f.landed) else {
        return not_landed(ID, f);
    };
    let h = input.history;
    let s = input.settings;
    let detect_from = down + s.ready_dependency_detect_ms * 1000;
    let probes: Vec<&ProbeSample> = h.probes_of(input.probed_service, ProbeKind::Ready).collect();
    let during: Vec<&&ProbeSample> = probes
        .iter()
        .filter(|p| p.at >= detect_from && answered_before(p, restarted))
        .collect();
    let expected = READY_EXPECTED.to_string();
    if during.len() < 3 {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("only {} readiness probes during the {} outage (need 3)", during.len(), f.service),
            expected,
        );
    }
    let first_down = probes.iter().find(|p| p.at >= down && !p.is_2xx()).map(|p| rel(p.at, down));
    let ready_while_down: Vec<&&&ProbeSample> = during.iter().filter(|p| p.is_2xx()).collect();
    if !ready_while_down.is_empty() {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "ready answered 2xx to {} of {} probes while {} was down",
                ready_while_down.len(),
                during.len(),
                f.service
            ),
            expected,
        )
        .with_evidence(format!("first 2xx while down at {}", rel(ready_while_down[0].at, down)));
    }
    let Some(back) = back else {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("{} never came back, so recovery could not be seen", f.service),
            expected,
        );
    };
    let recovered = probes.iter().find(|p| p.at >= back && p.is_2xx());
    let limit = s.ready_recover_ms * 1000;
    match recovered {
        Some(p) if p.at - back <= limit => Verdict::new(
            ID,
            Outcome::Pass,
            format!(
                "not ready {} after {} went down ({} probes, none 2xx); ready again {} after it returned",
                first_down.unwrap_or_else(|| "?".into()),
                f.service,
                during.len(),
                rel(p.at, back)
            ),
            expected,
        ),
        Some(p) => Verdict::new(
            ID,
            Outcome::Fail,
            format!("ready again only {} after {} returned", rel(p.at, back), f.service),
            expected,
        ),
        None => Verdict::new(
            ID,
            Outcome::Fail,
            format!("readiness never came back after {} returned", f.service),
            expected,
        ),
    }
}

/// HC-LIVE: liveness holds while a dependency is down.
pub fn hc_live(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "HC-LIVE";
    let expected = "2xx from /health/live throughout a dependency outage";
    let parts: Vec<Verdict> = outages(input.history, &input.dependency_services)
        .map(|(f, _, _)| {
            let Some((down, restarted, _)) = outage_window(f).filter(|_| f.landed) else {
                return not_landed(ID, f);
            };
            let during: Vec<&ProbeSample> = input
                .history
                .probes_of(input.probed_service, ProbeKind::Live)
                .filter(|p| p.at >= down && p.at < restarted)
                .collect();
            if during.len() < 3 {
                return Verdict::new(
                    ID,
                    Outcome::Inconclusive,
                    format!("only {} liveness probes during the outage (need 3)", during.len()),
                    expected,
                );
            }
            let bad: Vec<&&ProbeSample> = during.iter().filter(|p| !p.is_2xx()).collect();
            if bad.is_empty() {
                Verdict::new(
                    ID,
                    Outcome::Pass,
                    format!(
                        "{} of {} liveness probes 2xx while {} was down",
                        during.len(),
                        during.len(),
                        f.service
                    ),
                    expected,
                )
            } else {
                Verdict::new(
                    ID,
                    Outcome::Fail,
                    format!(
                        "{} of {} liveness probes failed while {} was down (first: {} at {})",
                        bad.len(),
                        during.len(),
                        f.service,
                        describe(bad[0]),
                        rel(bad[0].at, down)
                    ),
                    expected,
                )
                .with_evidence("an orchestrator would restart-loop a healthy process during the outage")
            }
        })
        .collect();
    combine(
        ID,
        parts,
        "no dependency outage in this scenario: liveness was not put to the test",
        expected,
    )
    .with_reading("liveness must not depend on Redis")
}

/// HC-AGG: /health names each component, non-2xx while a hard dependency is down.
pub fn hc_agg(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "HC-AGG";
    let expected = "2xx with a JSON body naming the components while all is up; non-2xx naming the failed dependency while it is down";
    let h = input.history;
    let parts: Vec<Verdict> = outages(h, &input.dependency_services)
        .map(|(f, _, _)| {
            let Some((down, restarted, _)) = outage_window(f).filter(|_| f.landed) else {
                return not_landed(ID, f);
            };
            let samples: Vec<&ProbeSample> = h.probes_of(input.probed_service, ProbeKind::Aggregate).collect();
            // Answered before the fault: a probe in flight when it struck may rightly see it.
            let before: Vec<&&ProbeSample> = samples
                .iter()
                .filter(|p| p.at + u64::from(p.latency_us) < f.injected_at && p.status != 0)
                .collect();
            let detect_from = down + input.settings.ready_dependency_detect_ms * 1000;
            let during: Vec<&&ProbeSample> = samples
                .iter()
                .filter(|p| p.at >= detect_from && answered_before(p, restarted))
                .collect();
            if during.len() < 3 || before.is_empty() {
                return Verdict::new(
                    ID,
                    Outcome::Inconclusive,
                    format!(
                        "{} aggregate probes before and {} during the outage (need 1 and 3)",
                        before.len(),
                        during.len()
                    ),
                    expected,
                );
            }
            let names: Vec<String> = [Some(f.service.clone()), input.roles.get(&f.service).cloned()]
                .into_iter()
                .flatten()
                .map(|n| n.to_lowercase())
                .collect();
            let is_json = |p: &ProbeSample| {
                p.body
                    .as_deref()
                    .is_some_and(|b| serde_json::from_str::<serde_json::Value>(b).is_ok())
            };
            let names_dep = |p: &ProbeSample| {
                p.body
                    .as_deref()
                    .is_some_and(|b| names.iter().any(|n| b.to_lowercase().contains(n)))
            };
            if let Some(bad) = before.iter().find(|p| !p.is_2xx() || !is_json(p) || !names_dep(p)) {
                return Verdict::new(
                    ID,
                    Outcome::Fail,
                    format!(
                        "before the outage /health answered {} with body {:?}",
                        describe(bad),
                        bad.body.as_deref().unwrap_or("")
                    ),
                    expected,
                );
            }
            let ok_while_down: Vec<&&&ProbeSample> = during.iter().filter(|p| p.is_2xx()).collect();
            if !ok_while_down.is_empty() {
                return Verdict::new(
                    ID,
                    Outcome::Fail,
                    format!(
                        "/health answered 2xx to {} of {} probes while {} was down",
                        ok_while_down.len(),
                        during.len(),
                        f.service
                    ),
                    expected,
                )
                .with_evidence(format!("body: {}", ok_while_down[0].body.as_deref().unwrap_or("")));
            }
            if let Some(bad) = during.iter().find(|p| p.status != 0 && !(is_json(p) && names_dep(p))) {
                return Verdict::new(
                    ID,
                    Outcome::Fail,
                    format!(
                        "/health while {} was down did not name it in a JSON body: {:?}",
                        f.service,
                        bad.body.as_deref().unwrap_or("")
                    ),
                    expected,
                );
            }
            let example = during
                .iter()
                .find(|p| p.status != 0)
                .and_then(|p| p.body.clone())
                .unwrap_or_default();
            Verdict::new(
                ID,
                Outcome::Pass,
                format!(
                    "2xx before the outage; {} of {} probes non-2xx naming {} while it was down",
                    during.len(),
                    during.len(),
                    f.service
                ),
                expected,
            )
            .with_evidence(format!("body while down: {example}"))
        })
        .collect();
    combine(
        ID,
        parts,
        "no dependency outage in this scenario: the aggregate status was not put to the test",
        expected,
    )
    .with_reading(format!(
        "the body must be JSON and name the failed dependency by service name or role; judged from {} ms after it went down",
        input.settings.ready_dependency_detect_ms
    ))
}
