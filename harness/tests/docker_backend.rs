//! The Docker tier: scenarios run on containers (`--backend docker`) reach
//! the verdicts they reach on local processes, and nothing of a run stays on
//! the engine after a pass, a fail, Ctrl-C or a SIGKILL of the harness.
//!
//! Runs whenever a Docker engine answers and the stack image is built
//! (`chaosgate images build`). When it cannot, it says so on stderr and
//! passes, unless CHAOSGATE_REQUIRE_DOCKER=1 (what `.ci/run` sets): then a
//! missing engine or image fails the tier instead of hiding it.

use chaosgate::check::verdict::Outcome::{self, Fail, Pass};
use chaosgate::report::model::ScenarioResult;
use chaosgate::run::{build_stack, run_scenario};
use chaosgate::stack::BackendKind;
use chaosgate::{manifest, scenario};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rstest::rstest;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());
static BUILD: Once = Once::new();

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

/// Whether the tier can run here; otherwise why not (printed loudly).
fn docker_missing() -> Option<String> {
    let engine = Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]).output();
    if !engine.is_ok_and(|o| o.status.success()) {
        return Some("no Docker engine answers".into());
    }
    let image = chaosgate::images::stack_image();
    if !chaosgate::images::image_exists(&image) {
        return Some(format!("image {image} is not built (chaosgate images build)"));
    }
    None
}

/// True when the test should go on; prints and decides when it cannot.
fn docker_tier_can_run(test: &str) -> bool {
    match docker_missing() {
        None => true,
        Some(why) => {
            assert!(
                std::env::var("CHAOSGATE_REQUIRE_DOCKER").as_deref() != Ok("1"),
                "Docker tier required (CHAOSGATE_REQUIRE_DOCKER=1) but {why}"
            );
            eprintln!("\n*** SKIPPED Docker tier test `{test}`: {why} ***\n");
            false
        }
    }
}

fn run_on_docker(stack: &str, scenario_file: &str) -> ScenarioResult {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let manifest = manifest::load(&repo(stack)).unwrap_or_else(|e| panic!("{e}"));
    BUILD.call_once(|| {
        let reference = manifest::load(&repo("fixtures/stacks/reference")).unwrap_or_else(|e| panic!("{e}"));
        build_stack(&reference, false).unwrap_or_else(|e| panic!("{e}"))
    });
    let scenario = scenario::load(&repo(scenario_file)).unwrap_or_else(|e| panic!("{e}"));
    let run_id = format!("docker-tier-{}-{}", std::process::id(), fastrand::u32(..));
    let out = repo("target/docker-tier-runs").join(&run_id);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let (result, kept) = runtime.block_on(run_scenario(
        &manifest,
        &scenario,
        &out,
        &run_id,
        7,
        false,
        false,
        BackendKind::Docker,
    ));
    assert!(!kept);
    let left = docker_lines(&["ps", "-aq", "--filter", &format!("label=io.chaosgate.run={run_id}")]);
    assert!(left.is_empty(), "containers of {run_id} left: {left:?}");
    let nets = docker_lines(&["network", "ls", "-q", "--filter", &format!("label=io.chaosgate.run={run_id}")]);
    assert!(nets.is_empty(), "networks of {run_id} left: {nets:?}");
    result
}

fn assert_every_verdict_passes(stack: &str, scenario_file: &str) {
    let result = run_on_docker(stack, scenario_file);
    assert_eq!(result.error, None);
    assert!(!result.verdicts.is_empty());
    for v in &result.verdicts {
        assert_eq!(v.outcome, Pass, "{stack} on Docker must pass every check:\n{}", describe(&result));
    }
}

fn describe(result: &ScenarioResult) -> String {
    result
        .verdicts
        .iter()
        .map(|v| format!("{} {}: {} | {}", v.requirement, v.outcome, v.measured, v.evidence.join(" | ")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// One scenario per kind of fault the backend carries out: signals and
/// drain, Redis killed and restarted, restart with changed env and a file
/// reload, the worker's warm shutdown, an upstream killed, certificates
/// swapped and nginx reloaded, nginx's own graceful stop, a queue flood.
#[rstest]
#[case::sigterm_drain("scenarios/sigterm-drain.toml")]
#[case::redis_outage("scenarios/redis-outage-health.toml")]
#[case::config("scenarios/config.toml")]
#[case::worker_sigterm("scenarios/worker-sigterm.toml")]
#[case::worker_flood("scenarios/worker-flood.toml")]
#[case::nx_upstreams("scenarios/nginx-upstreams.toml")]
#[case::tls_renew("scenarios/tls-renew.toml")]
#[case::nginx_stop("scenarios/nginx-stop.toml")]
// A release's instances are containers started mid-run through the platform API.
#[case::deploy_blue_green("scenarios/deploy-blue-green.toml")]
fn reference_passes_on_docker(#[case] scenario_file: &str) {
    if !docker_tier_can_run(scenario_file) {
        return;
    }
    assert_every_verdict_passes("fixtures/stacks/reference", scenario_file);
}

/// Mutants fail on containers as on processes; `ignores-sigterm` is PID 1
/// of its container there, with no init to hide it.
#[rstest]
#[case::ignores_sigterm("ignores-sigterm", "scenarios/sigterm-drain.toml", "GS-SIGTERM")]
#[case::nginx_fast_stop("nginx-fast-stop", "scenarios/nginx-stop.toml", "GS-DRAIN")]
#[case::worker_no_late_ack("worker-no-late-ack", "scenarios/worker-sigterm.toml", "GS-WORKER")]
fn mutant_fails_on_docker(#[case] mutant: &str, #[case] scenario_file: &str, #[case] requirement: &str) {
    if !docker_tier_can_run(mutant) {
        return;
    }
    let result = run_on_docker(&format!("fixtures/stacks/mutants/{mutant}"), scenario_file);
    assert_eq!(result.error, None);
    let verdict = result
        .verdicts
        .iter()
        .find(|v| v.requirement == requirement)
        .unwrap_or_else(|| panic!("no {requirement} verdict:\n{}", describe(&result)));
    assert_eq!(
        verdict.outcome,
        Fail as Outcome,
        "{mutant} must fail {requirement}:\n{}",
        describe(&result)
    );
}

/// The stack from `docker-compose.test.yml`: the manifest names no command,
/// image, environment or volume; the verdicts are the reference's.
#[rstest]
#[case::sigterm_drain("scenarios/sigterm-drain.toml")]
#[case::redis_outage("scenarios/redis-outage-health.toml")]
#[case::worker_sigterm("scenarios/worker-sigterm.toml")]
#[case::nginx_stop("scenarios/nginx-stop.toml")]
fn compose_stack_passes_on_docker(#[case] scenario_file: &str) {
    if !docker_tier_can_run(scenario_file) {
        return;
    }
    assert_every_verdict_passes("fixtures/stacks/reference-compose", scenario_file);
}

#[test]
fn compose_mutant_fails_on_docker() {
    if !docker_tier_can_run("compose-ignores-sigterm") {
        return;
    }
    let result = run_on_docker("fixtures/stacks/mutants/compose-ignores-sigterm", "scenarios/sigterm-drain.toml");
    let v = result.verdicts.iter().find(|v| v.requirement == "GS-SIGTERM").expect("GS-SIGTERM");
    assert_eq!(v.outcome, Fail, "{}", describe(&result));
}

/// A compose stack asked to run on local processes says how to run it, starting nothing.
#[test]
fn a_compose_stack_on_processes_names_the_backend_it_needs() {
    let manifest = manifest::load(&repo("fixtures/stacks/reference-compose")).unwrap_or_else(|e| panic!("{e}"));
    let scenario = scenario::load(&repo("scenarios/sigterm-drain.toml")).unwrap_or_else(|e| panic!("{e}"));
    let out = repo("target/docker-tier-runs").join(format!("compose-on-process-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (result, _) = runtime.block_on(run_scenario(
        &manifest,
        &scenario,
        &out,
        "compose-on-process",
        1,
        false,
        false,
        BackendKind::Process,
    ));
    let error = result.error.expect("an error");
    assert!(
        error.contains("--backend docker") && error.contains("docker-compose.test.yml"),
        "{error}"
    );
}

/// A manifest service the compose file lacks is named with file, line and field.
#[test]
fn a_service_missing_from_the_compose_file_is_located() {
    let dir = repo("target/docker-tier-state").join(format!("compose-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("compose.yml"), "services:\n  web:\n    image: nginx:1.25\n").expect("compose");
    std::fs::write(
        dir.join("stack.toml"),
        "[stack]\nname = \"x\"\ncompose = \"compose.yml\"\n\n[services.proxy]\nrole = \"entry\"\nports = [\"http\"]\nready = { tcp = \"http\" }\n",
    )
    .expect("manifest");
    let e = manifest::load(&dir.join("stack.toml")).expect_err("rejected").to_string();
    assert!(
        e.contains("stack.toml:5") && e.contains("services.proxy") && e.contains("its services: web"),
        "{e}"
    );
}

/// `leaks-redis-on-exit` leaves a child holding a Redis connection after the
/// app exits; in a container the kernel ends every process of the PID
/// namespace with its PID 1, so the leak cannot outlive the service there
/// and GS-CLEANUP holds. The check must still have seen the connections
/// (counted inside the container's network namespace, to Redis's container
/// port): a count of none would be inconclusive, never this pass.
#[test]
fn a_leaking_child_dies_with_its_container() {
    if !docker_tier_can_run("leaks-redis-on-exit") {
        return;
    }
    let result = run_on_docker("fixtures/stacks/mutants/leaks-redis-on-exit", "scenarios/sigterm-drain.toml");
    let v = result.verdicts.iter().find(|v| v.requirement == "GS-CLEANUP").expect("GS-CLEANUP");
    assert_eq!(v.outcome, Pass, "{}", describe(&result));
    let gone: u32 = v
        .measured
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no connection count in: {}", v.measured));
    assert!(gone >= 2, "the app and its leaking child both held connections: {}", v.measured);
}

/// What the engine holds: containers, networks, volumes.
fn engine_objects() -> Vec<String> {
    let mut all = docker_lines(&["ps", "-aq"]);
    all.extend(docker_lines(&["network", "ls", "-q"]));
    all.extend(docker_lines(&["volume", "ls", "-q"]));
    all.sort();
    all
}

#[test]
fn a_killed_harness_leaves_nothing_on_the_engine_after_clean() {
    if !docker_tier_can_run("sigkill-clean") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let state = repo("target/docker-tier-state").join(format!("sigkill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("state dir");
    let before = engine_objects();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chaosgate"))
        .args(["run", "--backend", "docker"])
        .arg(repo("scenarios/sigterm-drain.toml"))
        .arg("--stack")
        .arg(repo("fixtures/stacks/reference"))
        .arg("--out")
        .arg(repo("target/docker-tier-runs"))
        .env("CHAOSGATE_STATE_DIR", &state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chaosgate");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        let healthy = line.contains("stack healthy after");
        seen.push(line);
        if healthy {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("stack healthy after")), "{seen:#?}");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL");
    let _ = child.wait();
    let during = engine_objects();
    assert!(
        during.len() > before.len(),
        "a SIGKILLed harness leaves its containers (that is what clean is for)"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chaosgate"))
        .arg("clean")
        .env("CHAOSGATE_STATE_DIR", &state)
        .output()
        .expect("clean");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("removed container"), "{text}");
    assert!(text.contains("removed network"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine_objects() != before {
        assert!(
            Instant::now() < deadline,
            "after clean: {:?}\nbefore: {before:?}\n{text}",
            engine_objects()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ctrl_c_on_docker_removes_the_run() {
    if !docker_tier_can_run("ctrl-c") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = engine_objects();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chaosgate"))
        .args(["run", "--backend", "docker"])
        .arg(repo("scenarios/sigterm-drain.toml"))
        .arg("--stack")
        .arg(repo("fixtures/stacks/reference"))
        .arg("--out")
        .arg(repo("target/docker-tier-runs"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chaosgate");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut lines = stderr.lines().map_while(Result::ok);
    for line in lines.by_ref() {
        if line.contains("stack healthy after") {
            break;
        }
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    let status = child.wait().expect("wait");
    let rest: Vec<String> = lines.collect();
    assert_eq!(status.code(), Some(130), "{rest:#?}");
    assert_eq!(engine_objects(), before, "{rest:#?}");
}
