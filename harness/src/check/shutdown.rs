//! Section 2: graceful shutdown (GS-SIGTERM, GS-DRAIN, GS-CLEANUP).

use super::verdict::{Outcome, Verdict};
use super::{CheckInput, ms, not_landed, rel, sigterms};
use crate::history::{FaultDetail, FaultRecord, History, RequestRecord, TransportError};
use std::collections::BTreeMap;

fn no_sigterm(id: &str, expected: &str) -> Verdict {
    Verdict::new(
        id,
        Outcome::Inconclusive,
        "no SIGTERM was sent to the service in this scenario",
        expected,
    )
}

fn each_sigterm(input: &CheckInput<'_>, id: &str, expected: &str, judge: impl Fn(&FaultRecord) -> Verdict) -> Verdict {
    sigterms(input.history, input.probed_service)
        .map(|f| if f.landed { judge(f) } else { not_landed(id, f) })
        .reduce(Verdict::merge)
        .unwrap_or_else(|| no_sigterm(id, expected))
}

/// GS-SIGTERM: exits by itself, cleanly, within the grace period.
pub fn gs_sigterm(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "GS-SIGTERM";
    let expected = "exits by itself within the grace period with status 0 (or 143 / SIGTERM after draining)";
    each_sigterm(input, ID, expected, |f| {
        let FaultDetail::Signal {
            exit,
            exited_at,
            grace_ms,
            killed_after_grace,
            ..
        } = &f.detail
        else {
            return not_landed(ID, f);
        };
        let expected = format!(
            "exits by itself within the {:.1} s grace period with status 0 (or 143 / SIGTERM after draining)",
            *grace_ms as f64 / 1000.0
        );
        if *killed_after_grace {
            return Verdict::new(
                ID,
                Outcome::Fail,
                format!("still running {} ms after SIGTERM; killed with SIGKILL", grace_ms),
                expected,
            )
            .with_evidence(f.proof.clone());
        }
        let (Some(exit), Some(at)) = (exit, exited_at) else {
            return Verdict::new(ID, Outcome::Inconclusive, "the exit after SIGTERM was not observed", expected)
                .with_evidence(f.proof.clone());
        };
        if *at < f.injected_at {
            return Verdict::new(
                ID,
                Outcome::Inconclusive,
                format!(
                    "the exit was recorded {} ms before SIGTERM, so how long it took is unknown",
                    ms(f.injected_at - *at)
                ),
                expected,
            )
            .with_evidence(f.proof.clone());
        }
        let took = ms(at.saturating_sub(f.injected_at));
        let clean = exit.code == Some(0) || exit.code == Some(143) || exit.signal == Some(15);
        let how = match (exit.code, exit.signal) {
            (Some(0), _) => "status 0".to_string(),
            (Some(143), _) | (None, Some(15)) => "death by SIGTERM (143), counted clean".to_string(),
            _ => exit.describe(),
        };
        if clean {
            Verdict::new(
                ID,
                Outcome::Pass,
                format!("exited by itself {took} ms after SIGTERM with {how}"),
                expected,
            )
        } else {
            Verdict::new(ID, Outcome::Fail, format!("exited {took} ms after SIGTERM with {how}"), expected)
        }
    })
    .with_reading("grace period as the stack declares it (the standard's reading: 30 s)")
}

/// Requests in flight at `t0`: started at least `margin` before it and not yet finished.
/// Those started within the margin may not have reached the service: left out.
pub fn in_flight_at(requests: &[RequestRecord], t0: u64, margin_us: u64) -> (Vec<&RequestRecord>, usize) {
    let mut judged = Vec::new();
    let mut too_close = 0;
    for r in requests.iter().filter(|r| r.in_flight_at(t0)) {
        if r.start + margin_us <= t0 {
            judged.push(r);
        } else {
            too_close += 1;
        }
    }
    (judged, too_close)
}

fn failure_kind(r: &RequestRecord) -> String {
    match r.error {
        TransportError::None => format!("{}", r.status),
        e => format!("{e:?}").to_lowercase(),
    }
}

/// GS-DRAIN: every request in flight at SIGTERM completes successfully.
pub fn gs_drain(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "GS-DRAIN";
    let s = input.settings;
    let expected = format!(
        "every request in flight at SIGTERM (at least {}) completes with 2xx, no reset, no truncated body",
        s.drain_min_in_flight
    );
    each_sigterm(input, ID, &expected, |f| drain_of(input.history, f, s.drain_min_in_flight, s.drain_margin_ms, &expected))
        .with_reading(format!(
            "in flight = started at least {} ms before the signal (earlier than that it may not have reached the service) and not finished at it",
            s.drain_margin_ms
        ))
}

fn drain_of(h: &History, f: &FaultRecord, min: u32, margin_ms: u64, expected: &str) -> Verdict {
    const ID: &str = "GS-DRAIN";
    let t0 = f.injected_at;
    let (judged, too_close) = in_flight_at(&h.requests, t0, margin_ms * 1000);
    let n = judged.len();
    let failed: Vec<&&RequestRecord> = judged.iter().filter(|r| !r.ok() || !(200..300).contains(&r.status)).collect();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in &failed {
        *kinds.entry(failure_kind(r)).or_default() += 1;
    }
    let breakdown = kinds.iter().map(|(k, c)| format!("{c} × {k}")).collect::<Vec<_>>().join(", ");
    let examples: Vec<String> = failed
        .iter()
        .take(5)
        .map(|r| {
            format!(
                "{} started {} ended {}: {}",
                h.routes.get(r.route as usize).map(String::as_str).unwrap_or("?"),
                rel(r.start, t0),
                rel(r.end, t0),
                failure_kind(r)
            )
        })
        .collect();
    let context = format!("{too_close} more started within {margin_ms} ms of the signal were left out");
    if !failed.is_empty() {
        let mut v = Verdict::new(
            ID,
            Outcome::Fail,
            format!("SIGTERM with {n} requests in flight: {} of {n} failed ({breakdown})", failed.len()),
            expected,
        )
        .with_evidence(context);
        for e in examples {
            v = v.with_evidence(e);
        }
        return v;
    }
    if (n as u32) < min {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("only {n} requests were in flight at SIGTERM (need {min}); all {n} completed with 2xx"),
            expected,
        )
        .with_evidence(context);
    }
    let slowest = judged.iter().map(|r| r.end).max().map(|e| rel(e, t0)).unwrap_or_default();
    Verdict::new(
        ID,
        Outcome::Pass,
        format!("SIGTERM with {n} requests in flight: {n} of {n} completed with 2xx (the last {slowest} after the signal)"),
        expected,
    )
    .with_evidence(context)
}

/// GS-CLEANUP: no Redis connection, listener or child process outlives the service.
pub fn gs_cleanup(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "GS-CLEANUP";
    let expected = "after exit: its Redis connections gone from CLIENT LIST, nothing listening on its ports, no process of it left";
    each_sigterm(input, ID, expected, |f| {
        let FaultDetail::Signal { cleanup: Some(c), .. } = &f.detail else {
            return not_landed(ID, f);
        };
        let mut problems = Vec::new();
        if !c.redis_clients_left.is_empty() {
            problems.push(format!(
                "{} of {} Redis connections still open ({})",
                c.redis_clients_left.len(),
                c.redis_clients_before.len(),
                c.redis_clients_left.join(", ")
            ));
        }
        if !c.still_listening.is_empty() {
            problems.push(format!("still listening: {}", c.still_listening.join(", ")));
        }
        if !c.surviving_processes.is_empty() {
            problems.push(format!("processes outlived it: {}", c.surviving_processes.join("; ")));
        }
        if !problems.is_empty() {
            let mut v = Verdict::new(ID, Outcome::Fail, problems.join("; "), expected);
            v.evidence.push(f.proof.clone());
            return v;
        }
        if !c.redis_checked {
            return Verdict::new(
                ID,
                Outcome::Inconclusive,
                "Redis's client list could not be read, so released connections could not be proven",
                expected,
            );
        }
        if c.redis_clients_before.is_empty() {
            return Verdict::new(
                ID,
                Outcome::Inconclusive,
                "the service held no Redis connection before the signal: nothing to see released",
                expected,
            );
        }
        Verdict::new(
            ID,
            Outcome::Pass,
            format!(
                "{} Redis connection(s) gone from CLIENT LIST, no listener, no process left",
                c.redis_clients_before.len()
            ),
            expected,
        )
        .with_evidence(format!("connections before: {}", c.redis_clients_before.join(", ")))
    })
    .with_reading("the service's connections are those of its processes' sockets to Redis (from /proc), compared with Redis's CLIENT LIST")
}
