//! Checkers: pure functions from a history to verdicts, one module per spec section.

/// Requirements the standard defines with an alert that must fire: (requirement, its alert).
pub const ALERT_HALVES: &[(&str, &str)] = &[("CW-FLOOD", "AL-QUEUE"), ("NX-502", "AL-NGX-5XX")];

/// Judge a requirement's alert half (see `ALERT_HALVES`) and fold it into
/// its verdict: the worse outcome wins, and its reason leads.
pub(crate) fn with_alert_half(
    v: Verdict,
    alert_id: &str,
    input: &CheckInput<'_>,
    fault: &crate::history::FaultRecord,
    condition_end: Option<crate::history::Micros>,
) -> Verdict {
    let (outcome, why) = alert_fire::alert_half(alert_id, input.history, input.settings.alert_deadline_ms, fault, condition_end);
    let measured = if outcome > v.outcome {
        format!("{why}; {}", v.measured)
    } else {
        format!("{}; {why}", v.measured)
    };
    Verdict {
        outcome: v.outcome.max(outcome),
        measured,
        ..v
    }
}

pub mod alert_findings;
pub mod alert_fire;
pub mod alert_rules;
pub mod alerts;
pub mod baseline;
pub mod config;
pub mod deploy;
pub mod health;
pub mod nginx;
pub mod redis;
pub mod shutdown;
pub mod tls;
pub mod verdict;
pub mod worker;
pub mod worker_profile;

use crate::history::{FaultDetail, FaultRecord, History, Micros};
use crate::scenario::Settings;
use verdict::{Outcome, Verdict};

/// What a checker reads: the history and the readings it judges against.
pub struct CheckInput<'a> {
    pub history: &'a History,
    pub settings: &'a Settings,
    /// The service whose health endpoints were probed (the app).
    pub probed_service: &'a str,
    /// The hard dependencies of the probed service (their outages test readiness).
    pub dependency_services: Vec<String>,
    /// Service name -> role, so a health body may name a dependency either way.
    pub roles: std::collections::BTreeMap<String, String>,
}

type CheckFn = fn(&CheckInput<'_>) -> Verdict;

/// Requirement IDs with a checker in this version, and the checker.
pub const CHECKS: &[(&str, CheckFn)] = &[
    ("HC-READY", health::hc_ready),
    ("HC-LIVE", health::hc_live),
    ("HC-AGG", health::hc_agg),
    ("GS-SIGTERM", shutdown::gs_sigterm),
    ("GS-DRAIN", shutdown::gs_drain),
    ("GS-CLEANUP", shutdown::gs_cleanup),
    ("CF-ENV", config::cf_env),
    ("CF-VALIDATE", config::cf_validate),
    ("CF-HOT", config::cf_hot),
    ("NX-RATE", nginx::nx_rate),
    ("NX-502", nginx::nx_502),
    ("NX-FAILOVER", nginx::nx_failover),
    ("NX-KEEPALIVE", nginx::nx_keepalive),
    ("NX-GZIP", nginx::nx_gzip),
    ("NX-CACHE", nginx::nx_cache),
    ("NX-RELOAD", nginx::nx_reload),
    ("TLS-EXPIRY", tls::tls_expiry),
    ("AL-CERT", alerts::al_cert),
    ("AL-ERR", alert_fire::al_err),
    ("AL-P95", alert_fire::al_p95),
    ("AL-CPU", alert_fire::al_cpu),
    ("AL-MEM", alert_fire::al_mem),
    ("AL-TASK-TIME", alert_fire::al_task_time),
    ("AL-TASK-FAIL", alert_fire::al_task_fail),
    ("AL-QUEUE", alert_fire::al_queue),
    ("AL-WORKER", alert_fire::al_worker),
    ("AL-NGX-5XX", alert_fire::al_ngx_5xx),
    ("AL-NGX-429", alert_fire::al_ngx_429),
    ("AL-RDS-MEM", alert_fire::al_rds_mem),
    ("AL-RDS-CONN", alert_fire::al_rds_conn),
    ("AL-RDS-SLOW", alert_fire::al_rds_slow),
    ("AL-RDS-PERSIST", alert_fire::al_rds_persist),
    ("RD-AOF", redis::rd_aof),
    ("RD-RDB", redis::rd_rdb),
    ("RD-MAXMEM", redis::rd_maxmem),
    ("RD-AUTH", redis::rd_auth),
    ("RD-RECOVER", redis::rd_recover),
    ("CW-FLOOD", worker::cw_flood),
    ("CW-CONC", worker::cw_conc),
    ("CW-PRIO", worker::cw_prio),
    ("CW-RECONNECT", worker::cw_reconnect),
    ("GS-WORKER", worker::gs_worker),
    ("BG-ZERO", deploy::bg_zero),
    ("BG-SHIFT", deploy::bg_shift),
    ("BG-BACK", deploy::bg_back),
    ("CN-SMALL", deploy::cn_small),
    ("CN-WATCH", deploy::cn_watch),
    ("CN-WIDEN", deploy::cn_widen),
    ("CN-ABORT", deploy::cn_abort),
    ("RB-ONE", deploy::rb_one),
    ("RB-KEEP5", deploy::rb_keep5),
    ("RB-DATA", deploy::rb_data),
];

pub fn is_implemented(id: &str) -> bool {
    CHECKS.iter().any(|(known, _)| *known == id)
}

/// Judge one requirement. A checker that panics yields inconclusive, never a
/// pass, and never takes the run down with it (Jepsen's check-safe).
pub fn judge(id: &str, input: &CheckInput<'_>) -> Verdict {
    let Some((_, check)) = CHECKS.iter().find(|(known, _)| *known == id) else {
        return Verdict::new(
            id,
            Outcome::Inconclusive,
            "no checker for this requirement in this version",
            "a checker",
        );
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(input))) {
        Ok(v) => baseline::apply(id, input.history, lacking(id, input.history, v)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Verdict::new(id, Outcome::Inconclusive, format!("the checker crashed: {msg}"), "a verdict")
        }
    }
}

/// A requirement whose capability the stack lacks fails, saying what is
/// missing, where the checker could only say it saw nothing.
fn lacking(id: &str, h: &History, v: Verdict) -> Verdict {
    let Some(m) = h.missing.iter().find(|m| m.requirements.iter().any(|r| r == id)) else {
        return v;
    };
    if v.outcome != Outcome::Inconclusive {
        return v;
    }
    Verdict::new(
        id,
        Outcome::Fail,
        format!(
            "the stack lacks {}, which the standard requires; if it has it, declare it in the manifest: `{}`",
            m.what, m.field
        ),
        v.expected.clone(),
    )
    .with_evidence(format!("what the check saw: {}", v.measured))
}

/// TERM-like signal faults sent to `service`.
pub(crate) fn sigterms<'a>(h: &'a History, service: &'a str) -> impl Iterator<Item = &'a FaultRecord> + 'a {
    h.faults
        .iter()
        .filter(move |f| f.service == service && matches!(&f.detail, FaultDetail::Signal { signal, .. } if signal == "SIGTERM"))
}

/// Outages of any of the given services: (fault, down_at, back_ready_at).
pub(crate) fn outages<'a>(
    h: &'a History,
    services: &'a [String],
) -> impl Iterator<Item = (&'a FaultRecord, Option<Micros>, Option<Micros>)> + 'a {
    h.faults
        .iter()
        .filter(move |f| services.contains(&f.service))
        .filter_map(|f| match &f.detail {
            FaultDetail::Outage {
                down_at,
                ready_at,
                restarted_at,
                ..
            } => Some((f, *down_at, ready_at.or(*restarted_at))),
            _ => None,
        })
}

/// The verdict when the fault that tests a requirement never took effect.
pub(crate) fn not_landed(id: &str, f: &FaultRecord) -> Verdict {
    Verdict::new(
        id,
        Outcome::Inconclusive,
        format!("the fault did not take effect: {}", f.proof),
        "a fault proven to have landed",
    )
    .with_evidence(format!("fault #{} {}", f.index, f.label))
}

pub(crate) fn ms(us: Micros) -> u64 {
    us / 1000
}

/// "+1234 ms" relative to a moment.
pub(crate) fn rel(at: Micros, origin: Micros) -> String {
    if at >= origin {
        format!("+{} ms", (at - origin) / 1000)
    } else {
        format!("-{} ms", (origin - at) / 1000)
    }
}
