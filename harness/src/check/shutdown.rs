//! Section 2: graceful shutdown (GS-SIGTERM, GS-DRAIN, GS-CLEANUP).
//!
//! Judged on every graceful-stop request of the scenario: a SIGTERM to the
//! probed service (the standard's wording), and a service's declared stop
//! signal (`stop_signal` in the manifest: nginx's QUIT), whichever service it
//! went to. Verdicts name the signal that was sent.

use super::verdict::{Outcome, Verdict};
use super::{CheckInput, ms, not_landed, rel};
use crate::history::{FaultDetail, FaultRecord, History, Micros, RequestRecord, TransportError};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;

fn no_sigterm(id: &str, expected: &str) -> Verdict {
    Verdict::new(
        id,
        Outcome::Inconclusive,
        "no SIGTERM was sent to the service in this scenario, nor any service's declared stop signal",
        expected,
    )
}

/// The signal faults the GS-* checks judge (see the module comment).
fn stop_requests<'a>(h: &'a History, probed: &'a str) -> impl Iterator<Item = &'a FaultRecord> + 'a {
    h.faults.iter().filter(move |f| match &f.detail {
        FaultDetail::Signal { signal, declared_stop, .. } => *declared_stop || (f.service == probed && signal == "SIGTERM"),
        _ => false,
    })
}

/// The name of the signal a signal fault sent ("SIGTERM" if it is no signal fault).
fn signal_of(f: &FaultRecord) -> &str {
    match &f.detail {
        FaultDetail::Signal { signal, .. } => signal,
        _ => "SIGTERM",
    }
}

/// 128 + the signal's number: the status a shell reports for death by it (143 for SIGTERM).
fn death_status(signal: &str) -> Option<i32> {
    signal.parse::<Signal>().ok().map(|s| 128 + s as i32)
}

/// "SIGQUIT to nginx (its declared stop signal)": which signal went where.
fn sent(f: &FaultRecord) -> String {
    let declared = matches!(f.detail, FaultDetail::Signal { declared_stop: true, .. });
    format!(
        "{} to {}{}",
        signal_of(f),
        f.service,
        if declared { " (its declared stop signal)" } else { "" }
    )
}

fn each_sigterm(input: &CheckInput<'_>, id: &str, expected: &str, judge: impl Fn(&FaultRecord) -> Verdict) -> Verdict {
    stop_requests(input.history, input.probed_service)
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
        let sig = signal_of(f);
        let death = death_status(sig);
        let expected = format!(
            "exits by itself within the {:.1} s grace period with status 0 (or {} / {sig} after draining)",
            *grace_ms as f64 / 1000.0,
            death.map(|d| d.to_string()).unwrap_or_else(|| "death".into())
        );
        if *killed_after_grace {
            return Verdict::new(
                ID,
                Outcome::Fail,
                format!("still running {} ms after {sig}; killed with SIGKILL", grace_ms),
                expected,
            )
            .with_evidence(f.proof.clone());
        }
        let (Some(exit), Some(at)) = (exit, exited_at) else {
            return Verdict::new(
                ID,
                Outcome::Inconclusive,
                format!("the exit after {sig} was not observed"),
                expected,
            )
            .with_evidence(f.proof.clone());
        };
        if *at < f.injected_at {
            return Verdict::new(
                ID,
                Outcome::Inconclusive,
                format!(
                    "the exit was recorded {} ms before {sig}, so how long it took is unknown",
                    ms(f.injected_at - *at)
                ),
                expected,
            )
            .with_evidence(f.proof.clone());
        }
        let took = ms(at.saturating_sub(f.injected_at));
        // Death by the very signal it was sent (143 for SIGTERM) counts clean, as the standard says.
        let by_the_signal = death.is_some() && (exit.code == death || exit.signal.map(|s| s + 128) == death);
        let clean = exit.code == Some(0) || by_the_signal;
        let how = if exit.code == Some(0) {
            "status 0".to_string()
        } else if by_the_signal {
            format!("death by {sig} ({}), counted clean", death.unwrap_or_default())
        } else {
            exit.describe()
        };
        let expected = format!("{expected}; a request on a connection it kept open after {sig} is answered, not dropped");
        let react_ms = input.settings.ready_after_sigterm_ms;
        let reused = ReusedAfterSignal::of(input.history, f.injected_at, react_ms * 1000);
        let v = if !clean {
            Verdict::new(ID, Outcome::Fail, format!("exited {took} ms after {sig} with {how}"), expected)
        } else if !reused.dropped.is_empty() {
            Verdict::new(
                ID,
                Outcome::Fail,
                format!(
                    "exited by itself {took} ms after {sig} with {how}, but dropped {} request(s) sent on connections it had kept open by answering on them after the signal without `Connection: close`",
                    reused.dropped.len()
                ),
                expected,
            )
        } else {
            Verdict::new(
                ID,
                Outcome::Pass,
                format!("exited by itself {took} ms after {sig} with {how}"),
                expected,
            )
        };
        // Without kept-alive connections the load cannot see a dropped reuse: say so, not "0".
        let reuse = if input.history.connections.keepalive && input.history.connections.reused > 0 {
            reused.describe(f.injected_at, react_ms)
        } else {
            "requests on kept-alive connections after the signal: not observable, the load reused no connection".to_string()
        };
        v.with_evidence(format!("signal sent: {}", sent(f))).with_evidence(reuse)
    })
    .with_reading("grace period as the stack declares it (the standard's reading: 30 s)")
    .with_reading("stops accepting new work: a request that arrives on a kept-alive connection after the signal gets an answer or a clean close")
}

/// Load requests after a stop signal that went on a reused connection and
/// got no answer at all, split by the answer before them on that connection.
/// One that ended more than the service's reaction time (HC-READY's limit)
/// after the signal came from a service already stopping, which kept the
/// connection open for another request and then dropped it. One before that
/// is the keep-alive race every server has (it closes an idle connection as
/// the client reuses it): reported, never failed.
struct ReusedAfterSignal {
    dropped: Vec<(Micros, Micros)>,
    raced: usize,
}

impl ReusedAfterSignal {
    fn of(h: &History, t0: Micros, react_us: Micros) -> Self {
        let after: Vec<(Micros, Micros)> = h
            .connections
            .reused_after
            .iter()
            .copied()
            .filter(|(start, _)| *start >= t0)
            .collect();
        let (dropped, raced): (Vec<_>, Vec<_>) = after.into_iter().partition(|(_, answered)| *answered >= t0 + react_us);
        ReusedAfterSignal {
            dropped,
            raced: raced.len(),
        }
    }

    fn describe(&self, t0: Micros, react_ms: u64) -> String {
        let mut text = format!(
            "requests after the signal on reused connections that got no answer: {} on a connection answered on more than {react_ms} ms after the signal (dropped), {} on one idle since before (the keep-alive race)",
            self.dropped.len(),
            self.raced
        );
        for (start, answered) in self.dropped.iter().take(3) {
            text.push_str(&format!("; sent {} after an answer at {}", rel(*start, t0), rel(*answered, t0)));
        }
        text
    }
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

/// The standard's three ways an in-flight request fails (5xx, reset, truncated body), or "other".
fn failure_class(r: &RequestRecord) -> &'static str {
    match r.error {
        TransportError::Reset => "reset",
        TransportError::Truncated => "truncated",
        TransportError::None if r.status >= 500 => "5xx",
        _ => "other",
    }
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
        "every request in flight at the stop signal (SIGTERM, or the service's declared one; at least {}) completes with 2xx, no reset, no truncated body",
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
    let sig = signal_of(f);
    let count = |class: &str| failed.iter().filter(|r| failure_class(r) == class).count();
    let counts = format!(
        "{}: in flight at the signal {} (the load's count when it was sent: {}); judged {n}, completed with 2xx {}, failed {} (reset {}, 5xx {}, truncated {}, other {})",
        sent(f),
        n + too_close,
        match &f.detail {
            FaultDetail::Signal { in_flight, .. } => in_flight.to_string(),
            _ => "?".into(),
        },
        n - failed.len(),
        failed.len(),
        count("reset"),
        count("5xx"),
        count("truncated"),
        count("other"),
    );
    if !failed.is_empty() {
        let mut v = Verdict::new(
            ID,
            Outcome::Fail,
            format!("{sig} with {n} requests in flight: {} of {n} failed ({breakdown})", failed.len()),
            expected,
        )
        .with_evidence(context)
        .with_evidence(counts);
        for e in examples {
            v = v.with_evidence(e);
        }
        return v;
    }
    if (n as u32) < min {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("only {n} requests were in flight at {sig} (need {min}); all {n} completed with 2xx"),
            expected,
        )
        .with_evidence(context)
        .with_evidence(counts);
    }
    let slowest = judged.iter().map(|r| r.end).max().map(|e| rel(e, t0)).unwrap_or_default();
    Verdict::new(
        ID,
        Outcome::Pass,
        format!("{sig} with {n} requests in flight: {n} of {n} completed with 2xx (the last {slowest} after the signal)"),
        expected,
    )
    .with_evidence(context)
    .with_evidence(counts)
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
