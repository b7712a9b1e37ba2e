//! AL-CERT: an expired or soon-expiring certificate raises the alert the
//! stack declares for it, and the alert resolves once a renewed certificate is
//! served. Judged from the monitoring samples (Prometheus's rules API, read by
//! `observe::prometheus`) around each certificate swap of the nemesis.

use super::verdict::{Outcome, Verdict};
use super::{CheckInput, ms, rel};
use crate::history::{AlertSample, FaultDetail, Micros, ServedCert};

/// AL-CERT's reading of "soon": fewer than 14 days left.
pub const WARN_DAYS: f64 = super::tls::WARN_DAYS;

/// The declared query agrees with the served certificate within this many days.
const QUERY_TOLERANCE_DAYS: f64 = 0.5;

/// Whether the alert fires in a sample (its declared rule's state, else the firing list).
pub fn firing(s: &AlertSample, alert: &str) -> bool {
    match s.rules.get(alert) {
        Some(r) => r.state == "firing",
        None => s.is_firing(alert),
    }
}

/// The alert's state in the last good sample before `at` (not firing when there is none).
pub fn firing_before(samples: &[AlertSample], alert: &str, at: Micros) -> bool {
    samples
        .iter()
        .rev()
        .find(|s| s.at < at && s.error.is_none())
        .is_some_and(|s| firing(s, alert))
}

/// The first sample at or after `from` that proves the monitoring has judged
/// a new certificate and put the alert in the `want` state (firing or not):
/// either the state changed from `was` to `want`, or, when the stack declares
/// a query giving the days left, the query showed `days` (the served
/// certificate's) and the alert's rule was evaluated after that with the
/// alert in the `want` state. `None`: not (yet) proven.
pub fn reached(samples: &[AlertSample], alert: &str, query_id: &str, from: Micros, days: f64, was: bool, want: bool) -> Option<Micros> {
    let mut seen: Option<Micros> = None;
    for s in samples.iter().filter(|s| s.at >= from && s.error.is_none()) {
        if seen.is_none() && s.values.get(query_id).is_some_and(|v| (v - days).abs() <= QUERY_TOLERANCE_DAYS) {
            seen = Some(s.at);
        }
        if firing(s, alert) != want {
            continue;
        }
        let fresh = seen
            .zip(s.rules.get(alert).and_then(|r| r.evaluated_at))
            .is_some_and(|(q, e)| e >= q);
        if was != want || fresh {
            return Some(s.at);
        }
    }
    None
}

/// Whether the monitoring can judge `alert` at all: it answered, and it has
/// loaded a rule of that name. `Err`: the verdict's outcome and reason.
pub fn monitoring_usable(mon: &crate::history::MonitoringRecord, alert: &str, id: &str) -> Result<(), (Outcome, String)> {
    if !mon.samples.iter().any(|s| s.error.is_none()) {
        let why = mon
            .samples
            .iter()
            .find_map(|s| s.error.clone())
            .unwrap_or_else(|| "no sample was taken".into());
        return Err((
            Outcome::Inconclusive,
            format!("the monitoring ({}) never answered: {why}", mon.source),
        ));
    }
    match &mon.rules_loaded {
        Some(rules) if !rules.iter().any(|r| r == alert) => Err((
            Outcome::Fail,
            format!(
                "the monitoring has no alerting rule named `{alert}` (loaded: {}): nothing raises the alert the stack declares for {id}",
                if rules.is_empty() { "none".to_string() } else { rules.join(", ") }
            ),
        )),
        _ => Ok(()),
    }
}

/// One certificate as served, and what the alert did meanwhile.
struct Phase {
    certificate: String,
    cert: ServedCert,
    served_at: Micros,
    /// Start of the next swap (end of this phase's samples).
    until: Option<Micros>,
}

pub fn al_cert(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "AL-CERT";
    let deadline_ms = input.settings.alert_deadline_ms;
    let expected = format!(
        "the alert the stack declares for AL-CERT fires within {deadline_ms} ms of an expired or expiring (< {WARN_DAYS} days) certificate being served, resolves within {deadline_ms} ms of a renewed one, and never fires for a valid one"
    );
    let h = input.history;
    let mon = &h.monitoring;
    let reading = "expiring = fewer than 14 days left (the standard gives no threshold; finding 13); the alert's state is read from the monitoring's rules API";
    let verdict = |outcome, measured: String| Verdict::new(ID, outcome, measured, expected.clone()).with_reading(reading);
    let phases = phases(h);
    let Some(declared) = &mon.declared else {
        // Monitoring is required; an expired certificate served with none to notice it is a fail.
        let served_bad = phases.iter().any(|p| p.cert.days_left < WARN_DAYS);
        // A certificate swap was attempted: the scenario put alerting to the test.
        let tried = h
            .faults
            .iter()
            .any(|f| matches!(f.detail, crate::history::FaultDetail::CertReload { .. }));
        return verdict(
            if served_bad || tried {
                Outcome::Fail
            } else {
                Outcome::Inconclusive
            },
            format!(
                "the stack has no monitoring ([monitoring] is not declared){}: declare [monitoring] service/port and \
                 [monitoring.alerts] AL-CERT = {{ alert = \"...\" }} if it has one",
                if served_bad {
                    ": an expired or expiring certificate was served and nothing could notice it"
                } else if tried {
                    ": nothing would notice an expired certificate (the certificate swap itself did not land)"
                } else {
                    "; no expired certificate was served yet (the certificate swap did not land)"
                }
            ),
        );
    };
    let Some(decl) = declared.get(ID) else {
        let mut fired: Vec<String> = Vec::new();
        for p in phases.iter().filter(|p| p.cert.days_left < WARN_DAYS) {
            for s in in_phase(&mon.samples, p) {
                for a in &s.firing {
                    if !fired.contains(a) {
                        fired.push(a.clone());
                    }
                }
            }
        }
        let others: Vec<String> = declared.iter().map(|(id, d)| format!("{id}: {}", d.alert)).collect();
        return verdict(
            Outcome::Fail,
            format!(
                "the stack's monitoring declares no alert for AL-CERT (it declares: {}): nothing it declares notices an expired certificate",
                if others.is_empty() { "none".to_string() } else { others.join(", ") }
            ),
        )
        .with_evidence(format!(
            "alerts firing while an expired or expiring certificate was served: {}",
            if fired.is_empty() { "none".to_string() } else { fired.join(", ") }
        ));
    };
    let alert = decl.alert.as_str();
    if let Err((outcome, why)) = monitoring_usable(mon, alert, ID) {
        return verdict(outcome, why).with_evidence(format!("monitoring: {}", mon.source));
    }
    if phases.is_empty() {
        return verdict(
            Outcome::Inconclusive,
            "no certificate swap landed (none ran, or it did not land): nothing to watch the alert against".into(),
        );
    }
    let samples = &mon.samples;
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    let mut unproven = Vec::new();
    let mut fired = Vec::new();
    let mut resolved = Vec::new();
    // Before the first swap the stack serves its initial, valid certificate.
    let first_swap = h
        .faults
        .iter()
        .find(|f| matches!(f.detail, FaultDetail::CertReload { .. }))
        .map(|f| f.injected_at);
    let early_alarms = samples
        .iter()
        .filter(|s| first_swap.is_none_or(|t| s.at < t) && s.error.is_none() && firing(s, alert))
        .count();
    if early_alarms > 0 {
        problems.push(format!(
            "`{alert}` fired in {early_alarms} samples before any swap, with the initial valid certificate (false alarm)"
        ));
    }
    for p in &phases {
        let mine: Vec<AlertSample> = in_phase(samples, p).cloned().collect();
        let observed_ms = mine.last().map(|s| ms(s.at.saturating_sub(p.served_at))).unwrap_or(0);
        let bad = p.cert.days_left < WARN_DAYS;
        let was = firing_before(samples, alert, p.served_at);
        let hit = reached(&mine, alert, ID, p.served_at, p.cert.days_left, was, bad);
        let query = |at: Option<Micros>| {
            let s = at
                .and_then(|t| mine.iter().find(|s| s.at == t))
                .or_else(|| mine.iter().rev().find(|s| s.values.contains_key(ID)));
            match (decl.query.as_ref(), s.and_then(|s| s.values.get(ID))) {
                (None, _) => String::new(),
                (Some(_), Some(v)) => format!("; the monitoring's query: {v:.2} days"),
                (Some(_), None) => "; the monitoring's query: no value".into(),
            }
        };
        let head = format!(
            "`{}` served at {} ({:.2} days left{}{})",
            p.certificate,
            rel(p.served_at, 0),
            p.cert.days_left,
            if p.cert.host_matches { "" } else { ", wrong host" },
            query(hit)
        );
        match (bad, was, hit) {
            (true, _, Some(t)) => {
                let after = ms(t - p.served_at);
                evidence.push(format!("{head}: `{alert}` firing after {after} ms"));
                if after > deadline_ms {
                    problems.push(format!(
                        "`{alert}` fired only {after} ms after `{}` ({:.1} days left), deadline {deadline_ms} ms",
                        p.certificate, p.cert.days_left
                    ));
                }
                fired.push(format!(
                    "{:.1} s after `{}` ({:.1} days)",
                    after as f64 / 1000.0,
                    p.certificate,
                    p.cert.days_left
                ));
            }
            (true, _, None) if observed_ms >= deadline_ms => {
                evidence.push(format!("{head}: `{alert}` not firing for its certificate within {observed_ms} ms"));
                problems.push(format!(
                    "`{alert}` did not fire within {deadline_ms} ms of `{}` ({:.1} days left) being served{}",
                    p.certificate,
                    p.cert.days_left,
                    if was { " (it was firing for the previous certificate)" } else { "" }
                ));
            }
            (true, _, None) => {
                evidence.push(format!("{head}: `{alert}` not proven firing for it within {observed_ms} ms"));
                unproven.push(format!(
                    "`{}`: watched for {observed_ms} ms only{}",
                    p.certificate,
                    if was && decl.query.is_none() {
                        " and the alert already fired for the previous certificate (declare a `query` giving the days left to tell them apart)"
                    } else {
                        ""
                    }
                ));
            }
            (false, true, Some(t)) => {
                let after = ms(t - p.served_at);
                evidence.push(format!("{head}: `{alert}` resolved after {after} ms"));
                if after > deadline_ms {
                    problems.push(format!(
                        "`{alert}` resolved only {after} ms after `{}` was served, deadline {deadline_ms} ms",
                        p.certificate
                    ));
                }
                resolved.push(format!("{:.1} s after `{}`", after as f64 / 1000.0, p.certificate));
                let again = mine.iter().filter(|s| s.at > t && firing(s, alert)).count();
                if again > 0 {
                    problems.push(format!(
                        "`{alert}` fired again in {again} samples after resolving, with `{}` ({:.1} days left) served (false alarm)",
                        p.certificate, p.cert.days_left
                    ));
                }
            }
            (false, true, None) if observed_ms >= deadline_ms => {
                evidence.push(format!("{head}: `{alert}` still firing after {observed_ms} ms"));
                problems.push(format!(
                    "`{alert}` still firing {observed_ms} ms after `{}` ({:.1} days left) was served",
                    p.certificate, p.cert.days_left
                ));
            }
            (false, true, None) => {
                evidence.push(format!("{head}: `{alert}` not proven resolved within {observed_ms} ms"));
                unproven.push(format!("`{}`: resolution watched for {observed_ms} ms only", p.certificate));
            }
            (false, false, _) => {
                let late = mine
                    .iter()
                    .filter(|s| s.at > p.served_at + deadline_ms * 1000 && firing(s, alert))
                    .count();
                evidence.push(format!(
                    "{head}: `{alert}` {}",
                    if late > 0 { "fired (false alarm)" } else { "quiet" }
                ));
                if late > 0 {
                    problems.push(format!(
                        "`{alert}` fired in {late} samples with `{}` ({:.1} days left) served (false alarm)",
                        p.certificate, p.cert.days_left
                    ));
                }
            }
        }
    }
    let measured = format!(
        "`{alert}` fired {}; resolved {}",
        if fired.is_empty() { "never".to_string() } else { fired.join(", ") },
        if resolved.is_empty() {
            "never".to_string()
        } else {
            resolved.join(", ")
        }
    );
    let (outcome, measured) = if !problems.is_empty() {
        (Outcome::Fail, format!("{}; {measured}", problems.join("; ")))
    } else if !phases.iter().any(|p| p.cert.days_left < WARN_DAYS) {
        (
            Outcome::Inconclusive,
            format!("no expired or expiring certificate was served; {measured}"),
        )
    } else if !unproven.is_empty() {
        (Outcome::Inconclusive, format!("not proven: {}; {measured}", unproven.join("; ")))
    } else if resolved.is_empty() {
        (
            Outcome::Inconclusive,
            format!("no renewal after the alert fired was observed; {measured}"),
        )
    } else {
        (Outcome::Pass, measured)
    };
    let mut v = verdict(outcome, measured).with_evidence(format!("monitoring: {}; {} samples", mon.source, samples.len()));
    for e in evidence {
        v = v.with_evidence(e);
    }
    v
}

fn phases(h: &crate::history::History) -> Vec<Phase> {
    let swaps: Vec<_> = h
        .faults
        .iter()
        .filter(|f| matches!(f.detail, FaultDetail::CertReload { .. }))
        .collect();
    let mut phases = Vec::new();
    for (i, f) in swaps.iter().enumerate() {
        let FaultDetail::CertReload {
            certificate,
            served_at: Some(served_at),
            after: Some(after),
            ..
        } = &f.detail
        else {
            continue;
        };
        if !f.landed {
            continue;
        }
        phases.push(Phase {
            certificate: certificate.clone(),
            cert: (**after).clone(),
            served_at: *served_at,
            until: swaps.get(i + 1).map(|n| n.injected_at),
        });
    }
    phases
}

fn in_phase<'a>(samples: &'a [AlertSample], p: &'a Phase) -> impl Iterator<Item = &'a AlertSample> + 'a {
    samples
        .iter()
        .filter(move |s| s.at >= p.served_at && p.until.is_none_or(|u| s.at < u) && s.error.is_none())
}
