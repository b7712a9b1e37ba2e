//! Samples a service's health endpoints at a fixed interval into the history.

use super::http::{get, probe_client};
use crate::history::{ProbeKind, ProbeSample, Recorder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Where to probe.
#[derive(Debug, Clone)]
pub struct HealthTarget {
    pub service: String,
    pub addr: SocketAddr,
    pub ready: Option<String>,
    pub live: Option<String>,
    pub aggregate: Option<String>,
}

/// One sampling loop per endpoint, so a hanging endpoint (a paused
/// dependency) never delays the samples of the others.
pub struct HealthProber {
    tasks: Vec<JoinHandle<()>>,
}

impl HealthProber {
    pub fn start(target: HealthTarget, interval: Duration, recorder: Arc<Recorder>) -> Self {
        let probes = [
            (ProbeKind::Ready, target.ready.clone()),
            (ProbeKind::Live, target.live.clone()),
            (ProbeKind::Aggregate, target.aggregate.clone()),
        ];
        let tasks = probes
            .into_iter()
            .filter_map(|(kind, path)| path.map(|p| (kind, p)))
            .map(|(kind, path)| {
                let recorder = recorder.clone();
                let service = target.service.clone();
                let addr = target.addr;
                tokio::spawn(async move { sample_loop(kind, service, addr, path, interval, recorder).await })
            })
            .collect();
        Self { tasks }
    }

    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

async fn sample_loop(kind: ProbeKind, service: String, addr: SocketAddr, path: String, interval: Duration, recorder: Arc<Recorder>) {
    let client = probe_client(Duration::from_millis(1000));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let at = recorder.clock.now();
        let answer = get(&client, addr, &path, None).await;
        let latency = recorder.clock.now().saturating_sub(at);
        recorder.probe(ProbeSample {
            at,
            service: service.clone(),
            probe: kind,
            status: answer.status,
            error: answer.error,
            latency_us: latency.min(u32::MAX as u64) as u32,
            // Only the aggregate body names components; the others would only cost memory.
            body: (kind == ProbeKind::Aggregate && answer.status != 0).then(|| answer.body.chars().take(512).collect()),
        });
    }
}
