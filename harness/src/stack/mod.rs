//! Backends run the stack under test. The process backend starts each
//! service as a local child process; the Docker backend runs each in a
//! container. Both implement one trait, so callers never know which one runs.

pub mod certs;
pub mod compose;
pub mod descriptors;
pub mod docker;
pub mod docker_objects;
pub mod process;
pub mod ready;
pub mod reaper;
pub mod render;

use crate::history::ExitInfo;
use async_trait::async_trait;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which backend runs the services (`chaosgate run --backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Each service a local process on loopback.
    #[default]
    Process,
    /// Each service a container on a network of the run's own (needs a Docker engine).
    Docker,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Process => "process",
            BackendKind::Docker => "docker",
        }
    }
}

/// Changes to a service's environment for one start.
#[derive(Debug, Clone, Default)]
pub struct EnvOverrides {
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("service `{0}` is not part of this stack")]
    UnknownService(String),
    #[error("service `{service}`: `{program}` not found on PATH{}", hint.as_ref().map(|h| format!("; install it with: {h}")).unwrap_or_default())]
    ProgramNotFound {
        service: String,
        program: String,
        hint: Option<String>,
    },
    #[error("service `{service}` could not be started: {source}")]
    Spawn {
        service: String,
        #[source]
        source: std::io::Error,
    },
    #[error("service `{service}` did not become ready within {waited:?} ({check}); last lines of {log}:\n{tail}")]
    NotReady {
        service: String,
        waited: Duration,
        check: String,
        log: PathBuf,
        tail: String,
    },
    #[error("service `{service}` exited ({exit}) before it was ready; last lines of {log}:\n{tail}")]
    ExitedEarly {
        service: String,
        exit: String,
        log: PathBuf,
        tail: String,
    },
    #[error("service `{service}` is not running")]
    NotRunning { service: String },
    #[error("cannot signal service `{service}`: {source}")]
    Signal {
        service: String,
        #[source]
        source: nix::Error,
    },
    #[error("Docker: cannot {action}: {detail}")]
    Docker { action: String, detail: String },
    #[error("build step `{command}` failed: {detail}")]
    Build { command: String, detail: String },
    #[error(transparent)]
    Render(#[from] render::RenderError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What a shutdown stopped, and whatever it found still alive after.
/// Services started during a run: each a copy of a manifest service (its
/// template) under a name of its own, with ports picked when it was added.
#[derive(Default)]
pub struct Instances(std::sync::Mutex<Vec<(String, render::ServicePlan)>>);

impl Instances {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, render::ServicePlan)>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn add(&self, template: &str, plan: render::ServicePlan) {
        self.lock().push((template.to_string(), plan));
    }

    pub fn get(&self, name: &str) -> Option<render::ServicePlan> {
        self.lock().iter().find(|(_, p)| p.name == name).map(|(_, p)| p.clone())
    }

    /// The manifest service an instance was made from; a service is its own template.
    pub fn template_of(&self, name: &str) -> String {
        self.lock()
            .iter()
            .find(|(_, p)| p.name == name)
            .map(|(t, _)| t.clone())
            .unwrap_or_else(|| name.to_string())
    }

    /// Position among the instances (the Docker backend gives each a fixed address).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.lock().iter().position(|(_, p)| p.name == name)
    }

    /// Every service name in the order to stop them: instances newest
    /// first, then the plan's services in reverse start order.
    pub fn stop_order(&self, plan: &render::StackPlan) -> Vec<String> {
        let instances = self.lock().iter().rev().map(|(_, p)| p.name.clone()).collect::<Vec<_>>();
        instances
            .into_iter()
            .chain(plan.services.iter().rev().map(|s| s.name.clone()))
            .collect()
    }
}

#[derive(Debug, Default, Clone)]
pub struct ShutdownReport {
    pub stopped: Vec<String>,
    /// Tagged processes found after the services' groups were stopped, and killed.
    pub swept: Vec<String>,
}

/// The operations every backend provides. Faults and observers use only these.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Start a service (with environment changes) and return its PID.
    async fn start(&self, service: &str, overrides: &EnvOverrides) -> Result<u32, StackError>;
    /// Wait until the service passes its ready check; returns how long it took.
    async fn wait_ready(&self, service: &str, deadline: Duration) -> Result<Duration, StackError>;
    /// Start every service in dependency order, each awaited ready.
    async fn start_all(&self, deadline: Duration) -> Result<Duration, StackError> {
        let started = std::time::Instant::now();
        for svc in &self.plan().services {
            self.start(&svc.name, &EnvOverrides::default()).await?;
            let left = deadline.saturating_sub(started.elapsed());
            self.wait_ready(&svc.name, left).await?;
        }
        Ok(started.elapsed())
    }
    /// The address the services reach the harness at (its alert receiver
    /// listens there): loopback for local processes.
    async fn harness_ip(&self) -> Result<std::net::IpAddr, StackError> {
        Ok(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }
    /// The rendered stack this backend runs.
    fn plan(&self) -> &render::StackPlan;
    /// Services started during the run (a release's instances).
    fn instances(&self) -> &Instances;
    /// The run id every process and container of the run is tagged with.
    fn run_id(&self) -> &str;
    /// A service of the plan or an instance started since.
    fn service_plan(&self, service: &str) -> Option<render::ServicePlan> {
        self.plan().service(service).cloned().or_else(|| self.instances().get(service))
    }
    /// Make a new instance known (rendered by [`render::StackPlan::render_instance`]);
    /// `start` starts it like any service.
    fn add_instance(&self, template: &str, plan: render::ServicePlan) -> Result<(), StackError> {
        if self.service_plan(&plan.name).is_some() {
            return Err(StackError::Io(std::io::Error::other(format!(
                "a service or instance named `{}` exists already",
                plan.name
            ))));
        }
        self.instances().add(template, plan);
        Ok(())
    }
    /// Loopback address of a named port of a service.
    fn endpoint(&self, service: &str, port: &str) -> Option<SocketAddr> {
        self.service_plan(service)?.addr(port)
    }
    /// PID of the service's main process while it runs.
    fn pid(&self, service: &str) -> Option<u32>;
    /// Deliver a signal to the service's main process; returns its PID.
    async fn signal(&self, service: &str, signal: Signal) -> Result<u32, StackError>;
    /// Wait for the current process of the service to exit, up to `timeout`.
    async fn wait_exit(&self, service: &str, timeout: Duration) -> Option<ExitInfo>;
    /// The service's declared stop signal (TERM by default), wait `grace`, then KILL the whole process group.
    async fn stop(&self, service: &str, grace: Duration) -> Result<Option<ExitInfo>, StackError>;
    /// KILL the service's whole process group at once.
    async fn kill(&self, service: &str) -> Result<Option<ExitInfo>, StackError>;
    /// The last lines of the service's output.
    fn log_tail(&self, service: &str, lines: usize) -> String {
        self.service_plan(service)
            .map(|s| process::tail_of_file(&s.log, lines))
            .unwrap_or_default()
    }
    /// Path of the service's log (every backend writes the service's output there).
    fn log_path(&self, service: &str) -> Option<PathBuf> {
        self.service_plan(service).map(|s| s.log.clone())
    }
    /// Write a file the service reads: a name in its folder, or a path inside
    /// its container that a mount maps to the run folder. Both backends see
    /// the run folder itself (a container has it bind-mounted).
    async fn put_file(&self, service: &str, name: &str, contents: &[u8]) -> Result<(), StackError> {
        let svc = self
            .service_plan(service)
            .ok_or_else(|| StackError::UnknownService(service.to_string()))?;
        tokio::fs::write(svc.host_path(name), contents).await?;
        Ok(())
    }
    /// Run a command in the service's context (its directory and environment).
    async fn exec(&self, service: &str, argv: &[String]) -> Result<std::process::Output, StackError>;
    /// Processes that belong to the service ("pid command"), its children included.
    fn processes(&self, service: &str) -> Vec<(u32, String)>;
    /// Process state letter of the main process ('T' when stopped).
    fn process_state(&self, service: &str) -> Option<char>;
    /// Stop everything (reverse start order), then sweep what is left.
    async fn shutdown(&self, grace: Duration) -> ShutdownReport;
    /// Leave the stack running when the backend is dropped (--keep).
    fn keep_running(&self);
}
