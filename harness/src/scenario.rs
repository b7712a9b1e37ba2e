//! Scenario files (`scenarios/*.toml`): which requirements a run tests, the
//! load it drives and the faults it injects. Stack-agnostic: services are
//! named by role ("app", "redis", "entry") or by name.

use crate::input_error::{InputError, InputErrors};
use crate::manifest::SignalName;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(Debug, Clone)]
pub struct Scenario {
    pub file: PathBuf,
    pub name: String,
    pub description: String,
    pub covers: Vec<String>,
    pub seed: Option<u64>,
    pub load: LoadSpec,
    pub probes: ProbeSpec,
    pub faults: Vec<FaultSpec>,
    pub settings: Settings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    scenario: Header,
    load: LoadSpec,
    #[serde(default)]
    probes: ProbeSpec,
    #[serde(default, rename = "fault")]
    faults: Vec<Spanned<FaultSpec>>,
    #[serde(default)]
    settings: Settings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: String,
    #[serde(default)]
    description: String,
    covers: Vec<Spanned<String>>,
    #[serde(default)]
    seed: Option<u64>,
}

/// The load the scenario drives through the stack.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Role or service name the load goes to (usually "entry").
    #[serde(default = "default_target")]
    pub target: String,
    /// Port name on that service (default: its ready port).
    #[serde(default)]
    pub port: Option<String>,
    pub users: usize,
    /// Users started per second (all at once when absent).
    #[serde(default)]
    pub ramp_per_s: Option<usize>,
    /// Upper bound of the load phase; it ends earlier once the faults are done.
    pub max_duration_s: u64,
    /// Load kept after the last fault so its aftermath is recorded.
    #[serde(default = "default_tail")]
    pub tail_s: f64,
    /// Load before the first fault, to have a baseline.
    #[serde(default = "default_warmup")]
    pub warmup_s: f64,
    #[serde(rename = "request")]
    pub requests: Vec<RequestSpec>,
}

fn default_target() -> String {
    "entry".into()
}
fn default_tail() -> f64 {
    1.0
}
fn default_warmup() -> f64 {
    0.5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default = "default_method")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_method() -> String {
    "GET".into()
}
fn default_weight() -> u32 {
    1
}

/// Health probes sampled into the history during the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// Role or service name whose health endpoints are probed.
    #[serde(default = "default_probe_target")]
    pub target: String,
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        Self {
            target: default_probe_target(),
            interval_ms: default_interval(),
        }
    }
}

fn default_probe_target() -> String {
    "app".into()
}
fn default_interval() -> u64 {
    50
}

/// One fault of the schedule. Faults run one after another, in file order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub action: FaultAction,
    /// Role or service name.
    pub target: String,
    /// For `signal` and `outage`: the signal ("TERM", "KILL", "HUP", "STOP", ...).
    #[serde(default)]
    pub signal: Option<String>,
    /// Seconds after the previous fault ended (or the warm-up) before this one fires.
    #[serde(default)]
    pub after_s: f64,
    /// Fire only once this holds (checked after `after_s`).
    #[serde(default)]
    pub when: Option<Condition>,
    /// How long to wait for `when` before giving up (the fault is then recorded as not landed).
    #[serde(default = "default_when_timeout")]
    pub when_timeout_s: f64,
    /// For `outage` and `pause`: how long the service stays down.
    #[serde(default)]
    pub down_s: Option<f64>,
    /// For `bad-config`: "missing" or "malformed".
    #[serde(default)]
    pub defect: Option<String>,
    /// For `reload-config` and `env-change`: the new value (default derived from the seed).
    #[serde(default)]
    pub value: Option<String>,
}

fn default_when_timeout() -> f64 {
    10.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// Send a signal and observe what follows (exit, drain, cleanup).
    Signal,
    /// Kill a service, keep it down for `down_s`, start it again.
    Outage,
    /// SIGSTOP for `down_s`, then SIGCONT.
    Pause,
    /// Restart the service with a required variable missing or malformed, then restore it.
    BadConfig,
    /// Restart the service with its observable variable changed.
    EnvChange,
    /// Change a reloadable setting by the means the stack declares.
    ReloadConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Condition {
    /// At least this many load requests in flight.
    pub in_flight_at_least: u32,
    /// ...without a break for this long, so the requests have reached the service.
    #[serde(default = "default_steady")]
    pub for_ms: u64,
}

fn default_steady() -> u64 {
    250
}

/// Thresholds and readings the checks use; defaults are the standard's readings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// GS-DRAIN is inconclusive with fewer requests in flight at the signal.
    #[serde(default = "d_min_in_flight")]
    pub drain_min_in_flight: u32,
    /// Requests started this close before the signal may not have reached the
    /// service yet; they are left out of GS-DRAIN (and reported).
    #[serde(default = "d_margin")]
    pub drain_margin_ms: u64,
    /// HC-READY: readiness must fail this soon after SIGTERM.
    #[serde(default = "d_ready_delay")]
    pub ready_after_sigterm_ms: u64,
    /// HC-READY: readiness must fail this soon after a dependency goes down.
    #[serde(default = "d_dep_detect")]
    pub ready_dependency_detect_ms: u64,
    /// HC-READY: readiness must come back this soon after the dependency is back.
    #[serde(default = "d_recover")]
    pub ready_recover_ms: u64,
    /// Redis clients of an exited service must be gone within this.
    #[serde(default = "d_cleanup")]
    pub cleanup_deadline_ms: u64,
    /// CF-HOT: the new value must be in effect within this.
    #[serde(default = "d_reload")]
    pub reload_deadline_ms: u64,
}

fn d_min_in_flight() -> u32 {
    8
}
fn d_margin() -> u64 {
    100
}
fn d_ready_delay() -> u64 {
    500
}
fn d_dep_detect() -> u64 {
    2000
}
fn d_recover() -> u64 {
    5000
}
fn d_cleanup() -> u64 {
    2000
}
fn d_reload() -> u64 {
    3000
}

impl Default for Settings {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every setting has a default"))
    }
}

/// Read and validate one scenario file.
pub fn load(path: &Path) -> Result<Scenario, InputErrors> {
    let source = std::fs::read_to_string(path)
        .map_err(|e| InputError::whole_file(path, format!("cannot read the scenario: {e}")))?;
    let raw: RawScenario = toml::from_str(&source).map_err(|e| InputError::from_toml(path, &source, &e))?;
    let mut errors = Vec::new();
    let err = |span, field: &str, msg: String| InputError::at(path, &source, Some(span), field, msg);

    for id in &raw.scenario.covers {
        if !crate::requirements::is_known(id.get_ref()) {
            errors.push(err(id.span(), "scenario.covers", format!("unknown requirement ID `{}`; `chaosgate list --requirements` shows them", id.get_ref())));
        }
    }
    if raw.load.users == 0 {
        errors.push(InputError::at(path, &source, None, "load.users", "expected at least 1 user"));
    }
    if raw.load.requests.is_empty() {
        errors.push(InputError::at(path, &source, None, "load.request", "expected at least one [[load.request]]"));
    }
    for (i, r) in raw.load.requests.iter().enumerate() {
        if !["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"].contains(&r.method.as_str()) {
            errors.push(InputError::at(path, &source, None, &format!("load.request[{i}].method"), format!("expected GET, POST, PUT, DELETE, HEAD or PATCH, got `{}`", r.method)));
        }
        if !r.path.starts_with('/') {
            errors.push(InputError::at(path, &source, None, &format!("load.request[{i}].path"), format!("expected a path starting with '/', got `{}`", r.path)));
        }
    }
    for (i, f) in raw.faults.iter().enumerate() {
        let span = f.span();
        let spec = f.get_ref();
        let field = |name: &str| format!("fault[{i}].{name}");
        let needs_signal = matches!(spec.action, FaultAction::Signal | FaultAction::Outage);
        match &spec.signal {
            Some(sig) if nix::sys::signal::Signal::from_str_lenient(sig).is_none() => {
                errors.push(err(span.clone(), &field("signal"), format!("expected a signal name (TERM, KILL, HUP, STOP, CONT, INT, QUIT), got `{sig}`")));
            }
            None if needs_signal => errors.push(err(span.clone(), &field("signal"), format!("required for action = \"{}\"", action_name(spec.action)))),
            _ => {}
        }
        if matches!(spec.action, FaultAction::Outage | FaultAction::Pause) && spec.down_s.is_none() {
            errors.push(err(span.clone(), &field("down_s"), "required for this action: seconds the service stays down".into()));
        }
        if spec.action == FaultAction::BadConfig && !matches!(spec.defect.as_deref(), Some("missing") | Some("malformed")) {
            errors.push(err(span.clone(), &field("defect"), "expected \"missing\" or \"malformed\"".into()));
        }
        if spec.after_s < 0.0 {
            errors.push(err(span.clone(), &field("after_s"), "expected a number of seconds ≥ 0".into()));
        }
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }
    Ok(Scenario {
        file: path.to_path_buf(),
        name: raw.scenario.name,
        description: raw.scenario.description,
        covers: raw.scenario.covers.into_iter().map(|c| c.into_inner()).collect(),
        seed: raw.scenario.seed,
        load: raw.load,
        probes: raw.probes,
        faults: raw.faults.into_iter().map(|f| f.into_inner()).collect(),
        settings: raw.settings,
    })
}

pub fn action_name(action: FaultAction) -> &'static str {
    match action {
        FaultAction::Signal => "signal",
        FaultAction::Outage => "outage",
        FaultAction::Pause => "pause",
        FaultAction::BadConfig => "bad-config",
        FaultAction::EnvChange => "env-change",
        FaultAction::ReloadConfig => "reload-config",
    }
}

/// All scenario files in a directory, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, InputErrors> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| InputError::whole_file(dir, format!("cannot read the scenarios directory: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match load(&p) {
            Ok(s) => scenarios.push(s),
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() { Ok(scenarios) } else { Err(InputErrors(errors)) }
}
