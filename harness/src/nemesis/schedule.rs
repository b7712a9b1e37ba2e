//! Runs the scenario's faults in order, each at its time or condition.

use super::Nemesis;
use super::config::{bad_config, env_change, reload_config};
use super::outage::{outage, pause};
use super::release::release_step;
use super::signal::{before_signal, signal_fault};
use crate::deploy::Step;
use crate::history::{FaultDetail, FaultRecord};
use crate::manifest::SignalName;
use crate::scenario::{FaultAction, FaultSpec, STOP_SIGNAL, action_name};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// Inject every fault of the schedule, recording each in the history.
pub async fn run_schedule(n: &Nemesis<'_>, faults: &[FaultSpec]) {
    for (index, spec) in faults.iter().enumerate() {
        if spec.after_s > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(spec.after_s)).await;
        }
        (n.announce)(format!("fault #{index}: {} on {}", action_name(spec.action), spec.target));
        let service = n.manifest.resolve(&spec.target).map(|s| s.name.clone()).unwrap_or_default();
        let log_start = log_size(n, &service);
        let records = run_one(n, index, spec).await;
        if let (Some(first), Some(excerpt)) = (records.first(), log_since(n, &service, log_start)) {
            n.recorder
                .log_excerpt(format!("fault #{index}: {} ({service})", first.label), excerpt);
        }
        for mut record in records {
            record.provokes = spec.alerts.clone();
            (n.announce)(format!(
                "fault #{} {}: {} ({})",
                record.index,
                record.label,
                if record.landed { "landed" } else { "NOT landed" },
                record.proof
            ));
            n.recorder.fault(record);
        }
    }
}

/// How long a Redis fault holds its condition.
fn hold(spec: &FaultSpec) -> Duration {
    Duration::from_secs_f64(spec.duration_s.unwrap_or(8.0))
}

fn log_size(n: &Nemesis<'_>, service: &str) -> u64 {
    n.backend
        .log_path(service)
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .unwrap_or(0)
}

/// What the service printed since `from` (a byte offset), with a few lines of
/// context before it, capped so a chatty service cannot bloat the report.
fn log_since(n: &Nemesis<'_>, service: &str, from: u64) -> Option<String> {
    const CAP: usize = 6_000;
    let text = std::fs::read(n.backend.log_path(service)?).ok()?;
    let from = (from as usize).min(text.len());
    let before = String::from_utf8_lossy(&text[..from]);
    let context: Vec<&str> = before.lines().rev().take(5).collect();
    let during = String::from_utf8_lossy(&text[from..]);
    let mut out: String = context.into_iter().rev().map(|l| format!("{l}\n")).collect();
    out.push_str("--- fault injected ---\n");
    if during.len() > CAP {
        out.push_str(&during[..during.floor_char_boundary(CAP / 2)]);
        out.push_str("\n[... cut ...]\n");
        out.push_str(&during[during.ceil_char_boundary(during.len() - CAP / 2)..]);
    } else {
        out.push_str(&during);
    }
    Some(out)
}

async fn run_one(n: &Nemesis<'_>, index: usize, spec: &FaultSpec) -> Vec<FaultRecord> {
    let label = format!("{} on {}", action_name(spec.action), spec.target);
    let Some(svc) = n.manifest.resolve(&spec.target) else {
        let why = format!("the stack has no service or role `{}`", spec.target);
        return vec![n.not_landed(index, label, &spec.target, why, FaultDetail::Pause { resumed_at: None })];
    };
    let signal = match spec.signal.as_deref() {
        Some(STOP_SIGNAL) => svc.stop_signal,
        named => named.and_then(Signal::from_str_lenient).unwrap_or(Signal::SIGTERM),
    };
    let before_signal = matches!(spec.action, FaultAction::Signal).then(|| before_signal(n, &svc.name, signal));
    if let Some(cond) = spec.when {
        let deadline = Instant::now() + Duration::from_secs_f64(spec.when_timeout_s);
        let mut highest = 0;
        let mut seen_short = false;
        let mut holding_since: Option<Instant> = None;
        // A condition already holding when the wait begins (a busy machine
        // can start it late) may be counting requests about to end: the
        // fault waits for the condition to rise from not holding, which puts
        // it `for_ms` into a fresh wave, unless the condition holds on
        // without a break (load without waves), for a second more than `for_ms`.
        let steady = Duration::from_millis(cond.for_ms + 1000);
        loop {
            // Requests that are this old have reached the service: counting
            // only them keeps a wave of requests that began a moment ago (all
            // users restarting together) from firing the fault too early.
            let settled = n.in_flight_for(cond.for_ms);
            highest = highest.max(settled);
            if settled >= cond.in_flight_at_least {
                let since = *holding_since.get_or_insert_with(Instant::now);
                if seen_short || since.elapsed() >= steady {
                    break;
                }
            } else {
                seen_short = true;
                holding_since = None;
            }
            if Instant::now() >= deadline {
                let why = format!(
                    "condition never held: wanted ≥ {} requests in flight for at least {} ms each, saw at most {highest} in {:.1} s",
                    cond.in_flight_at_least, cond.for_ms, spec.when_timeout_s
                );
                return vec![n.not_landed(index, label, &svc.name, why, FaultDetail::Pause { resumed_at: None })];
            }
            // Poll fast: the in-flight count moves with every request.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let down = Duration::from_secs_f64(spec.down_s.unwrap_or(1.0));
    match spec.action {
        FaultAction::Signal => vec![signal_fault(n, index, &svc.name, signal, before_signal.flatten()).await],
        FaultAction::Outage => vec![outage(n, index, &svc.name, signal, down).await],
        FaultAction::Pause => vec![pause(n, index, &svc.name, down).await],
        FaultAction::BadConfig => bad_config(n, index, svc, spec.defect.as_deref().unwrap_or("missing")).await,
        FaultAction::EnvChange => {
            let value = spec.value.clone().unwrap_or_else(|| format!("cf-env-{}", n.seed));
            vec![env_change(n, index, svc, &value).await]
        }
        FaultAction::ReloadConfig => {
            let value = spec.value.clone().unwrap_or_else(|| format!("reloaded-{}", n.seed));
            vec![reload_config(n, index, svc, &value).await]
        }
        FaultAction::Burst => {
            let duration = Duration::from_secs_f64(spec.duration_s.unwrap_or(2.0));
            let rate = super::burst::Rate::of(spec.rate_per_s, spec.times_limit);
            vec![super::burst::burst(n, index, &spec.target, rate, duration).await]
        }
        FaultAction::BackendTraffic => {
            let window = Duration::from_secs_f64(spec.duration_s.unwrap_or(2.0));
            vec![super::proxy_probe::backend_traffic(n, index, &spec.target, window).await]
        }
        FaultAction::GzipProbe => vec![super::proxy_probe::gzip_probe(n, index, &spec.target).await],
        FaultAction::CacheProbe => vec![super::proxy_probe::cache_probe(n, index, &spec.target).await],
        FaultAction::KillAll => {
            let sig = spec.signal.as_deref().and_then(Signal::from_str_lenient).unwrap_or(Signal::SIGKILL);
            vec![super::kill_all::kill_all(n, index, &spec.target, sig, down).await]
        }
        FaultAction::CertSwap => {
            let cert = spec.value.clone().unwrap_or_else(|| "renewed".into());
            vec![super::cert_swap::cert_swap(n, index, &spec.target, &cert).await]
        }
        FaultAction::BrokenReload => vec![super::broken_reload::broken_reload(n, index, &spec.target).await],
        FaultAction::Flood => {
            vec![
                super::flood::flood(
                    n,
                    index,
                    spec.count.unwrap_or(300),
                    spec.task_ms.unwrap_or(20),
                    spec.failing,
                    spec.order,
                )
                .await,
            ]
        }
        FaultAction::Deploy => vec![release_step(n, index, Step::Deploy, spec).await],
        FaultAction::Switch => vec![release_step(n, index, Step::Switch, spec).await],
        FaultAction::Canary => vec![release_step(n, index, Step::Canary, spec).await],
        FaultAction::Rollback => vec![release_step(n, index, Step::Rollback, spec).await],
        FaultAction::Releases => vec![release_step(n, index, Step::Releases, spec).await],
        FaultAction::Traffic => {
            let ask = super::traffic::TrafficAsk {
                endpoint: spec.endpoint.clone().unwrap_or_default(),
                concurrency: spec.concurrency.unwrap_or(2),
                duration: Duration::from_secs_f64(spec.duration_s.unwrap_or(10.0)),
                ms: spec.ms.unwrap_or(2500),
                mb: spec.mb.unwrap_or(220),
            };
            vec![super::traffic::traffic(n, index, &spec.target, &ask).await]
        }
        FaultAction::RedisFill => vec![super::redis_stress::fill(n, index, hold(spec)).await],
        FaultAction::RedisConnections => {
            vec![super::redis_stress::connections(n, index, spec.count.unwrap_or(1050), hold(spec)).await]
        }
        FaultAction::RedisSlow => vec![super::redis_stress::slow(n, index, spec.ms.unwrap_or(300)).await],
        FaultAction::RedisSaveFail => vec![super::redis_stress::save_fail(n, index, hold(spec)).await],
    }
}
