//! Benchmarks of the harness itself (figures, not pass/fail):
//! 1. requests/s through the harness's load path (goose + history recording)
//!    versus wrk, on the same nginx target in the same run, alternating;
//! 2. history bytes per recorded request;
//! 3. time from "start the stack" to "every service ready".
//!
//! `cargo bench -p chaosgate --bench load` (needs nginx, redis-server, wrk).
//! Environment: BENCH_SECONDS (default 5), BENCH_ROUNDS (default 3),
//! BENCH_USERS (default 32).

use chaosgate::history::{Recorder, RequestRecord, RunClock};
use chaosgate::load::{LoadHandle, LoadShared};
use chaosgate::manifest;
use chaosgate::run::build_stack;
use chaosgate::scenario::{LoadSpec, RequestSpec};
use chaosgate::stack::Backend;
use chaosgate::stack::process::ProcessBackend;
use chaosgate::stack::render::StackPlan;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn wrk(url: &str, connections: u64, seconds: u64) -> f64 {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), url])
        .output()
        .expect("wrk not found: apt-get install -y wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("cannot read wrk's output:\n{text}"))
}

async fn harness_load(url: &str, users: usize, seconds: u64) -> (f64, usize, usize) {
    let spec = LoadSpec {
        target: "entry".into(),
        port: None,
        users,
        ramp_per_s: None,
        max_duration_s: seconds,
        tail_s: 0.0,
        warmup_s: 0.0,
        rate_per_s: None,
        think_ms: 0,
        think_max_ms: None,
        keepalive: true,
        tls: false,
        tls_at: (0, 0),
        requests: vec![RequestSpec {
            method: "GET".into(),
            method_given: true,
            path: "/nginx-health".into(),
            endpoint: None,
            body: None,
            weight: 1,
            expect: vec![],
        }],
    };
    let recorder = Arc::new(Recorder::new(RunClock::start()));
    let shared = Arc::new(LoadShared::new(&spec, 1, None, recorder.clone()));
    let started = Instant::now();
    let handle = LoadHandle::start(&spec, url, shared).expect("load");
    while !handle.finished() && started.elapsed() < Duration::from_secs(seconds + 10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.stop().await;
    let history = recorder.take_history();
    let (from, to) = history.load_window.unwrap_or((0, 1));
    let window_s = (to - from) as f64 / 1e6;
    let failed = history.requests.iter().filter(|r| !r.ok()).count();
    let bytes = history.requests.capacity() * std::mem::size_of::<RequestRecord>();
    (
        history.requests.len() as f64 / window_s,
        failed,
        bytes / history.requests.len().max(1),
    )
}

/// The same requests and the same history recording, without goose:
/// `shared`, one reqwest client for all users, isolates what goose's
/// machinery costs. The variants each remove one more suspect cost
/// (BENCH_ONLY=...): `peruser` a client per user; `url` a pre-parsed URL;
/// `hyper` one hyper HTTP/1 connection per user, no pool, no URL crate.
async fn direct_variant(kind: &str, url: &str, users: usize, seconds: u64) -> f64 {
    let recorder = Arc::new(Recorder::new(RunClock::start()));
    let shared_client = reqwest::Client::builder().no_proxy().build().expect("client");
    let parsed = reqwest::Url::parse(url).expect("url");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..users)
        .map(|_| {
            let kind = kind.to_string();
            let client = if kind == "peruser" {
                reqwest::Client::builder().no_proxy().build().expect("client")
            } else {
                shared_client.clone()
            };
            let recorder = recorder.clone();
            let parsed = parsed.clone();
            tokio::spawn(async move {
                let mut hyper_conn = None;
                while Instant::now() < deadline {
                    let start = recorder.clock.now();
                    let (status, bytes) = if kind == "hyper" {
                        if hyper_conn.is_none() {
                            let addr = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap());
                            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                            let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                                .await
                                .expect("handshake");
                            tokio::spawn(conn);
                            hyper_conn = Some(send);
                        }
                        let send = hyper_conn.as_mut().unwrap();
                        let request = hyper::Request::get(parsed.path())
                            .header("host", parsed.authority())
                            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
                            .unwrap();
                        match send.send_request(request).await {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                use http_body_util::BodyExt;
                                let body = r.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
                                (status, body)
                            }
                            Err(_) => {
                                hyper_conn = None;
                                (0, 0)
                            }
                        }
                    } else {
                        let target = if kind == "url" {
                            parsed.clone()
                        } else {
                            reqwest::Url::parse(parsed.as_str()).unwrap()
                        };
                        match client.get(target).send().await {
                            Ok(r) => (r.status().as_u16(), r.bytes().await.map(|b| b.len()).unwrap_or(0)),
                            Err(_) => (0, 0),
                        }
                    };
                    recorder.request(RequestRecord {
                        start,
                        end: recorder.clock.now(),
                        status,
                        route: 0,
                        version: 0,
                        error: chaosgate::history::TransportError::None,
                        bytes: bytes as u32,
                    });
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    recorder.take_history().requests.len() as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let seconds = env_num("BENCH_SECONDS", 5);
    let rounds = env_num("BENCH_ROUNDS", 3);
    let users = env_num("BENCH_USERS", 32) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let manifest = manifest::load(&repo("fixtures/stacks/reference")).unwrap_or_else(|e| panic!("{e}"));
    build_stack(&manifest, true).unwrap_or_else(|e| panic!("{e}"));

    // 3. Time to healthy, over several fresh stacks.
    let mut healthy = Vec::new();
    let starts = if std::env::var("BENCH_ONLY").is_ok() { 0 } else { 5 };
    for i in 0..starts {
        let recorder = Arc::new(Recorder::new(RunClock::start()));
        let dir = repo("target/bench-runs").join(format!("healthy-{i}-{}", std::process::id()));
        let plan = StackPlan::render(&manifest, &dir, i).expect("render");
        let backend = ProcessBackend::new(plan, &manifest, &format!("bench-{}-{i}", std::process::id()), recorder);
        let took = runtime.block_on(backend.start_all(Duration::from_secs(20))).expect("stack up");
        healthy.push(took.as_secs_f64() * 1000.0);
        runtime.block_on(backend.shutdown(Duration::from_secs(3)));
    }

    // 1 and 2. One stack; wrk and the harness take turns on the same nginx location.
    let recorder = Arc::new(Recorder::new(RunClock::start()));
    let plan = StackPlan::render(
        &manifest,
        &repo("target/bench-runs").join(format!("load-{}", std::process::id())),
        99,
    )
    .expect("render");
    let backend = ProcessBackend::new(plan, &manifest, &format!("bench-load-{}", std::process::id()), recorder);
    runtime.block_on(backend.start_all(Duration::from_secs(20))).expect("stack up");
    let nginx = backend.endpoint("nginx", "http").expect("nginx port");
    let base = format!("http://{nginx}");
    let url = format!("{base}/nginx-health");
    let mut wrk_rates = Vec::new();
    let mut ours = Vec::new();
    let mut failed = 0;
    let mut bytes_per_request = 0;
    let mut direct = Vec::new();
    // BENCH_ONLY=harness|direct|wrk runs one side alone, for a profiler (`perf record`).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let runs = |side: &str| only.is_empty() || only == side;
    for _ in 0..rounds {
        if runs("wrk") {
            wrk_rates.push(wrk(&url, users as u64, seconds));
        }
        if runs("direct") {
            direct.push(runtime.block_on(direct_variant("shared", &url, users, seconds)));
        }
        for kind in ["peruser", "url", "hyper"] {
            if only == kind {
                direct.push(runtime.block_on(direct_variant(kind, &url, users, seconds)));
            }
        }
        if runs("harness") {
            let (rate, f, b) = runtime.block_on(harness_load(&base, users, seconds));
            ours.push(rate);
            failed += f;
            bytes_per_request = b;
        }
    }
    runtime.block_on(backend.shutdown(Duration::from_secs(3)));
    if !only.is_empty() {
        println!("BENCH_ONLY={only}: wrk {wrk_rates:?}, reqwest direct {direct:?}, harness {ours:?} req/s");
        return;
    }

    let (w, h) = (median(wrk_rates.clone()), median(ours.clone()));
    println!("chaosgate benchmarks ({rounds} rounds of {seconds} s, {users} connections/users, 2 cores shared with nginx)");
    println!(
        "time to healthy (reference stack, process backend): median {:.0} ms, min {:.0} ms, max {:.0} ms over {} starts",
        median(healthy.clone()),
        healthy.iter().cloned().fold(f64::MAX, f64::min),
        healthy.iter().cloned().fold(0.0, f64::max),
        healthy.len()
    );
    println!("wrk:              median {w:.0} req/s  (rounds: {})", fmt_rates(&wrk_rates));
    println!(
        "harness (goose):  median {h:.0} req/s  (rounds: {}), {failed} failed",
        fmt_rates(&ours)
    );
    let d = median(direct.clone());
    println!(
        "reqwest direct:   median {d:.0} req/s  (rounds: {}), same recording, no goose",
        fmt_rates(&direct)
    );
    println!("ratio harness/wrk: {:.2}  (goal ≥ 0.60); reqwest direct/wrk: {:.2}", h / w, d / w);
    // Each round's own pair (wrk and the harness ran back to back): machine noise moves both.
    let per_round = |v: &[f64]| {
        v.iter()
            .zip(&wrk_rates)
            .map(|(r, w)| format!("{:.2}", r / w))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "ratio per round:  harness/wrk {}; reqwest direct/wrk {}",
        per_round(&ours),
        per_round(&direct)
    );
    println!(
        "history: {} bytes per request in memory (RequestRecord is {} bytes; Vec growth included; goal ≤ 64)",
        bytes_per_request,
        std::mem::size_of::<RequestRecord>()
    );
}

fn fmt_rates(v: &[f64]) -> String {
    v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")
}
