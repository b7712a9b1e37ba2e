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
    /// Findings (risks reported beside the verdicts) this scenario exists to
    /// measure, e.g. `F-RELOAD-KEEPALIVE`; a scenario covers requirements, or
    /// measures findings, or both.
    pub findings: Vec<String>,
    pub seed: Option<u64>,
    pub load: LoadSpec,
    pub probes: ProbeSpec,
    pub faults: Vec<FaultSpec>,
    pub settings: Settings,
    /// Profiles beside `certify` that include it.
    pub profiles: Vec<Profile>,
}

impl Scenario {
    pub fn in_profile(&self, profile: Profile) -> bool {
        profile == Profile::Certify || self.profiles.contains(&profile)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    scenario: Header,
    load: RawLoad,
    #[serde(default)]
    probes: Option<Spanned<ProbeSpec>>,
    #[serde(default, rename = "fault")]
    faults: Vec<Spanned<RawFault>>,
    #[serde(default)]
    settings: Settings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [scenario] table")]
struct Header {
    name: String,
    #[serde(default)]
    description: String,
    covers: Vec<Spanned<String>>,
    #[serde(default)]
    findings: Vec<String>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    profiles: Vec<Profile>,
}

/// A named selection of scenarios (`chaosgate run --profile`).
///
/// `certify` is every scenario (a pre-release run: every requirement with
/// evidence); `pr` is what a pull-request gate can afford: the scenarios
/// that say `profiles = ["pr"]`, chosen because they need no long dwell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Pr,
    #[default]
    Certify,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Pr => "pr",
            Profile::Certify => "certify",
        }
    }
}

/// The load the scenario drives through the stack.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Role or service name the load goes to (usually "entry").
    pub target: String,
    /// Port name on that service (default: its ready port).
    pub port: Option<String>,
    pub users: usize,
    /// Users started per second (all at once when absent).
    pub ramp_per_s: Option<usize>,
    /// Upper bound of the load phase; it ends earlier once the faults are done.
    pub max_duration_s: u64,
    /// Load kept after the last fault so its aftermath is recorded.
    pub tail_s: f64,
    /// Load before the first fault, to have a baseline.
    pub warmup_s: f64,
    /// Cap on requests per second across all users (goose's throttle).
    pub rate_per_s: Option<usize>,
    /// Think time each user waits between requests: fixed, or a uniform range up to `think_max_ms`.
    pub think_ms: u64,
    pub think_max_ms: Option<u64>,
    pub requests: Vec<RequestSpec>,
    /// Whether simulated users keep connections open between requests (default
    /// true). `false`: a new connection per request, so a server closing idle
    /// keep-alive connections (nginx at reload) is not mistaken for dropping traffic.
    pub keepalive: bool,
    /// Drive the load over HTTPS to the stack's declared TLS endpoint (`[tls]`:
    /// service, port, host), verifying the chain against the run's CA and the
    /// declared host name; the URL is `https://<host>:<port>` with the host
    /// resolved to 127.0.0.1. Default false: plain HTTP to the target's port.
    pub tls: bool,
    /// Line and column of `tls = true` in the file (for errors found against the manifest).
    pub tls_at: (usize, usize),
}

/// `[load]` as written, with the spans the checks after parsing point at.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [load] table")]
struct RawLoad {
    #[serde(default = "default_target")]
    target: String,
    #[serde(default)]
    port: Option<String>,
    users: Spanned<usize>,
    #[serde(default)]
    ramp_per_s: Option<Spanned<usize>>,
    max_duration_s: Spanned<u64>,
    #[serde(default = "default_tail_spanned")]
    tail_s: Spanned<f64>,
    #[serde(default = "default_warmup_spanned")]
    warmup_s: Spanned<f64>,
    #[serde(default)]
    rate_per_s: Option<Spanned<usize>>,
    #[serde(default = "zero_spanned")]
    think_ms: Spanned<u64>,
    #[serde(default)]
    think_max_ms: Option<Spanned<u64>>,
    #[serde(rename = "request")]
    requests: Spanned<Vec<RawRequest>>,
    #[serde(default = "default_keepalive")]
    keepalive: bool,
    #[serde(default)]
    tls: Option<Spanned<bool>>,
}

fn default_keepalive() -> bool {
    true
}

fn zero_spanned() -> Spanned<u64> {
    Spanned::new(0..0, 0)
}

fn default_tail_spanned() -> Spanned<f64> {
    Spanned::new(0..0, default_tail())
}

fn default_warmup_spanned() -> Spanned<f64> {
    Spanned::new(0..0, default_warmup())
}

impl RawLoad {
    fn into_spec(self, source: &str) -> LoadSpec {
        let tls_at = self
            .tls
            .as_ref()
            .map(|t| crate::input_error::line_col(source, t.span().start))
            .unwrap_or((0, 0));
        LoadSpec {
            tls: self.tls.is_some_and(|t| t.into_inner()),
            tls_at,
            target: self.target,
            port: self.port,
            users: self.users.into_inner(),
            ramp_per_s: self.ramp_per_s.map(Spanned::into_inner),
            max_duration_s: self.max_duration_s.into_inner(),
            tail_s: self.tail_s.into_inner(),
            warmup_s: self.warmup_s.into_inner(),
            rate_per_s: self.rate_per_s.map(Spanned::into_inner),
            think_ms: self.think_ms.into_inner(),
            think_max_ms: self.think_max_ms.map(Spanned::into_inner),
            keepalive: self.keepalive,
            requests: self
                .requests
                .into_inner()
                .into_iter()
                .map(|r| RequestSpec {
                    method_given: r.method.is_some(),
                    method: r.method.map(Spanned::into_inner).unwrap_or_else(default_method),
                    path: r.path.map(Spanned::into_inner).unwrap_or_default(),
                    endpoint: r.endpoint.map(|e| EndpointUse {
                        role: e.into_inner(),
                        ms: r.ms,
                        priority: r.priority,
                    }),
                    body: r.body,
                    weight: r.weight,
                    expect: r.expect,
                })
                .collect(),
        }
    }
}

/// A request by endpoint role, with the values its path template takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUse {
    pub role: String,
    pub ms: Option<u64>,
    pub priority: Option<u8>,
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

#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: String,
    /// Whether the scenario set `method` (else an endpoint's own method wins).
    pub method_given: bool,
    /// The path; empty until an `endpoint` is resolved against the manifest.
    pub path: String,
    /// `endpoint = "slow"`: the role, resolved by the manifest's `[endpoints]`.
    pub endpoint: Option<EndpointUse>,
    pub body: Option<String>,
    pub weight: u32,
    /// Statuses this request is expected to get; empty means any 2xx or 3xx.
    pub expect: Vec<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[load.request]] table")]
struct RawRequest {
    #[serde(default)]
    method: Option<Spanned<String>>,
    #[serde(default)]
    path: Option<Spanned<String>>,
    /// An endpoint role the manifest maps to the stack's path (`[endpoints]`).
    #[serde(default)]
    endpoint: Option<Spanned<String>>,
    /// For endpoints that take them: how long the request or task should take, its priority.
    #[serde(default)]
    ms: Option<u64>,
    #[serde(default)]
    priority: Option<u8>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default)]
    expect: Vec<u16>,
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
#[derive(Debug, Clone)]
pub struct FaultSpec {
    pub action: FaultAction,
    /// Role or service name.
    pub target: String,
    /// For `signal` and `outage`: the signal ("TERM", "KILL", "HUP", "STOP", ...),
    /// or [`STOP_SIGNAL`]: the one the target declares as its graceful stop.
    pub signal: Option<String>,
    /// Seconds after the previous fault ended (or the warm-up) before this one fires.
    pub after_s: f64,
    /// Fire only once this holds (checked after `after_s`).
    pub when: Option<Condition>,
    /// How long to wait for `when` before giving up (the fault is then recorded as not landed).
    pub when_timeout_s: f64,
    /// For `outage` and `pause`: how long the service stays down.
    pub down_s: Option<f64>,
    /// For `bad-config`: "missing" or "malformed".
    pub defect: Option<String>,
    /// For `reload-config` and `env-change`: the new value (default derived from the seed).
    pub value: Option<String>,
    /// For `burst`: requests per second the harness sends.
    pub rate_per_s: Option<f64>,
    /// For `burst`: the rate as a multiple of the limit the stack declares
    /// (`0.4`: below it, `10`: far above), so one scenario fits any limit.
    pub times_limit: Option<f64>,
    /// For `burst` and `backend-traffic`: how long.
    pub duration_s: Option<f64>,
    /// For `flood`: how many tasks to enqueue.
    pub count: Option<u32>,
    /// For `flood`: how long each task runs, in ms.
    pub task_ms: Option<u64>,
    /// For `deploy` and `canary`: the version to release.
    pub version: Option<String>,
    /// For `deploy` and `canary`: a defective build the stack declares in `[deploy.variants]`.
    pub variant: Option<String>,
    /// For `rollback`: write a record through the new version first and read it back after (RB-DATA).
    pub check_data: bool,
    /// The alert requirements (`AL-*`) this fault's condition must make fire
    /// while it holds and resolve after it ends.
    pub alerts: Vec<String>,
    /// For `traffic`: the endpoint role to call, how many callers at once, and its `{ms}` / `{mb}`.
    pub endpoint: Option<String>,
    pub concurrency: Option<u32>,
    pub ms: Option<u64>,
    pub mb: Option<u64>,
    /// For `flood`: tasks that fail (the worker's declared `enqueue_failing` request).
    pub failing: bool,
    /// For `flood`: the order the priorities are enqueued in.
    pub order: FloodOrder,
}

/// The order of a flood's tasks (`order`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloodOrder {
    /// 10, 5 and 1 shuffled.
    #[default]
    Mixed,
    /// Every low (1) first, then 10 and 5 shuffled: a backlog of low tasks
    /// is there (and prefetched, if the worker prefetches) when the higher
    /// ones arrive, which must then start first (CW-PRIO).
    LowFirst,
}

/// A `[[fault]]` as written, with the spans of the values the checks after parsing look at.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[fault]] table")]
struct RawFault {
    action: FaultAction,
    target: String,
    #[serde(default)]
    signal: Option<Spanned<String>>,
    #[serde(default)]
    after_s: Option<Spanned<f64>>,
    #[serde(default)]
    when: Option<Condition>,
    #[serde(default = "default_when_timeout_spanned")]
    when_timeout_s: Spanned<f64>,
    #[serde(default)]
    down_s: Option<Spanned<f64>>,
    #[serde(default)]
    defect: Option<Spanned<String>>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    rate_per_s: Option<Spanned<f64>>,
    #[serde(default)]
    times_limit: Option<Spanned<f64>>,
    #[serde(default)]
    duration_s: Option<Spanned<f64>>,
    #[serde(default)]
    count: Option<Spanned<u32>>,
    #[serde(default)]
    task_ms: Option<Spanned<u64>>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    check_data: bool,
    #[serde(default)]
    alerts: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    endpoint: Option<Spanned<String>>,
    #[serde(default)]
    concurrency: Option<Spanned<u32>>,
    #[serde(default)]
    ms: Option<Spanned<u64>>,
    #[serde(default)]
    mb: Option<Spanned<u64>>,
    #[serde(default)]
    failing: bool,
    #[serde(default)]
    order: Option<FloodOrder>,
}

/// The fields of a `[[fault]]` that belong to some actions only, and which
/// action takes which: one written for another action is an error, not
/// silently ignored. (`version`, `variant` and `check_data` have checks of
/// their own that say more.)
fn fields_of(action: FaultAction) -> &'static [&'static str] {
    match action {
        FaultAction::Signal => &["signal"],
        FaultAction::Outage | FaultAction::KillAll => &["signal", "down_s"],
        FaultAction::Pause => &["down_s"],
        FaultAction::BadConfig => &["defect"],
        FaultAction::EnvChange | FaultAction::ReloadConfig | FaultAction::CertSwap => &["value"],
        FaultAction::Burst => &["rate_per_s", "times_limit", "duration_s"],
        FaultAction::BackendTraffic | FaultAction::RedisFill | FaultAction::RedisSaveFail => &["duration_s"],
        FaultAction::GzipProbe
        | FaultAction::CacheProbe
        | FaultAction::BrokenReload
        | FaultAction::Switch
        | FaultAction::Releases
        | FaultAction::Deploy
        | FaultAction::Canary
        | FaultAction::Rollback => &[],
        FaultAction::Flood => &["count", "task_ms", "failing", "order"],
        FaultAction::Traffic => &["endpoint", "concurrency", "duration_s", "ms", "mb"],
        FaultAction::RedisConnections => &["count", "duration_s"],
        FaultAction::RedisSlow => &["ms"],
    }
}

impl RawFault {
    /// The action-specific fields this fault was written with, and where
    /// each value is when its span is kept.
    fn given_fields(&self) -> Vec<(&'static str, Option<std::ops::Range<usize>>)> {
        fn at<T>(name: &'static str, v: &Option<Spanned<T>>) -> Option<(&'static str, Option<std::ops::Range<usize>>)> {
            v.as_ref().map(|v| (name, Some(v.span())))
        }
        let mut given: Vec<_> = [
            at("signal", &self.signal),
            at("down_s", &self.down_s),
            at("defect", &self.defect),
            at("rate_per_s", &self.rate_per_s),
            at("times_limit", &self.times_limit),
            at("duration_s", &self.duration_s),
            at("count", &self.count),
            at("task_ms", &self.task_ms),
            at("endpoint", &self.endpoint),
            at("concurrency", &self.concurrency),
            at("ms", &self.ms),
            at("mb", &self.mb),
        ]
        .into_iter()
        .flatten()
        .collect();
        if self.value.is_some() {
            given.push(("value", None));
        }
        if self.failing {
            given.push(("failing", None));
        }
        if self.order.is_some() {
            given.push(("order", None));
        }
        given
    }

    fn into_spec(self) -> FaultSpec {
        FaultSpec {
            action: self.action,
            target: self.target,
            signal: self.signal.map(Spanned::into_inner),
            after_s: self.after_s.map(Spanned::into_inner).unwrap_or(0.0),
            when: self.when,
            when_timeout_s: self.when_timeout_s.into_inner(),
            down_s: self.down_s.map(Spanned::into_inner),
            defect: self.defect.map(Spanned::into_inner),
            value: self.value,
            rate_per_s: self.rate_per_s.map(Spanned::into_inner),
            times_limit: self.times_limit.map(Spanned::into_inner),
            duration_s: self.duration_s.map(Spanned::into_inner),
            count: self.count.map(Spanned::into_inner),
            task_ms: self.task_ms.map(Spanned::into_inner),
            version: self.version,
            variant: self.variant,
            check_data: self.check_data,
            alerts: self.alerts.map(Spanned::into_inner).unwrap_or_default(),
            endpoint: self.endpoint.map(Spanned::into_inner),
            concurrency: self.concurrency.map(Spanned::into_inner),
            ms: self.ms.map(Spanned::into_inner),
            mb: self.mb.map(Spanned::into_inner),
            failing: self.failing,
            order: self.order.unwrap_or_default(),
        }
    }
}

/// Upper bounds on scenario numbers: a day, in seconds and milliseconds; users; requests per second.
const MAX_SECONDS: f64 = 86_400.0;
const MAX_MS: u64 = 86_400_000;
const MAX_USERS: u64 = 10_000;
const MAX_RATE: f64 = 1_000_000.0;

/// `signal = "stop_signal"`: the graceful-stop signal the target declares in
/// the manifest (`stop_signal`, TERM by default; nginx's QUIT). Not "stop",
/// which already means SIGSTOP.
pub const STOP_SIGNAL: &str = "stop_signal";

fn default_when_timeout_spanned() -> Spanned<f64> {
    Spanned::new(0..0, 10.0)
}

/// A duration in seconds that `Duration::from_secs_f64` accepts.
fn seconds(s: f64) -> bool {
    s.is_finite() && s >= 0.0
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
    /// Requests at `rate_per_s` for `duration_s` to the proxy's rate-limited path (NX-RATE).
    Burst,
    /// Backend request and connection counters over `duration_s` of load (NX-KEEPALIVE).
    BackendTraffic,
    /// GETs of the proxy's gzip paths with and without `Accept-Encoding: gzip` (NX-GZIP).
    GzipProbe,
    /// Repeated GETs of the proxy's cacheable path (NX-CACHE).
    CacheProbe,
    /// Kill every service of the target role at once, keep them down `down_s` (NX-502).
    KillAll,
    /// Put the certificate named by `value` in place and reload the TLS service (TLS-EXPIRY, NX-RELOAD).
    CertSwap,
    /// Break the proxy's configuration, reload, check the old one still serves, restore (NX-RELOAD).
    BrokenReload,
    /// Enqueue `count` tasks of `task_ms` at mixed priorities through the declared endpoint (CW-*).
    Flood,
    /// Run the stack's `deploy` command for `version` (section 4).
    Deploy,
    /// Run the stack's `switch` command (blue-green).
    Switch,
    /// Run the stack's `canary` command for `version` to its end.
    Canary,
    /// Run the stack's `rollback` command.
    Rollback,
    /// Run the stack's `releases` command and keep the versions it lists.
    Releases,
    /// `concurrency` callers of the declared `endpoint` through `target` for `duration_s` (AL-ERR, AL-P95, AL-CPU, AL-MEM).
    Traffic,
    /// Fill Redis to 90 % of its maxmemory with the harness's own keys, hold `duration_s`, delete them (AL-RDS-MEM).
    RedisFill,
    /// Hold `count` extra client connections to Redis for `duration_s` (AL-RDS-CONN).
    RedisConnections,
    /// One script that keeps Redis busy for `ms` milliseconds (AL-RDS-SLOW).
    RedisSlow,
    /// Make Redis's RDB saves fail for `duration_s`, then let them succeed again (AL-RDS-PERSIST).
    RedisSaveFail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Condition {
    /// At least this many load requests in flight.
    pub in_flight_at_least: u32,
    /// ...each of them for at least this long, so they have reached the service.
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
    /// AL-*: an alert must fire (or resolve) this soon after its condition starts (or ends).
    #[serde(default = "d_alert")]
    pub alert_deadline_ms: u64,
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
fn d_alert() -> u64 {
    20_000
}

impl Default for Settings {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every setting has a default"))
    }
}

/// Read and validate one scenario file.
pub fn load(path: &Path) -> Result<Scenario, InputErrors> {
    let source = std::fs::read_to_string(path).map_err(|e| InputError::whole_file(path, format!("cannot read the scenario: {e}")))?;
    let raw: RawScenario = toml::from_str(&source).map_err(|e| InputError::from_toml(path, &source, &e))?;
    let mut errors = Vec::new();
    let err = |span, field: &str, msg: String| InputError::at(path, &source, Some(span), field, msg);

    for id in &raw.scenario.covers {
        if !crate::requirements::is_known(id.get_ref()) {
            errors.push(err(
                id.span(),
                "scenario.covers",
                format!(
                    "unknown requirement ID `{}`; `chaosgate list --requirements` shows them",
                    id.get_ref()
                ),
            ));
        }
    }
    let load = &raw.load;
    // Bounds that keep every number usable (a Duration, an allocation, a
    // rate): a value past them is a typo or an attack, never a test.
    let within_f = |v: &Spanned<f64>, field: &str, low: f64, high: f64, errors: &mut Vec<InputError>| {
        let x = *v.get_ref();
        if !(x.is_finite() && x >= low && x <= high) {
            let shown = if x.is_finite() && x.abs() < 1e9 {
                format!("{x}")
            } else {
                format!("{x:e}")
            };
            errors.push(err(v.span(), field, format!("expected a number from {low} to {high}, got {shown}")));
        }
    };
    let within_u = |v: u64, span: std::ops::Range<usize>, field: &str, low: u64, high: u64, errors: &mut Vec<InputError>| {
        if v < low || v > high {
            errors.push(err(span, field, format!("expected a whole number from {low} to {high}, got {v}")));
        }
    };
    if *load.users.get_ref() == 0 {
        errors.push(err(load.users.span(), "load.users", "expected at least 1 user".into()));
    } else {
        within_u(
            *load.users.get_ref() as u64,
            load.users.span(),
            "load.users",
            1,
            MAX_USERS,
            &mut errors,
        );
    }
    within_u(
        *load.max_duration_s.get_ref(),
        load.max_duration_s.span(),
        "load.max_duration_s",
        1,
        MAX_SECONDS as u64,
        &mut errors,
    );
    within_f(&load.tail_s, "load.tail_s", 0.0, MAX_SECONDS, &mut errors);
    within_f(&load.warmup_s, "load.warmup_s", 0.0, MAX_SECONDS, &mut errors);
    within_u(
        *load.think_ms.get_ref(),
        load.think_ms.span(),
        "load.think_ms",
        0,
        MAX_MS,
        &mut errors,
    );
    if let Some(t) = &load.think_max_ms {
        within_u(*t.get_ref(), t.span(), "load.think_max_ms", 0, MAX_MS, &mut errors);
    }
    if let Some(r) = &load.ramp_per_s {
        within_u(*r.get_ref() as u64, r.span(), "load.ramp_per_s", 1, MAX_USERS, &mut errors);
    }
    if let Some(r) = &load.rate_per_s {
        within_u(*r.get_ref() as u64, r.span(), "load.rate_per_s", 1, MAX_RATE as u64, &mut errors);
    }
    if let Some(p) = &raw.probes {
        within_u(p.get_ref().interval_ms, p.span(), "probes.interval_ms", 10, MAX_MS, &mut errors);
    }
    for (i, f) in raw.faults.iter().enumerate() {
        let spec = f.get_ref();
        let field = |name: &str| format!("fault[{i}].{name}");
        // Below zero these three are reported by the checks further down.
        let too_long = |v: &Spanned<f64>, name: &str, errors: &mut Vec<InputError>| {
            if seconds(*v.get_ref()) && *v.get_ref() > MAX_SECONDS {
                errors.push(err(
                    v.span(),
                    &field(name),
                    format!("expected at most {MAX_SECONDS} seconds, got {:e}", v.get_ref()),
                ));
            }
        };
        if let Some(d) = &spec.down_s {
            too_long(d, "down_s", &mut errors);
        }
        if let Some(d) = &spec.duration_s {
            within_f(d, &field("duration_s"), 0.001, MAX_SECONDS, &mut errors);
        }
        if let Some(r) = &spec.rate_per_s {
            within_f(r, &field("rate_per_s"), 0.001, MAX_RATE, &mut errors);
        }
        if let Some(t) = &spec.times_limit {
            within_f(t, &field("times_limit"), 0.001, 1000.0, &mut errors);
        }
        if let Some(c) = &spec.count {
            within_u(*c.get_ref() as u64, c.span(), &field("count"), 1, 100_000, &mut errors);
        }
        if let Some(t) = &spec.task_ms {
            within_u(*t.get_ref(), t.span(), &field("task_ms"), 0, MAX_MS, &mut errors);
        }
        if let Some(a) = &spec.after_s {
            too_long(a, "after_s", &mut errors);
        }
        too_long(&spec.when_timeout_s, "when_timeout_s", &mut errors);
        if let Some(c) = &spec.concurrency {
            within_u(u64::from(*c.get_ref()), c.span(), &field("concurrency"), 1, 1000, &mut errors);
        }
        if let Some(m) = &spec.ms {
            within_u(*m.get_ref(), m.span(), &field("ms"), 0, MAX_MS, &mut errors);
        }
        if let Some(m) = &spec.mb {
            within_u(*m.get_ref(), m.span(), &field("mb"), 1, 65_536, &mut errors);
        }
        if let Some(e) = &spec.endpoint
            && !crate::manifest::ENDPOINT_ROLES.iter().any(|(role, _)| role == e.get_ref())
        {
            errors.push(err(
                e.span(),
                &field("endpoint"),
                format!(
                    "expected one of {}, got `{}`",
                    crate::manifest::ENDPOINT_ROLES
                        .iter()
                        .map(|(r, _)| *r)
                        .collect::<Vec<_>>()
                        .join(", "),
                    e.get_ref()
                ),
            ));
        }
        if spec.action == FaultAction::Traffic && spec.endpoint.is_none() {
            errors.push(err(
                f.span(),
                &field("endpoint"),
                "required for action = \"traffic\": the endpoint role to call".into(),
            ));
        }
        if let Some(alerts) = &spec.alerts {
            for id in alerts.get_ref() {
                if !id.starts_with("AL-") || !crate::requirements::is_known(id) {
                    errors.push(err(
                        alerts.span(),
                        &field("alerts"),
                        format!("expected alert requirement IDs (AL-ERR, AL-QUEUE, ...), got `{id}`"),
                    ));
                }
            }
        }
    }
    if load.requests.get_ref().is_empty() {
        errors.push(err(
            load.requests.span(),
            "load.request",
            "expected at least one [[load.request]]".into(),
        ));
    }
    for (i, r) in load.requests.get_ref().iter().enumerate() {
        if let Some(method) = &r.method
            && !["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"].contains(&method.get_ref().as_str())
        {
            errors.push(err(
                method.span(),
                &format!("load.request[{i}].method"),
                format!("expected GET, POST, PUT, DELETE, HEAD or PATCH, got `{}`", method.get_ref()),
            ));
        }
        match (&r.path, &r.endpoint) {
            (Some(path), None) if !path.get_ref().starts_with('/') => errors.push(err(
                path.span(),
                &format!("load.request[{i}].path"),
                format!("expected a path starting with '/', got `{}`", path.get_ref()),
            )),
            (Some(_), None) => {}
            (None, Some(e)) if !crate::manifest::ENDPOINT_ROLES.iter().any(|(role, _)| role == e.get_ref()) => errors.push(err(
                e.span(),
                &format!("load.request[{i}].endpoint"),
                format!(
                    "expected one of {}, got `{}`",
                    crate::manifest::ENDPOINT_ROLES
                        .iter()
                        .map(|(r, _)| *r)
                        .collect::<Vec<_>>()
                        .join(", "),
                    e.get_ref()
                ),
            )),
            (None, Some(_)) => {}
            (Some(path), Some(_)) => errors.push(err(
                path.span(),
                &format!("load.request[{i}].path"),
                "expected either `path` or `endpoint`, not both".into(),
            )),
            (None, None) => errors.push(err(
                load.requests.span(),
                &format!("load.request[{i}]"),
                "expected `path = \"/...\"` or `endpoint = \"<role>\"`".into(),
            )),
        }
    }
    for (i, f) in raw.faults.iter().enumerate() {
        // Where a value is given, point at it; where one is missing, at the [[fault]].
        let header = f.span();
        let spec = f.get_ref();
        let field = |name: &str| format!("fault[{i}].{name}");
        for (name, span) in spec.given_fields() {
            let takes = fields_of(spec.action);
            if !takes.contains(&name) {
                let takes = if takes.is_empty() {
                    "none of its own".to_string()
                } else {
                    takes.join(", ")
                };
                errors.push(err(
                    span.unwrap_or_else(|| header.clone()),
                    &field(name),
                    format!(
                        "action = \"{}\" does not take `{name}` (its fields: {takes}; every action: target, after_s, when, when_timeout_s, alerts)",
                        action_name(spec.action)
                    ),
                ));
            }
        }
        let needs_signal = matches!(spec.action, FaultAction::Signal | FaultAction::Outage);
        match &spec.signal {
            Some(sig) if sig.get_ref() != STOP_SIGNAL && nix::sys::signal::Signal::from_str_lenient(sig.get_ref()).is_none() => {
                errors.push(err(
                    sig.span(),
                    &field("signal"),
                    format!(
                        "expected a signal name (TERM, KILL, HUP, STOP, CONT, INT, QUIT), got `{}`; or \"{STOP_SIGNAL}\" for the stop signal the target declares",
                        sig.get_ref()
                    ),
                ));
            }
            None if needs_signal => errors.push(err(
                header.clone(),
                &field("signal"),
                format!("required for action = \"{}\"", action_name(spec.action)),
            )),
            _ => {}
        }
        if matches!(spec.action, FaultAction::Outage | FaultAction::Pause) {
            match &spec.down_s {
                None => errors.push(err(
                    header.clone(),
                    &field("down_s"),
                    "required for this action: seconds the service stays down".into(),
                )),
                Some(d) if !seconds(*d.get_ref()) => errors.push(err(
                    d.span(),
                    &field("down_s"),
                    format!("expected a number of seconds ≥ 0, got {}", d.get_ref()),
                )),
                Some(_) => {}
            }
        }
        if spec.action == FaultAction::BadConfig {
            match &spec.defect {
                Some(d) if matches!(d.get_ref().as_str(), "missing" | "malformed") => {}
                Some(d) => errors.push(err(
                    d.span(),
                    &field("defect"),
                    format!("expected \"missing\" or \"malformed\", got `{}`", d.get_ref()),
                )),
                None => errors.push(err(
                    header.clone(),
                    &field("defect"),
                    "required for action = \"bad-config\": \"missing\" or \"malformed\"".into(),
                )),
            }
        }
        let needs_version = matches!(spec.action, FaultAction::Deploy | FaultAction::Canary);
        match &spec.version {
            None if needs_version => errors.push(err(
                header.clone(),
                &field("version"),
                format!("required for action = \"{}\": the version to release", action_name(spec.action)),
            )),
            Some(v) if !needs_version => errors.push(err(
                header.clone(),
                &field("version"),
                format!(
                    "only `deploy` and `canary` take a version, not `{}` ({v})",
                    action_name(spec.action)
                ),
            )),
            Some(v) if !crate::deploy::api::valid_instance_name(v) => errors.push(err(
                header.clone(),
                &field("version"),
                format!("expected letters, digits, `-` or `_` (at most 48), got `{v}`"),
            )),
            _ => {}
        }
        if spec.variant.is_some() && !needs_version {
            errors.push(err(
                header.clone(),
                &field("variant"),
                "only `deploy` and `canary` take a variant".into(),
            ));
        }
        if spec.check_data && spec.action != FaultAction::Rollback {
            errors.push(err(header.clone(), &field("check_data"), "only `rollback` takes check_data".into()));
        }
        if let Some(after) = &spec.after_s
            && !seconds(*after.get_ref())
        {
            errors.push(err(
                after.span(),
                &field("after_s"),
                format!("expected a number of seconds ≥ 0, got {}", after.get_ref()),
            ));
        }
        if !seconds(*spec.when_timeout_s.get_ref()) {
            errors.push(err(
                spec.when_timeout_s.span(),
                &field("when_timeout_s"),
                format!("expected a number of seconds ≥ 0, got {}", spec.when_timeout_s.get_ref()),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(InputErrors::in_file_order(errors));
    }
    Ok(Scenario {
        file: path.to_path_buf(),
        name: raw.scenario.name,
        description: raw.scenario.description,
        covers: raw.scenario.covers.into_iter().map(|c| c.into_inner()).collect(),
        findings: raw.scenario.findings,
        seed: raw.scenario.seed,
        profiles: raw.scenario.profiles,
        load: raw.load.into_spec(&source),
        probes: raw.probes.map(Spanned::into_inner).unwrap_or_default(),
        faults: raw.faults.into_iter().map(|f| f.into_inner().into_spec()).collect(),
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
        FaultAction::Burst => "burst",
        FaultAction::BackendTraffic => "backend-traffic",
        FaultAction::GzipProbe => "gzip-probe",
        FaultAction::CacheProbe => "cache-probe",
        FaultAction::KillAll => "kill-all",
        FaultAction::CertSwap => "cert-swap",
        FaultAction::BrokenReload => "broken-reload",
        FaultAction::Flood => "flood",
        FaultAction::Deploy => "deploy",
        FaultAction::Switch => "switch",
        FaultAction::Canary => "canary",
        FaultAction::Rollback => "rollback",
        FaultAction::Releases => "releases",
        FaultAction::Traffic => "traffic",
        FaultAction::RedisFill => "redis-fill",
        FaultAction::RedisConnections => "redis-connections",
        FaultAction::RedisSlow => "redis-slow",
        FaultAction::RedisSaveFail => "redis-save-fail",
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
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(InputErrors(errors))
    }
}
