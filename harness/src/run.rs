//! The scenario runner: start the stack, drive load, inject faults, judge.

use crate::check::{self, CheckInput};
use crate::history::{Recorder, RunClock};
use crate::input_error::{InputError, InputErrors};
use crate::interrupt;
use crate::load::{LoadHandle, LoadShared, LoadTls};
use crate::manifest::{Manifest, Role};
use crate::nemesis::{Nemesis, schedule::run_schedule};
use crate::observe::health::{HealthProber, HealthTarget};
use crate::progress::Progress;
use crate::report::model::{RunReport, ScenarioResult, StackInfo};
use crate::scenario::Scenario;
use crate::stack::BackendKind;
use crate::stack::docker::DockerBackend;
use crate::stack::process::ProcessBackend;
use crate::stack::reaper::{self, RunMarker};
use crate::stack::render::{Placement, StackPlan};
use crate::stack::{Backend, StackError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub stack: PathBuf,
    pub scenarios: Vec<PathBuf>,
    pub out: PathBuf,
    pub seed: Option<u64>,
    /// Leave the stack of the last scenario running.
    pub keep: bool,
    /// Print progress lines to stderr.
    pub progress: bool,
    /// Where the services run.
    pub backend: BackendKind,
    /// Which of the scenarios run.
    pub profile: crate::scenario::Profile,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Input(#[from] InputErrors),
    #[error("{0}")]
    Stack(#[from] StackError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Load and validate every input before anything starts.
pub fn load_inputs(opts: &RunOptions) -> Result<(Manifest, Vec<Scenario>), InputErrors> {
    let manifest = crate::manifest::load(&opts.stack)?;
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    for path in &opts.scenarios {
        let loaded = if path.is_dir() {
            crate::scenario::load_dir(path)
        } else {
            crate::scenario::load(path).map(|s| vec![s])
        };
        match loaded {
            Ok(s) => scenarios.extend(s),
            Err(e) => errors.extend(e.0),
        }
    }
    // Each scenario's report folder is named after it: one name, one scenario.
    for (i, s) in scenarios.iter().enumerate() {
        if let Some(first) = scenarios[..i].iter().find(|other| other.name == s.name) {
            errors.push(InputError::whole_file(
                &s.file,
                format!(
                    "field `scenario.name`: `{}` is also the name of {}; each scenario needs a name of its own (its report folder is named after it)",
                    s.name,
                    first.file.display()
                ),
            ));
        }
        if s.covers.is_empty() && s.findings.is_empty() {
            errors.push(InputError::whole_file(
                &s.file,
                "field `scenario.covers`: expected at least one requirement ID to judge (or `findings` to measure); with none the run proves nothing".to_string(),
            ));
        }
    }
    for s in &scenarios {
        for id in s.covers.iter().filter(|id| !check::is_implemented(id)) {
            errors.push(InputError::whole_file(
                &s.file,
                format!(
                    "field `scenario.covers`: `{id}` has no checker in this version of chaosgate (implemented: {})",
                    implemented_ids()
                ),
            ));
        }
        for (target, field) in [(&s.load.target, "load.target"), (&s.probes.target, "probes.target")] {
            if manifest.resolve(target).is_none() {
                errors.push(InputError::whole_file(
                    &s.file,
                    format!(
                        "field `{field}`: the stack {} has no service or role `{target}`",
                        manifest.file.display()
                    ),
                ));
            }
        }
        if let Some(problem) = load_tls_problem(&manifest, s) {
            let (line, column) = s.load.tls_at;
            errors.push(InputError {
                file: s.file.clone(),
                line,
                column,
                field: "load.tls".into(),
                message: problem,
            });
        }
    }
    if scenarios.is_empty() && errors.is_empty() {
        errors.push(InputError::whole_file(&opts.stack, "no scenario to run"));
    }
    let chosen: Vec<Scenario> = scenarios.iter().filter(|s| s.in_profile(opts.profile)).cloned().collect();
    if chosen.is_empty() && !scenarios.is_empty() && errors.is_empty() {
        errors.push(InputError::whole_file(
            &scenarios[0].file,
            format!(
                "field `scenario.profiles`: none of the {} scenario(s) given is in profile `{}` (add `profiles = [\"{}\"]` to a scenario's [scenario] table)",
                scenarios.len(),
                opts.profile.as_str(),
                opts.profile.as_str()
            ),
        ));
    }
    if errors.is_empty() {
        Ok((manifest, chosen))
    } else {
        Err(InputErrors(errors))
    }
}

fn implemented_ids() -> String {
    check::CHECKS.iter().map(|(id, _)| *id).collect::<Vec<_>>().join(", ")
}

/// Run the manifest's build steps (compile the stack's own binaries).
pub fn build_stack(manifest: &Manifest, progress: bool) -> Result<(), StackError> {
    for step in &manifest.build {
        let command = step.command.join(" ");
        if progress {
            eprintln!("chaosgate: building the stack: {command}");
        }
        let dir = step
            .workdir
            .as_ref()
            .map(|w| manifest.dir.join(w))
            .unwrap_or_else(|| manifest.dir.clone());
        let Some((program, args)) = step.command.split_first() else {
            continue;
        };
        let mut build = std::process::Command::new(program);
        build.args(args).current_dir(&dir);
        // Shown as it goes (cargo's progress) when progress is shown; kept for the error otherwise.
        if progress {
            build.stderr(std::process::Stdio::inherit());
        }
        let out = build.output().map_err(|e| StackError::Build {
            command: command.clone(),
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
            return Err(StackError::Build {
                command,
                detail: format!("{}\n{}", out.status, tail.into_iter().rev().collect::<Vec<_>>().join("\n")),
            });
        }
    }
    Ok(())
}

/// Run as root, services that drop to another user (nginx's workers, as
/// `www-data`) cannot open their files under a folder other users may not
/// enter (`mktemp -d` makes it 0700): say which one, before checks fail
/// with "probe not landed" for a reason nobody sees.
pub fn closed_folder_warning(run_dir: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let dir = std::fs::canonicalize(run_dir).ok()?;
    let closed = dir
        .ancestors()
        .find(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))?;
    let mode = std::fs::metadata(closed).ok()?.permissions().mode() & 0o777;
    Some(format!(
        "the reports folder is inside {} (mode {mode:o}), which other users cannot enter: services that drop root \
         (nginx's workers run as www-data) cannot open their files there, and checks that need them say \"not landed\"; \
         use another --out, or `chmod o+x {}`",
        closed.display(),
        closed.display()
    ))
}

pub fn new_run_id() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{:04x}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        fastrand::u16(..)
    )
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The command that reproduces a run.
pub fn reproduce_command(opts: &RunOptions, seed: u64) -> String {
    let scenarios: Vec<String> = opts.scenarios.iter().map(|p| p.display().to_string()).collect();
    let backend = match opts.backend {
        BackendKind::Process => String::new(),
        other => format!(" --backend {}", other.as_str()),
    };
    let profile = match opts.profile {
        crate::scenario::Profile::Certify => String::new(),
        other => format!(" --profile {}", other.as_str()),
    };
    let out = if opts.out == Path::new("reports") {
        String::new()
    } else {
        format!(" --out {}", opts.out.display())
    };
    format!(
        "{} run {} --stack {} --seed {seed}{backend}{profile}{out}",
        program_name(),
        scenarios.join(" "),
        opts.stack.display()
    )
}

/// How to call this harness again from here: `chaosgate` when that is what
/// PATH finds, else the path of this binary (after `cargo run`, `target/debug/chaosgate`).
fn program_name() -> String {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "chaosgate".into();
    };
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| std::fs::canonicalize(d.join("chaosgate")).is_ok_and(|p| p == me)));
    if on_path {
        return "chaosgate".into();
    }
    let here = std::env::current_dir().ok();
    let shown = here.as_deref().and_then(|h| me.strip_prefix(h).ok()).unwrap_or(&me);
    shown.display().to_string()
}

/// Run every scenario; the returned report is complete even when the run was
/// interrupted (what ran is judged, the rest is absent).
pub async fn run(opts: &RunOptions) -> Result<RunReport, RunError> {
    let (manifest, scenarios) = load_inputs(opts)?;
    let reaped = reaper::reap_orphans(false, None);
    if opts.progress && !reaped.runs.is_empty() {
        eprintln!(
            "chaosgate: reaped {} process(es) left by killed run(s) {}",
            reaped.processes.len(),
            reaped.runs.join(", ")
        );
    }
    build_stack(&manifest, opts.progress)?;
    let seed = opts
        .seed
        .or(scenarios.iter().find_map(|s| s.seed))
        .unwrap_or_else(|| fastrand::u64(..) % 1_000_000);
    let run_id = new_run_id();
    let run_dir = opts.out.join(&run_id);
    std::fs::create_dir_all(&run_dir).map_err(|source| RunError::Io {
        path: run_dir.clone(),
        source,
    })?;
    if opts.progress
        && let Some(warning) = closed_folder_warning(&run_dir)
    {
        eprintln!("chaosgate: {warning}");
    }
    let me = std::process::id();
    let marker = RunMarker {
        run_id: run_id.clone(),
        harness_pid: me,
        harness_started: reaper::start_time(me).unwrap_or(0),
        run_dir: run_dir.clone(),
        kept: false,
        processes: Vec::new(),
    };
    reaper::write_marker(&marker).map_err(|source| RunError::Io {
        path: reaper::markers_dir(),
        source,
    })?;
    interrupt::set_current_run(Some(&run_id));
    let started = Instant::now();
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut results = Vec::new();
    let mut kept = false;
    for (i, scenario) in scenarios.iter().enumerate() {
        if interrupt::is_interrupted() {
            break;
        }
        let keep = opts.keep && i + 1 == scenarios.len();
        let (result, stayed_up) = run_scenario(&manifest, scenario, &run_dir, &run_id, seed, keep, opts.progress, opts.backend).await;
        kept |= stayed_up;
        results.push(result);
    }
    if kept {
        reaper::mark_kept(&run_id).map_err(|source| RunError::Io {
            path: reaper::markers_dir(),
            source,
        })?;
    } else {
        reaper::remove_marker(&run_id);
    }
    interrupt::set_current_run(None);
    Ok(RunReport {
        schema_version: crate::report::model::RUN_SCHEMA_VERSION,
        run_id,
        harness_version: env!("CARGO_PKG_VERSION").to_string(),
        stack: StackInfo {
            name: manifest.display_name(),
            manifest: manifest.file.display().to_string(),
            breaks: manifest.mutant.as_ref().map(|m| m.breaks.clone()).unwrap_or_default(),
            backend: opts.backend.as_str().to_string(),
        },
        seed,
        started_unix_ms,
        duration_ms: started.elapsed().as_millis() as u64,
        scenarios: results,
        reproduce: reproduce_command(opts, seed),
        interrupted: interrupt::is_interrupted(),
    })
}

/// What is wrong with `load.tls = true` against this stack, if anything.
fn load_tls_problem(manifest: &Manifest, s: &Scenario) -> Option<String> {
    if !s.load.tls {
        return None;
    }
    // A stack without TLS is judged (it lacks what the standard requires), not refused.
    let tls = manifest.tls.as_ref()?;
    if let Some(port) = &s.load.port {
        return Some(format!(
            "HTTPS load goes to the [tls] port `{}` of `{}`; remove load.port = \"{port}\"",
            tls.port, tls.service
        ));
    }
    match manifest.resolve(&s.load.target) {
        Some(svc) if svc.name != tls.service => Some(format!(
            "load.target `{}` is service `{}`, but the stack's TLS endpoint ([tls]) is service `{}`",
            s.load.target, svc.name, tls.service
        )),
        _ => None,
    }
}

/// HTTPS load's endpoint: the declared host, its port on loopback, the run's CA.
fn load_tls(manifest: &Manifest, scenario: &Scenario, plan: &StackPlan, backend: &dyn Backend) -> Option<LoadTls> {
    if !scenario.load.tls {
        return None;
    }
    let tls = manifest.tls.as_ref()?;
    Some(LoadTls {
        host: tls.host.clone(),
        addr: backend.endpoint(&tls.service, &tls.port)?,
        ca_pem: plan.certs.as_ref()?.ca_pem().ok()?,
    })
}

fn load_base_url(manifest: &Manifest, scenario: &Scenario, backend: &dyn Backend) -> Option<String> {
    let svc = manifest.resolve(&scenario.load.target)?;
    let port = scenario
        .load
        .port
        .clone()
        .or_else(|| svc.ready.port().map(str::to_string))
        .or_else(|| svc.ports.first().cloned())?;
    backend.endpoint(&svc.name, &port).map(|a| format!("http://{a}"))
}

fn health_target(manifest: &Manifest, scenario: &Scenario, backend: &dyn Backend) -> Option<HealthTarget> {
    let svc = manifest.resolve(&scenario.probes.target)?;
    let health = svc.health.as_ref()?;
    Some(HealthTarget {
        service: svc.name.clone(),
        addr: backend.endpoint(&svc.name, &health.port)?,
        ready: health.ready.clone(),
        live: health.live.clone(),
        aggregate: health.aggregate.clone(),
    })
}

/// Run one scenario on a fresh stack. Returns the result and whether the stack was left up.
// Each argument is one decision of the caller (tests pick them one by one).
#[allow(clippy::too_many_arguments)]
pub async fn run_scenario(
    manifest: &Manifest,
    scenario: &Scenario,
    run_dir: &Path,
    run_id: &str,
    seed: u64,
    keep: bool,
    progress: bool,
    backend_kind: BackendKind,
) -> (ScenarioResult, bool) {
    // Before any service starts: nothing the harness inherited may reach it.
    crate::stack::descriptors::mark_inherited_close_on_exec();
    crate::stack::reaper::become_subreaper();
    if scenario.load.tls && manifest.tls.is_none() {
        return (no_tls_result(manifest, scenario), false);
    }
    // Endpoint roles the scenario asks for, in the stack's own paths.
    let (load, unmapped) = resolve_endpoints(manifest, &scenario.load);
    let resolved;
    let scenario = if unmapped.is_empty() {
        resolved = Scenario { load, ..scenario.clone() };
        &resolved
    } else {
        return (unmapped_result(manifest, scenario, &unmapped), false);
    };
    let mut display = Progress::new(&scenario.name, progress);
    let recorder = Arc::new(Recorder::new(RunClock::start()));
    let started = Instant::now();
    let mut result = ScenarioResult {
        name: scenario.name.clone(),
        file: scenario.file.display().to_string(),
        description: scenario.description.clone(),
        duration_ms: 0,
        healthy_after_ms: None,
        verdicts: Vec::new(),
        error: None,
        logs: Default::default(),
        worker: None,
        history: Default::default(),
    };
    let placement = match backend_kind {
        BackendKind::Process => Placement::LocalProcesses,
        BackendKind::Docker => Placement::Containers,
    };
    let plan = match StackPlan::render_for(manifest, &run_dir.join(&scenario.name), fastrand::u64(..), placement) {
        Ok(p) => p,
        Err(e) => {
            result.error = Some(format!("could not prepare the stack: {e}"));
            return (result, false);
        }
    };
    let backend: Box<dyn Backend> = match backend_kind {
        BackendKind::Process => Box::new(ProcessBackend::new(plan.clone(), manifest, run_id, recorder.clone())),
        BackendKind::Docker => match DockerBackend::new(plan.clone(), manifest, run_id, recorder.clone()).await {
            Ok(b) => Box::new(b),
            Err(e) => {
                result.error = Some(format!("could not prepare the stack: {e}"));
                return (result, false);
            }
        },
    };
    let backend = backend.as_ref();
    let body = scenario_body(manifest, scenario, &plan, backend, &recorder, seed, &mut display);
    let outcome = tokio::select! {
        r = body => Some(r),
        _ = interrupt::interrupted() => None,
    };
    let mut stayed_up = false;
    match outcome {
        Some(Ok(healthy)) => result.healthy_after_ms = Some(healthy.as_millis() as u64),
        Some(Err(e)) => result.error = Some(e.to_string()),
        None => result.error = Some("interrupted".into()),
    }
    if keep && result.error.is_none() {
        backend.keep_running();
        stayed_up = true;
        print_kept(manifest, backend, run_id);
    } else {
        let report = backend.shutdown(Duration::from_secs(3).min(manifest.grace())).await;
        let left = reaper::run_leftovers(run_id);
        let listening: Vec<String> = plan
            .services
            .iter()
            .flat_map(|s| s.ports.values())
            .filter(|p| crate::observe::sockets::listening_on(**p))
            .map(|p| p.to_string())
            .collect();
        if interrupt::is_interrupted() {
            eprintln!(
                "chaosgate: stopped {} service(s){}; {} process(es) and {} listening port(s) of this run left",
                report.stopped.len(),
                if report.swept.is_empty() {
                    String::new()
                } else {
                    format!(", killed {} stray process(es)", report.swept.len())
                },
                left.len(),
                listening.len()
            );
        } else {
            display.line(format!(
                "stack stopped ({} service(s)); {} process(es) and {} listening port(s) left",
                report.stopped.len(),
                left.len(),
                listening.len()
            ));
        }
    }
    result.history = recorder.take_history();
    result.history.baseline = check::baseline::of(&result.history).map(|mut b| {
        if b.fails() {
            b.explanation = baseline_explanation(manifest, &plan);
        }
        b
    });
    // Keep-alive load across reloads: what a client that does not retry sees (a finding, not a verdict).
    crate::load::reload_race::record(&mut result.history);
    result.logs = recorder.take_log_excerpts();
    result.worker = crate::check::worker_profile::WorkerProfile::of(&result.history);
    result.duration_ms = started.elapsed().as_millis() as u64;
    if result.error.is_none() {
        let input = CheckInput {
            history: &result.history,
            settings: &scenario.settings,
            probed_service: manifest.resolve(&scenario.probes.target).map(|s| s.name.as_str()).unwrap_or(""),
            dependency_services: manifest
                .services
                .iter()
                .filter(|s| s.role == Role::Redis)
                .map(|s| s.name.clone())
                .collect(),
            roles: manifest
                .services
                .iter()
                .map(|s| (s.name.clone(), s.role.as_str().to_string()))
                .collect(),
        };
        result.verdicts = scenario.covers.iter().map(|id| check::judge(id, &input)).collect();
        for v in &result.verdicts {
            display.line(format!("{:<12} {:<12} {}", v.requirement, v.outcome.as_str(), v.measured));
        }
    }
    display.finish();
    (result, stayed_up)
}

async fn scenario_body(
    manifest: &Manifest,
    scenario: &Scenario,
    plan: &StackPlan,
    backend: &dyn Backend,
    recorder: &Arc<Recorder>,
    seed: u64,
    display: &mut Progress,
) -> Result<Duration, StackError> {
    display.line(format!("starting the stack in {}", plan.run_dir.display()));
    display.phase("starting the stack");
    // Before the stack: the router may deliver as soon as it is up.
    let _webhook = start_alert_receiver(manifest, plan, backend, recorder).await;
    let healthy = backend.start_all(Duration::from_secs_f64(manifest.stack.ready_timeout_s)).await?;
    display.line(format!("stack healthy after {} ms", healthy.as_millis()));
    let judges_redis_or_tasks = scenario
        .covers
        .iter()
        .any(|id| id.starts_with("RD-") || id.starts_with("CW-") || id == "GS-WORKER");
    // Celery's event stream, from before the first task to the end (tasks as Flower sees them).
    let celery = judges_redis_or_tasks
        .then(|| crate::observe::redis_state::watch_celery(manifest, plan, recorder))
        .flatten();
    let prober = health_target(manifest, scenario, backend)
        .map(|t| HealthProber::start(t, Duration::from_millis(scenario.probes.interval_ms), recorder.clone()));
    // The stack's alerts, when it declares where they live (AL-* checks, and the nemesis waits on them).
    let alerts = crate::observe::prometheus::AlertWatcher::start(manifest, backend, recorder.clone(), Duration::from_millis(200));
    let tls = load_tls(manifest, scenario, plan, backend);
    if scenario.load.tls && tls.is_none() {
        return Err(StackError::Io(std::io::Error::other(
            "load.tls = true: the TLS endpoint has no address or the run's CA cannot be read",
        )));
    }
    let base_url = match &tls {
        Some(tls) => tls.base_url(),
        None => load_base_url(manifest, scenario, backend).unwrap_or_default(),
    };
    let worker_enqueue = manifest.services.iter().find_map(|s| s.worker.as_ref()).map(|w| &w.enqueue);
    let shared = Arc::new(
        LoadShared::new(&scenario.load, seed, manifest.stack.version_header.clone(), recorder.clone())
            .with_task_endpoint(worker_enqueue)
            .with_tls(tls),
    );
    let load =
        LoadHandle::start(&scenario.load, &base_url, shared.clone()).map_err(|e| StackError::Io(std::io::Error::other(e.to_string())))?;
    display.line(format!("load: {} users against {base_url}", scenario.load.users));
    display.phase("warm-up");
    display.watch_load(recorder.clone(), Duration::from_secs(scenario.load.max_duration_s));
    tokio::time::sleep(Duration::from_secs_f64(scenario.load.warmup_s)).await;
    // No alert can see a fault before the monitoring's first scrape of its
    // targets. Without faults nothing waits: a calm stretch is counted from
    // that scrape (the history records when it came).
    if let Some(a) = &alerts
        && reads_alerts(scenario)
        && !scenario.faults.is_empty()
    {
        display.phase("waiting for the monitoring's first scrape");
        match a.wait_scraped(Duration::from_secs(15)).await {
            Ok(after) => display.line(format!("monitoring: every target scraped after {} ms more", after.as_millis())),
            Err(why) => display.line(format!(
                "monitoring: not every target scraped within 15 s ({why}); the faults go ahead"
            )),
        }
    }
    let announce = |msg: String| display_phase(display, msg);
    let nemesis = Nemesis {
        backend,
        manifest,
        plan,
        recorder,
        load: Some(&shared),
        settings: &scenario.settings,
        seed,
        announce: &announce,
    };
    let faults = async {
        run_schedule(&nemesis, &scenario.faults).await;
    };
    let deadline = Duration::from_secs(scenario.load.max_duration_s);
    if tokio::time::timeout(deadline, faults).await.is_err() {
        display.line(format!(
            "the fault schedule did not finish within load.max_duration_s = {} s",
            scenario.load.max_duration_s
        ));
    }
    display.phase("after the faults");
    tokio::time::sleep(Duration::from_secs_f64(scenario.load.tail_s)).await;
    load.stop().await;
    if let Some(p) = prober {
        p.stop();
    }
    if judges_redis_or_tasks {
        display.phase("reading Redis's state");
        crate::observe::redis_state::observe_after_faults(manifest, plan, celery, recorder).await;
    }
    if let Some(a) = alerts {
        // Watched until the alerts resolve (the checks need the resolution), within their deadline.
        if reads_alerts(scenario) {
            display.phase("waiting for the alerts to resolve");
            let judged = judged_alerts(manifest, scenario, recorder);
            if !a
                .wait_settled(&judged, Duration::from_millis(scenario.settings.alert_deadline_ms))
                .await
            {
                display.line("some alert still pending or firing at the end of the watch");
            }
        }
        a.stop().await;
    }
    Ok(healthy)
}

/// Whether a verdict of this scenario reads the stack's alerts: the AL-*
/// requirements, and those the standard defines with an alert half.
fn reads_alerts(scenario: &Scenario) -> bool {
    scenario
        .covers
        .iter()
        .any(|id| id.starts_with("AL-") || crate::check::ALERT_HALVES.iter().any(|(req, _)| req == id))
}

/// The alerts this scenario's verdicts judge: those declared for its AL-*
/// requirements and for the alert halves of the others.
/// With each, when the last fault meant to provoke it began.
fn judged_alerts(manifest: &Manifest, scenario: &Scenario, recorder: &Recorder) -> Vec<(String, Option<crate::history::Micros>)> {
    let Some(m) = &manifest.monitoring else { return Vec::new() };
    scenario
        .covers
        .iter()
        .flat_map(|id| {
            let half = crate::check::ALERT_HALVES
                .iter()
                .find(|(req, _)| req == id)
                .map(|(req, a)| (a.to_string(), Some(*req)));
            [Some((id.clone(), None)), half]
        })
        .flatten()
        .filter_map(|(id, half_of)| {
            let alert = m.alerts.get(&id)?.alert.clone();
            Some((alert, recorder.last_provocation(&id, half_of)))
        })
        .collect()
}

/// The receiver the stack's alert router pages, when it declares one; a
/// receiver that cannot listen is recorded (the AL-* checks say so) rather
/// than stopping the scenario.
async fn start_alert_receiver(
    manifest: &Manifest,
    plan: &StackPlan,
    backend: &dyn Backend,
    recorder: &Arc<Recorder>,
) -> Option<crate::observe::alert_webhook::WebhookReceiver> {
    let service = manifest.monitoring.as_ref()?.alertmanager.clone()?;
    let started = match backend.harness_ip().await {
        Ok(ip) => crate::observe::alert_webhook::WebhookReceiver::start((ip, plan.webhook_port).into(), recorder.clone())
            .await
            .map(|r| (r, ip))
            .map_err(|e| format!("cannot listen on {ip}:{}: {e}", plan.webhook_port)),
        Err(e) => Err(format!("no address the services reach the harness at: {e}")),
    };
    let (receiver, delivery) = match started {
        Ok((r, ip)) => (
            Some(r),
            crate::history::Delivery {
                service,
                webhook: format!("http://{ip}:{}/alerts", plan.webhook_port),
                error: None,
            },
        ),
        Err(e) => (
            None,
            crate::history::Delivery {
                service,
                webhook: String::new(),
                error: Some(e),
            },
        ),
    };
    recorder.alert_delivery(delivery);
    receiver
}

/// What the stack's own logs say about a failing baseline: a proxy's
/// rate limiter rejecting ordinary load shows as nginx's "limiting requests".
fn baseline_explanation(manifest: &Manifest, plan: &StackPlan) -> Option<String> {
    let said: Vec<String> = manifest
        .services
        .iter()
        .filter(|s| s.proxy.is_some())
        .filter_map(|s| {
            let log = &plan.service(&s.name)?.log;
            let lines = crate::observe::access_log::lines_since(log, 0)?;
            let limited = lines.iter().filter(|l| l.contains("limiting requests")).count();
            (limited > 0).then(|| {
                format!(
                    "{}'s log has {limited} \"limiting requests\" lines: its rate limit (limit_req) rejects the ordinary load; \
                     a limit on every path leaves nothing else to judge",
                    s.name
                )
            })
        })
        .collect();
    (!said.is_empty()).then(|| said.join("; "))
}

/// The load with each `endpoint = "<role>"` request turned into the
/// stack's own request, and the roles the manifest does not map.
pub fn resolve_endpoints(manifest: &Manifest, load: &crate::scenario::LoadSpec) -> (crate::scenario::LoadSpec, Vec<String>) {
    let mut load = load.clone();
    let mut unmapped = Vec::new();
    for r in &mut load.requests {
        let Some(use_) = &r.endpoint else { continue };
        let Some(decl) = manifest.endpoint(&use_.role) else {
            if !unmapped.contains(&use_.role) {
                unmapped.push(use_.role.clone());
            }
            continue;
        };
        r.path = decl
            .path()
            .replace("{ms}", &use_.ms.unwrap_or(10).to_string())
            .replace("{priority}", &use_.priority.unwrap_or(5).to_string());
        if !r.method_given {
            r.method = decl.method().to_string();
        }
        if r.body.is_none() {
            r.body = decl.body().map(str::to_string);
        }
    }
    (load, unmapped)
}

/// HTTPS load against a stack with no TLS: nothing is started. The
/// requirements about certificates fail, as the standard requires TLS; the
/// others this scenario covers could not be tried.
fn no_tls_result(manifest: &Manifest, scenario: &Scenario) -> ScenarioResult {
    let mut result = unmapped_result(manifest, scenario, &[]);
    for v in &mut result.verdicts {
        let about_certificates = ["TLS-EXPIRY", "AL-CERT"].contains(&v.requirement.as_str());
        *v = check::verdict::Verdict::new(
            &v.requirement,
            if about_certificates {
                check::verdict::Outcome::Fail
            } else {
                check::verdict::Outcome::Inconclusive
            },
            format!(
                "the stack lacks TLS, which the standard requires (certificates renewed and reloaded without dropping traffic); \
                 this scenario's load is HTTPS, so nothing ran. If it has TLS, declare [tls] service, port, host in {}",
                manifest.file.display()
            ),
            "HTTPS load to the stack's TLS endpoint",
        );
    }
    result
}

/// A scenario that needs endpoints the stack does not map: nothing is
/// started, and every requirement it covers says which field to add.
fn unmapped_result(manifest: &Manifest, scenario: &Scenario, unmapped: &[String]) -> ScenarioResult {
    let wanted: Vec<String> = unmapped
        .iter()
        .map(|role| {
            let what = crate::manifest::ENDPOINT_ROLES
                .iter()
                .find(|(r, _)| r == role)
                .map_or("", |(_, what)| what);
            format!("[endpoints] {role} = {{ method, path, body }} ({what})")
        })
        .collect();
    let verdicts = scenario
        .covers
        .iter()
        .map(|id| {
            check::verdict::Verdict::new(
                id,
                check::verdict::Outcome::Inconclusive,
                format!(
                    "the scenario's load needs endpoints {} maps to none of its paths: declare {}",
                    manifest.file.display(),
                    wanted.join("; ")
                ),
                "the scenario's load against the stack's own endpoints",
            )
        })
        .collect();
    ScenarioResult {
        name: scenario.name.clone(),
        file: scenario.file.display().to_string(),
        description: scenario.description.clone(),
        duration_ms: 0,
        healthy_after_ms: None,
        verdicts,
        error: None,
        logs: Default::default(),
        worker: None,
        history: Default::default(),
    }
}

/// Fault announcements: the start of a fault is a phase, its outcome a line.
fn display_phase(display: &Progress, msg: String) {
    if msg.contains(" landed (") || msg.contains("NOT landed") {
        display.line(msg);
    } else {
        display.phase(msg);
    }
}

fn print_kept(manifest: &Manifest, backend: &dyn Backend, run_id: &str) {
    eprintln!("chaosgate: --keep: the stack stays up (run {run_id}):");
    for s in &manifest.services {
        let pid = backend
            .pid(&s.name)
            .map(|p| format!("pid {p}"))
            .unwrap_or_else(|| "not running".into());
        let addrs: Vec<String> = s
            .ports
            .iter()
            .filter_map(|p| backend.endpoint(&s.name, p).map(|a| format!("{p}={a}")))
            .collect();
        let log = backend.log_path(&s.name).map(|p| p.display().to_string()).unwrap_or_default();
        eprintln!("  {:<8} {:<10} {}  log: {log}", s.name, pid, addrs.join(" "));
    }
    eprintln!("  stop it with: chaosgate clean --run {run_id}");
}

#[cfg(test)]
mod tests {
    use super::closed_folder_warning;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_reports_folder_others_cannot_enter_is_named() {
        let base = std::env::temp_dir().join(format!("chaosgate-closed-{}", std::process::id()));
        let run_dir = base.join("reports/run-1");
        std::fs::create_dir_all(&run_dir).expect("dirs");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(closed_folder_warning(&run_dir), None);
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let warning = closed_folder_warning(&run_dir);
        if nix::unistd::geteuid().is_root() {
            let w = warning.expect("named as root");
            assert!(w.contains(&format!("inside {} (mode 700)", base.display())), "{w}");
        } else {
            // The services run as this user: nothing drops to another one.
            assert_eq!(warning, None);
        }
        let _ = std::fs::remove_dir_all(&base);
    }
}
