//! The process backend: each service a real child process on loopback, in
//! its own process group, its output in the run folder.

use super::reaper::{self, RUN_TAG, SERVICE_TAG};
use super::render::{ServicePlan, StackPlan};
use super::{Backend, EnvOverrides, ShutdownReport, StackError};
use crate::history::{ExitInfo, Recorder, ServiceEventKind};
use crate::manifest::Manifest;
use async_trait::async_trait;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Variables passed through from the harness's environment; everything else a
/// service sees comes from the manifest, so a run is reproducible.
const PASSED_THROUGH: &[&str] = &["HOME", "LANG", "LC_ALL", "TZ", "USER", "TMPDIR", "RUST_BACKTRACE"];

struct Running {
    pid: u32,
    /// Where this start's output begins in the service's log (`ready = { log }`).
    log_from: u64,
    exit: watch::Receiver<Option<ExitInfo>>,
}

pub struct ProcessBackend {
    plan: StackPlan,
    install_hints: HashMap<String, Option<String>>,
    /// Each service's declared graceful-stop signal (TERM unless it says otherwise).
    stop_signals: HashMap<String, Signal>,
    run_id: String,
    recorder: Arc<Recorder>,
    running: Mutex<HashMap<String, Running>>,
    instances: super::Instances,
    keep: AtomicBool,
    /// Every descendant each service was seen with, however it hid since
    /// (another session, a cleared environment, re-parented to the harness).
    members: Mutex<HashMap<String, Vec<reaper::Kin>>>,
}

impl ProcessBackend {
    pub fn new(plan: StackPlan, manifest: &Manifest, run_id: &str, recorder: Arc<Recorder>) -> Self {
        Self {
            plan,
            install_hints: manifest.services.iter().map(|s| (s.name.clone(), s.install.clone())).collect(),
            stop_signals: manifest.services.iter().map(|s| (s.name.clone(), s.stop_signal)).collect(),
            run_id: run_id.to_string(),
            recorder,
            running: Mutex::new(HashMap::new()),
            instances: super::Instances::default(),
            keep: AtomicBool::new(false),
            members: Mutex::new(HashMap::new()),
        }
    }

    fn service(&self, name: &str) -> Result<ServicePlan, StackError> {
        self.service_plan(name).ok_or_else(|| StackError::UnknownService(name.to_string()))
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        match self.running.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn current(&self, name: &str) -> Option<(u32, watch::Receiver<Option<ExitInfo>>)> {
        self.running().get(name).map(|r| (r.pid, r.exit.clone()))
    }

    /// The service's descendants now, and those it was seen with before that
    /// still live: a child that left the service's group and session while
    /// the service ran stays the service's once seen. Called before every
    /// signal, so what a stop orphans was seen while it still had its parent.
    fn members(&self, service: &str) -> Vec<reaper::Kin> {
        let table = reaper::all_kin();
        // Only a live leader: the pid of one that exited may be a stranger's now.
        let leader = self.alive_pid(service);
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let known = members.entry(service.to_string()).or_default();
        known.retain(|k| table.iter().any(|t| t.pid == k.pid && t.started == k.started && !t.zombie));
        let mut roots: Vec<u32> = known.iter().map(|k| k.pid).collect();
        roots.extend(leader);
        for k in reaper::descendants(&table, &roots) {
            if known.iter().any(|m| m.pid == k.pid) {
                continue;
            }
            // Out of the leader's group, the teardown's killpg misses it: the
            // marker names it so `clean` finds it even if the harness dies.
            if leader.is_some_and(|l| k.pgid != l) {
                reaper::record_escapee(&self.run_id, service, k.pid);
            }
            known.push(k);
        }
        known.clone()
    }

    fn alive_pid(&self, name: &str) -> Option<u32> {
        let (pid, exit) = self.current(name)?;
        exit.borrow().is_none().then_some(pid)
    }

    /// Resolve a program the way a shell would, on the stack's PATH.
    fn resolve(&self, svc: &ServicePlan) -> Result<PathBuf, StackError> {
        let program = &svc.argv[0];
        let not_found = || StackError::ProgramNotFound {
            service: svc.name.clone(),
            program: program.clone(),
            hint: self.install_hints.get(&self.instances.template_of(&svc.name)).cloned().flatten(),
        };
        if program.contains('/') {
            let p = PathBuf::from(program);
            return if p.is_file() { Ok(p) } else { Err(not_found()) };
        }
        find_on_path(program, &self.plan.path_var).ok_or_else(not_found)
    }
}

pub use super::ready::http_get_status;

pub fn find_on_path(program: &str, path_var: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn exit_info(status: std::process::ExitStatus) -> ExitInfo {
    ExitInfo {
        code: status.code(),
        signal: status.signal(),
    }
}

pub fn tail_of_file(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[async_trait]
impl Backend for ProcessBackend {
    async fn start(&self, service: &str, overrides: &EnvOverrides) -> Result<u32, StackError> {
        let svc = self.service(service)?;
        let program = self.resolve(&svc)?;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&svc.log)?;
        writeln!(
            log,
            "--- chaosgate: starting {} at +{} ms ---",
            svc.name,
            self.recorder.clock.now() / 1000
        )?;
        let log_from = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&svc.argv[1..])
            .current_dir(&svc.dir)
            .env_clear()
            .env("PATH", &self.plan.path_var)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own group: signals to the harness's terminal don't reach it, and
            // killpg takes its children down with it.
            .process_group(0)
            .kill_on_drop(false);
        for var in PASSED_THROUGH {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        for (k, v) in &svc.env {
            if !overrides.remove.contains(k) {
                cmd.env(k, v);
            }
        }
        for (k, v) in &overrides.set {
            cmd.env(k, v);
        }
        cmd.env(RUN_TAG, &self.run_id).env(SERVICE_TAG, &svc.name);
        // Stamped before the spawn: nothing of the new process can exist earlier.
        let spawned_at = self.recorder.clock.now();
        let mut child = cmd.spawn().map_err(|source| StackError::Spawn {
            service: svc.name.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        let (tx, rx) = watch::channel(None);
        self.running().insert(svc.name.clone(), Running { pid, log_from, exit: rx });
        reaper::record_leader(&self.run_id, &svc.name, pid);
        self.recorder.event_at(spawned_at, &svc.name, ServiceEventKind::Started { pid });
        let recorder = self.recorder.clone();
        let name = svc.name.clone();
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => exit_info(status),
                Err(_) => ExitInfo { code: None, signal: None },
            };
            recorder.event(&name, ServiceEventKind::Exited { pid, exit });
            let _ = tx.send(Some(exit));
        });
        Ok(pid)
    }

    async fn wait_ready(&self, service: &str, deadline: Duration) -> Result<Duration, StackError> {
        let svc = self.service(service)?;
        let log_from = self.running().get(service).map_or(0, |r| r.log_from);
        let exited = || self.current(service).and_then(|(_, exit)| *exit.borrow());
        super::ready::wait_until_ready(&svc, deadline, log_from, &exited, &self.recorder).await
    }

    fn plan(&self) -> &StackPlan {
        &self.plan
    }

    fn instances(&self) -> &super::Instances {
        &self.instances
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn pid(&self, service: &str) -> Option<u32> {
        self.alive_pid(service)
    }

    async fn signal(&self, service: &str, signal: Signal) -> Result<u32, StackError> {
        let pid = self.alive_pid(service).ok_or_else(|| StackError::NotRunning {
            service: service.to_string(),
        })?;
        self.members(service);
        kill(Pid::from_raw(pid as i32), signal).map_err(|source| StackError::Signal {
            service: service.to_string(),
            source,
        })?;
        // A SIGKILL takes the service down whole, as a container's processes
        // die with its PID 1: a gunicorn or Celery master's children must not
        // go on serving or running tasks after their service was "killed".
        if signal == Signal::SIGKILL {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        self.recorder.event(
            service,
            ServiceEventKind::Signalled {
                pid,
                signal: signal.as_str().to_string(),
            },
        );
        Ok(pid)
    }

    async fn wait_exit(&self, service: &str, timeout: Duration) -> Option<ExitInfo> {
        let (_, mut exit) = self.current(service)?;
        let waited = tokio::time::timeout(timeout, exit.wait_for(|e| e.is_some())).await;
        match waited {
            Ok(Ok(e)) => *e,
            _ => None,
        }
    }

    async fn stop(&self, service: &str, grace: Duration) -> Result<Option<ExitInfo>, StackError> {
        let Some(pid) = self.alive_pid(service) else {
            return Ok(self.current(service).and_then(|(_, e)| *e.borrow()));
        };
        self.members(service);
        let graceful = self
            .stop_signals
            .get(&self.instances.template_of(service))
            .copied()
            .unwrap_or(Signal::SIGTERM);
        let _ = kill(Pid::from_raw(pid as i32), graceful);
        // A stopped process never handles TERM: let it run so it can.
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        if let Some(exit) = self.wait_exit(service, grace).await {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            return Ok(Some(exit));
        }
        self.kill(service).await
    }

    async fn kill(&self, service: &str) -> Result<Option<ExitInfo>, StackError> {
        let Some((pid, _)) = self.current(service) else {
            return Ok(None);
        };
        self.members(service);
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        Ok(self.wait_exit(service, Duration::from_secs(5)).await)
    }

    async fn exec(&self, service: &str, argv: &[String]) -> Result<std::process::Output, StackError> {
        let svc = self.service(service)?;
        let Some((program, args)) = argv.split_first() else {
            return Err(StackError::Io(std::io::Error::other("empty command")));
        };
        let out = tokio::process::Command::new(program)
            .args(args)
            .current_dir(&svc.dir)
            .env("PATH", &self.plan.path_var)
            .envs(&svc.env)
            .env(RUN_TAG, &self.run_id)
            .env(SERVICE_TAG, &svc.name)
            .kill_on_drop(true)
            .output()
            .await?;
        Ok(out)
    }

    fn processes(&self, service: &str) -> Vec<(u32, String)> {
        let mut found: Vec<(u32, String)> = reaper::tagged_processes(Some(&self.run_id), Some(service))
            .into_iter()
            .map(|p| (p.pid, p.command))
            .collect();
        // The group finds what hid its tag (nginx rewrites its environment),
        // the family tree what also left the group and cleared its environment.
        let grouped = self.current(service).map(|(leader, _)| reaper::group_members(leader));
        let family = self.members(service).into_iter().map(|k| k.pid);
        for pid in grouped.into_iter().flatten().chain(family) {
            if !found.iter().any(|(p, _)| *p == pid) {
                found.push((pid, reaper::command_line(pid)));
            }
        }
        found
    }

    fn process_state(&self, service: &str) -> Option<char> {
        reaper::process_state(self.alive_pid(service)?)
    }

    async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        for name in self.instances.stop_order(&self.plan) {
            if self.alive_pid(&name).is_some() {
                let _ = self.stop(&name, grace).await;
                report.stopped.push(name);
            }
        }
        let remembered: Vec<(String, reaper::Kin)> = {
            let names: Vec<String> = self.members.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
            names
                .into_iter()
                .flat_map(|n| self.members(&n).into_iter().map(move |k| (n.clone(), k)))
                .collect()
        };
        for (service, k) in &remembered {
            report.swept.push(format!("{} {} ({service})", k.pid, reaper::command_line(k.pid)));
            let _ = kill(Pid::from_raw(k.pid as i32), Signal::SIGKILL);
        }
        for p in reaper::kill_run(&self.run_id) {
            if !remembered.iter().any(|(_, k)| k.pid == p.pid) {
                report.swept.push(format!("{} {} ({})", p.pid, p.command, p.service));
            }
        }
        reaper::await_and_reap(&self.run_id, Duration::from_secs(2)).await;
        report
    }

    fn keep_running(&self) {
        self.keep.store(true, Ordering::SeqCst);
    }
}

impl Drop for ProcessBackend {
    /// The safety net: whatever path left the run (error, panic), nothing stays up
    /// unless the user asked for it with --keep.
    fn drop(&mut self) {
        if self.keep.load(Ordering::SeqCst) {
            return;
        }
        for r in self.running().values() {
            let _ = killpg(Pid::from_raw(r.pid as i32), Signal::SIGKILL);
        }
        reaper::kill_run(&self.run_id);
    }
}
