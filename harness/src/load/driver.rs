//! goose as a library: one scenario, one transaction closure that picks a
//! request from the weighted mix, makes it on the user's own connection
//! (`http1`), paced by goose's throttle, reads the whole body (a truncated
//! body is a failure) and records it.

use super::http1::{Target, UserClient};
use crate::history::{AckedWrite, LoadConnections, Micros, Recorder, RequestRecord, TaskRecord, TransportError};
use crate::scenario::LoadSpec;
use goose::prelude::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

struct PreparedRequest {
    method: GooseMethod,
    http_method: hyper::Method,
    path: String,
    body: Option<hyper::body::Bytes>,
    /// The path carries `{n}`: each request gets a unique number there, and a
    /// write acknowledged with 2xx is recorded by that number.
    numbered: bool,
    /// A POST to the stack's task-enqueue endpoint: the task id in a 2xx
    /// answer is recorded, so tasks from ordinary load are audited too.
    enqueues_task: bool,
}

/// Placeholder in a request path replaced by a number unique in the run.
pub const ID_PLACEHOLDER: &str = "{n}";

/// HTTPS load (`load.tls`): the URL names `host` (the name the certificate
/// must carry), which every client resolves to `addr` on loopback, and the
/// clients trust only the run's CA.
#[derive(Debug, Clone)]
pub struct LoadTls {
    pub host: String,
    pub addr: SocketAddr,
    pub ca_pem: Vec<u8>,
}

impl LoadTls {
    pub fn base_url(&self) -> String {
        format!("https://{}:{}", self.host, self.addr.port())
    }
}

/// One user's session data: its connection, and its request in flight.
#[derive(Clone)]
struct UserConnections {
    client: UserClient,
    /// When this user's request in flight started (clock micros + 1), 0 when idle.
    started: Arc<AtomicU64>,
    /// When this user's last complete answer ended: on a reused connection,
    /// the answer after which the server kept that connection open.
    last_answer: Arc<AtomicU64>,
}

/// State shared by every simulated user and by the nemesis (which watches
/// the in-flight count to fire "when N requests are in flight").
pub struct LoadShared {
    pub in_flight: AtomicU32,
    recorder: Arc<Recorder>,
    requests: Vec<PreparedRequest>,
    cumulative_weights: Vec<u32>,
    seed: u64,
    picks: AtomicU64,
    /// Last number handed out for `{n}`.
    ids: AtomicU64,
    version_header: Option<String>,
    keepalive: bool,
    tls: Option<LoadTls>,
    /// Where the users' connections go (set when the load starts).
    target: std::sync::OnceLock<Arc<Target>>,
    /// Every user's connection counter.
    clients: Mutex<Vec<Arc<AtomicU64>>>,
    /// Every user's start of its request in flight (see `UserConnections::started`).
    starts: Mutex<Vec<Arc<AtomicU64>>>,
    reused: AtomicU64,
    failed_on_reused: Mutex<Vec<Micros>>,
    /// (start, previous answer's end) of each of `failed_on_reused` that got no answer at all.
    reused_after: Mutex<Vec<(Micros, Micros)>>,
    /// The worker's enqueue endpoint, when load requests go to it.
    enqueue: Option<crate::manifest::EnqueueDecl>,
}

/// Decrements the in-flight count however the request ends (even if goose
/// drops the future at shutdown).
struct InFlight<'a>(&'a AtomicU32);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU32) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks a user's request as in flight since `start`; clears it however the request ends.
struct StartedSlot(Option<Arc<AtomicU64>>);

impl StartedSlot {
    fn enter(slot: Option<Arc<AtomicU64>>, start: Micros) -> Self {
        if let Some(s) = &slot {
            s.store(start + 1, Ordering::SeqCst);
        }
        StartedSlot(slot)
    }
}

impl Drop for StartedSlot {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.store(0, Ordering::SeqCst);
        }
    }
}

fn method(name: &str) -> GooseMethod {
    match name {
        "POST" => GooseMethod::Post,
        "PUT" => GooseMethod::Put,
        "DELETE" => GooseMethod::Delete,
        "HEAD" => GooseMethod::Head,
        "PATCH" => GooseMethod::Patch,
        _ => GooseMethod::Get,
    }
}

impl LoadShared {
    pub fn new(spec: &LoadSpec, seed: u64, version_header: Option<String>, recorder: Arc<Recorder>) -> Self {
        let mut total = 0;
        let cumulative_weights = spec
            .requests
            .iter()
            .map(|r| {
                total += r.weight.max(1);
                total
            })
            .collect();
        recorder.set_routes(
            spec.requests.iter().map(|r| format!("{} {}", r.method, r.path)).collect(),
            spec.requests.iter().map(|r| r.expect.clone()).collect(),
        );
        Self {
            in_flight: AtomicU32::new(0),
            recorder,
            requests: spec
                .requests
                .iter()
                .map(|r| PreparedRequest {
                    method: method(&r.method),
                    http_method: hyper::Method::from_bytes(r.method.as_bytes()).unwrap_or(hyper::Method::GET),
                    path: r.path.clone(),
                    body: r.body.clone().map(hyper::body::Bytes::from),
                    numbered: r.path.contains(ID_PLACEHOLDER),
                    enqueues_task: false,
                })
                .collect(),
            cumulative_weights,
            seed,
            picks: AtomicU64::new(0),
            ids: AtomicU64::new(0),
            version_header,
            keepalive: spec.keepalive,
            tls: None,
            target: std::sync::OnceLock::new(),
            clients: Mutex::new(Vec::new()),
            starts: Mutex::new(Vec::new()),
            reused: AtomicU64::new(0),
            failed_on_reused: Mutex::new(Vec::new()),
            reused_after: Mutex::new(Vec::new()),
            enqueue: None,
        }
    }

    /// Drive the load over HTTPS as `tls` says (`load.tls`).
    pub fn with_tls(mut self, tls: Option<LoadTls>) -> Self {
        self.tls = tls;
        self
    }

    /// Give the user its own connection: keep-alive or a new one per
    /// request, HTTPS verifying against the run's CA when asked, and a
    /// counter of the connections it opens.
    async fn set_up_client(&self, user: &mut GooseUser) -> TransactionResult {
        // Set by LoadHandle::start before goose starts any user; goose's error
        // type has no variant for "no target", so the user fails to start loudly.
        let Some(target) = self.target.get() else {
            return Err(Box::new(TransactionError::InvalidMethod {
                method: reqwest::Method::GET,
            }));
        };
        let opened = Arc::new(AtomicU64::new(0));
        let started = Arc::new(AtomicU64::new(0));
        user.set_session_data(UserConnections {
            client: UserClient::new(target.clone(), self.keepalive, opened.clone()),
            started: started.clone(),
            last_answer: Arc::new(AtomicU64::new(0)),
        });
        if let Ok(mut clients) = self.clients.lock() {
            clients.push(opened);
        }
        if let Ok(mut starts) = self.starts.lock() {
            starts.push(started);
        }
        Ok(())
    }

    fn connections(&self) -> LoadConnections {
        LoadConnections {
            keepalive: self.keepalive,
            tls: self.tls.is_some(),
            opened: self
                .clients
                .lock()
                .map(|c| c.iter().map(|o| o.load(Ordering::SeqCst)).sum())
                .unwrap_or(0),
            reused: self.reused.load(Ordering::Relaxed),
            failed_on_reused: self.failed_on_reused.lock().map(|v| v.clone()).unwrap_or_default(),
            reused_after: self.reused_after.lock().map(|v| v.clone()).unwrap_or_default(),
        }
    }

    /// Record the tasks that load requests to the worker's enqueue endpoint
    /// (POST to its route) enqueue: the id the declared JSON pointer finds in
    /// each 2xx answer, and the priority the request asked for (`priority=`).
    pub fn with_task_endpoint(mut self, enqueue: Option<&crate::manifest::EnqueueDecl>) -> Self {
        if let Some(decl) = enqueue {
            for r in &mut self.requests {
                let route = r.path.split('?').next().unwrap_or_default();
                r.enqueues_task = r.method == GooseMethod::Post && route == decl.route();
            }
            self.enqueue = Some(decl.clone());
        }
        self
    }

    fn record_task(&self, spec_path: &str, body: &[u8], gzipped: bool, enqueued_at: u64) {
        let Some(decl) = &self.enqueue else { return };
        let mut decoded = Vec::new();
        let body = if gzipped {
            use std::io::Read;
            if flate2::read::GzDecoder::new(body).read_to_end(&mut decoded).is_err() {
                return;
            }
            decoded.as_slice()
        } else {
            body
        };
        let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        if let Some(id) = decl.task_id_in(&answer) {
            self.recorder.task_enqueued(TaskRecord {
                id,
                priority: query_priority(spec_path).unwrap_or(0),
                enqueued_at,
                ..TaskRecord::default()
            });
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Requests in flight that started at least `min_age` micros before
    /// `now`: old enough to have reached the service, the ones a drain check
    /// judges. A bare in-flight count cannot tell them from a wave of
    /// requests that began a moment ago.
    pub fn in_flight_for(&self, min_age: Micros, now: Micros) -> u32 {
        let Ok(starts) = self.starts.lock() else { return 0 };
        starts
            .iter()
            .filter(|s| {
                let started = s.load(Ordering::SeqCst);
                started > 0 && now.saturating_sub(started - 1) >= min_age
            })
            .count() as u32
    }

    /// The n-th pick of the whole run is a function of the seed alone, so the
    /// mix is reproducible even though users interleave differently.
    fn pick(&self) -> usize {
        let n = self.picks.fetch_add(1, Ordering::Relaxed);
        let total = *self.cumulative_weights.last().unwrap_or(&1);
        let mut rng = fastrand::Rng::with_seed(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let x = rng.u32(0..total);
        self.cumulative_weights.iter().position(|w| x < *w).unwrap_or(0)
    }

    async fn run_one(&self, user: &mut GooseUser) -> TransactionResult {
        // goose's own pacing (`rate_per_s`), before the request counts as started.
        if user.is_throttled
            && let Some(throttle) = user.throttle.clone()
            && throttle.send_async(true).await.is_err()
        {
            return Ok(());
        }
        let route = self.pick();
        let spec = &self.requests[route];
        let _guard = InFlight::enter(&self.in_flight);
        let clock = self.recorder.clock;
        let id = spec.numbered.then(|| self.ids.fetch_add(1, Ordering::Relaxed) + 1);
        let numbered_path;
        let path = match id {
            Some(n) => {
                numbered_path = spec.path.replace(ID_PLACEHOLDER, &n.to_string());
                numbered_path.as_str()
            }
            None => spec.path.as_str(),
        };
        let Some(session) = user.get_session_data_mut::<UserConnections>() else {
            return Ok(());
        };
        let start = clock.now();
        let _started = StartedSlot::enter(Some(session.started.clone()), start);
        let mut record = RequestRecord {
            start,
            end: start,
            status: 0,
            route: route as u16,
            version: 0,
            error: TransportError::None,
            bytes: 0,
        };
        let reused = match session.client.exchange(&spec.http_method, path, spec.body.as_ref()).await {
            Ok(answer) => {
                record.status = answer.status.as_u16();
                if let Some(header) = &self.version_header
                    && let Some(v) = answer.headers.get(header).and_then(|v| v.to_str().ok())
                {
                    record.version = self.recorder.intern_version(v);
                }
                record.bytes = answer.body.len().min(u32::MAX as usize) as u32;
                if spec.enqueues_task && (200..300).contains(&record.status) {
                    let gzipped = answer
                        .headers
                        .get(hyper::header::CONTENT_ENCODING)
                        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
                    self.record_task(&spec.path, &answer.body, gzipped, start);
                }
                answer.reused
            }
            Err(failure) => {
                record.error = failure.error;
                record.status = failure.status.map(|s| s.as_u16()).unwrap_or(0);
                failure.reused
            }
        };
        record.end = clock.now().max(start + 1);
        let last_answer = &session.last_answer;
        if reused {
            self.reused.fetch_add(1, Ordering::Relaxed);
            if !record.ok()
                && let Ok(mut failed) = self.failed_on_reused.lock()
            {
                failed.push(start);
                if record.status == 0
                    && let Ok(mut after) = self.reused_after.lock()
                {
                    after.push((start, last_answer.load(Ordering::SeqCst)));
                }
            }
        }
        if !record.error.is_error() && record.status != 0 {
            last_answer.store(record.end, Ordering::SeqCst);
        }
        if let Some(id) = id
            && record.ok()
            && (200..300).contains(&record.status)
            && matches!(spec.method, GooseMethod::Post | GooseMethod::Put | GooseMethod::Patch)
        {
            self.recorder.acked_write(AckedWrite {
                at: record.end,
                route: record.route,
                id,
            });
        }
        self.recorder.request(record);
        Ok(())
    }
}

/// A load run in progress.
pub struct LoadHandle {
    pub shared: Arc<LoadShared>,
    task: JoinHandle<Result<GooseMetrics, GooseError>>,
    started_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("goose could not be configured: {0}")]
    Goose(String),
}

impl LoadHandle {
    /// Start the load against `base_url` in the background.
    pub fn start(spec: &LoadSpec, base_url: &str, shared: Arc<LoadShared>) -> Result<LoadHandle, LoadError> {
        // Before goose looks for a logger, or it installs a noisy one of its own.
        crate::logging::init();
        // A previous run in this process may have pulled the switch.
        goose::reset_killswitch();
        let g = |e: GooseError| LoadError::Goose(e.to_string());
        let target = Target::new(base_url, shared.tls.as_ref()).map_err(LoadError::Goose)?;
        let _ = shared.target.set(Arc::new(target));
        let for_users = shared.clone();
        let transaction = Transaction::new(Arc::new(move |user: &mut GooseUser| {
            let shared = for_users.clone();
            Box::pin(async move { shared.run_one(user).await })
        }))
        .set_name("mix");
        let rate = spec.ramp_per_s.unwrap_or(spec.users.max(1) * 20);
        let for_clients = shared.clone();
        let client = Transaction::new(Arc::new(move |user: &mut GooseUser| {
            let shared = for_clients.clone();
            Box::pin(async move { shared.set_up_client(user).await })
        }))
        .set_name("client")
        .set_on_start();
        let mut scenario = scenario!("chaosgate")
            .register_transaction(transaction)
            .register_transaction(client);
        if spec.think_ms > 0 || spec.think_max_ms.is_some() {
            let min = Duration::from_millis(spec.think_ms);
            let max = Duration::from_millis(spec.think_max_ms.unwrap_or(spec.think_ms).max(spec.think_ms));
            scenario = scenario.set_wait_time(min, max).map_err(g)?;
        }
        let mut attack = GooseAttack::initialize_with_config(goose::config::GooseConfiguration::default())
            .map_err(g)?
            .register_scenario(scenario)
            .set_default(GooseDefault::Host, base_url)
            .map_err(g)?
            .set_default(GooseDefault::Users, spec.users)
            .map_err(g)?
            .set_default(GooseDefault::IncreaseRate, rate.to_string().as_str())
            .map_err(g)?
            .set_default(GooseDefault::RunTime, spec.max_duration_s as usize)
            .map_err(g)?
            .set_default(GooseDefault::Timeout, "30")
            .map_err(g)?
            .set_default(GooseDefault::NoTelnet, true)
            .map_err(g)?
            .set_default(GooseDefault::NoPrintMetrics, true)
            .map_err(g)?
            .set_default(GooseDefault::NoErrorSummary, true)
            .map_err(g)?
            // With the reset on and metrics display off, goose prints nothing once
            // all users are up; with it off it printed "All N users launched." on stdout.
            .set_default(GooseDefault::NoResetMetrics, false)
            .map_err(g)?
            .set_default(GooseDefault::Quiet, 1)
            .map_err(g)?
            // The history records every request; goose's own aggregates would only cost CPU.
            .set_default(GooseDefault::NoMetrics, true)
            .map_err(g)?;
        if let Some(cap) = spec.rate_per_s {
            attack = attack.set_default(GooseDefault::ThrottleRequests, cap).map_err(g)?;
        }
        let started_at = shared.recorder.clock.now();
        let task = tokio::spawn(async move { attack.execute().await });
        Ok(LoadHandle { shared, task, started_at })
    }

    pub fn finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stop the users and wait for goose to return (bounded: cleanup must not
    /// depend on goose returning).
    pub async fn stop(self) {
        goose::trigger_killswitch("chaosgate: load phase over");
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(40), &mut task).await.is_err() {
            task.abort();
        }
        let end = self.shared.recorder.clock.now();
        self.shared.recorder.load_window(self.started_at, end);
        self.shared.recorder.load_connections(self.shared.connections());
    }
}

/// The `priority=N` a request path asks for (the standard's 1-10).
fn query_priority(path: &str) -> Option<u8> {
    let query = path.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("priority="))
        .and_then(|v| v.parse().ok())
}
