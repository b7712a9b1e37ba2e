//! Time from "start the stack" to "every service ready", the reference stack
//! on local processes and on Docker containers, alternating in one run so
//! the ratio holds on a noisy machine. Figures, not pass/fail.
//!
//! `cargo bench -p chaosgate --bench stack_start` (needs the packages of
//! `chaosgate doctor`, a Docker engine and `chaosgate images build`).
//! BENCH_ROUNDS (default 5).

use chaosgate::history::{Recorder, RunClock};
use chaosgate::manifest;
use chaosgate::run::build_stack;
use chaosgate::stack::Backend;
use chaosgate::stack::docker::DockerBackend;
use chaosgate::stack::process::ProcessBackend;
use chaosgate::stack::render::{Placement, StackPlan};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rounds: u64 = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let manifest = manifest::load(&repo("fixtures/stacks/reference")).unwrap_or_else(|e| panic!("{e}"));
    build_stack(&manifest, true).unwrap_or_else(|e| panic!("{e}"));
    let (mut process, mut docker, mut docker_down) = (Vec::new(), Vec::new(), Vec::new());
    let mut process_down = Vec::new();
    for i in 0..rounds {
        let id = format!("bench-start-{}-{i}", std::process::id());
        let dir = repo("target/bench-runs").join(&id);
        let recorder = Arc::new(Recorder::new(RunClock::start()));
        let plan = StackPlan::render_for(&manifest, &dir.join("process"), i, Placement::LocalProcesses).expect("render");
        let backend = ProcessBackend::new(plan, &manifest, &format!("{id}-p"), recorder);
        let took = runtime
            .block_on(backend.start_all(Duration::from_secs(30)))
            .expect("process stack up");
        process.push(took.as_secs_f64());
        let t = Instant::now();
        runtime.block_on(backend.shutdown(Duration::from_secs(3)));
        process_down.push(t.elapsed().as_secs_f64());

        let recorder = Arc::new(Recorder::new(RunClock::start()));
        let plan = StackPlan::render_for(&manifest, &dir.join("docker"), i, Placement::Containers).expect("render");
        let backend = runtime
            .block_on(DockerBackend::new(plan, &manifest, &format!("{id}-d"), recorder))
            .unwrap_or_else(|e| panic!("{e}"));
        let took = runtime
            .block_on(backend.start_all(Duration::from_secs(60)))
            .expect("docker stack up");
        docker.push(took.as_secs_f64());
        let t = Instant::now();
        runtime.block_on(backend.shutdown(Duration::from_secs(3)));
        docker_down.push(t.elapsed().as_secs_f64());
    }
    let services = manifest.services.len();
    println!("reference stack ({services} services), {rounds} rounds, alternating:");
    println!(
        "  time to healthy: process median {:.2} s, docker median {:.2} s (ratio {:.1}x; goal: docker under 8 s)",
        median(process.clone()),
        median(docker.clone()),
        median(docker.clone()) / median(process.clone())
    );
    println!(
        "  teardown:        process median {:.2} s, docker median {:.2} s",
        median(process_down),
        median(docker_down)
    );
    println!("  process: {process:.2?}");
    println!("  docker:  {docker:.2?}");
}
