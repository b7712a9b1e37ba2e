//! Deployments (section 4 of the standard): the stack's own release
//! commands, run by the harness, and the platform they drive.
//!
//! The stack declares its deployment interface in `[deploy]`: a command for
//! each step (deploy VERSION, switch, canary, rollback, list releases). The
//! harness runs them as a CI job would and watches what every response says
//! about its version; it never takes the controller's word for where
//! traffic went. A controller starts a release's instances through the
//! platform API the harness serves to it ([`api`]), as a real one asks
//! Docker or Kubernetes, so instances run on whichever backend the run uses.

pub mod api;
pub mod command;

use serde::Deserialize;
use std::collections::BTreeMap;

/// `[deploy]`: how the stack deploys, switches, canaries and rolls back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [deploy] table")]
pub struct DeployDecl {
    /// The manifest service a release's instances are copies of (its ports,
    /// readiness and environment); the controller may replace the command.
    pub service: String,
    /// How `switch` moves traffic: "all-at-once" or "gradual". BG-SHIFT is
    /// judged only for gradual switching (spec finding 3).
    pub switching: Switching,
    /// Deploy a version next to the live one without sending it traffic (`{{ version }}`).
    pub deploy: Vec<String>,
    /// Blue-green: send traffic to the other colour (run again: switch back).
    #[serde(default)]
    pub switch: Option<Vec<String>>,
    /// Deploy `{{ version }}` as a canary and run it to the end: widened to
    /// 100 % (exit 0) or aborted (any other exit).
    #[serde(default)]
    pub canary: Option<Vec<String>>,
    /// Back to the previous release: binary and configuration.
    #[serde(default)]
    pub rollback: Option<Vec<String>>,
    /// Print the releases kept, one per line, newest first; the first word of
    /// a line is its version.
    #[serde(default)]
    pub releases: Option<Vec<String>>,
    /// Environment for every command (rendered like a service's).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// CN-SMALL's reading: the largest share (percent) a canary's first step may get.
    #[serde(default = "default_first_step")]
    pub first_step_max_percent: f64,
    /// How long one command may run.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Arguments appended to `deploy` or `canary` to make a defective build
    /// of the release (`variant = "errors"` in a scenario): how this stack
    /// makes a release that fails requests or answers slowly.
    #[serde(default)]
    pub variants: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Switching {
    AllAtOnce,
    Gradual,
}

impl Switching {
    pub fn as_str(self) -> &'static str {
        match self {
            Switching::AllAtOnce => "all-at-once",
            Switching::Gradual => "gradual",
        }
    }
}

fn default_first_step() -> f64 {
    10.0
}

fn default_timeout() -> f64 {
    120.0
}

/// The steps a scenario can ask for, and the `[deploy]` field each needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Deploy,
    Switch,
    Canary,
    Rollback,
    Releases,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Deploy => "deploy",
            Step::Switch => "switch",
            Step::Canary => "canary",
            Step::Rollback => "rollback",
            Step::Releases => "releases",
        }
    }

    pub fn command(self, d: &DeployDecl) -> Option<&Vec<String>> {
        match self {
            Step::Deploy => Some(&d.deploy),
            Step::Switch => d.switch.as_ref(),
            Step::Canary => d.canary.as_ref(),
            Step::Rollback => d.rollback.as_ref(),
            Step::Releases => d.releases.as_ref(),
        }
    }

    /// The requirements a step serves, so a stack that lacks it fails them by name.
    pub fn requirements(self) -> &'static [&'static str] {
        match self {
            Step::Deploy => &ALL_IDS,
            Step::Switch => &["BG-ZERO", "BG-SHIFT", "BG-BACK"],
            Step::Canary => &["CN-SMALL", "CN-WATCH", "CN-WIDEN", "CN-ABORT"],
            Step::Rollback => &["RB-ONE", "RB-KEEP5", "RB-DATA"],
            Step::Releases => &["RB-KEEP5"],
        }
    }
}

/// Every requirement of section 4.
pub const ALL_IDS: [&str; 10] = [
    "BG-ZERO", "BG-SHIFT", "BG-BACK", "CN-SMALL", "CN-WATCH", "CN-WIDEN", "CN-ABORT", "RB-ONE", "RB-KEEP5", "RB-DATA",
];
