//! Every service of a role killed at once (all upstreams of the proxy dead),
//! kept down, then started again.

use super::Nemesis;
use crate::history::{FaultDetail, FaultRecord};
use crate::stack::EnvOverrides;
use nix::sys::signal::Signal;
use std::time::Duration;

pub async fn kill_all(n: &Nemesis<'_>, index: usize, role: &str, sig: Signal, down: Duration) -> FaultRecord {
    let services: Vec<String> = n
        .manifest
        .services
        .iter()
        .filter(|s| s.role.as_str() == role || s.name == role)
        .map(|s| s.name.clone())
        .collect();
    let label = format!("every {role} down for {:.1} s ({})", down.as_secs_f64(), sig.as_str());
    let mut detail = FaultDetail::AllDown {
        services: services.clone(),
        down_at: None,
        restarted_at: None,
        access_log_502: None,
    };
    if services.is_empty() {
        return n.not_landed(index, label, role, format!("no service with role `{role}`"), detail);
    }
    let log = access_log(n);
    let log_from = log.as_ref().and_then(|(p, _)| std::fs::metadata(p).ok()).map(|m| m.len());
    let injected_at = n.now();
    let mut proof = Vec::new();
    let mut all_down = true;
    for s in &services {
        match n.backend.signal(s, sig).await {
            Ok(pid) => proof.push(format!("{} to {s} (pid {pid})", sig.as_str())),
            Err(e) => {
                all_down = false;
                proof.push(format!("{s}: {e}"));
            }
        }
    }
    for s in &services {
        match n.backend.wait_exit(s, n.manifest.grace()).await {
            Some(exit) => proof.push(format!("{s} {}", exit.describe())),
            None => {
                all_down = false;
                proof.push(format!("{s} did not exit"));
            }
        }
    }
    let down_at = n.now();
    tokio::time::sleep(down).await;
    let restarted_at = n.now();
    for s in &services {
        let ok = match n.backend.start(s, &EnvOverrides::default()).await {
            Ok(_) => n
                .backend
                .wait_ready(s, Duration::from_secs_f64(n.manifest.stack.ready_timeout_s))
                .await
                .is_ok(),
            Err(_) => false,
        };
        if !ok {
            proof.push(format!("{s} not ready again"));
        }
    }
    let access_log_502 = match log.zip(log_from) {
        Some(((path, format), from)) => match format {
            Ok(format) => {
                let lines = crate::observe::access_log::lines_since(&path, from).unwrap_or_default();
                let (hits, unparsed) = crate::observe::access_log::count_status(&format, &lines, "502");
                proof.push(format!(
                    "access log (log_format {}): {hits} × 502 meanwhile{}",
                    format.name,
                    if unparsed > 0 {
                        format!(", {unparsed} lines not in that format")
                    } else {
                        String::new()
                    }
                ));
                (unparsed < lines.len() as u64 || lines.is_empty()).then_some(hits)
            }
            Err(why) => {
                proof.push(format!("access log unreadable: {why}"));
                None
            }
        },
        None => None,
    };
    detail = FaultDetail::AllDown {
        services,
        down_at: Some(down_at),
        restarted_at: Some(restarted_at),
        access_log_502,
    };
    FaultRecord {
        index,
        label,
        service: role.to_string(),
        injected_at,
        healed_at: Some(n.now()),
        provokes: Vec::new(),
        landed: all_down,
        proof: proof.join("; "),
        detail,
    }
}

/// The access log the proxy declares, in its service directory, and its
/// format as the proxy's rendered configuration declares it.
fn access_log(n: &Nemesis<'_>) -> Option<(std::path::PathBuf, Result<crate::observe::access_log::LogFormat, String>)> {
    let svc = n
        .manifest
        .services
        .iter()
        .find(|s| s.proxy.as_ref().is_some_and(|p| p.access_log.is_some()))?;
    let proxy = svc.proxy.as_ref()?;
    let file = proxy.access_log.as_ref()?;
    let dir = n.plan.run_dir.join(&svc.name);
    let format = match &proxy.config_file {
        Some(config) => {
            let config = dir.join(config);
            std::fs::read_to_string(&config)
                .map_err(|e| format!("{}: {e}", config.display()))
                .and_then(|text| crate::observe::access_log::format_for(&text, file))
        }
        // No configuration to read the format from: nginx's default.
        None => crate::observe::access_log::LogFormat::compile("combined", crate::observe::access_log::COMBINED),
    };
    Some((dir.join(file), format))
}
