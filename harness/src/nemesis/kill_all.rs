//! Every service of a role killed at once (all upstreams of the proxy dead),
//! kept down, then started again.

use super::Nemesis;
use crate::history::{FaultDetail, FaultRecord};
use crate::stack::EnvOverrides;
use nix::sys::signal::Signal;
use std::time::Duration;

pub async fn kill_all(n: &Nemesis<'_>, index: usize, role: &str, sig: Signal, down: Duration) -> FaultRecord {
    let services: Vec<String> = n.manifest.services.iter().filter(|s| s.role.as_str() == role || s.name == role).map(|s| s.name.clone()).collect();
    let label = format!("every {role} down for {:.1} s ({})", down.as_secs_f64(), sig.as_str());
    let mut detail = FaultDetail::AllDown { services: services.clone(), down_at: None, restarted_at: None };
    if services.is_empty() {
        return n.not_landed(index, label, role, format!("no service with role `{role}`"), detail);
    }
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
            Ok(_) => n.backend.wait_ready(s, Duration::from_secs_f64(n.manifest.stack.ready_timeout_s)).await.is_ok(),
            Err(_) => false,
        };
        if !ok {
            proof.push(format!("{s} not ready again"));
        }
    }
    detail = FaultDetail::AllDown { services, down_at: Some(down_at), restarted_at: Some(restarted_at) };
    FaultRecord {
        index,
        label,
        service: role.to_string(),
        injected_at,
        healed_at: Some(n.now()),
        landed: all_down,
        proof: proof.join("; "),
        detail,
    }
}
