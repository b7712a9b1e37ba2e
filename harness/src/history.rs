//! The recorded run: every request, service event, fault and probe sample.
//!
//! Checkers judge only from this record ("if it is not in the history, it did
//! not happen"). Times are microseconds since the run's clock started, so the
//! whole record shares one monotonic axis.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Microseconds since the start of the run.
pub type Micros = u64;

/// The run's monotonic clock; every record is stamped against it.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    origin: Instant,
}

impl RunClock {
    pub fn start() -> Self {
        Self { origin: Instant::now() }
    }

    pub fn now(&self) -> Micros {
        self.at(Instant::now())
    }

    pub fn at(&self, instant: Instant) -> Micros {
        instant.saturating_duration_since(self.origin).as_micros() as Micros
    }

    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// How a request failed below HTTP, as far as the client could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TransportError {
    #[default]
    None,
    /// The connection was refused: nothing listened.
    Refused,
    /// The connection was reset or closed before a full response.
    Reset,
    /// No response within the client's timeout.
    Timeout,
    /// Headers arrived but the body was cut short.
    Truncated,
    /// The TLS handshake failed (certificate refused, wrong host, protocol).
    Tls,
    /// Anything else the client reported.
    Other,
}

impl TransportError {
    pub fn is_error(self) -> bool {
        self != TransportError::None
    }
}

/// One request made by the load generator. Kept small: a long soak records
/// millions of these. In run.json it is a row, `[start, end, status, route,
/// version, error, bytes]`: an object per request made the file seven times
/// larger (17 MB for one certification run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "RequestRow", from = "RequestRowOrObject")]
pub struct RequestRecord {
    pub start: Micros,
    pub end: Micros,
    /// HTTP status, 0 when no response arrived.
    pub status: u16,
    /// Index into the scenario's request mix.
    pub route: u16,
    /// Index into [`History::versions`]; 0 means no version header.
    pub version: u16,
    pub error: TransportError,
    pub bytes: u32,
}

/// A request as a run.json row.
type RequestRow = (Micros, Micros, u16, u16, u16, TransportError, u32);

impl From<RequestRecord> for RequestRow {
    fn from(r: RequestRecord) -> Self {
        (r.start, r.end, r.status, r.route, r.version, r.error, r.bytes)
    }
}

/// Reads rows (schema 2) and the objects schema 1 wrote.
#[derive(Deserialize)]
#[serde(untagged)]
enum RequestRowOrObject {
    Row(RequestRow),
    Object {
        start: Micros,
        end: Micros,
        status: u16,
        route: u16,
        version: u16,
        error: TransportError,
        bytes: u32,
    },
}

impl From<RequestRowOrObject> for RequestRecord {
    fn from(r: RequestRowOrObject) -> Self {
        let (start, end, status, route, version, error, bytes) = match r {
            RequestRowOrObject::Row(row) => row,
            RequestRowOrObject::Object {
                start,
                end,
                status,
                route,
                version,
                error,
                bytes,
            } => (start, end, status, route, version, error, bytes),
        };
        RequestRecord {
            start,
            end,
            status,
            route,
            version,
            error,
            bytes,
        }
    }
}

impl RequestRecord {
    pub fn ok(&self) -> bool {
        !self.error.is_error() && (200..400).contains(&self.status)
    }

    /// Whether this request had started and not yet finished at `t`.
    pub fn in_flight_at(&self, t: Micros) -> bool {
        self.start <= t && self.end > t
    }
}

/// What a probe asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    Ready,
    Live,
    Aggregate,
}

/// One health probe answer (or its absence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSample {
    pub at: Micros,
    pub service: String,
    pub probe: ProbeKind,
    /// HTTP status, 0 when there was no answer.
    pub status: u16,
    pub error: TransportError,
    pub latency_us: u32,
    /// Kept only for the aggregate probe, whose body names components.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl ProbeSample {
    pub fn is_2xx(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
            (None, None) => "unknown exit".to_string(),
        }
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        9 => "SIGKILL",
        15 => "SIGTERM",
        18 => "SIGCONT",
        19 => "SIGSTOP",
        _ => "signal",
    }
}

/// Something that happened to a service, as the backend saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServiceEventKind {
    Started { pid: u32 },
    Ready { after_ms: u64 },
    Exited { pid: u32, exit: ExitInfo },
    Signalled { pid: u32, signal: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEvent {
    pub at: Micros,
    pub service: String,
    #[serde(flatten)]
    pub kind: ServiceEventKind,
}

/// A fault as injected, with what proves (or fails to prove) it landed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Position in the scenario's fault list.
    pub index: usize,
    /// Human-readable, e.g. "SIGTERM to app".
    pub label: String,
    pub service: String,
    pub injected_at: Micros,
    /// When the fault was reverted (service back), if it was.
    pub healed_at: Option<Micros>,
    /// Did the harness prove that the fault took effect?
    pub landed: bool,
    /// What the proof (or its absence) consists of.
    pub proof: String,
    pub detail: FaultDetail,
    /// The alert requirements the scenario says this fault's condition must fire (`alerts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provokes: Vec<String>,
}

/// What each kind of fault observed; checkers match on this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultDetail {
    Signal {
        signal: String,
        pid: u32,
        in_flight: u32,
        /// When the process exited after the signal, if it did.
        exited_at: Option<Micros>,
        exit: Option<ExitInfo>,
        /// The grace period the stack declares.
        grace_ms: u64,
        /// Whether the harness had to SIGKILL it at the end of the grace.
        killed_after_grace: bool,
        cleanup: Option<CleanupObservation>,
        /// Whether `signal` is the service's declared graceful stop (`stop_signal`
        /// in the manifest; TERM unless it says otherwise). The GS-* checks judge these.
        #[serde(default)]
        declared_stop: bool,
    },
    /// A process (re)started with deliberately bad configuration.
    BadConfigStart {
        /// "missing" or "malformed".
        defect: String,
        variable: String,
        value: Option<String>,
        exit: Option<ExitInfo>,
        exited_after_ms: Option<u64>,
        /// How long the harness waited for an exit.
        deadline_ms: u64,
        /// Whether the process answered HTTP on its port while it lived.
        served: bool,
        /// Whether its stderr/stdout named the variable.
        message_names_variable: bool,
        log_tail: String,
    },
    /// A restart with a changed environment variable.
    EnvRestart {
        variable: String,
        value: String,
        ready_at: Option<Micros>,
        observed: Vec<String>,
    },
    /// A reloadable setting changed by the means the stack declares.
    ConfigReload {
        setting: String,
        value: String,
        signal: String,
        pid_before: u32,
        pid_after: Option<u32>,
        /// When the new value was first observed.
        observed_at: Option<Micros>,
    },
    /// A service stopped (by a kill) and later started again.
    Outage {
        signal: String,
        down_at: Option<Micros>,
        restarted_at: Option<Micros>,
        ready_at: Option<Micros>,
    },
    /// SIGSTOP / SIGCONT.
    Pause {
        resumed_at: Option<Micros>,
    },
    /// Requests sent by the harness at a fixed rate to a rate-limited path (NX-RATE).
    Burst(crate::history::BurstObservation),
    Traffic(crate::history::TrafficObservation),
    /// Redis pushed towards an alert's condition (fill, connections, slow, save-fail).
    RedisStress {
        what: String,
        measured: String,
    },
    /// Backend counters over a window of proxied load (NX-KEEPALIVE).
    BackendTraffic {
        window_ms: u64,
        /// Requests the load recorded in the window.
        client_requests: u64,
        /// Requests the backends counted in the window (all paths).
        backend_requests: Option<u64>,
        /// TCP connections the backends accepted in the window.
        backend_connections: Option<u64>,
        /// New TCP connections to the backends' ports in the window, counted
        /// from the kernel's socket table (no help from the app needed).
        #[serde(default)]
        kernel_connections: Option<u64>,
    },
    /// Responses to GETs with and without `Accept-Encoding: gzip` (NX-GZIP).
    Gzip {
        answers: Vec<GzipAnswer>,
        min_length: u32,
    },
    /// Repeated GETs of a cacheable path (NX-CACHE).
    Cache {
        path: String,
        header: String,
        /// Status and cache header of each GET, in order.
        answers: Vec<(u16, Option<String>)>,
        /// Requests the backends counted for the path meanwhile.
        backend_requests: Option<u64>,
    },
    /// Every service of a role killed at once, later started again (NX-502).
    AllDown {
        services: Vec<String>,
        down_at: Option<Micros>,
        restarted_at: Option<Micros>,
        /// 502 lines the proxy's access log gained meanwhile (what a 5xx alert counts).
        #[serde(default)]
        access_log_502: Option<u64>,
    },
    /// A certificate put in place and the proxy reloaded (TLS-EXPIRY, NX-RELOAD).
    CertReload {
        certificate: String,
        /// "signal HUP" or "restart".
        via: String,
        pid_before: u32,
        pid_after: Option<u32>,
        reloaded_at: Option<Micros>,
        /// When the new certificate was first served.
        served_at: Option<Micros>,
        before: Option<Box<ServedCert>>,
        after: Option<Box<ServedCert>>,
        /// HTTPS GETs by a client that verifies against the run's CA, from
        /// just before the swap until 500 ms after the new certificate is served.
        #[serde(default)]
        https: HttpsTally,
    },
    /// A broken configuration followed by a reload; the old one must keep serving (NX-RELOAD).
    BrokenReload {
        pid_before: u32,
        pid_after: Option<u32>,
        /// Exit status and output of the stack's config test.
        test_failed: bool,
        test_output: String,
        /// Requests answered 2xx after the reload.
        served_after: u32,
        reloaded_at: Option<Micros>,
    },
    /// Tasks enqueued in a burst through the stack's enqueue endpoint (CW-FLOOD).
    Flood {
        requested: u32,
        /// Answered 2xx (and so recorded as tasks).
        accepted: u32,
        /// Queue length right after the last enqueue: every priority list, the base list alone.
        queue_total: Option<u64>,
        queue_base_list: Option<u64>,
        enqueued_until: Micros,
    },
    /// One of the stack's deployment commands (section 4).
    Release(ReleaseObservation),
}

/// A deployment command the harness ran, and what it asked of the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ReleaseObservation {
    /// "deploy", "switch", "canary", "rollback" or "releases".
    pub step: String,
    pub version: Option<String>,
    /// The defective build asked for (`[deploy.variants]`), if any.
    pub variant: Option<String>,
    pub command: Vec<String>,
    /// None: it did not exit by itself within the time allowed.
    pub exit_code: Option<i32>,
    pub ended_at: Option<Micros>,
    /// The end of its output.
    pub output: String,
    /// Platform API calls it made, in order.
    pub calls: Vec<PlatformCall>,
    /// `releases`: the first word of each line it printed, newest first.
    pub releases: Vec<String>,
    /// `rollback` with `check_data`: the record written before and read after.
    pub record: Option<RecordProbe>,
    /// What `[deploy]` declares: "all-at-once" or "gradual" switching.
    #[serde(default)]
    pub switching: String,
    /// CN-SMALL's reading: the largest first-step share (percent) the stack allows itself.
    #[serde(default)]
    pub first_step_max_percent: f64,
}

/// One platform API call a deployment command made, when it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PlatformCall {
    pub at: Micros,
    /// "start app-v2-1 (copy of app): ready in 240 ms", "signal nginx SIGHUP", ...
    pub call: String,
}

impl PlatformCall {
    /// Whether the call moved traffic: the proxy told to reload, or restarted.
    pub fn moves_traffic(&self) -> bool {
        self.call.starts_with("signal ") || self.call.starts_with("restart ")
    }
}

/// RB-DATA's probe: a record written through the entry, read back after a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RecordProbe {
    pub path_written: String,
    pub path_read: String,
    /// (status, version header) of each answer.
    pub written: (u16, String),
    pub read_before: (u16, String),
    /// The reads after the rollback until one came from another version.
    pub read_after: Vec<(u16, String)>,
}

/// What a burst got back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BurstObservation {
    pub path: String,
    /// The rate the harness sent at.
    pub rate_per_s: f64,
    pub duration_ms: u64,
    pub sent: u32,
    /// HTTP status -> count; 0 counts requests without a response.
    #[serde(with = "status_keys")]
    pub statuses: std::collections::BTreeMap<u16, u32>,
    /// Requests without a response (reset, refused, timeout).
    pub transport_errors: u32,
    /// The limit the stack declares.
    pub limit_rate_per_s: f64,
    pub limit_burst: u32,
    /// Requests the backends counted on the limited path during the burst.
    pub backend_requests: Option<u64>,
}

/// What extra traffic to a declared endpoint got back (`traffic` faults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrafficObservation {
    pub endpoint: String,
    pub path: String,
    pub concurrency: u32,
    pub sent: u32,
    /// HTTP status -> count; 0 counts requests without a response.
    #[serde(with = "status_keys")]
    pub statuses: std::collections::BTreeMap<u16, u32>,
    pub p95_ms: u64,
    /// The load's own requests meanwhile, and how many of them failed.
    pub load_requests: u64,
    pub load_failed: u64,
    /// Errors (5xx and failed load requests) over every answer meanwhile.
    pub error_share: f64,
}

/// One gzip probe answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GzipAnswer {
    pub path: String,
    pub status: u16,
    pub content_type: String,
    /// `Content-Encoding` with `Accept-Encoding: gzip`.
    pub encoding: Option<String>,
    /// Bytes on the wire with gzip asked for.
    pub wire_bytes: u64,
    /// Bytes without `Accept-Encoding`.
    pub identity_bytes: u64,
}

/// Requests of a verifying HTTPS client across a certificate swap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HttpsTally {
    pub ok: u32,
    pub failed: u32,
    /// The first failure, as the client reported it.
    pub first_error: Option<String>,
}

/// The certificate a TLS server presented, as the harness read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedCert {
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    /// RFC 3339.
    pub not_before: String,
    pub not_after: String,
    /// Days from the handshake to not-after (negative: expired).
    pub days_left: f64,
    /// Certificates in the presented chain.
    pub chain_len: usize,
    /// Whether the certificate names the host the client asked for.
    pub host_matches: bool,
    /// Whether it was issued by the run's CA.
    pub issued_by_ca: bool,
}

/// What was left of a service after it exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CleanupObservation {
    /// Redis client addresses the service held before the signal.
    pub redis_clients_before: Vec<String>,
    /// Those still connected after the exit, once the deadline passed.
    pub redis_clients_left: Vec<String>,
    /// Whether Redis could be asked at all.
    pub redis_checked: bool,
    /// Listening sockets of the service still open after exit.
    pub still_listening: Vec<String>,
    /// Processes of the service that outlived it ("pid command").
    pub surviving_processes: Vec<String>,
}

/// A finding about the standard's contradictions, detected in the stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub title: String,
    pub evidence: String,
}

/// Everything one scenario run recorded.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct History {
    pub requests: Vec<RequestRecord>,
    /// Served versions, interned; index 0 is "no version header".
    pub versions: Vec<String>,
    /// The request mix, by index, as "METHOD path".
    pub routes: Vec<String>,
    /// Statuses each route expects, by index; empty means any 2xx or 3xx.
    #[serde(default)]
    pub route_expect: Vec<Vec<u16>>,
    pub probes: Vec<ProbeSample>,
    pub events: Vec<ServiceEvent>,
    pub faults: Vec<FaultRecord>,
    pub findings: Vec<Finding>,
    /// When the load started and stopped.
    pub load_window: Option<(Micros, Micros)>,
    /// What the declared Redis said about itself, and the audit of acknowledged writes.
    #[serde(default)]
    pub redis: RedisRecord,
    /// The stack's alerts as its monitoring (Prometheus's HTTP API) reported them.
    #[serde(default, skip_serializing_if = "MonitoringRecord::is_empty")]
    pub monitoring: MonitoringRecord,
    /// How the load's clients used connections (keep-alive reuse, HTTPS).
    #[serde(default, skip_serializing_if = "LoadConnections::is_empty")]
    pub connections: LoadConnections,
    /// The load before the first fault, and what the stack said of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineRecord>,
    /// Capabilities the standard requires that the stack does not declare:
    /// the requirements they test fail, saying what is missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingCapability>,
}

/// The requests completed before the first fault (the baseline window).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineRecord {
    pub from: Micros,
    pub until: Micros,
    pub requests: u64,
    /// Transport errors and statuses the route does not expect.
    pub bad: u64,
    /// Status (or error kind) -> count.
    pub statuses: std::collections::BTreeMap<String, u64>,
    /// The stack's own explanation, where the harness found one (the proxy's
    /// "limiting requests" lines, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// A capability the standard requires and the stack lacks (hot reload,
/// TLS, a proxy cache, a rate limit, a worker, ...), found when a fault
/// needed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingCapability {
    /// The requirement IDs it decides.
    pub requirements: Vec<String>,
    /// What is missing, in the standard's words.
    pub what: String,
    /// The manifest field that would declare it.
    pub field: String,
}

/// How the load's clients used their connections. Each simulated user has its
/// own client and makes one request at a time, so a request during which that
/// client opened no connection went on a connection an earlier request used.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadConnections {
    /// The load kept connections open between requests (`load.keepalive`).
    pub keepalive: bool,
    /// The load spoke HTTPS to the stack's `[tls]` endpoint (`load.tls`).
    pub tls: bool,
    /// Connections the load's clients opened.
    pub opened: u64,
    /// Requests sent on a connection an earlier request had used.
    pub reused: u64,
    /// `start` of every failed request (transport error or no expected
    /// status) that went on a reused connection, ascending.
    pub failed_on_reused: Vec<Micros>,
    /// Each of `failed_on_reused` that got no answer at all, as (its start,
    /// the end of the answer before it on that connection): tells a server
    /// that kept a connection open after answering during its shutdown from
    /// one that closed an idle connection as the client reused it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reused_after: Vec<(Micros, Micros)>,
}

impl LoadConnections {
    pub fn is_empty(&self) -> bool {
        self.opened == 0 && self.reused == 0 && !self.tls
    }
}

/// What the stack declares about its alerting, and samples of its alerts' states.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitoringRecord {
    /// Requirement ID -> declared alert; `None` when the stack declares no `[monitoring]`.
    pub declared: Option<std::collections::BTreeMap<String, DeclaredAlert>>,
    /// The monitoring service and its API address.
    #[serde(default)]
    pub source: String,
    /// Names of the alerting rules the monitoring had loaded (first answer), if it answered.
    #[serde(default)]
    pub rules_loaded: Option<Vec<String>>,
    /// Each loaded alerting rule's expression and `for:`, as the monitoring reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_defs: Vec<RuleDef>,
    /// The stack's declared time scale for long thresholds (`[monitoring] time_scale`).
    #[serde(default = "one")]
    pub time_scale: f64,
    #[serde(default)]
    pub samples: Vec<AlertSample>,
    /// When the monitoring had first scraped every target it knows: before
    /// that no alert could see anything, so a calm stretch starts there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scraped_at: Option<Micros>,
    /// The service routing alerts to people (`[monitoring] alertmanager`), and
    /// where the harness's receiver listened; `None`: the stack declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// Every alert the router delivered to the harness's webhook, in arrival order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<AlertNotification>,
}

/// The alert router the stack declares and the receiver the harness ran for it.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub service: String,
    /// The receiver's URL as the router was given it; empty if it could not listen.
    pub webhook: String,
    /// Why the receiver could not listen, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One alert in one webhook call (Alertmanager's webhook payload, version 4).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertNotification {
    pub at: Micros,
    /// Its `alertname` label.
    pub alert: String,
    /// "firing" or "resolved".
    pub status: String,
    /// The receiver the router chose (the payload's `receiver`).
    pub receiver: String,
}

fn one() -> f64 {
    1.0
}

/// An alerting rule as loaded: name, PromQL expression, `for:` in seconds.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleDef {
    pub name: String,
    pub expr: String,
    pub for_s: f64,
}

impl MonitoringRecord {
    pub fn is_empty(&self) -> bool {
        self.declared.is_none() && self.samples.is_empty()
    }
}

/// An alert the stack declares for a requirement, and the query recorded beside it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredAlert {
    pub alert: String,
    #[serde(default)]
    pub query: Option<String>,
}

/// One look at the monitoring's alerting rules.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSample {
    pub at: Micros,
    /// Names of every alert firing.
    pub firing: Vec<String>,
    /// Declared alert name -> its rule's state ("firing", "pending", "inactive")
    /// and when its group was last evaluated (run clock).
    pub rules: std::collections::BTreeMap<String, RuleState>,
    /// Requirement ID -> value of its declared query (absent: no result).
    pub values: std::collections::BTreeMap<String, f64>,
    /// Why the monitoring could not be read, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleState {
    pub state: String,
    /// When the rule's group last evaluated, on the run clock (None: never).
    pub evaluated_at: Option<Micros>,
}

impl AlertSample {
    pub fn is_firing(&self, alert: &str) -> bool {
        self.firing.iter().any(|a| a == alert)
    }
}

/// Redis observations: its configuration and persistence state, whether it
/// refuses a client without the password, and the acknowledged writes.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedisRecord {
    pub samples: Vec<RedisSample>,
    /// Writes the app acknowledged (2xx), in the order they were answered.
    pub acknowledged: Vec<AckedWrite>,
    /// The comparison of `acknowledged` with what Redis held at the end.
    pub audit: Option<WriteAudit>,
    /// Every task the harness enqueued, with what the tasks recorded of themselves.
    #[serde(default)]
    pub tasks: Vec<TaskRecord>,
    /// Queue length samples (all priority lists, and the base list alone).
    #[serde(default)]
    pub queue: Vec<QueueSample>,
    /// The worker's declared concurrency, as rendered for this run.
    #[serde(default)]
    pub worker_concurrency: Option<u32>,
    /// The worker's declared visibility timeout.
    #[serde(default)]
    pub visibility_timeout_ms: Option<u64>,
    /// What the worker said it is, from its worker-* events ("py-celery 5.7.0", "refstack-worker 0.1.0").
    #[serde(default)]
    pub worker_kind: Option<String>,
    /// Where each task that never finished was found in Redis at the end.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub lost_whereabouts: std::collections::BTreeMap<String, LostWhere>,
    /// What the harness saw of Celery's event stream on the broker.
    #[serde(default)]
    pub celery: CeleryEventsRecord,
}

/// Celery's own event stream, as Flower reads it: kombu's fanout exchange
/// `celeryev` over Redis pub/sub. Task events are folded into the
/// [`TaskRecord`]s; this keeps what the stream said about itself.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct CeleryEventsRecord {
    /// Whether the harness watched the stream in this scenario at all.
    #[serde(default)]
    pub watched: bool,
    /// When the harness's subscription was up: (subscribed, lost). A task
    /// event published while it was down was not seen.
    #[serde(default)]
    pub subscriptions: Vec<(Micros, Option<Micros>)>,
    /// How many events of each type arrived ("task-started" -> 480).
    #[serde(default)]
    pub counts: std::collections::BTreeMap<String, u64>,
    /// worker-online, worker-heartbeat and worker-offline, in order.
    #[serde(default)]
    pub workers: Vec<WorkerEvent>,
    /// Messages on the exchange that were not a Celery event.
    #[serde(default)]
    pub undecodable: u64,
    /// Task events about tasks the harness did not enqueue (a stack's own tasks).
    #[serde(default)]
    pub foreign_tasks: u64,
    /// Tasks whose result the stack's Celery result backend holds
    /// (`celery-task-meta-<id>` on the broker's Redis); 0 without one.
    #[serde(default)]
    pub results_stored: u64,
    /// Of those, finishes taken from the result (`date_done`) because no
    /// task-succeeded event was seen.
    #[serde(default)]
    pub finishes_from_results: u64,
}

impl CeleryEventsRecord {
    /// Task events (task-*) seen, of any type.
    pub fn task_events(&self) -> u64 {
        self.counts.iter().filter(|(k, _)| k.starts_with("task-")).map(|(_, n)| n).sum()
    }

    /// Whether the subscription was down at some moment in `[from, to]`.
    pub fn gap_within(&self, from: Micros, to: Micros) -> Option<(Micros, Micros)> {
        let mut windows = self.subscriptions.clone();
        windows.sort();
        let mut covered_until = from;
        for (up, down) in windows {
            if up > covered_until {
                return Some((covered_until, up.min(to)));
            }
            match down {
                Some(d) if d < to => covered_until = covered_until.max(d),
                _ => return None,
            }
            if covered_until >= to {
                return None;
            }
        }
        (covered_until < to).then_some((covered_until, to))
    }
}

/// One worker-* event from the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerEvent {
    pub at: Micros,
    pub hostname: String,
    /// "worker-online", "worker-heartbeat", "worker-offline".
    pub kind: String,
    pub pid: u32,
    /// Tasks the worker said were active (heartbeats carry it).
    #[serde(default)]
    pub active: Option<u64>,
    /// What the worker says it is (`sw_ident sw_ver`: "py-celery 5.7.0").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<String>,
}

/// Where an unfinished task was at the end of the run: the difference between
/// "still to come", "awaiting redelivery" and "gone".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostWhere {
    /// Still in one of the queue's lists.
    Queued,
    /// In the unacknowledged hash: delivered, to be redelivered after the visibility timeout.
    Unacknowledged,
    /// Started (its start event is there), never finished, and in neither place.
    StartedNeverFinished,
    /// Ran and failed (task-failed), never succeeded afterwards.
    Failed,
    /// In no list, not unacknowledged, and no finish seen, but the harness's
    /// event subscription was down while it could have finished: not known.
    Unobserved,
    /// In no list, not unacknowledged, never started: taken from the queue
    /// and lost in delivery (popped, but the reply never reached the worker or
    /// the worker died before recording it as unacknowledged).
    TakenNeverRun,
}

impl LostWhere {
    pub fn describe(self) -> &'static str {
        match self {
            LostWhere::Queued => "still queued",
            LostWhere::Unacknowledged => "delivered, unacknowledged (awaits the visibility timeout)",
            LostWhere::StartedNeverFinished => "started, never finished, in no queue",
            LostWhere::Failed => "failed (task-failed), never retried to success",
            LostWhere::Unobserved => "not seen to finish while the harness's event subscription was down",
            LostWhere::TakenNeverRun => "taken from the queue and never run (in no list, not unacknowledged)",
        }
    }
}

/// One task: enqueued (2xx from the enqueue endpoint), started, finished.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    /// The standard's priority (10 high) the harness asked for; 0 for a
    /// task the harness did not enqueue (seen only on the broker).
    pub priority: u8,
    pub enqueued_at: Micros,
    /// (time, worker pid) of each start (Celery's task-started); more than
    /// one means it ran again.
    pub starts: Vec<(Micros, u32)>,
    /// (time, worker pid) of each success (task-succeeded).
    pub finishes: Vec<(Micros, u32)>,
    /// (time, worker pid) of each failure (task-failed), and the last exception.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<(Micros, u32)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
}

/// Queue length at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSample {
    pub at: Micros,
    /// Sum of LLEN over every priority list of the queue.
    pub total: u64,
    /// LLEN of the queue's base list alone (what `LLEN celery` shows).
    pub base_list: u64,
    /// Delivered but not yet acknowledged (HLEN of kombu's `unacked` hash):
    /// running tasks plus those the worker prefetched.
    #[serde(default)]
    pub reserved: Option<u64>,
}

/// One look at a Redis service (CONFIG GET, INFO persistence, an unauthenticated PING).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedisSample {
    pub at: Micros,
    pub service: String,
    /// Whether the declared Redis serves a broker (a worker service depends on it).
    pub broker: bool,
    /// `CONFIG GET` values by name (appendonly, appendfsync, save, maxmemory, maxmemory-policy, dir, dbfilename).
    pub config: std::collections::BTreeMap<String, String>,
    /// `INFO persistence` fields, after a BGSAVE the harness asked for.
    pub persistence: std::collections::BTreeMap<String, String>,
    /// Size of the RDB file in the configured dir, if it exists.
    pub rdb_file_bytes: Option<u64>,
    /// What a client without the password got for PING.
    pub unauthenticated_reply: String,
    pub unauthenticated_refused: bool,
    /// Why the sample is incomplete, if it is.
    pub error: Option<String>,
}

/// One write the app answered with 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedWrite {
    pub at: Micros,
    pub route: u16,
    pub id: u64,
}

/// Acknowledged writes looked up in Redis after the faults.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAudit {
    pub at: Micros,
    pub service: String,
    pub checked: u64,
    /// Redis keys of acknowledged writes that were not there.
    pub missing: Vec<String>,
    /// When each of `missing` was acknowledged (same order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_acked_at: Vec<Micros>,
    pub error: Option<String>,
}

impl History {
    pub fn version_name(&self, index: u16) -> &str {
        self.versions.get(index as usize).map(String::as_str).unwrap_or("")
    }

    /// Whether a request got what its route expects (a status it lists, or any
    /// 2xx/3xx when it lists none) with no transport error.
    pub fn as_expected(&self, r: &RequestRecord) -> bool {
        match self.route_expect.get(r.route as usize) {
            Some(expect) if !expect.is_empty() => !r.error.is_error() && expect.contains(&r.status),
            _ => r.ok(),
        }
    }

    pub fn probes_of<'a>(&'a self, service: &'a str, probe: ProbeKind) -> impl Iterator<Item = &'a ProbeSample> + 'a {
        self.probes.iter().filter(move |s| s.service == service && s.probe == probe)
    }

    pub fn requests_between(&self, from: Micros, to: Micros) -> impl Iterator<Item = &RequestRecord> {
        self.requests.iter().filter(move |r| r.start >= from && r.start < to)
    }
}

/// Shared, append-only recorder that load, backend and nemesis write into
/// while the run goes; turned into a [`History`] at the end.
#[derive(Debug)]
pub struct Recorder {
    pub clock: RunClock,
    inner: Mutex<History>,
    /// Live counters for progress display, read without the lock.
    requests_seen: std::sync::atomic::AtomicU64,
    errors_seen: std::sync::atomic::AtomicU64,
    /// Log excerpts around faults; they go to the report, not the history.
    log_excerpts: Mutex<std::collections::BTreeMap<String, String>>,
}

impl Recorder {
    pub fn new(clock: RunClock) -> Self {
        Self {
            clock,
            inner: Mutex::new(History {
                versions: vec![String::new()],
                ..History::default()
            }),
            requests_seen: Default::default(),
            errors_seen: Default::default(),
            log_excerpts: Default::default(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut History) -> R) -> R {
        // A panic while holding the lock must not lose the record.
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    pub fn set_routes(&self, routes: Vec<String>, expect: Vec<Vec<u16>>) {
        self.with(|h| {
            h.routes = routes;
            h.route_expect = expect;
        });
    }

    pub fn intern_version(&self, version: &str) -> u16 {
        self.with(|h| {
            if let Some(i) = h.versions.iter().position(|v| v == version) {
                return i as u16;
            }
            if h.versions.len() >= u16::MAX as usize {
                return 0;
            }
            h.versions.push(version.to_string());
            (h.versions.len() - 1) as u16
        })
    }

    pub fn request(&self, record: RequestRecord) {
        use std::sync::atomic::Ordering::Relaxed;
        self.requests_seen.fetch_add(1, Relaxed);
        if !record.ok() {
            self.errors_seen.fetch_add(1, Relaxed);
        }
        self.with(|h| h.requests.push(record));
    }

    pub fn log_excerpt(&self, key: String, text: String) {
        if let Ok(mut logs) = self.log_excerpts.lock() {
            logs.insert(key, text);
        }
    }

    pub fn take_log_excerpts(&self) -> std::collections::BTreeMap<String, String> {
        self.log_excerpts.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default()
    }

    /// (requests, failed requests) recorded so far.
    pub fn request_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.requests_seen.load(Relaxed), self.errors_seen.load(Relaxed))
    }

    pub fn probe(&self, sample: ProbeSample) {
        self.with(|h| h.probes.push(sample));
    }

    pub fn event(&self, service: &str, kind: ServiceEventKind) {
        self.event_at(self.clock.now(), service, kind);
    }

    pub fn event_at(&self, at: Micros, service: &str, kind: ServiceEventKind) {
        self.with(|h| {
            h.events.push(ServiceEvent {
                at,
                service: service.to_string(),
                kind,
            })
        });
    }

    pub fn fault(&self, record: FaultRecord) {
        self.with(|h| h.faults.push(record));
    }

    /// A write the app acknowledged (2xx).
    pub fn acked_write(&self, write: AckedWrite) {
        self.with(|h| h.redis.acknowledged.push(write));
    }

    pub fn redis_sample(&self, sample: RedisSample) {
        self.with(|h| h.redis.samples.push(sample));
    }

    pub fn write_audit(&self, audit: WriteAudit) {
        self.with(|h| h.redis.audit = Some(audit));
    }

    pub fn task_enqueued(&self, task: TaskRecord) {
        self.with(|h| h.redis.tasks.push(task));
    }

    pub fn queue_sample(&self, sample: QueueSample) {
        self.with(|h| h.redis.queue.push(sample));
    }

    /// Apply `f` to the Redis record (task events read at the end of the run).
    pub fn with_redis<R>(&self, f: impl FnOnce(&mut RedisRecord) -> R) -> R {
        self.with(|h| f(&mut h.redis))
    }

    /// (routes, acknowledged writes) recorded so far, for the audit.
    pub fn acked_writes(&self) -> (Vec<String>, Vec<AckedWrite>) {
        self.with(|h| (h.routes.clone(), h.redis.acknowledged.clone()))
    }

    pub fn finding(&self, finding: Finding) {
        self.with(|h| h.findings.push(finding));
    }

    pub fn missing(&self, missing: MissingCapability) {
        self.with(|h| {
            if !h.missing.contains(&missing) {
                h.missing.push(missing)
            }
        });
    }

    /// What the stack declares about its alerting (before any sample).
    pub fn monitoring_declared(&self, source: String, declared: std::collections::BTreeMap<String, DeclaredAlert>, time_scale: f64) {
        self.with(|h| {
            h.monitoring.source = source;
            h.monitoring.time_scale = time_scale;
            h.monitoring.declared = Some(declared);
        });
    }

    pub fn monitoring_scraped(&self, at: Micros) {
        self.with(|h| h.monitoring.scraped_at = h.monitoring.scraped_at.or(Some(at)));
    }

    pub fn monitoring_scraped_at(&self) -> Option<Micros> {
        self.with(|h| h.monitoring.scraped_at)
    }

    pub fn rules_loaded(&self, names: Vec<String>, defs: Vec<RuleDef>) {
        self.with(|h| {
            h.monitoring.rules_loaded = Some(names);
            h.monitoring.rule_defs = defs;
        });
    }

    pub fn alert_delivery(&self, delivery: Delivery) {
        self.with(|h| h.monitoring.delivery = Some(delivery));
    }

    pub fn alert_notification(&self, n: AlertNotification) {
        self.with(|h| h.monitoring.notifications.push(n));
    }

    /// Of `alerts`, those Prometheus had firing (first at or after
    /// `fired_since`: a page later than the budget is late whenever it comes)
    /// that the router has not paged at all, when the stack routes its alerts
    /// (else none).
    pub fn alerts_fired_but_not_paged(&self, alerts: &[String], fired_since: Micros) -> Vec<String> {
        self.with(|h| {
            if h.monitoring.delivery.as_ref().is_none_or(|d| d.error.is_some()) {
                return Vec::new();
            }
            alerts
                .iter()
                .filter(|a| {
                    h.monitoring
                        .samples
                        .iter()
                        .find(|s| s.is_firing(a))
                        .is_some_and(|s| s.at >= fired_since)
                })
                .filter(|a| !h.monitoring.notifications.iter().any(|n| &n.alert == *a && n.status == "firing"))
                .cloned()
                .collect()
        })
    }

    /// Of `alerts`, those whose last webhook notification says firing (the
    /// router has not yet told that they are over).
    pub fn alerts_paged_and_not_resolved(&self, alerts: &[String]) -> Vec<String> {
        self.with(|h| {
            alerts
                .iter()
                .filter(|a| {
                    h.monitoring
                        .notifications
                        .iter()
                        .rev()
                        .find(|n| &n.alert == *a)
                        .is_some_and(|n| n.status == "firing")
                })
                .cloned()
                .collect()
        })
    }

    pub fn alert_sample(&self, sample: AlertSample) {
        self.with(|h| h.monitoring.samples.push(sample));
    }

    /// Alert samples taken at or after `from` (the nemesis waits on these).
    pub fn alert_samples_since(&self, from: Micros) -> Vec<AlertSample> {
        self.with(|h| h.monitoring.samples.iter().filter(|s| s.at >= from).cloned().collect())
    }

    pub fn load_window(&self, from: Micros, to: Micros) {
        self.with(|h| h.load_window = Some((from, to)));
    }

    /// The load's connection use, at its end.
    pub fn load_connections(&self, mut connections: LoadConnections) {
        connections.failed_on_reused.sort_unstable();
        connections.reused_after.sort_unstable();
        self.with(|h| h.connections = connections);
    }

    /// Snapshot of the events so far (the nemesis reads exits from here).
    pub fn events_since(&self, from: Micros) -> Vec<ServiceEvent> {
        self.with(|h| h.events.iter().filter(|e| e.at >= from).cloned().collect())
    }

    /// When the last landed fault that should make an alert hold began:
    /// one naming `alert_id` in `alerts = [...]`, or one whose kind the
    /// requirement's alert half answers (`half_of`: CW-FLOOD → floods, NX-502 → every upstream killed).
    pub fn last_provocation(&self, alert_id: &str, half_of: Option<&str>) -> Option<Micros> {
        self.with(|h| {
            h.faults
                .iter()
                .filter(|f| f.landed)
                .filter(|f| {
                    f.provokes.iter().any(|p| p == alert_id)
                        || match half_of {
                            Some("CW-FLOOD") => matches!(f.detail, FaultDetail::Flood { .. }),
                            Some("NX-502") => matches!(f.detail, FaultDetail::AllDown { .. }),
                            _ => false,
                        }
                })
                .map(|f| f.injected_at)
                .max()
        })
    }

    /// (index, label, landed, proof) of the faults recorded so far, for progress lines.
    pub fn faults_summary(&self) -> Vec<(usize, String, bool, String)> {
        self.with(|h| {
            h.faults
                .iter()
                .map(|f| (f.index, f.label.clone(), f.landed, f.proof.clone()))
                .collect()
        })
    }

    /// Take the record out, sorted by time. Background tasks that still hold
    /// the recorder (exit watchers) write into a fresh, ignored history after.
    pub fn take_history(&self) -> History {
        let mut h = self.with(std::mem::take);
        h.requests.sort_by_key(|r| r.start);
        h.probes.sort_by_key(|p| p.at);
        h.events.sort_by_key(|e| e.at);
        h
    }
}

/// A status-keyed map inside an internally tagged enum (`FaultDetail`):
/// serde buffers the enum's content, and a buffered JSON object key "200"
/// no longer reads back as a u16, so `compare` could not load a run. The
/// keys are written and read as strings explicitly.
mod status_keys {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(map: &BTreeMap<u16, u32>, s: S) -> Result<S::Ok, S::Error> {
        map.iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<String, u32>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u16, u32>, D::Error> {
        BTreeMap::<String, u32>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| k.parse().map(|k| (k, v)).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod status_key_tests {
    use super::*;

    /// `chaosgate compare` reads run.json back: a burst's statuses must survive it.
    #[test]
    fn a_burst_fault_reads_back_from_json() {
        let detail = FaultDetail::Burst(BurstObservation {
            statuses: [(200u16, 50u32), (429, 350)].into_iter().collect(),
            ..Default::default()
        });
        let text = serde_json::to_string(&detail).unwrap();
        let back: FaultDetail = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(back, detail);
    }
}
