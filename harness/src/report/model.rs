//! The result of a whole run: what every reporter renders.

use crate::check::verdict::{Outcome, RunStatus, Verdict};
use crate::history::History;
use serde::{Deserialize, Serialize};

/// Version of the `run.json` schema; bump on any incompatible change.
pub const RUN_SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub run_id: String,
    pub harness_version: String,
    pub stack: StackInfo,
    pub seed: u64,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    pub duration_ms: u64,
    pub scenarios: Vec<ScenarioResult>,
    /// The command that reproduces this run.
    pub reproduce: String,
    /// The user stopped the run (Ctrl-C / SIGTERM): what ran is judged, the rest is absent.
    #[serde(default)]
    pub interrupted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackInfo {
    pub name: String,
    pub manifest: String,
    /// The requirement IDs a mutant stack breaks on purpose (empty for a real stack).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaks: Vec<String>,
    /// Where the services ran: `process` or `docker` (empty in runs from before backends were named).
    #[serde(default)]
    pub backend: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    pub file: String,
    pub description: String,
    pub duration_ms: u64,
    /// Time from the start of the scenario until every service was ready.
    pub healthy_after_ms: Option<u64>,
    pub verdicts: Vec<Verdict>,
    /// Set when the scenario could not run at all (the stack never came up, ...).
    pub error: Option<String>,
    /// What the services printed around each fault, keyed "fault #N label (service)".
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub logs: std::collections::BTreeMap<String, String>,
    /// How the task worker behaved, where the scenario enqueued tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<crate::check::worker_profile::WorkerProfile>,
    pub history: History,
}

impl RunReport {
    pub fn status(&self) -> RunStatus {
        if self.scenarios.iter().any(|s| s.error.is_some()) && self.all_verdicts().next().is_none() {
            return RunStatus::CouldNotRun;
        }
        let outcomes: Vec<Outcome> = self.all_verdicts().map(|v| v.outcome).collect();
        // No verdict at all proves nothing either.
        if outcomes.is_empty() {
            return RunStatus::Inconclusive;
        }
        let status = RunStatus::from_outcomes(&outcomes);
        // A scenario that could not run proves nothing: never let it read as a pass.
        if status == RunStatus::AllPassed && (self.interrupted || self.scenarios.iter().any(|s| s.error.is_some())) {
            return RunStatus::Inconclusive;
        }
        status
    }

    pub fn all_verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.scenarios.iter().flat_map(|s| s.verdicts.iter())
    }

    /// Count of verdicts per outcome, in the order pass, fail, inconclusive, skipped.
    pub fn counts(&self) -> [(Outcome, usize); 4] {
        let count = |o: Outcome| self.all_verdicts().filter(|v| v.outcome == o).count();
        [
            (Outcome::Pass, count(Outcome::Pass)),
            (Outcome::Fail, count(Outcome::Fail)),
            (Outcome::Inconclusive, count(Outcome::Inconclusive)),
            (Outcome::Skipped, count(Outcome::Skipped)),
        ]
    }
}
