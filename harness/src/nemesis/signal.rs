//! Signal faults: deliver a signal to a service and observe what follows.

use super::Nemesis;
use super::cleanup::{observe_after_exit, redis_connections_of};
use crate::history::{FaultDetail, FaultRecord};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

fn terminating(sig: Signal) -> bool {
    matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT | Signal::SIGKILL)
}

fn empty_detail(sig: Signal, in_flight: u32, grace_ms: u64, declared_stop: bool) -> FaultDetail {
    FaultDetail::Signal {
        signal: sig.as_str().to_string(),
        pid: 0,
        in_flight,
        exited_at: None,
        exit: None,
        grace_ms,
        killed_after_grace: false,
        cleanup: None,
        declared_stop,
    }
}

/// Send `sig` to `service`. For a terminating signal, wait for the exit up to
/// the declared grace period (then SIGKILL), record what it left behind, and
/// start the service again so the scenario can go on.
/// What `signal_fault` must read before the signal: the service's Redis
/// connections, for a terminating signal. Read before a `when` condition is
/// awaited, not between it holding and the signal: on a busy machine that
/// /proc walk took long enough for the requests the condition counted to end.
pub fn before_signal(n: &Nemesis<'_>, service: &str, sig: Signal) -> Option<Vec<String>> {
    if terminating(sig) { redis_connections_of(n, service) } else { None }
}

pub async fn signal_fault(n: &Nemesis<'_>, index: usize, service: &str, sig: Signal, before: Option<Vec<String>>) -> FaultRecord {
    let label = format!("{} to {service}", sig.as_str());
    // The service's own graceful stop (nginx: QUIT), as opposed to any other signal.
    let declared_stop = n.manifest.service(service).is_some_and(|s| s.stop_signal == sig);
    let grace = n.manifest.grace();
    let grace_ms = grace.as_millis() as u64;
    let in_flight = n.in_flight();
    let injected_at = n.now();
    let pid = match n.backend.signal(service, sig).await {
        Ok(pid) => pid,
        Err(e) => {
            return n.not_landed(
                index,
                label,
                service,
                format!("signal not delivered: {e}"),
                empty_detail(sig, in_flight, grace_ms, declared_stop),
            );
        }
    };
    let mut record = FaultRecord {
        index,
        label,
        service: service.to_string(),
        injected_at,
        healed_at: None,
        provokes: Vec::new(),
        landed: true,
        proof: format!(
            "{}{} delivered to pid {pid} (kill(2) returned 0) with {in_flight} load requests in flight",
            sig.as_str(),
            if declared_stop {
                format!(" (the stop signal {service} declares)")
            } else {
                String::new()
            }
        ),
        detail: empty_detail(sig, in_flight, grace_ms, declared_stop),
    };
    if terminating(sig) {
        let exit = n.backend.wait_exit(service, grace).await;
        let killed_after_grace = exit.is_none();
        let exit = match exit {
            Some(e) => Some(e),
            None => n.backend.kill(service).await.ok().flatten(),
        };
        let exited_at = n.exit_time(service, pid, injected_at);
        match (&exit, exited_at, killed_after_grace) {
            (Some(e), Some(at), false) => {
                record
                    .proof
                    .push_str(&format!("; exit observed {} ms later: {}", (at - injected_at) / 1000, e.describe()))
            }
            (_, _, true) => record.proof.push_str(&format!(
                "; still running when the {} s grace period ended: killed with SIGKILL",
                grace.as_secs_f64()
            )),
            _ => record.proof.push_str("; the exit could not be observed"),
        }
        let cleanup = observe_after_exit(n, service, before).await;
        record.detail = FaultDetail::Signal {
            signal: sig.as_str().to_string(),
            pid,
            in_flight,
            exited_at: if killed_after_grace { None } else { exited_at },
            exit,
            grace_ms,
            killed_after_grace,
            cleanup: Some(cleanup),
            declared_stop,
        };
        n.restore(service, &mut record).await;
        return record;
    }
    if let FaultDetail::Signal { pid: p, .. } = &mut record.detail {
        *p = pid;
    }
    match sig {
        Signal::SIGSTOP => {
            let stopped = wait_for_state(n, service, |s| s == 'T', Duration::from_secs(1)).await;
            record.landed = stopped;
            record.proof.push_str(if stopped {
                "; /proc shows the process stopped (state T)"
            } else {
                "; the process never showed state T"
            });
        }
        _ => {
            // A non-terminating signal landed if the process is still there to have handled it.
            let alive = n.backend.pid(service) == Some(pid);
            record.landed = alive;
            record.proof.push_str(if alive {
                "; process still running after it"
            } else {
                "; process gone after it"
            });
        }
    }
    record
}

/// Poll the process state until `accept` holds or the deadline passes.
pub async fn wait_for_state(n: &Nemesis<'_>, service: &str, accept: impl Fn(char) -> bool, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    loop {
        if n.backend.process_state(service).is_some_and(&accept) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
