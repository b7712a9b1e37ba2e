//! Extra traffic to one of the stack's declared endpoints, through the entry,
//! for `duration_s` with `concurrency` callers: the way to make an alert's
//! condition hold on a stack we did not write. `error` answers 5xx (AL-ERR),
//! `slow` answers late (AL-P95), `cpu` burns CPU (AL-CPU), `memory` holds
//! memory (AL-MEM). The observation says how far the condition held, from
//! what the harness itself saw, so a check never takes the fault on trust.

use super::Nemesis;
use super::proxy::{http_addr, wire_client};
use crate::history::{FaultDetail, FaultRecord, TrafficObservation};
use std::time::Duration;

/// What one traffic fault asks for.
#[derive(Debug, Clone)]
pub struct TrafficAsk {
    pub endpoint: String,
    pub concurrency: u32,
    pub duration: Duration,
    pub ms: u64,
    pub mb: u64,
}

/// The endpoint's path with its placeholders filled (`{ms}`, `{mb}`, `{s}`: the duration in seconds).
fn fill(path: &str, ask: &TrafficAsk) -> String {
    path.replace("{ms}", &ask.ms.to_string())
        .replace("{mb}", &ask.mb.to_string())
        .replace("{s}", &format!("{:.0}", ask.duration.as_secs_f64().ceil()))
        .replace("{status}", "500")
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub async fn traffic(n: &Nemesis<'_>, index: usize, target: &str, ask: &TrafficAsk) -> FaultRecord {
    let label = format!(
        "traffic to `{}` × {} for {:.0} s",
        ask.endpoint,
        ask.concurrency,
        ask.duration.as_secs_f64()
    );
    let empty = FaultDetail::Traffic(TrafficObservation::default());
    let Some(decl) = n.manifest.endpoints.get(&ask.endpoint) else {
        let why = format!(
            "the stack declares no `{}` endpoint ([endpoints] {} = \"...\"): nothing here can make this condition hold",
            ask.endpoint, ask.endpoint
        );
        return n.not_landed(index, label, target, why, empty);
    };
    let Some(svc) = n.manifest.resolve(target) else {
        return n.not_landed(index, label, target, format!("no service or role `{target}`"), empty);
    };
    let Some(addr) = http_addr(n, svc) else {
        return n.not_landed(index, label, &svc.name, "the service has no HTTP address".into(), empty);
    };
    let path = fill(decl.path(), ask);
    let method = reqwest::Method::from_bytes(decl.method().as_bytes()).unwrap_or(reqwest::Method::GET);
    let url = format!("http://{addr}{path}");
    // Long enough for the slowest ask (memory held for the whole duration).
    let client = wire_client(ask.duration + Duration::from_secs(30));
    let (load_before, load_failed_before) = n.recorder.request_counts();
    let injected_at = n.now();
    let until = tokio::time::Instant::now() + ask.duration;
    let mut callers = Vec::new();
    for _ in 0..ask.concurrency {
        let (client, url, method) = (client.clone(), url.clone(), method.clone());
        callers.push(tokio::spawn(async move {
            let mut answers: Vec<(u16, u64)> = Vec::new();
            loop {
                let started = tokio::time::Instant::now();
                let status = match client.request(method.clone(), &url).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        if r.bytes().await.is_ok() { s } else { 0 }
                    }
                    Err(_) => 0,
                };
                answers.push((status, started.elapsed().as_millis() as u64));
                if tokio::time::Instant::now() >= until {
                    return answers;
                }
            }
        }));
    }
    let mut obs = TrafficObservation {
        endpoint: ask.endpoint.clone(),
        path,
        concurrency: ask.concurrency,
        ..Default::default()
    };
    let mut latencies = Vec::new();
    for c in callers {
        for (status, ms) in c.await.unwrap_or_default() {
            *obs.statuses.entry(status).or_default() += 1;
            latencies.push(ms);
        }
    }
    let ended_at = n.now();
    latencies.sort_unstable();
    obs.sent = latencies.len() as u32;
    obs.p95_ms = percentile(&latencies, 0.95);
    let (load_after, load_failed_after) = n.recorder.request_counts();
    obs.load_requests = load_after.saturating_sub(load_before);
    obs.load_failed = load_failed_after.saturating_sub(load_failed_before);
    let server_errors: u64 = obs.statuses.iter().filter(|(s, _)| **s >= 500).map(|(_, c)| u64::from(*c)).sum();
    let answered: u64 = obs.statuses.iter().filter(|(s, _)| **s != 0).map(|(_, c)| u64::from(*c)).sum();
    let all = answered + obs.load_requests;
    obs.error_share = if all > 0 {
        (server_errors + obs.load_failed) as f64 / all as f64
    } else {
        0.0
    };
    let statuses: Vec<String> = obs
        .statuses
        .iter()
        .map(|(s, c)| format!("{c} × {}", if *s == 0 { "no response".into() } else { s.to_string() }))
        .collect();
    let landed = answered > 0;
    let proof = format!(
        "{} requests to {} through {} in {:.1} s: {}; P95 {} ms; with the load's {} requests ({} failed), {:.1} % of all answers were errors",
        obs.sent,
        obs.path,
        svc.name,
        (ended_at - injected_at) as f64 / 1e6,
        statuses.join(", "),
        obs.p95_ms,
        obs.load_requests,
        obs.load_failed,
        obs.error_share * 100.0
    );
    FaultRecord {
        index,
        label,
        service: svc.name.clone(),
        injected_at,
        healed_at: Some(ended_at),
        provokes: Vec::new(),
        landed,
        proof: if landed {
            proof
        } else {
            format!("no request was answered: {proof}")
        },
        detail: FaultDetail::Traffic(obs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_from_the_ask() {
        let ask = TrafficAsk {
            endpoint: "memory".into(),
            concurrency: 1,
            duration: Duration::from_millis(7500),
            ms: 300,
            mb: 200,
        };
        assert_eq!(fill("/hog?mb={mb}&s={s}&ms={ms}", &ask), "/hog?mb=200&s=8&ms=300");
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.95), 95);
        assert_eq!(percentile(&[7], 0.95), 7);
        assert_eq!(percentile(&[], 0.95), 0);
    }
}
