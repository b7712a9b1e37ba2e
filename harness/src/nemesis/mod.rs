//! The nemesis: injects the scenario's faults one after another, proves each
//! took effect (or records that it could not), and heals the stack after.

pub mod broken_reload;
pub mod burst;
pub mod cert_swap;
pub mod cleanup;
pub mod config;
pub mod flood;
pub mod kill_all;
pub mod outage;
pub mod proxy;
pub mod proxy_probe;
pub mod redis_stress;
pub mod release;
pub mod schedule;
pub mod signal;
pub mod traffic;

use crate::history::{FaultDetail, FaultRecord, Micros, Recorder, ServiceEventKind};
use crate::load::LoadShared;
use crate::manifest::Manifest;
use crate::scenario::Settings;
use crate::stack::render::StackPlan;
use crate::stack::{Backend, EnvOverrides};
use std::time::Duration;

/// What every fault may use.
pub struct Nemesis<'a> {
    pub backend: &'a dyn Backend,
    pub manifest: &'a Manifest,
    pub plan: &'a StackPlan,
    pub recorder: &'a Recorder,
    pub load: Option<&'a LoadShared>,
    pub settings: &'a Settings,
    pub seed: u64,
    /// Told what is about to happen (progress display).
    pub announce: &'a (dyn Fn(String) + Sync),
}

impl Nemesis<'_> {
    pub fn now(&self) -> Micros {
        self.recorder.clock.now()
    }

    pub fn in_flight(&self) -> u32 {
        self.load.map(|l| l.in_flight()).unwrap_or(0)
    }

    /// Load requests in flight for at least `min_age_ms`.
    pub fn in_flight_for(&self, min_age_ms: u64) -> u32 {
        self.load.map(|l| l.in_flight_for(min_age_ms * 1000, self.now())).unwrap_or(0)
    }

    /// When the backend saw `pid` of `service` exit, from the recorded events.
    pub fn exit_time(&self, service: &str, pid: u32, since: Micros) -> Option<Micros> {
        self.recorder.events_since(since).into_iter().find_map(|e| match e.kind {
            ServiceEventKind::Exited { pid: p, .. } if p == pid && e.service == service => Some(e.at),
            _ => None,
        })
    }

    /// Start the service again with its normal configuration; returns when it is ready.
    pub async fn heal(&self, service: &str) -> Result<Micros, String> {
        if self.backend.pid(service).is_some() {
            self.backend.stop(service, self.manifest.grace()).await.map_err(|e| e.to_string())?;
        }
        self.backend
            .start(service, &EnvOverrides::default())
            .await
            .map_err(|e| e.to_string())?;
        self.backend
            .wait_ready(service, Duration::from_secs_f64(self.manifest.stack.ready_timeout_s))
            .await
            .map_err(|e| e.to_string())?;
        Ok(self.now())
    }

    /// Restore the service and note in the record when that happened, or why it could not.
    pub async fn restore(&self, service: &str, record: &mut FaultRecord) {
        match self.heal(service).await {
            Ok(at) => record.healed_at = Some(at),
            Err(e) => record.proof.push_str(&format!("; could not restore it: {e}")),
        }
    }

    /// A fault that never happened, recorded so checks can say inconclusive and why.
    /// The fault needs a capability the standard requires and the stack
    /// does not declare: not landed, and the requirements it tests fail
    /// naming what is missing (never inconclusive, never pass).
    #[allow(clippy::too_many_arguments)]
    pub fn lacks(
        &self,
        index: usize,
        label: String,
        service: &str,
        requirements: &[&str],
        what: &str,
        field: &str,
        detail: FaultDetail,
    ) -> FaultRecord {
        self.recorder.missing(crate::history::MissingCapability {
            requirements: requirements.iter().map(|r| r.to_string()).collect(),
            what: what.to_string(),
            field: field.to_string(),
        });
        let why = format!("the stack lacks {what} (declare it with `{field}`)");
        self.not_landed(index, label, service, why, detail)
    }

    pub fn not_landed(&self, index: usize, label: String, service: &str, why: String, detail: FaultDetail) -> FaultRecord {
        FaultRecord {
            index,
            label,
            service: service.to_string(),
            injected_at: self.now(),
            healed_at: None,
            provokes: Vec::new(),
            landed: false,
            proof: why,
            detail,
        }
    }
}
