//! Outages: a service killed and started again after a while; a service paused.

use super::Nemesis;
use super::signal::wait_for_state;
use crate::history::{FaultDetail, FaultRecord};
use crate::stack::EnvOverrides;
use nix::sys::signal::Signal;
use std::time::Duration;

/// Kill `service` with `sig`, keep it down for `down`, start it again.
pub async fn outage(n: &Nemesis<'_>, index: usize, service: &str, sig: Signal, down: Duration) -> FaultRecord {
    let label = format!("{service} down for {:.1} s ({})", down.as_secs_f64(), sig.as_str());
    let empty = FaultDetail::Outage {
        signal: sig.as_str().to_string(),
        down_at: None,
        restarted_at: None,
        ready_at: None,
    };
    let injected_at = n.now();
    let pid = match n.backend.signal(service, sig).await {
        Ok(pid) => pid,
        Err(e) => return n.not_landed(index, label, service, format!("signal not delivered: {e}"), empty),
    };
    let exit = n.backend.wait_exit(service, n.manifest.grace()).await;
    let Some(exit) = exit else {
        let _ = n.backend.kill(service).await;
        return n.not_landed(
            index,
            label,
            service,
            format!("{} did not stop {service} within the grace period", sig.as_str()),
            empty,
        );
    };
    let down_at = n.exit_time(service, pid, injected_at);
    tokio::time::sleep(down).await;
    let restarted_at = n.now();
    let mut proof = format!("{} to pid {pid}; exit observed: {}", sig.as_str(), exit.describe());
    let ready_at = match n.backend.start(service, &EnvOverrides::default()).await {
        Ok(_) => match n
            .backend
            .wait_ready(service, Duration::from_secs_f64(n.manifest.stack.ready_timeout_s))
            .await
        {
            Ok(_) => Some(n.now()),
            Err(e) => {
                proof.push_str(&format!("; not ready again: {e}"));
                None
            }
        },
        Err(e) => {
            proof.push_str(&format!("; could not start again: {e}"));
            None
        }
    };
    if let (Some(d), Some(r)) = (down_at, ready_at) {
        proof.push_str(&format!("; down {} ms until ready again", (r - d) / 1000));
    }
    FaultRecord {
        index,
        label,
        service: service.to_string(),
        injected_at,
        healed_at: ready_at,
        provokes: Vec::new(),
        landed: down_at.is_some(),
        proof,
        detail: FaultDetail::Outage {
            signal: sig.as_str().to_string(),
            down_at,
            restarted_at: Some(restarted_at),
            ready_at,
        },
    }
}

/// SIGSTOP `service`, keep it stopped for `down`, SIGCONT it.
pub async fn pause(n: &Nemesis<'_>, index: usize, service: &str, down: Duration) -> FaultRecord {
    let label = format!("{service} paused for {:.1} s", down.as_secs_f64());
    let injected_at = n.now();
    if let Err(e) = n.backend.signal(service, Signal::SIGSTOP).await {
        return n.not_landed(
            index,
            label,
            service,
            format!("SIGSTOP not delivered: {e}"),
            FaultDetail::Pause { resumed_at: None },
        );
    }
    let stopped = wait_for_state(n, service, |s| s == 'T', Duration::from_secs(1)).await;
    tokio::time::sleep(down).await;
    let _ = n.backend.signal(service, Signal::SIGCONT).await;
    let resumed = wait_for_state(n, service, |s| s != 'T', Duration::from_secs(1)).await;
    let resumed_at = n.now();
    FaultRecord {
        index,
        label,
        service: service.to_string(),
        injected_at,
        healed_at: resumed.then_some(resumed_at),
        provokes: Vec::new(),
        landed: stopped,
        proof: format!(
            "SIGSTOP: {}; SIGCONT: {}",
            if stopped { "/proc showed state T" } else { "state T never seen" },
            if resumed { "running again" } else { "still stopped" }
        ),
        detail: FaultDetail::Pause {
            resumed_at: resumed.then_some(resumed_at),
        },
    }
}
