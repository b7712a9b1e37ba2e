//! The stack manifest (`stack.toml`): what the stack under test is and how to
//! run and reach it. Parsed raw with serde (unknown fields are errors), then
//! checked for references that serde cannot see (depends_on, ports, roles).
//!
//! A mutant manifest is an overlay: `extends = "../reference/stack.toml"`
//! plus the env vars or templates it changes.

use crate::input_error::{InputError, InputErrors};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A validated stack manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file the user named (the overlay, for a mutant).
    pub file: PathBuf,
    /// Directory templates and relative paths are resolved against.
    pub dir: PathBuf,
    pub stack: StackSection,
    pub build: Vec<BuildStep>,
    /// Secret name -> length of the random value generated per run.
    pub secrets: BTreeMap<String, usize>,
    /// Services in start order (dependencies first).
    pub services: Vec<Service>,
    pub mutant: Option<MutantSection>,
    /// Where the stack terminates TLS, if it does: test certificates are generated for it.
    pub tls: Option<TlsSection>,
    /// Where the stack's alerts live, and which alert implements which requirement.
    pub monitoring: Option<MonitoringSection>,
    /// `[endpoints]`: endpoint roles -> the stack's own requests.
    pub endpoints: BTreeMap<String, EndpointDecl>,
    /// `[deploy]`: the stack's release commands (section 4 of the standard).
    pub deploy: Option<crate::deploy::DeployDecl>,
}

/// Endpoint roles a scenario may ask for (`endpoint = "slow"`), and what the
/// stack's request for each must do. `enqueue` comes from the worker's
/// declaration and `live` from the app's health paths when `[endpoints]`
/// does not name them.
pub const ENDPOINT_ROLES: &[(&str, &str)] = &[
    ("read", "an ordinary GET that needs nothing but the app (background load)"),
    (
        "slow",
        "a request that takes `{ms}` milliseconds to answer (holds requests in flight)",
    ),
    (
        "write",
        "a write of one record, `{n}` numbering it (its Redis key in the app's `writes`)",
    ),
    ("read-record", "a read of one record"),
    (
        "enqueue",
        "a POST that enqueues one task, `{priority}` (1-10) and `{ms}` in its path",
    ),
    ("live", "the app's liveness path"),
    ("error", "a request the app answers with a 5xx (provokes the error-rate alert)"),
    ("cpu", "a request that burns `{ms}` milliseconds of CPU (provokes the CPU alert)"),
    (
        "memory",
        "a request that holds `{mb}` MiB for `{s}` seconds (provokes the memory alert)",
    ),
    ("proxy-health", "a path the proxy answers itself"),
];

/// One endpoint: `{ method, path, body }`, or just `"/path"` for a GET.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EndpointDecl {
    Path(String),
    Request {
        #[serde(default)]
        method: Option<String>,
        path: String,
        #[serde(default)]
        body: Option<String>,
    },
}

impl EndpointDecl {
    pub fn method(&self) -> &str {
        match self {
            EndpointDecl::Request { method: Some(m), .. } => m,
            _ => "GET",
        }
    }

    pub fn path(&self) -> &str {
        match self {
            EndpointDecl::Path(p) | EndpointDecl::Request { path: p, .. } => p,
        }
    }

    pub fn body(&self) -> Option<&str> {
        match self {
            EndpointDecl::Request { body, .. } => body.as_deref(),
            EndpointDecl::Path(_) => None,
        }
    }
}

/// `[monitoring]`: the service whose Prometheus HTTP API serves the stack's
/// alerts (`/api/v1/alerts`, `/api/v1/rules`, `/api/v1/query`), and the alert
/// that implements each requirement of section 5 of the standard.
#[derive(Debug, Clone)]
pub struct MonitoringSection {
    pub service: String,
    /// A name from the service's `ports`.
    pub port: String,
    /// Requirement ID (`AL-CERT`) -> its alert.
    pub alerts: BTreeMap<String, AlertDecl>,
    /// How much faster than real time the stack's long alert thresholds run
    /// (AL-TASK-TIME's 30 minutes × `time_scale`); 1 = real time.
    pub time_scale: f64,
    /// The service that routes the alerts to people (an Alertmanager): its
    /// configuration sends them to the harness's receiver at
    /// `{{ harness.webhook }}`, and the AL-* checks then require each alert to
    /// arrive there, not only to fire in Prometheus.
    pub alertmanager: Option<String>,
}

/// `AL-CERT = { alert = "CertificateExpiringSoon", query = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = r#"{ alert = "<alert name>" } with an optional query = "<PromQL>""#
)]
pub struct AlertDecl {
    /// The `alertname` Prometheus reports.
    pub alert: String,
    /// A PromQL expression the harness records beside the alert's state (for
    /// AL-CERT: the served certificate's days left, as the monitoring sees it).
    #[serde(default)]
    pub query: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [monitoring] table")]
struct RawMonitoring {
    service: Spanned<String>,
    port: Spanned<String>,
    #[serde(default)]
    alerts: BTreeMap<String, Spanned<AlertDecl>>,
    #[serde(default)]
    time_scale: Option<Spanned<f64>>,
    #[serde(default)]
    alertmanager: Option<Spanned<String>>,
}

/// `[tls]`: the service that terminates TLS. The harness generates a CA and
/// certificates for `host` (see `stack::certs`); templates find them as
/// `{{ certs.<name>.cert }}` / `.key` (`active` is the pair the server reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Service name that serves TLS.
    pub service: String,
    /// Its TLS port (a name from its `ports`).
    pub port: String,
    /// The host name clients use (the certificates' subject).
    #[serde(default = "default_tls_host")]
    pub host: String,
    /// Below this many days left a certificate is "expiring" (AL-CERT's reading: 14).
    #[serde(default = "default_warn_days")]
    pub warn_days: i64,
}

fn default_tls_host() -> String {
    "localhost".into()
}
fn default_warn_days() -> i64 {
    14
}

/// `[services.<name>.proxy]`: what the NX-* checks need from a reverse proxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyDecl {
    /// The rendered configuration file (in the service dir) a broken-config fault damages.
    #[serde(default)]
    pub config_file: Option<String>,
    /// Command that validates the configuration (non-zero exit: invalid), e.g. `nginx -t`.
    #[serde(default)]
    pub test_config: Vec<String>,
    /// How the proxy applies new configuration and certificates.
    #[serde(default)]
    pub reload: ProxyReload,
    #[serde(default)]
    pub rate_limit: Option<RateLimitDecl>,
    #[serde(default)]
    pub gzip: Option<GzipDecl>,
    #[serde(default)]
    pub cache: Option<CacheDecl>,
    /// Access log file in the service dir (status and upstream status per request).
    #[serde(default)]
    pub access_log: Option<String>,
    /// stub_status-like path on the ready port.
    #[serde(default)]
    pub status: Option<String>,
}

/// `reload = { signal = "HUP" }` or `reload = { restart = true }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProxyReload {
    #[serde(default)]
    pub signal: Option<String>,
    /// Stop and start the process instead (what a stack without reload does).
    #[serde(default)]
    pub restart: bool,
}

impl Default for ProxyReload {
    fn default() -> Self {
        Self {
            signal: Some("HUP".into()),
            restart: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitDecl {
    /// A path that goes through the limit to an upstream (not a `return`).
    pub path: String,
    pub rate_per_s: f64,
    pub burst: u32,
    /// The path label the backend counts these requests under (default: `path`).
    #[serde(default)]
    pub backend_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GzipDecl {
    /// A text/JSON response above the gzip threshold.
    pub large: String,
    /// A response below it.
    pub small: String,
    #[serde(default = "default_gzip_min")]
    pub min_length: u32,
}

fn default_gzip_min() -> u32 {
    1000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheDecl {
    /// A cacheable GET.
    pub path: String,
    /// Response header carrying the cache status (HIT, MISS, ...).
    pub header: String,
    /// The path label the backend counts these requests under (default: `path` without its query).
    #[serde(default)]
    pub backend_path: Option<String>,
}

/// `[services.<name>.metrics]`: a Prometheus endpoint with the counters the
/// proxy checks read from the backend side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsDecl {
    pub port: String,
    pub path: String,
    /// Counter of requests, labelled with the request path.
    pub requests: String,
    /// The label of `requests` that carries the path (`path`; some exporters say `handler`).
    #[serde(default = "default_path_label")]
    pub path_label: String,
    /// Counter of accepted TCP connections.
    #[serde(default)]
    pub connections: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StackSection {
    pub name: String,
    /// Response header that carries the served version.
    pub version_header: Option<String>,
    /// How long a service may take to exit after SIGTERM (the standard's reading: 30 s).
    pub grace_period_s: f64,
    /// Directories, relative to the manifest, put in front of PATH for the stack's commands.
    pub path: Vec<String>,
    /// How long the whole stack may take to become ready.
    pub ready_timeout_s: f64,
    /// The container image of every service that names none (Docker backend).
    pub image: Option<String>,
    /// The docker-compose file the services come from (absolute), if any.
    pub compose: Option<PathBuf>,
}

/// `[stack]` as written, with the spans the checks after parsing point at.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [stack] table")]
struct RawStack {
    name: String,
    #[serde(default)]
    version_header: Option<String>,
    #[serde(default)]
    grace_period_s: Option<Spanned<f64>>,
    #[serde(default)]
    path: Vec<String>,
    #[serde(default)]
    ready_timeout_s: Option<Spanned<f64>>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    compose: Option<Spanned<String>>,
}

impl RawStack {
    fn into_section(self) -> StackSection {
        StackSection {
            name: self.name,
            version_header: self.version_header,
            grace_period_s: self.grace_period_s.map(Spanned::into_inner).unwrap_or_else(default_grace),
            path: self.path,
            ready_timeout_s: self.ready_timeout_s.map(Spanned::into_inner).unwrap_or_else(default_ready_timeout),
            image: self.image,
            compose: None,
        }
    }
}

fn default_grace() -> f64 {
    30.0
}
fn default_ready_timeout() -> f64 {
    20.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildStep {
    pub command: Vec<String>,
    /// Working directory, relative to the manifest.
    #[serde(default)]
    pub workdir: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MutantSection {
    pub name: String,
    /// Requirement IDs this mutant breaks on purpose.
    pub breaks: Vec<String>,
    /// Finding IDs the harness must report for this mutant (a risk the
    /// standard itself creates, which breaks no requirement on its own).
    pub reveals: Vec<String>,
    pub description: String,
}

/// `[mutant]` as written, with the span of each requirement ID.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [mutant] table")]
struct RawMutant {
    name: String,
    breaks: Vec<Spanned<String>>,
    #[serde(default)]
    reveals: Vec<String>,
    #[serde(default)]
    description: String,
}

impl RawMutant {
    fn into_section(self) -> MutantSection {
        MutantSection {
            name: self.name,
            breaks: self.breaks.into_iter().map(Spanned::into_inner).collect(),
            reveals: self.reveals,
            description: self.description,
        }
    }
}

/// A service of the stack.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub role: Role,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Named ports allocated on loopback at run time.
    pub ports: Vec<String>,
    /// Rendered file name (in the service dir) -> template path (absolute).
    pub files: BTreeMap<String, PathBuf>,
    pub depends_on: Vec<String>,
    pub ready: ReadyCheck,
    pub health: Option<HealthPaths>,
    pub redis: Option<RedisAccess>,
    pub config: Option<ConfigDecl>,
    /// Command a user runs to get the service's binary, shown by `doctor`.
    pub install: Option<String>,
    /// Reverse-proxy facts for the NX-* checks.
    pub proxy: Option<ProxyDecl>,
    /// Backend counters the NX-* checks read.
    pub metrics: Option<MetricsDecl>,
    /// Where the service stores what a write request acknowledged (RD-AOF, RD-RECOVER).
    pub writes: Vec<WriteDecl>,
    /// What the CW-* and GS-WORKER checks need to know about a task worker.
    pub worker: Option<WorkerDecl>,
    /// The signal that asks the service to stop gracefully (`stop_signal`,
    /// default TERM; nginx's is QUIT): what the harness sends when it stops
    /// the service, and what a fault with `signal = "stop_signal"` sends.
    pub stop_signal: nix::sys::signal::Signal,
    /// The container image it runs from on the Docker backend (`[stack] image` when absent).
    pub image: Option<String>,
    /// Its service in `[stack] compose`, when the stack has one.
    pub compose: Option<crate::stack::compose::ComposeService>,
}

/// A rendered file's name must stay inside the service's run folder (it may
/// hold a secret): no absolute path, no `..`.
fn escapes_service_dir(dest: &str) -> Option<String> {
    use std::path::Component;
    let path = std::path::Path::new(dest);
    let inside = !dest.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    (!inside).then(|| format!("expected a file name inside the service's folder, got `{dest}` (no absolute path, no `..`)"))
}

/// Parse a declared graceful-stop signal: a signal name the service can catch.
fn parse_stop_signal(name: &str) -> Result<nix::sys::signal::Signal, String> {
    use nix::sys::signal::Signal;
    match Signal::from_str_lenient(name) {
        None => Err(format!(
            "expected a signal name such as \"TERM\" or \"QUIT\" (the service's graceful stop), got `{name}`"
        )),
        Some(sig @ (Signal::SIGKILL | Signal::SIGSTOP)) => Err(format!(
            "expected a signal the service can handle, such as \"TERM\" or \"QUIT\"; {} cannot be caught, so it is no graceful stop",
            sig.as_str()
        )),
        Some(sig) => Ok(sig),
    }
}

/// `[services.<worker>.worker]`: the broker queue, how tasks are enqueued,
/// and the worker's settings. What tasks do is read from Celery's own event
/// stream (`events_exchange`), as Flower reads it, and from kombu's lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerDecl {
    /// Broker queue name (Celery's default: "celery").
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Variable holding the worker's concurrency (the standard: CELERY_WORKER_CONCURRENCY).
    pub concurrency_env: String,
    /// The endpoint that enqueues one task (POST), and where its answer names the task id.
    pub enqueue: EnqueueDecl,
    /// Celery's event exchange (`event_exchange`, default "celeryev").
    #[serde(default = "default_events_exchange")]
    pub events_exchange: String,
    /// After this long an unacknowledged task is delivered again.
    pub visibility_timeout_s: f64,
    /// The Redis hash of delivered, unacknowledged messages (kombu's default: "unacked").
    #[serde(default = "default_unacked_key")]
    pub unacked_key: String,
}

fn default_unacked_key() -> String {
    "unacked".into()
}

fn default_queue() -> String {
    "celery".into()
}

fn default_path_label() -> String {
    "path".into()
}

fn default_events_exchange() -> String {
    "celeryev".into()
}

/// `enqueue = { service, port, path, task_id }`: POST `path` enqueues one
/// task. `{priority}` (the standard's 1-10) and `{ms}` (how long the task
/// should take) in `path` are filled in by the harness; `task_id` is the JSON
/// pointer to the task id in the 2xx answer, which ties the answer to the
/// task the broker shows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueDecl {
    pub service: String,
    pub port: String,
    pub path: String,
    #[serde(default = "default_task_id_pointer")]
    pub task_id: String,
    /// The same request for a task that raises (AL-TASK-FAIL's provocation), same placeholders.
    #[serde(default)]
    pub failing_path: Option<String>,
}

fn default_task_id_pointer() -> String {
    "/id".into()
}

impl EnqueueDecl {
    /// The path to POST for one task of `priority` taking `ms`.
    pub fn path_for(&self, priority: u8, ms: u64) -> String {
        fill_task_path(&self.path, priority, ms)
    }

    /// The path for a task that raises, if the stack declares one.
    pub fn failing_path_for(&self, priority: u8, ms: u64) -> Option<String> {
        self.failing_path.as_deref().map(|p| fill_task_path(p, priority, ms))
    }

    /// The route alone (no query, no placeholders), to recognise load requests to it.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// The task id in an answer's JSON body, by the declared pointer.
    pub fn task_id_in(&self, answer: &serde_json::Value) -> Option<String> {
        match answer.pointer(&self.task_id)? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// A write endpoint and the Redis key its acknowledged write lands in:
/// `{ path = "/api/orders/{n}", key = "order:{n}" }`; `{n}` is the number the
/// load put in the path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteDecl {
    pub path: String,
    pub key: String,
}

/// What a service does in the stack; scenarios address services by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Where the load goes (nginx).
    Entry,
    /// The application.
    App,
    Redis,
    Worker,
    Monitoring,
    Other,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Entry => "entry",
            Role::App => "app",
            Role::Redis => "redis",
            Role::Worker => "worker",
            Role::Monitoring => "monitoring",
            Role::Other => "other",
        }
    }
}

/// How the harness knows a service is ready.
#[derive(Debug, Clone)]
pub enum ReadyCheck {
    /// An HTTP GET on the named port answers 2xx.
    Http { http: String, port: String },
    /// A TCP connection to the named port succeeds.
    Tcp { tcp: String },
    /// The service's own output (stdout and stderr) has a line matching
    /// this regular expression since it was started (Celery: `ready\.`).
    Log { pattern: regex::Regex },
}

impl PartialEq for ReadyCheck {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ReadyCheck::Http { http: a, port: p }, ReadyCheck::Http { http: b, port: q }) => a == b && p == q,
            (ReadyCheck::Tcp { tcp: a }, ReadyCheck::Tcp { tcp: b }) => a == b,
            (ReadyCheck::Log { pattern: a }, ReadyCheck::Log { pattern: b }) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for ReadyCheck {}

impl ReadyCheck {
    /// The port the check talks to, if it talks to one.
    pub fn port(&self) -> Option<&str> {
        match self {
            ReadyCheck::Http { port, .. } => Some(port),
            ReadyCheck::Tcp { tcp } => Some(tcp),
            ReadyCheck::Log { .. } => None,
        }
    }

    /// The HTTP path, for a check that GETs one.
    pub fn http_path(&self) -> Option<&str> {
        match self {
            ReadyCheck::Http { http, .. } => Some(http),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ReadyCheck::Tcp { tcp } => format!("TCP connect to port `{tcp}`"),
            ReadyCheck::Http { http, port } => format!("GET {http} on port `{port}` answering 2xx"),
            ReadyCheck::Log { pattern } => format!("a line of its output matching `{}`", pattern.as_str()),
        }
    }
}

/// `ready = { ... }` as written: one struct rather than an untagged enum, so a
/// wrong combination can be told apart from a typo and said what is expected.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = r#"{ http = "/path", port = "<port name>" }, { tcp = "<port name>" } or { log = "<regex>" }"#
)]
struct RawReady {
    #[serde(default)]
    http: Option<String>,
    #[serde(default)]
    port: Option<String>,
    #[serde(default)]
    tcp: Option<String>,
    #[serde(default)]
    log: Option<String>,
}

impl RawReady {
    const EXPECTED: &str = "expected { http = \"/path\", port = \"<port name>\" }, { tcp = \"<port name>\" } or { log = \"<regex>\" }";

    /// The check, or what is wrong with it.
    fn check(&self) -> Result<ReadyCheck, String> {
        match (&self.http, &self.port, &self.tcp, &self.log) {
            (Some(http), Some(port), None, None) => Ok(ReadyCheck::Http {
                http: http.clone(),
                port: port.clone(),
            }),
            (None, None, Some(tcp), None) => Ok(ReadyCheck::Tcp { tcp: tcp.clone() }),
            (None, None, None, Some(log)) => regex::Regex::new(log)
                .map(|pattern| ReadyCheck::Log { pattern })
                .map_err(|e| format!("expected a regular expression in `log`: {e}")),
            _ => Err(Self::EXPECTED.into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthPaths {
    pub port: String,
    pub ready: Option<String>,
    pub live: Option<String>,
    pub aggregate: Option<String>,
}

/// How the harness talks to a Redis service (for CLIENT LIST and INFO).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisAccess {
    pub port: String,
    #[serde(default)]
    pub password: Option<String>,
    /// The instance is (also) the task broker: evicting keys loses tasks (finding 5).
    #[serde(default)]
    pub broker: bool,
}

/// Configuration facts a service declares, used by the CF-* checks.
#[derive(Debug, Clone)]
pub struct ConfigDecl {
    /// Variables without which the service must refuse to start.
    pub required_env: Vec<String>,
    /// Variable -> a malformed value the service must reject at startup.
    pub malformed_env: BTreeMap<String, String>,
    /// A variable whose effect the harness can observe from outside.
    pub env_observable: Option<EnvObservable>,
    /// A reloadable setting, and how it is reloaded.
    pub reload: Option<ReloadDecl>,
    /// How long a bad configuration may take to stop the process.
    pub validate_deadline_s: f64,
}

/// `[services.<name>.config]` as written, with the spans of the values checked after parsing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of configuration facts")]
struct RawConfigDecl {
    #[serde(default)]
    required_env: Vec<String>,
    #[serde(default)]
    malformed_env: BTreeMap<String, String>,
    #[serde(default)]
    env_observable: Option<EnvObservable>,
    #[serde(default)]
    reload: Option<RawReloadDecl>,
    #[serde(default)]
    validate_deadline_s: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = r#"{ file = "...", template = "...", setting = "...", initial = "...", signal = "HUP", probe = "/path" }"#
)]
struct RawReloadDecl {
    file: String,
    template: Spanned<String>,
    setting: String,
    initial: String,
    signal: Spanned<String>,
    probe: String,
}

impl RawConfigDecl {
    fn to_decl(&self) -> ConfigDecl {
        ConfigDecl {
            required_env: self.required_env.clone(),
            malformed_env: self.malformed_env.clone(),
            env_observable: self.env_observable.clone(),
            reload: self.reload.as_ref().map(|r| ReloadDecl {
                file: r.file.clone(),
                template: r.template.get_ref().clone(),
                setting: r.setting.clone(),
                initial: r.initial.clone(),
                signal: r.signal.get_ref().clone(),
                probe: r.probe.clone(),
            }),
            validate_deadline_s: self
                .validate_deadline_s
                .as_ref()
                .map(|d| *d.get_ref())
                .unwrap_or_else(default_validate_deadline),
        }
    }
}

fn default_validate_deadline() -> f64 {
    5.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvObservable {
    pub variable: String,
    /// Only "version-header" for now: the value shows in the stack's version header.
    pub via: ObservedVia,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObservedVia {
    VersionHeader,
}

#[derive(Debug, Clone)]
pub struct ReloadDecl {
    /// File in the service dir holding the setting; rendered from `template`.
    pub file: String,
    pub template: String,
    /// Template variable (under `settings.`) that holds the reloadable value.
    pub setting: String,
    /// The value used at start.
    pub initial: String,
    /// Signal that makes the service re-read the file ("HUP").
    pub signal: String,
    /// GET path on the health port whose body shows the value in effect.
    pub probe: String,
}

// ---- raw layer -------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    stack: RawStack,
    #[serde(default)]
    build: Vec<BuildStep>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<usize>>,
    services: BTreeMap<String, Spanned<RawService>>,
    #[serde(default)]
    tls: Option<Spanned<TlsSection>>,
    #[serde(default)]
    monitoring: Option<RawMonitoring>,
    #[serde(default)]
    endpoints: BTreeMap<Spanned<String>, Spanned<EndpointDecl>>,
    #[serde(default)]
    deploy: Option<Spanned<crate::deploy::DeployDecl>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [services.<name>] table")]
struct RawService {
    role: Role,
    #[serde(default)]
    command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    files: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    ready: Spanned<RawReady>,
    #[serde(default)]
    health: Option<Spanned<HealthPaths>>,
    #[serde(default)]
    redis: Option<Spanned<RedisAccess>>,
    #[serde(default)]
    config: Option<RawConfigDecl>,
    #[serde(default)]
    install: Option<String>,
    #[serde(default)]
    proxy: Option<ProxyDecl>,
    #[serde(default)]
    metrics: Option<Spanned<MetricsDecl>>,
    #[serde(default)]
    writes: Vec<WriteDecl>,
    #[serde(default)]
    worker: Option<WorkerDecl>,
    /// The graceful-stop signal ("TERM" when absent).
    #[serde(default)]
    stop_signal: Option<Spanned<String>>,
    #[serde(default)]
    image: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlay {
    extends: Spanned<String>,
    /// A variant of the base that is not a mutant (another worker, say) names itself.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    mutant: Option<RawMutant>,
    #[serde(default)]
    services: BTreeMap<String, Spanned<RawServiceOverlay>>,
    /// `[deploy.env]`: variables added to the base's deployment commands.
    #[serde(default)]
    deploy: Option<Spanned<RawDeployOverlay>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [deploy] table with only `env`")]
struct RawDeployOverlay {
    #[serde(default)]
    env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [services.<name>] table")]
struct RawServiceOverlay {
    /// Variables added or replaced.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Templates replaced, relative to the overlay file.
    #[serde(default)]
    files: BTreeMap<String, String>,
    /// How the proxy reloads, replaced (a stack that restarts instead).
    #[serde(default)]
    proxy_reload: Option<ProxyReload>,
    /// The command replaced (another implementation of the service).
    #[serde(default)]
    command: Option<Vec<String>>,
    /// How to get that command, shown by `doctor`.
    #[serde(default)]
    install: Option<String>,
    /// The graceful-stop signal replaced.
    #[serde(default)]
    stop_signal: Option<Spanned<String>>,
}

/// Read and validate a manifest. `path` may be a file or a directory holding `stack.toml`.
pub fn load(path: &Path) -> Result<Manifest, InputErrors> {
    let file = if path.is_dir() {
        path.join("stack.toml")
    } else {
        path.to_path_buf()
    };
    let source =
        std::fs::read_to_string(&file).map_err(|e| InputError::whole_file(&file, format!("cannot read the stack manifest: {e}")))?;
    let table: toml::Table = toml::from_str(&source).map_err(|e| InputError::from_toml(&file, &source, &e))?;
    if table.contains_key("extends") {
        load_overlay(&file, &source)
    } else {
        load_base(&file, &source)
    }
}

fn load_overlay(file: &Path, source: &str) -> Result<Manifest, InputErrors> {
    let raw: RawOverlay = toml::from_str(source).map_err(|e| InputError::from_toml(file, source, &e))?;
    let dir = parent_dir(file);
    let base_path = dir.join(raw.extends.get_ref());
    if !base_path.is_file() {
        return Err(InputError::at(
            file,
            source,
            Some(raw.extends.span()),
            "extends",
            format!(
                "expected the path of a base stack.toml, relative to this file; {} does not exist",
                base_path.display()
            ),
        )
        .into());
    }
    // An overlay of an overlay is refused before it is loaded: loading it
    // first would follow a file that extends itself, or two that extend each
    // other, until the stack overflowed.
    let base_source = std::fs::read_to_string(&base_path).unwrap_or_default();
    if let Ok(base_table) = toml::from_str::<toml::Table>(&base_source)
        && let Some(next) = base_table.get("extends")
    {
        return Err(InputError::at(
            file,
            source,
            Some(raw.extends.span()),
            "extends",
            format!(
                "an overlay must extend a base manifest, not another overlay: {} extends {}",
                base_path.display(),
                next.as_str().unwrap_or("?")
            ),
        )
        .into());
    }
    let mut base = load(&base_path)?;
    let mut errors = Vec::new();
    for (name, overlay) in &raw.services {
        let Some(service) = base.services.iter_mut().find(|s| &s.name == name) else {
            errors.push(InputError::at(
                file,
                source,
                Some(overlay.span()),
                &format!("services.{name}"),
                format!("the base manifest has no service named `{name}` (it has: {})", base_names(&base)),
            ));
            continue;
        };
        let overlay = overlay.get_ref();
        service.env.extend(overlay.env.clone());
        for (dest, template) in &overlay.files {
            if let Some(why) = escapes_service_dir(dest) {
                errors.push(InputError::at(file, source, None, &format!("services.{name}.files.{dest}"), why));
            }
            service.files.insert(dest.clone(), dir.join(template));
        }
        if let (Some(reload), Some(proxy)) = (&overlay.proxy_reload, service.proxy.as_mut()) {
            proxy.reload = reload.clone();
        }
        if let Some(command) = overlay.command.as_ref().filter(|c| !c.is_empty()) {
            service.command = command.clone();
        }
        if let Some(install) = &overlay.install {
            service.install = Some(install.clone());
        }
        if let Some(sig) = &overlay.stop_signal {
            match parse_stop_signal(sig.get_ref()) {
                Ok(parsed) => service.stop_signal = parsed,
                Err(msg) => errors.push(InputError::at(
                    file,
                    source,
                    Some(sig.span()),
                    &format!("services.{name}.stop_signal"),
                    msg,
                )),
            }
        }
    }
    if let Some(overlay) = &raw.deploy {
        match base.deploy.as_mut() {
            Some(d) => d.env.extend(overlay.get_ref().env.clone()),
            None => errors.push(InputError::at(
                file,
                source,
                Some(overlay.span()),
                "deploy",
                "the base manifest has no [deploy] section to change",
            )),
        }
    }
    for id in raw.mutant.iter().flat_map(|m| &m.breaks) {
        if !crate::requirements::is_known(id.get_ref()) {
            errors.push(InputError::at(
                file,
                source,
                Some(id.span()),
                "mutant.breaks",
                format!("unknown requirement ID `{}`; see `chaosgate list --requirements`", id.get_ref()),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(InputErrors::in_file_order(errors));
    }
    base.file = file.to_path_buf();
    if let Some(name) = raw.name {
        base.stack.name = name;
    }
    base.mutant = raw.mutant.map(RawMutant::into_section);
    Ok(base)
}

fn base_names(m: &Manifest) -> String {
    m.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn load_base(file: &Path, source: &str) -> Result<Manifest, InputErrors> {
    let mut raw: RawManifest = toml::from_str(source).map_err(|e| InputError::from_toml(file, source, &e))?;
    let dir = parent_dir(file);
    let mut errors = Vec::new();
    let err = |span: std::ops::Range<usize>, field: String, msg: String| InputError::at(file, source, Some(span), &field, msg);
    // `[stack] compose`: the services' containers come from that file.
    let compose = match &raw.stack.compose {
        Some(path) => {
            let at = dir.join(path.get_ref());
            match crate::stack::compose::ComposeFile::load(&at) {
                Ok(c) => Some(c),
                Err(e) => {
                    return Err(InputErrors(vec![err(
                        path.span(),
                        "stack.compose".into(),
                        format!("expected a readable docker-compose file: {e}"),
                    )]));
                }
            }
        }
        None => None,
    };
    if let Some(c) = &compose {
        let unknown: Vec<InputError> = raw
            .services
            .iter()
            .filter(|(name, _)| !c.services.contains_key(*name))
            .map(|(name, svc)| {
                err(
                    svc.span(),
                    format!("services.{name}"),
                    format!(
                        "no service `{name}` in {} (its services: {}); a manifest service is named as in the compose file",
                        c.path.display(),
                        c.names().join(", ")
                    ),
                )
            })
            .collect();
        if !unknown.is_empty() {
            return Err(InputErrors(unknown));
        }
        // Start order from the compose file where the manifest says none.
        for (name, svc) in raw.services.iter_mut() {
            let svc = svc.get_mut();
            if svc.depends_on.is_empty() {
                svc.depends_on = c.services[name].depends_on.iter().map(|d| Spanned::new(0..0, d.clone())).collect();
            }
        }
    }

    if let Some(grace) = &raw.stack.grace_period_s
        && !(grace.get_ref().is_finite() && *grace.get_ref() > 0.0 && *grace.get_ref() <= 3600.0)
    {
        errors.push(err(
            grace.span(),
            "stack.grace_period_s".into(),
            format!("expected a positive number of seconds, at most 3600, got {}", grace.get_ref()),
        ));
    }
    if let Some(timeout) = &raw.stack.ready_timeout_s
        && !(timeout.get_ref().is_finite() && *timeout.get_ref() > 0.0 && *timeout.get_ref() <= 3600.0)
    {
        errors.push(err(
            timeout.span(),
            "stack.ready_timeout_s".into(),
            format!("expected a positive number of seconds, at most 3600, got {}", timeout.get_ref()),
        ));
    }
    for (name, len) in &raw.secrets {
        // A secret is generated in memory and written into configs: bounded.
        if !(1..=4096).contains(len.get_ref()) {
            errors.push(err(
                len.span(),
                format!("secrets.{name}"),
                format!("expected the secret's length, from 1 to 4096 characters, got {}", len.get_ref()),
            ));
        }
    }
    for (role, decl) in &raw.endpoints {
        let field = format!("endpoints.{}", role.get_ref());
        if !ENDPOINT_ROLES.iter().any(|(r, _)| r == role.get_ref()) {
            let known: Vec<&str> = ENDPOINT_ROLES.iter().map(|(r, _)| *r).collect();
            errors.push(err(
                role.span(),
                field,
                format!("expected an endpoint role ({}), got `{}`", known.join(", "), role.get_ref()),
            ));
        } else if !decl.get_ref().path().starts_with('/') {
            errors.push(err(
                decl.span(),
                field,
                format!("expected a path starting with '/', got `{}`", decl.get_ref().path()),
            ));
        }
    }
    let names: Vec<&String> = raw.services.keys().collect();
    let mut readies = BTreeMap::new();
    for (name, svc) in &raw.services {
        let s = svc.get_ref();
        match &s.command {
            Some(c) if c.get_ref().is_empty() => errors.push(err(
                c.span(),
                format!("services.{name}.command"),
                "expected a non-empty array: program and arguments".into(),
            )),
            None if compose.is_none() => errors.push(err(
                svc.span(),
                format!("services.{name}.command"),
                "missing: expected the program and its arguments (or `[stack] compose` naming a compose file that has this service)".into(),
            )),
            _ => {}
        }
        for dep in &s.depends_on {
            if !raw.services.contains_key(dep.get_ref()) {
                errors.push(err(
                    dep.span(),
                    format!("services.{name}.depends_on"),
                    format!("no service named `{}` (services: {})", dep.get_ref(), join(&names)),
                ));
            }
        }
        let port_known = |p: &str| s.ports.iter().any(|x| x == p);
        match s.ready.get_ref().check() {
            Ok(ready) => {
                if let Some(ready_port) = ready.port()
                    && !port_known(ready_port)
                {
                    errors.push(err(
                        s.ready.span(),
                        format!("services.{name}.ready"),
                        format!("port `{ready_port}` is not in this service's `ports` ({})", s.ports.join(", ")),
                    ));
                }
                readies.insert(name.clone(), ready);
            }
            Err(expected) => errors.push(err(s.ready.span(), format!("services.{name}.ready"), expected)),
        }
        if let Some(h) = &s.health
            && !port_known(&h.get_ref().port)
        {
            errors.push(err(
                h.span(),
                format!("services.{name}.health.port"),
                format!("port `{}` is not in this service's `ports`", h.get_ref().port),
            ));
        }
        if let Some(m) = &s.metrics
            && !port_known(&m.get_ref().port)
        {
            errors.push(err(
                m.span(),
                format!("services.{name}.metrics.port"),
                format!("port `{}` is not in this service's `ports`", m.get_ref().port),
            ));
        }
        if let Some(r) = &s.redis
            && !port_known(&r.get_ref().port)
        {
            errors.push(err(
                r.span(),
                format!("services.{name}.redis.port"),
                format!("port `{}` is not in this service's `ports`", r.get_ref().port),
            ));
        }
        for (dest, template) in &s.files {
            if let Some(why) = escapes_service_dir(dest) {
                errors.push(err(template.span(), format!("services.{name}.files.{dest}"), why));
            }
            if !dir.join(template.get_ref()).is_file() {
                errors.push(err(
                    template.span(),
                    format!("services.{name}.files.{dest}"),
                    format!("template `{}` not found next to the manifest", template.get_ref()),
                ));
            }
        }
        if let Some(sig) = &s.stop_signal
            && let Err(msg) = parse_stop_signal(sig.get_ref())
        {
            errors.push(err(sig.span(), format!("services.{name}.stop_signal"), msg));
        }
        if let Some(config) = &s.config {
            if let Some(d) = &config.validate_deadline_s
                && !(d.get_ref().is_finite() && *d.get_ref() > 0.0)
            {
                errors.push(err(
                    d.span(),
                    format!("services.{name}.config.validate_deadline_s"),
                    format!("expected a positive number of seconds, got {}", d.get_ref()),
                ));
            }
            if let Some(reload) = &config.reload {
                if !dir.join(reload.template.get_ref()).is_file() {
                    errors.push(err(
                        reload.template.span(),
                        format!("services.{name}.config.reload.template"),
                        format!("template `{}` not found next to the manifest", reload.template.get_ref()),
                    ));
                }
                if nix::sys::signal::Signal::from_str_lenient(reload.signal.get_ref()).is_none() {
                    errors.push(err(
                        reload.signal.span(),
                        format!("services.{name}.config.reload.signal"),
                        format!("expected a signal name such as \"HUP\", got `{}`", reload.signal.get_ref()),
                    ));
                }
            }
        }
    }
    if let Some(tls) = &raw.tls {
        let t = tls.get_ref();
        match raw.services.get(&t.service) {
            None => errors.push(err(
                tls.span(),
                "tls.service".into(),
                format!("no service named `{}` (services: {})", t.service, join(&names)),
            )),
            Some(svc) if !svc.get_ref().ports.contains(&t.port) => errors.push(err(
                tls.span(),
                "tls.port".into(),
                format!("port `{}` is not in the ports of `{}`", t.port, t.service),
            )),
            Some(_) => {}
        }
    }
    if let Some(m) = &raw.monitoring {
        match raw.services.get(m.service.get_ref()) {
            None => errors.push(err(
                m.service.span(),
                "monitoring.service".into(),
                format!("no service named `{}` (services: {})", m.service.get_ref(), join(&names)),
            )),
            Some(svc) if !svc.get_ref().ports.contains(m.port.get_ref()) => errors.push(err(
                m.port.span(),
                "monitoring.port".into(),
                format!(
                    "port `{}` is not in the ports of `{}` ({})",
                    m.port.get_ref(),
                    m.service.get_ref(),
                    svc.get_ref().ports.join(", ")
                ),
            )),
            Some(_) => {}
        }
        if let Some(am) = &m.alertmanager
            && !raw.services.contains_key(am.get_ref())
        {
            errors.push(err(
                am.span(),
                "monitoring.alertmanager".into(),
                format!(
                    "expected the service that routes the alerts (an Alertmanager); no service named `{}` (services: {})",
                    am.get_ref(),
                    join(&names)
                ),
            ));
        }
        if let Some(t) = &m.time_scale
            && !(*t.get_ref() > 0.0 && *t.get_ref() <= 1.0)
        {
            errors.push(err(
                t.span(),
                "monitoring.time_scale".into(),
                format!("expected a number in (0, 1] (0.002: 30 minutes become 3.6 s), got {}", t.get_ref()),
            ));
        }
        for (id, decl) in &m.alerts {
            if !crate::requirements::is_known(id) {
                errors.push(err(
                    decl.span(),
                    format!("monitoring.alerts.{id}"),
                    format!(
                        "expected a requirement ID as the key (`AL-CERT`, ...); `{id}` is not one, see `chaosgate list --requirements`"
                    ),
                ));
            } else if decl.get_ref().alert.trim().is_empty() {
                errors.push(err(
                    decl.span(),
                    format!("monitoring.alerts.{id}.alert"),
                    "expected the name of an alert (its `alertname`), got an empty string".into(),
                ));
            }
        }
    }
    if let Some(d) = &raw.deploy {
        let decl = d.get_ref();
        if !raw.services.contains_key(&decl.service) {
            errors.push(err(
                d.span(),
                "deploy.service".into(),
                format!(
                    "expected the service a release's instances are copies of; no service named `{}` (services: {})",
                    decl.service,
                    join(&names)
                ),
            ));
        }
        let commands = [
            ("deploy", Some(&decl.deploy)),
            ("switch", decl.switch.as_ref()),
            ("canary", decl.canary.as_ref()),
            ("rollback", decl.rollback.as_ref()),
            ("releases", decl.releases.as_ref()),
        ];
        for (field, command) in commands {
            if command.is_some_and(|c| c.is_empty() || c[0].trim().is_empty()) {
                errors.push(err(
                    d.span(),
                    format!("deploy.{field}"),
                    "expected a command: a non-empty list, program first".into(),
                ));
            }
        }
        if !(decl.timeout_s.is_finite() && decl.timeout_s > 0.0 && decl.timeout_s <= 3600.0) {
            errors.push(err(
                d.span(),
                "deploy.timeout_s".into(),
                format!("expected seconds between 0 and 3600, got {}", decl.timeout_s),
            ));
        }
        if !(decl.first_step_max_percent > 0.0 && decl.first_step_max_percent <= 100.0) {
            errors.push(err(
                d.span(),
                "deploy.first_step_max_percent".into(),
                format!("expected a percentage above 0 and at most 100, got {}", decl.first_step_max_percent),
            ));
        }
    }
    let order = match start_order(&raw.services) {
        Ok(order) => order,
        Err(cycle) => {
            // Point at the first dependency that closes the cycle.
            let first = &cycle[0];
            let span = raw.services[first]
                .get_ref()
                .depends_on
                .iter()
                .find(|d| cycle.contains(d.get_ref()))
                .map(|d| d.span());
            errors.push(InputError::at(
                file,
                source,
                span,
                &format!("services.{first}.depends_on"),
                format!("dependency cycle among services: {}", cycle.join(" -> ")),
            ));
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(InputErrors::in_file_order(errors));
    }
    let services = order
        .into_iter()
        .map(|name| {
            let s = raw.services[&name].get_ref();
            Service {
                name: name.clone(),
                role: s.role,
                command: s.command.as_ref().map(|c| c.get_ref().clone()).unwrap_or_default(),
                env: s.env.clone(),
                ports: s.ports.clone(),
                files: s.files.iter().map(|(d, t)| (d.clone(), dir.join(t.get_ref()))).collect(),
                depends_on: s.depends_on.iter().map(|d| d.get_ref().clone()).collect(),
                ready: readies.remove(&name).unwrap_or_else(|| unreachable!("every ready check was valid")),
                health: s.health.as_ref().map(|h| h.get_ref().clone()),
                redis: s.redis.as_ref().map(|r| r.get_ref().clone()),
                config: s.config.as_ref().map(RawConfigDecl::to_decl),
                install: s.install.clone(),
                proxy: s.proxy.clone(),
                metrics: s.metrics.as_ref().map(|m| m.get_ref().clone()),
                writes: s.writes.clone(),
                worker: s.worker.clone(),
                stop_signal: s
                    .stop_signal
                    .as_ref()
                    .and_then(|sig| parse_stop_signal(sig.get_ref()).ok())
                    .or_else(|| {
                        let c = compose.as_ref()?;
                        parse_stop_signal(c.services[&name].stop_signal.as_deref()?).ok()
                    })
                    .unwrap_or(nix::sys::signal::Signal::SIGTERM),
                image: s
                    .image
                    .clone()
                    .or_else(|| compose.as_ref().and_then(|c| c.services[&name].image.clone()))
                    .or_else(|| raw.stack.image.clone()),
                compose: compose.as_ref().map(|c| c.services[&name].clone()),
            }
        })
        .collect();
    Ok(Manifest {
        file: file.to_path_buf(),
        dir,
        stack: {
            let mut stack = raw.stack.into_section();
            stack.compose = compose.as_ref().map(|c| c.path.clone());
            stack
        },
        build: raw.build,
        secrets: raw.secrets.into_iter().map(|(k, v)| (k, v.into_inner())).collect(),
        services,
        mutant: None,
        tls: raw.tls.map(Spanned::into_inner),
        monitoring: raw.monitoring.map(|m| MonitoringSection {
            service: m.service.into_inner(),
            port: m.port.into_inner(),
            alerts: m.alerts.into_iter().map(|(id, d)| (id, d.into_inner())).collect(),
            time_scale: m.time_scale.map(Spanned::into_inner).unwrap_or(1.0),
            alertmanager: m.alertmanager.map(Spanned::into_inner),
        }),
        endpoints: raw
            .endpoints
            .into_iter()
            .map(|(role, decl)| (role.into_inner(), decl.into_inner()))
            .collect(),
        deploy: raw.deploy.map(Spanned::into_inner),
    })
}

fn join(names: &[&String]) -> String {
    names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// Topological order of services; an error names the services left in a cycle.
fn start_order(services: &BTreeMap<String, Spanned<RawService>>) -> Result<Vec<String>, Vec<String>> {
    let mut order: Vec<String> = Vec::new();
    let mut remaining: Vec<&String> = services.keys().collect();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|name| {
            let deps = &services[*name].get_ref().depends_on;
            let ready = deps
                .iter()
                .all(|d| order.contains(d.get_ref()) || !services.contains_key(d.get_ref()));
            if ready {
                order.push((*name).clone());
            }
            !ready
        });
        if remaining.len() == before {
            return Err(remaining.into_iter().cloned().collect());
        }
    }
    Ok(order)
}

/// Small extension so signal names read naturally in manifests ("HUP" or "SIGHUP").
pub trait SignalName {
    fn from_str_lenient(name: &str) -> Option<nix::sys::signal::Signal>;
}

impl SignalName for nix::sys::signal::Signal {
    fn from_str_lenient(name: &str) -> Option<nix::sys::signal::Signal> {
        let upper = name.trim().to_ascii_uppercase();
        let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
        full.parse().ok()
    }
}

impl Manifest {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// A service by name, or the first with that role.
    pub fn resolve(&self, target: &str) -> Option<&Service> {
        self.service(target)
            .or_else(|| self.services.iter().find(|s| s.role.as_str() == target))
    }

    /// The request the stack makes for an endpoint role: `[endpoints]`, else
    /// what the worker (`enqueue`) or the app's health paths (`live`) declare.
    pub fn endpoint(&self, role: &str) -> Option<EndpointDecl> {
        if let Some(decl) = self.endpoints.get(role) {
            return Some(decl.clone());
        }
        match role {
            "enqueue" => self.services.iter().find_map(|s| s.worker.as_ref()).map(|w| EndpointDecl::Request {
                method: Some("POST".into()),
                path: w.enqueue.path.clone(),
                body: None,
            }),
            "live" => self
                .services
                .iter()
                .find(|s| s.role == Role::App)
                .and_then(|s| s.health.as_ref()?.live.clone())
                .map(EndpointDecl::Path),
            _ => None,
        }
    }

    pub fn grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.stack.grace_period_s)
    }

    pub fn display_name(&self) -> String {
        match &self.mutant {
            Some(m) => format!("{} (mutant {})", self.stack.name, m.name),
            None => self.stack.name.clone(),
        }
    }
}

fn fill_task_path(path: &str, priority: u8, ms: u64) -> String {
    path.replace("{priority}", &priority.to_string()).replace("{ms}", &ms.to_string())
}
