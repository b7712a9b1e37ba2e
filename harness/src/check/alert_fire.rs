//! The section-5 alerts other than AL-CERT, judged the same way: the rule the
//! stack declares for the requirement is read statically (threshold,
//! comparison, `for:`, see `alert_rules`), it fires within the deadline once
//! a fault the scenario names in `alerts = [...]` has made its condition
//! hold, it resolves within the deadline once the condition is gone, and it
//! is silent when nothing provokes it. All from the monitoring samples that
//! `observe::prometheus` takes from the stack's own Prometheus.

use super::alert_rules::{self, LoadedRule, RuleOutcome};
use super::alerts::firing;
use super::verdict::{Outcome, Verdict};
use super::{CheckInput, ms};
use crate::history::{AlertSample, FaultRecord, History, Micros};

/// A calm stretch proves silence only when it outlasts the rule's `for:` and
/// its rate windows; the reference's windows are 10 s, a common choice 30 s.
const CALM_MIN_S: f64 = 20.0;

/// When one provocation's alert changed state, relative to its condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub fault: String,
    pub pending_after_ms: Option<u64>,
    pub fired_after_ms: Option<u64>,
    /// After the condition ended (None: not yet, or the condition never ended).
    pub resolved_after_ms: Option<u64>,
    /// When the router's webhook told of the firing, after the condition began.
    pub delivered_after_ms: Option<u64>,
}

/// The first notification of `alert` with `status` the harness's webhook received at or after `since`.
fn delivered(h: &History, alert: &str, status: &str, since: Micros) -> Option<Micros> {
    h.monitoring
        .notifications
        .iter()
        .find(|n| n.at >= since && n.alert == alert && n.status == status)
        .map(|n| n.at)
}

/// What the webhook received, for a message about what it did not.
fn received_summary(h: &History, since: Micros) -> String {
    let mut seen: Vec<String> = Vec::new();
    for n in h.monitoring.notifications.iter().filter(|n| n.at >= since) {
        let line = format!("{} {} (receiver {})", n.alert, n.status, n.receiver);
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    if seen.is_empty() {
        "nothing at all".into()
    } else {
        seen.join(", ")
    }
}

/// Whether the router delivered a Prometheus state change to the webhook
/// within the deadline counted from `budget_from` (the condition's start, or
/// its end for "resolved"): a person is paged within the same budget the
/// alert has to fire. `None`: the stack declares no router, nothing to judge.
fn judge_delivery(
    h: &History,
    alert: &str,
    status: &str,
    prometheus_at: Micros,
    budget_from: Micros,
    deadline_us: Micros,
) -> Option<Result<Micros, (Outcome, String)>> {
    let d = h.monitoring.delivery.as_ref()?;
    if let Some(e) = &d.error {
        return Some(Err((
            Outcome::Inconclusive,
            format!("the harness's alert receiver did not run ({e})"),
        )));
    }
    // Prometheus's sample can trail the push to the router by one sampling interval.
    let since = prometheus_at.saturating_sub(1_000_000);
    match delivered(h, alert, status, since) {
        Some(at) if at.saturating_sub(budget_from) <= deadline_us => Some(Ok(at)),
        Some(at) => Some(Err((
            Outcome::Fail,
            format!(
                "`{}` delivered `{alert}` {status} to the webhook {} ms after Prometheus saw it, {} ms into the condition's {} ms",
                d.service,
                ms(at.saturating_sub(prometheus_at)),
                ms(at.saturating_sub(budget_from)),
                ms(deadline_us)
            ),
        ))),
        None => {
            let observed_until = answered(h).last().map(|s| s.at).unwrap_or(prometheus_at);
            let waited = observed_until.saturating_sub(prometheus_at);
            let outcome = if observed_until.saturating_sub(budget_from) < deadline_us {
                Outcome::Inconclusive
            } else {
                Outcome::Fail
            };
            let hint = if status == "resolved" {
                " (a receiver with send_resolved: false never says an alert is over)"
            } else {
                " (its route sends the alert elsewhere, or nowhere)"
            };
            Some(Err((
                outcome,
                format!(
                    "Prometheus had `{alert}` {status}, but in the {} ms after it `{}` delivered no such notification to the harness's webhook{hint}; the webhook received: {}",
                    ms(waited),
                    d.service,
                    received_summary(h, since)
                ),
            )))
        }
    }
}

fn answered(h: &History) -> impl Iterator<Item = &AlertSample> {
    h.monitoring.samples.iter().filter(|s| s.error.is_none())
}

fn state_in(s: &AlertSample, alert: &str) -> &'static str {
    if firing(s, alert) {
        "firing"
    } else if s.rules.get(alert).is_some_and(|r| r.state == "pending") {
        "pending"
    } else {
        "inactive"
    }
}

/// The end of a fault's condition: when the harness undid it, or later, the
/// last load request that failed before the next fault began. A proxy that
/// keeps a dead upstream marked down (nginx's `fail_timeout`) goes on
/// answering 5xx after the upstream is back; its alert is right to go on firing.
fn condition_end(h: &History, f: &FaultRecord) -> Option<Micros> {
    let healed = f.healed_at?;
    let next = h
        .faults
        .iter()
        .map(|g| g.injected_at)
        .filter(|t| *t > f.injected_at)
        .min()
        .unwrap_or(Micros::MAX);
    let last_failed = h
        .requests
        .iter()
        .filter(|r| r.start >= f.injected_at && r.end < next && r.status >= 500)
        .map(|r| r.end)
        .max();
    Some(last_failed.map_or(healed, |l| l.max(healed)))
}

/// Judge one provocation; `Err` is a failed or inconclusive part with its reason.
fn judge_provocation(h: &History, alert: &str, f: &FaultRecord, deadline_us: Micros) -> (Outcome, String, Timing) {
    judge_provocation_until(h, alert, f, deadline_us, condition_end(h, f))
}

/// As `judge_provocation`, with the condition's end given (`None`: it did not end while watched).
fn judge_provocation_until(
    h: &History,
    alert: &str,
    f: &FaultRecord,
    deadline_us: Micros,
    condition_end: Option<Micros>,
) -> (Outcome, String, Timing) {
    let origin = h.load_window.map(|w| w.0).unwrap_or(0);
    let rel = |at: Micros| super::rel(at, origin);
    let mut timing = Timing {
        fault: f.label.clone(),
        pending_after_ms: None,
        fired_after_ms: None,
        resolved_after_ms: None,
        delivered_after_ms: None,
    };
    if !f.landed {
        return (
            Outcome::Inconclusive,
            format!("fault #{} {} did not make the condition hold: {}", f.index, f.label, f.proof),
            timing,
        );
    }
    let from = f.injected_at;
    if super::alerts::firing_before(&h.monitoring.samples, alert, from) {
        return (
            Outcome::Inconclusive,
            format!(
                "`{alert}` was already firing when fault #{} {} began at {}",
                f.index,
                f.label,
                rel(from)
            ),
            timing,
        );
    }
    let after: Vec<&AlertSample> = answered(h).filter(|s| s.at >= from).collect();
    timing.pending_after_ms = after.iter().find(|s| state_in(s, alert) != "inactive").map(|s| ms(s.at - from));
    let fired = after.iter().find(|s| firing(s, alert)).map(|s| s.at);
    let Some(fired_at) = fired else {
        let last = after.last().map(|s| s.at).unwrap_or(from);
        let outcome = if last.saturating_sub(from) < deadline_us {
            Outcome::Inconclusive
        } else {
            Outcome::Fail
        };
        return (
            outcome,
            format!(
                "`{alert}` never fired in the {} ms after fault #{} {} began ({}; {})",
                ms(last.saturating_sub(from)),
                f.index,
                f.label,
                f.proof,
                match timing.pending_after_ms {
                    Some(p) => format!("pending after {p} ms"),
                    None => "never even pending".into(),
                }
            ),
            timing,
        );
    };
    timing.fired_after_ms = Some(ms(fired_at - from));
    if fired_at - from > deadline_us {
        return (
            Outcome::Fail,
            format!(
                "`{alert}` fired {} ms after fault #{} {} began, later than the {} ms allowed",
                ms(fired_at - from),
                f.index,
                f.label,
                ms(deadline_us)
            ),
            timing,
        );
    }
    let mut fired_line = format!(
        "fired {} ms after fault #{} {} began ({})",
        ms(fired_at - from),
        f.index,
        f.label,
        f.proof
    );
    match judge_delivery(h, alert, "firing", fired_at, from, deadline_us) {
        None => {}
        Some(Ok(at)) => {
            timing.delivered_after_ms = Some(ms(at.saturating_sub(from)));
            fired_line.push_str(&format!(
                "; delivered to the webhook {} ms after the fault began",
                ms(at.saturating_sub(from))
            ));
        }
        Some(Err((outcome, why))) => return (outcome, format!("{fired_line}; {why}"), timing),
    }
    let Some(end) = condition_end else {
        return (Outcome::Pass, fired_line, timing);
    };
    let since = end.max(fired_at);
    let resolved = answered(h).find(|s| s.at >= since && !firing(s, alert)).map(|s| s.at);
    match resolved {
        Some(r) if r - end <= deadline_us => {
            timing.resolved_after_ms = Some(ms(r - end));
            let resolved_line = format!(
                "{fired_line}; resolved {} ms after the condition ended at {}",
                ms(r - end),
                rel(end)
            );
            match judge_delivery(h, alert, "resolved", r, end, deadline_us) {
                None => (Outcome::Pass, resolved_line, timing),
                Some(Ok(at)) => (
                    Outcome::Pass,
                    format!("{resolved_line} (the webhook told {} ms later)", ms(at.saturating_sub(r))),
                    timing,
                ),
                Some(Err((outcome, why))) => (outcome, format!("{resolved_line}; {why}"), timing),
            }
        }
        Some(r) => {
            timing.resolved_after_ms = Some(ms(r - end));
            (
                Outcome::Fail,
                format!(
                    "{fired_line}; resolved only {} ms after the condition ended (allowed: {} ms)",
                    ms(r - end),
                    ms(deadline_us)
                ),
                timing,
            )
        }
        None => {
            let last = answered(h).last().map(|s| s.at).unwrap_or(end);
            let outcome = if last.saturating_sub(end) < deadline_us {
                Outcome::Inconclusive
            } else {
                Outcome::Fail
            };
            (
                outcome,
                format!(
                    "{fired_line}; still firing {} ms after the condition ended at {}",
                    ms(last.saturating_sub(end)),
                    rel(end)
                ),
                timing,
            )
        }
    }
}

/// The alert half of a requirement the standard defines with its alert
/// (CW-FLOOD: AL-QUEUE fires and resolves; NX-502: AL-NGX-5XX fires): the
/// alert declared for `alert_id` fires within the deadline of `f` starting,
/// and resolves within it of `end` (the condition's end the caller measured;
/// `None`: the fault's own). A stack without the alert fails this half.
pub fn alert_half(alert_id: &str, h: &History, deadline_ms: u64, f: &FaultRecord, end: Option<Micros>) -> (Outcome, String) {
    let mon = &h.monitoring;
    let condition = alert_rules::standard_condition(alert_id).unwrap_or("its condition");
    let Some(declared) = &mon.declared else {
        return (
            Outcome::Fail,
            format!("{alert_id} ({condition}) cannot fire: the stack has no monitoring ([monitoring] is not declared)"),
        );
    };
    let Some(decl) = declared.get(alert_id) else {
        return (
            Outcome::Fail,
            format!("{alert_id} ({condition}) cannot fire: the stack's monitoring declares no alert for it"),
        );
    };
    if let Err((outcome, why)) = super::alerts::monitoring_usable(mon, &decl.alert, alert_id) {
        return (outcome, format!("{alert_id}: {why}"));
    }
    let end = end.or_else(|| condition_end(h, f));
    let (outcome, why, _) = judge_provocation_until(h, &decl.alert, f, deadline_ms * 1000, end);
    (outcome, format!("{alert_id}: {why}"))
}

/// Every provocation's timing for `id`, for the report's time-to-fire table.
pub fn timings(h: &History, id: &str, deadline_ms: u64) -> Vec<Timing> {
    let Some(alert) = h.monitoring.declared.as_ref().and_then(|d| d.get(id)).map(|d| d.alert.clone()) else {
        return Vec::new();
    };
    h.faults
        .iter()
        .filter(|f| f.provokes.iter().any(|p| p == id))
        .map(|f| judge_provocation(h, &alert, f, deadline_ms * 1000).2)
        .collect()
}

/// The static reading of the declared rule(s): `Err` is the verdict to give.
fn read_declared_rule(id: &str, alert: &str, h: &History, max_for_s: f64) -> Result<String, (Outcome, String)> {
    let defs: Vec<_> = h.monitoring.rule_defs.iter().filter(|r| r.name == alert).collect();
    if defs.is_empty() {
        return Err((
            Outcome::Inconclusive,
            format!("the monitoring did not report the expression of `{alert}`"),
        ));
    }
    let scale = if h.monitoring.time_scale > 0.0 {
        h.monitoring.time_scale
    } else {
        1.0
    };
    let readings: Vec<_> = defs
        .iter()
        .map(|d| {
            let rule = LoadedRule {
                name: d.name.clone(),
                expr: d.expr.clone(),
                for_s: d.for_s,
            };
            alert_rules::read_rule(id, &rule, scale, max_for_s)
        })
        .collect();
    if let Some(ok) = readings.iter().find(|r| matches!(r.outcome, RuleOutcome::Conforms)) {
        return Ok(format!("rule `{alert}`: `{}` (for: {} s): {}", ok.expr, ok.for_s, ok.explanation));
    }
    let worst = readings
        .iter()
        .find(|r| matches!(r.outcome, RuleOutcome::Differs))
        .unwrap_or(&readings[0]);
    let outcome = match worst.outcome {
        RuleOutcome::Differs => Outcome::Fail,
        _ => Outcome::Inconclusive,
    };
    Err((
        outcome,
        format!("rule `{alert}`: `{}` (for: {} s): {}", worst.expr, worst.for_s, worst.explanation),
    ))
}

pub fn judge(id: &str, input: &CheckInput<'_>) -> Verdict {
    let h = input.history;
    let mon = &h.monitoring;
    let deadline_ms = input.settings.alert_deadline_ms;
    let condition = alert_rules::standard_condition(id).unwrap_or("its condition");
    let expected = format!(
        "the stack's alert for {id} ({condition}) has the standard's threshold, fires within {deadline_ms} ms of its condition starting, \
         resolves within {deadline_ms} ms of it ending, and never fires without it"
    );
    let verdict = |outcome, measured: String| Verdict::new(id, outcome, measured, expected.clone());
    let Some(declared) = &mon.declared else {
        // Missing monitoring fails where the scenario put this alert to the
        // test: a fault meant to provoke it, or a calm run with load.
        let provoked = h.faults.iter().any(|f| f.provokes.iter().any(|p| p == id));
        let calm = h.faults.is_empty() && !h.requests.is_empty();
        if !provoked && !calm {
            return verdict(
                Outcome::Inconclusive,
                format!(
                    "the stack has no monitoring ([monitoring] is not declared), and this scenario did not provoke {id} \
                     (no fault has `alerts = [\"{id}\"]`) nor run calm"
                ),
            );
        }
        return verdict(
            Outcome::Fail,
            format!(
                "the stack has no monitoring ([monitoring] is not declared): nothing raises an alert for {condition}; \
                 declare [monitoring] service/port and [monitoring.alerts] {id} = {{ alert = \"...\" }} if it has one"
            ),
        );
    };
    let Some(decl) = declared.get(id) else {
        let others: Vec<String> = declared.iter().map(|(i, d)| format!("{i}: {}", d.alert)).collect();
        return verdict(
            Outcome::Fail,
            format!(
                "the stack's monitoring declares no alert for {id} (it declares: {}): nothing raises one for {condition}",
                if others.is_empty() { "none".into() } else { others.join(", ") }
            ),
        );
    };
    let alert = decl.alert.as_str();
    if let Err((outcome, why)) = super::alerts::monitoring_usable(mon, alert, id) {
        return verdict(outcome, why);
    }
    // A `for:` longer than the deadline leaves no time for scraping and evaluation.
    let max_for_s = deadline_ms as f64 / 1000.0;
    let rule_line = match read_declared_rule(id, alert, h, max_for_s) {
        Ok(line) => line,
        Err((outcome, why)) => return verdict(outcome, why),
    };
    let origin = h.load_window.map(|w| w.0).unwrap_or(0);
    let first_fault = h.faults.iter().map(|f| f.injected_at).min();
    // Before the monitoring's first scrape of every target nothing could fire.
    let calm: Vec<&AlertSample> = answered(h)
        .filter(|s| first_fault.is_none_or(|t| s.at < t))
        .filter(|s| h.monitoring.scraped_at.is_some_and(|t| s.at >= t))
        .collect();
    if let Some(s) = calm.iter().find(|s| firing(s, alert)) {
        return verdict(
            Outcome::Fail,
            format!(
                "`{alert}` fired at {} with no fault injected yet: a false alarm (its condition, {condition}, did not hold)",
                super::rel(s.at, origin)
            ),
        )
        .with_evidence(rule_line);
    }
    if let Some(n) = h
        .monitoring
        .notifications
        .iter()
        .find(|n| n.alert == alert && n.status == "firing" && first_fault.is_none_or(|t| n.at < t))
    {
        return verdict(
            Outcome::Fail,
            format!(
                "the webhook was paged with `{alert}` firing at {} (receiver {}) with no fault injected yet: a false alarm",
                super::rel(n.at, origin),
                n.receiver
            ),
        )
        .with_evidence(rule_line);
    }
    let provocations: Vec<&FaultRecord> = h.faults.iter().filter(|f| f.provokes.iter().any(|p| p == id)).collect();
    if provocations.is_empty() {
        let calm_s = match (calm.first(), calm.last()) {
            (Some(a), Some(b)) => (b.at - a.at) as f64 / 1e6,
            _ => 0.0,
        };
        let silent = format!("`{alert}` was silent for {calm_s:.0} s of steady load with no fault");
        return if first_fault.is_none() && calm_s >= CALM_MIN_S {
            verdict(Outcome::Pass, format!("{silent}; {rule_line}"))
        } else {
            verdict(
                Outcome::Inconclusive,
                format!(
                    "no fault of this scenario provokes {id} (`alerts = [\"{id}\"]`) and the calm stretch ({calm_s:.0} s) is shorter than {CALM_MIN_S} s or ends in a fault: nothing shows it fires or stays silent"
                ),
            )
            .with_evidence(rule_line)
        };
    }
    let parts: Vec<(Outcome, String, Timing)> = provocations
        .iter()
        .map(|f| judge_provocation(h, alert, f, deadline_ms * 1000))
        .collect();
    let worst = parts.iter().map(|p| p.0).max().unwrap_or(Outcome::Inconclusive);
    let measured = parts.iter().find(|p| p.0 == worst).map(|p| p.1.clone()).unwrap_or_default();
    verdict(worst, measured)
        .with_evidence(rule_line)
        .with_evidences(parts.iter().map(|p| format!("{}: {}", p.0, p.1)))
}

/// The section-5 IDs this module judges (every AL-* but AL-CERT).
pub const ALERT_IDS: &[&str] = &[
    "AL-ERR",
    "AL-P95",
    "AL-CPU",
    "AL-MEM",
    "AL-TASK-TIME",
    "AL-TASK-FAIL",
    "AL-QUEUE",
    "AL-WORKER",
    "AL-NGX-5XX",
    "AL-NGX-429",
    "AL-RDS-MEM",
    "AL-RDS-CONN",
    "AL-RDS-SLOW",
    "AL-RDS-PERSIST",
];

macro_rules! alert_checks {
    ($($name:ident => $id:literal),* $(,)?) => {
        $(pub fn $name(input: &CheckInput<'_>) -> Verdict { judge($id, input) })*
    };
}

alert_checks! {
    al_err => "AL-ERR",
    al_p95 => "AL-P95",
    al_cpu => "AL-CPU",
    al_mem => "AL-MEM",
    al_task_time => "AL-TASK-TIME",
    al_task_fail => "AL-TASK-FAIL",
    al_queue => "AL-QUEUE",
    al_worker => "AL-WORKER",
    al_ngx_5xx => "AL-NGX-5XX",
    al_ngx_429 => "AL-NGX-429",
    al_rds_mem => "AL-RDS-MEM",
    al_rds_conn => "AL-RDS-CONN",
    al_rds_slow => "AL-RDS-SLOW",
    al_rds_persist => "AL-RDS-PERSIST",
}
