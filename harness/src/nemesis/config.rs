//! Configuration faults: bad config at startup, a changed env var, a reload.

use super::Nemesis;
use crate::history::{FaultDetail, FaultRecord};
use crate::manifest::{ObservedVia, Service, SignalName};
use crate::observe::http::{get, probe_client};
use crate::stack::EnvOverrides;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const START_MARKER: &str = "--- chaosgate: starting";

/// The service's output since its latest start.
fn output_since_last_start(n: &Nemesis<'_>, service: &str) -> String {
    let log = n.backend.log_tail(service, 400);
    match log.rfind(START_MARKER) {
        Some(i) => log[i..].lines().skip(1).collect::<Vec<_>>().join("\n"),
        None => log,
    }
}

fn health_addr_and_path(n: &Nemesis<'_>, svc: &Service) -> Option<(std::net::SocketAddr, String)> {
    let health = svc.health.as_ref()?;
    let addr = n.backend.endpoint(&svc.name, &health.port)?;
    let path = health.live.clone().or(health.ready.clone()).unwrap_or_else(|| "/".into());
    Some((addr, path))
}

/// Restart `svc` once per declared variable with that variable missing (or
/// malformed) and watch: it must exit non-zero, soon, naming the variable,
/// having served nothing. The service is restored after each.
pub async fn bad_config(n: &Nemesis<'_>, first_index: usize, svc: &Service, defect: &str) -> Vec<FaultRecord> {
    let decl = svc.config.as_ref();
    let cases: Vec<(String, Option<String>)> = match defect {
        "missing" => decl
            .map(|c| c.required_env.iter().map(|v| (v.clone(), None)).collect())
            .unwrap_or_default(),
        _ => decl
            .map(|c| c.malformed_env.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect())
            .unwrap_or_default(),
    };
    let deadline = Duration::from_secs_f64(decl.map(|c| c.validate_deadline_s).unwrap_or(5.0));
    if cases.is_empty() {
        let label = format!("{defect} config for {}", svc.name);
        let detail = bad_detail(defect, "", None, deadline);
        // Without required variables there is nothing to validate; without a
        // declared malformed value the harness has no bad value to try.
        return vec![if defect == "missing" {
            n.lacks(
                first_index,
                label,
                &svc.name,
                &["CF-VALIDATE"],
                "configuration validated at startup (required variables)",
                "[services.<app>.config] required_env = [...]",
                detail,
            )
        } else {
            let why = format!("service `{}` declares no malformed value to try (config.malformed_env)", svc.name);
            n.not_landed(first_index, label, &svc.name, why, detail)
        }];
    }
    let mut records = Vec::new();
    for (variable, value) in cases {
        records.push(one_bad_start(n, first_index, svc, defect, &variable, value, deadline).await);
    }
    records
}

fn bad_detail(defect: &str, variable: &str, value: Option<String>, deadline: Duration) -> FaultDetail {
    FaultDetail::BadConfigStart {
        defect: defect.to_string(),
        variable: variable.to_string(),
        value,
        exit: None,
        exited_after_ms: None,
        deadline_ms: deadline.as_millis() as u64,
        served: false,
        message_names_variable: false,
        log_tail: String::new(),
    }
}

async fn one_bad_start(
    n: &Nemesis<'_>,
    index: usize,
    svc: &Service,
    defect: &str,
    variable: &str,
    value: Option<String>,
    deadline: Duration,
) -> FaultRecord {
    let label = match &value {
        Some(v) => format!("{} started with {variable}={v:?}", svc.name),
        None => format!("{} started without {variable}", svc.name),
    };
    let _ = n.backend.stop(&svc.name, n.manifest.grace()).await;
    let mut overrides = EnvOverrides::default();
    match &value {
        Some(v) => {
            overrides.set.insert(variable.to_string(), v.clone());
        }
        None => overrides.remove.push(variable.to_string()),
    }
    let injected_at = n.now();
    let started = Instant::now();
    if let Err(e) = n.backend.start(&svc.name, &overrides).await {
        return n.not_landed(
            index,
            label,
            &svc.name,
            format!("could not start it: {e}"),
            bad_detail(defect, variable, value, deadline),
        );
    }
    let client = probe_client(Duration::from_millis(200));
    let probe = health_addr_and_path(n, svc);
    let mut served = false;
    let mut exit = None;
    while started.elapsed() < deadline {
        if let Some(e) = n.backend.wait_exit(&svc.name, Duration::from_millis(50)).await {
            exit = Some(e);
            break;
        }
        if let Some((addr, path)) = &probe
            && get(&client, *addr, path, None).await.status != 0
        {
            served = true;
        }
    }
    let exited_after_ms = exit.map(|_| started.elapsed().as_millis() as u64);
    if exit.is_none() {
        let _ = n.backend.kill(&svc.name).await;
    }
    let output = output_since_last_start(n, &svc.name);
    let names = output.contains(variable);
    let proof = format!(
        "started with {} {variable}; {}",
        if value.is_some() { "malformed" } else { "no" },
        match (exit, exited_after_ms) {
            (Some(e), Some(ms)) => format!("exited after {ms} ms: {}", e.describe()),
            _ => format!("still running after {} ms: killed", deadline.as_millis()),
        }
    );
    let mut record = FaultRecord {
        index,
        label,
        service: svc.name.clone(),
        injected_at,
        healed_at: None,
        provokes: Vec::new(),
        landed: true,
        proof,
        detail: FaultDetail::BadConfigStart {
            defect: defect.to_string(),
            variable: variable.to_string(),
            value,
            exit,
            exited_after_ms,
            deadline_ms: deadline.as_millis() as u64,
            served,
            message_names_variable: names,
            log_tail: output
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n"),
        },
    };
    n.restore(&svc.name, &mut record).await;
    record
}

/// Restart `svc` with its observable variable changed, and read the effect.
pub async fn env_change(n: &Nemesis<'_>, index: usize, svc: &Service, value: &str) -> FaultRecord {
    let Some(obs) = svc.config.as_ref().and_then(|c| c.env_observable.as_ref()) else {
        let detail = FaultDetail::EnvRestart {
            variable: String::new(),
            value: value.into(),
            ready_at: None,
            observed: vec![],
        };
        return n.lacks(
            index,
            format!("env change on {}", svc.name),
            &svc.name,
            &["CF-ENV"],
            "configuration from environment variables with an observable effect",
            "[services.<app>.config] env_observable = { variable, via = \"version-header\" }",
            detail,
        );
    };
    let label = format!("{} restarted with {}={value:?}", svc.name, obs.variable);
    let _ = n.backend.stop(&svc.name, n.manifest.grace()).await;
    let mut overrides = EnvOverrides::default();
    overrides.set.insert(obs.variable.clone(), value.to_string());
    let injected_at = n.now();
    let mut detail = FaultDetail::EnvRestart {
        variable: obs.variable.clone(),
        value: value.into(),
        ready_at: None,
        observed: vec![],
    };
    let ready = async {
        n.backend.start(&svc.name, &overrides).await.map_err(|e| e.to_string())?;
        n.backend
            .wait_ready(&svc.name, Duration::from_secs_f64(n.manifest.stack.ready_timeout_s))
            .await
            .map_err(|e| e.to_string())
    };
    if let Err(e) = ready.await {
        let record = n.not_landed(
            index,
            label,
            &svc.name,
            format!("did not come up with the changed variable: {e}"),
            detail,
        );
        let _ = n.heal(&svc.name).await;
        return record;
    }
    let ready_at = n.now();
    let header = match obs.via {
        ObservedVia::VersionHeader => n.manifest.stack.version_header.clone(),
    };
    let client = probe_client(Duration::from_millis(1000));
    let mut observed = Vec::new();
    if let (Some(header), Some((addr, path))) = (header.as_deref(), health_addr_and_path(n, svc)) {
        for _ in 0..3 {
            let answer = get(&client, addr, &path, Some(header)).await;
            observed.push(answer.header.unwrap_or_else(|| "(no header)".into()));
        }
    }
    if let FaultDetail::EnvRestart {
        ready_at: r, observed: o, ..
    } = &mut detail
    {
        *r = Some(ready_at);
        *o = observed;
    }
    // Let the load see the changed service for a moment before restoring it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut record = FaultRecord {
        index,
        label,
        service: svc.name.clone(),
        injected_at,
        healed_at: None,
        provokes: Vec::new(),
        landed: true,
        proof: format!(
            "restarted with {}={value:?}; ready again after {} ms",
            obs.variable,
            (ready_at - injected_at) / 1000
        ),
        detail,
    };
    n.restore(&svc.name, &mut record).await;
    record
}

/// Change the declared reloadable setting by the declared means (rewrite the
/// file, send the signal) and watch for the new value, with the PID kept.
pub async fn reload_config(n: &Nemesis<'_>, index: usize, svc: &Service, value: &str) -> FaultRecord {
    let Some(reload) = svc.config.as_ref().and_then(|c| c.reload.as_ref()) else {
        let detail = FaultDetail::ConfigReload {
            setting: String::new(),
            value: value.into(),
            signal: String::new(),
            pid_before: 0,
            pid_after: None,
            observed_at: None,
        };
        return n.lacks(
            index,
            format!("reload on {}", svc.name),
            &svc.name,
            &["CF-HOT"],
            "a setting that can be changed without restarting the service",
            "[services.<app>.config] reload = { file, template, setting, initial, signal, probe }",
            detail,
        );
    };
    let label = format!(
        "{} = {value:?} reloaded by SIG{} on {}",
        reload.setting,
        reload.signal.trim_start_matches("SIG"),
        svc.name
    );
    let mut detail = FaultDetail::ConfigReload {
        setting: reload.setting.clone(),
        value: value.into(),
        signal: reload.signal.clone(),
        pid_before: 0,
        pid_after: None,
        observed_at: None,
    };
    let Some(pid_before) = n.backend.pid(&svc.name) else {
        return n.not_landed(index, label, &svc.name, "service not running".into(), detail);
    };
    let overrides = BTreeMap::from([(reload.setting.clone(), value.to_string())]);
    let template = n.manifest.dir.join(&reload.template);
    let dest = n.plan.service(&svc.name).map(|p| p.dir.join(&reload.file));
    let written = match dest {
        Some(dest) => n
            .plan
            .render_file(&svc.name, &template, &dest, &overrides)
            .map_err(|e| e.to_string()),
        None => Err("no service directory".to_string()),
    };
    if let Err(e) = written {
        return n.not_landed(index, label, &svc.name, format!("could not write {}: {e}", reload.file), detail);
    }
    let sig = Signal::from_str_lenient(&reload.signal).unwrap_or(Signal::SIGHUP);
    let injected_at = n.now();
    if let Err(e) = n.backend.signal(&svc.name, sig).await {
        return n.not_landed(index, label, &svc.name, format!("signal not delivered: {e}"), detail);
    }
    let client = probe_client(Duration::from_millis(500));
    let addr = svc.health.as_ref().and_then(|h| n.backend.endpoint(&svc.name, &h.port));
    let deadline = Instant::now() + Duration::from_millis(n.settings.reload_deadline_ms);
    let mut observed_at = None;
    while let Some(addr) = addr {
        if get(&client, addr, &reload.probe, None).await.body.contains(value) {
            observed_at = Some(n.now());
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid_after = n.backend.pid(&svc.name);
    if let FaultDetail::ConfigReload {
        pid_before: b,
        pid_after: a,
        observed_at: o,
        ..
    } = &mut detail
    {
        *b = pid_before;
        *a = pid_after;
        *o = observed_at;
    }
    FaultRecord {
        index,
        label,
        service: svc.name.clone(),
        injected_at,
        healed_at: None,
        provokes: Vec::new(),
        landed: true,
        proof: format!(
            "wrote {}={value:?} into {}; {} delivered to pid {pid_before}",
            reload.setting,
            reload.file,
            sig.as_str()
        ),
        detail,
    }
}
