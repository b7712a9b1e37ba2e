//! What a service leaves behind when it exits: Redis connections still in
//! the server's client list, listeners, processes that outlived it.

use super::Nemesis;
use crate::history::CleanupObservation;
use crate::observe::redis_clients::client_addrs;
use crate::observe::sockets::{connections_to, listening_on};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The Redis the stack declares: its address and password.
pub fn redis_of(n: &Nemesis<'_>) -> Option<(SocketAddr, Option<String>)> {
    let svc = n.manifest.services.iter().find(|s| s.redis.is_some())?;
    let access = svc.redis.as_ref()?;
    let addr = n.backend.endpoint(&svc.name, &access.port)?;
    let password = access.password.as_ref().and_then(|p| n.plan.render_value(&svc.name, p).ok());
    Some((addr, password))
}

/// The service's connections to Redis, seen from its processes' sockets.
pub fn redis_connections_of(n: &Nemesis<'_>, service: &str) -> Option<Vec<String>> {
    let (addr, _) = redis_of(n)?;
    // The port the service dials: Redis's own port inside a container network
    // (its published host port only on loopback, where the two are one).
    let svc = n.manifest.services.iter().find(|s| s.redis.is_some())?;
    let port = svc
        .redis
        .as_ref()
        .and_then(|access| n.plan.service(&svc.name)?.container_ports.get(&access.port).copied())
        .unwrap_or(addr.port());
    let pids: Vec<u32> = n.backend.processes(service).into_iter().map(|(p, _)| p).collect();
    Some(connections_to(&pids, port).into_iter().map(|a| a.to_string()).collect())
}

/// After the service exited: wait (with a deadline) for its Redis clients to
/// disappear, then list whatever is left.
pub async fn observe_after_exit(n: &Nemesis<'_>, service: &str, before: Option<Vec<String>>) -> CleanupObservation {
    let mut obs = CleanupObservation::default();
    if let (Some((addr, password)), Some(before)) = (redis_of(n), before) {
        obs.redis_clients_before = before.clone();
        let deadline = Instant::now() + Duration::from_millis(n.settings.cleanup_deadline_ms);
        loop {
            match client_addrs(addr, password.as_deref()).await {
                Ok(now) => {
                    obs.redis_checked = true;
                    obs.redis_clients_left = before.iter().filter(|a| now.contains(a)).cloned().collect();
                    if obs.redis_clients_left.is_empty() || Instant::now() >= deadline {
                        break;
                    }
                }
                Err(_) if Instant::now() >= deadline => break,
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    obs.surviving_processes = n
        .backend
        .processes(service)
        .into_iter()
        .map(|(pid, cmd)| format!("{pid} {cmd}"))
        .collect();
    if let Some(plan) = n.plan.service(service) {
        obs.still_listening = plan
            .ports
            .iter()
            .filter(|(_, port)| listening_on(**port))
            .map(|(name, port)| format!("{name} 127.0.0.1:{port}"))
            .collect();
    }
    obs
}
