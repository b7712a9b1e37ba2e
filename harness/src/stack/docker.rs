//! The Docker backend: each service a container on a network of the run's
//! own, driven through the engine's API (bollard).
//!
//! The run folder is bind-mounted at the same path in every container, so
//! rendered files, certificates, logs and data are where the harness and the
//! faults look for them on either backend. Each container port is published
//! on 127.0.0.1 at the same number the plan picked, so every address the
//! harness uses is the same as on the process backend; inside the network a
//! service is reached by its name, at a fixed address, so a restarted
//! container comes back where nginx's upstreams expect it.
//!
//! Signals are the stack's own: a service runs as its container's PID 1
//! with no `--init`, so a service that does not handle TERM as PID 1 shows
//! as one that ignores TERM, as it would in the user's own deployment.

use super::docker_objects::{self, RUN_LABEL, SERVICE_LABEL};
use super::reaper::{self, RUN_TAG, SERVICE_TAG};
use super::render::{ServicePlan, StackPlan};
use super::{Backend, EnvOverrides, ShutdownReport, StackError};
use crate::history::{ExitInfo, Recorder, ServiceEventKind};
use crate::manifest::Manifest;
use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, ExecConfig, HostConfig, Ipam, IpamConfig, NetworkCreateRequest,
    NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, KillContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, WaitContainerOptions,
};
use futures_util::StreamExt;
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// PATH of a Debian image, after the stack's own `[stack] path` folders.
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The fix printed when no engine answers.
pub const NO_ENGINE_FIX: &str = "start the Docker engine (`systemctl start docker` or `dockerd &`) and make its socket \
     (/var/run/docker.sock, or DOCKER_HOST) reachable by this user";

struct Running {
    container: String,
    pid: u32,
    log_from: u64,
    exit: watch::Receiver<Option<ExitInfo>>,
}

struct Network {
    name: String,
    /// The first three octets of the run's /24.
    prefix: [u8; 3],
}

pub struct DockerBackend {
    docker: Docker,
    plan: StackPlan,
    images: HashMap<String, String>,
    stop_signals: HashMap<String, Signal>,
    run_id: String,
    /// Unique per scenario of a run: the network's name and the containers' prefix.
    scope: String,
    recorder: Arc<Recorder>,
    network: tokio::sync::Mutex<Option<Network>>,
    running: Mutex<HashMap<String, Running>>,
    generations: Mutex<HashMap<String, u32>>,
    instances: super::Instances,
    keep: AtomicBool,
}

/// A connection to the engine, its API version negotiated (20.10 speaks 1.41).
pub async fn connect() -> Result<Docker, StackError> {
    let unreachable = |e: bollard::errors::Error| StackError::Docker {
        action: "connect to the Docker engine".into(),
        detail: format!("{e}; {NO_ENGINE_FIX}"),
    };
    let docker = Docker::connect_with_local_defaults().map_err(unreachable)?;
    let docker = docker.negotiate_version().await.map_err(unreachable)?;
    docker.ping().await.map_err(unreachable)?;
    Ok(docker)
}

impl DockerBackend {
    /// Every service needs an image: its own `image` or `[stack] image`.
    pub async fn new(plan: StackPlan, manifest: &Manifest, run_id: &str, recorder: Arc<Recorder>) -> Result<Self, StackError> {
        let mut images = HashMap::new();
        for s in &manifest.services {
            let Some(image) = &s.image else {
                return Err(StackError::Docker {
                    action: format!("run service `{}` in a container", s.name),
                    detail: format!(
                        "{} names no image: add `image = \"...\"` to [services.{}] or `image` to [stack] \
                         (`chaosgate images build` makes chaosgate/stack:bookworm here)",
                        manifest.file.display(),
                        s.name
                    ),
                });
            };
            images.insert(s.name.clone(), image.clone());
        }
        let docker = connect().await?;
        for image in images.values().collect::<std::collections::BTreeSet<_>>() {
            if docker.inspect_image(image).await.is_err() {
                return Err(StackError::Docker {
                    action: format!("find image `{image}`"),
                    detail: "it is not on this engine and chaosgate never pulls: build it with `chaosgate images build` \
                             (or `docker pull` it where a registry is reachable)"
                        .into(),
                });
            }
        }
        let leaf = plan
            .run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let scope = sanitize(&format!("cg-{run_id}-{leaf}"));
        Ok(Self {
            docker,
            plan,
            images,
            stop_signals: manifest.services.iter().map(|s| (s.name.clone(), s.stop_signal)).collect(),
            run_id: run_id.to_string(),
            scope,
            recorder,
            network: tokio::sync::Mutex::new(None),
            running: Mutex::new(HashMap::new()),
            generations: Mutex::new(HashMap::new()),
            instances: super::Instances::default(),
            keep: AtomicBool::new(false),
        })
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

    fn current(&self, name: &str) -> Option<(u32, String, watch::Receiver<Option<ExitInfo>>)> {
        self.running().get(name).map(|r| (r.pid, r.container.clone(), r.exit.clone()))
    }

    fn alive(&self, name: &str) -> Option<(u32, String)> {
        let (pid, container, exit) = self.current(name)?;
        exit.borrow().is_none().then_some((pid, container))
    }

    fn labels(&self, service: Option<&str>) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (RUN_LABEL.to_string(), self.run_id.clone()),
            (docker_objects::STATE_LABEL.to_string(), docker_objects::state_label()),
        ]);
        if let Some(s) = service {
            labels.insert(SERVICE_LABEL.to_string(), s.to_string());
        }
        labels
    }

    /// The run's network, created on first use with a /24 of its own so
    /// that every service keeps one address across restarts.
    async fn ensure_network(&self) -> Result<([u8; 3], String), StackError> {
        let mut guard = self.network.lock().await;
        if let Some(n) = guard.as_ref() {
            return Ok((n.prefix, n.name.clone()));
        }
        let mut last = String::new();
        for _ in 0..32 {
            let prefix = [10, fastrand::u8(150..250), fastrand::u8(..)];
            let request = NetworkCreateRequest {
                name: self.scope.clone(),
                driver: Some("bridge".into()),
                labels: Some(self.labels(None)),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(format!("{}.{}.{}.0/24", prefix[0], prefix[1], prefix[2])),
                        gateway: Some(gateway(prefix).to_string()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            match self.docker.create_network(request).await {
                Ok(_) => {
                    *guard = Some(Network {
                        name: self.scope.clone(),
                        prefix,
                    });
                    return Ok((prefix, self.scope.clone()));
                }
                // Another network (another run, the user's own) holds that range: try another.
                Err(e) => last = e.to_string(),
            }
        }
        Err(StackError::Docker {
            action: format!("create network {}", self.scope),
            detail: last,
        })
    }

    fn address_of(&self, prefix: [u8; 3], service: &str) -> Ipv4Addr {
        // Instances come after the plan's services, so no restart moves anyone.
        let index = self
            .plan
            .services
            .iter()
            .position(|s| s.name == service)
            .or_else(|| self.instances.position(service).map(|i| self.plan.services.len() + i))
            .unwrap_or(0);
        Ipv4Addr::new(prefix[0], prefix[1], prefix[2], 10 + index as u8)
    }

    fn next_generation(&self, service: &str) -> u32 {
        let mut g = match self.generations.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let n = g.entry(service.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    fn binds(&self) -> Vec<String> {
        let run_dir = self.plan.run_dir.display().to_string();
        let mut binds = vec![format!("{run_dir}:{run_dir}")];
        let mut read_only: Vec<PathBuf> = vec![self.plan.manifest_dir.clone()];
        read_only.extend(self.plan.path_dirs.iter().cloned());
        for dir in read_only {
            if dir.is_dir() && !self.plan.run_dir.starts_with(&dir) {
                binds.push(format!("{0}:{0}:ro", dir.display()));
            }
        }
        binds
    }

    fn container_env(&self, svc: &ServicePlan, overrides: &EnvOverrides) -> Vec<String> {
        let mut path: Vec<String> = self.plan.path_dirs.iter().map(|p| p.display().to_string()).collect();
        path.push(IMAGE_PATH.to_string());
        let mut env = vec![format!("PATH={}", path.join(":"))];
        for (k, v) in &svc.env {
            if !overrides.remove.contains(k) && !overrides.set.contains_key(k) {
                env.push(format!("{k}={v}"));
            }
        }
        for (k, v) in &overrides.set {
            env.push(format!("{k}={v}"));
        }
        // The same tags as on the process backend: the reaper and GS-CLEANUP find
        // a container's processes in the host's /proc by them.
        env.push(format!("{RUN_TAG}={}", self.run_id));
        env.push(format!("{SERVICE_TAG}={}", svc.name));
        env
    }

    /// A compose file's named volumes, one per run on the engine (labelled, so
    /// cleanup finds them), kept across the service's restarts within the run.
    async fn named_volumes(&self, svc: &ServicePlan) -> Result<Vec<(String, String, bool)>, StackError> {
        use super::compose::VolumeSource;
        let mut out = Vec::new();
        let Some(c) = &svc.compose else {
            return Ok(out);
        };
        for v in &c.volumes {
            let VolumeSource::Named(name) = &v.source else {
                continue;
            };
            let volume = sanitize(&format!("{}-{name}", self.scope));
            let request = bollard::models::VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(self.labels(None)),
                ..Default::default()
            };
            self.docker
                .create_volume(request)
                .await
                .map_err(self.docker_error(format!("create volume {volume}")))?;
            out.push((volume, v.target.clone(), v.read_only));
        }
        Ok(out)
    }

    async fn remove_container(&self, container: &str) {
        let opts = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        let _ = self.docker.remove_container(container, Some(opts)).await;
    }

    fn docker_error(&self, action: String) -> impl FnOnce(bollard::errors::Error) -> StackError {
        move |e| StackError::Docker {
            action,
            detail: e.to_string(),
        }
    }
}

/// Docker object names allow [a-zA-Z0-9_.-].
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' })
        .collect()
}

/// How a container ended, read the way the process backend reads a wait
/// status: the engine reports death by signal N of PID 1 as 128 + N.
fn exit_of_status(code: i64) -> ExitInfo {
    if (129..=128 + 64).contains(&code) {
        ExitInfo {
            code: None,
            signal: Some((code - 128) as i32),
        }
    } else {
        ExitInfo {
            code: Some(code as i32),
            signal: None,
        }
    }
}

/// Docker gives a bridge network's first address to the host.
fn gateway(prefix: [u8; 3]) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(prefix[0], prefix[1], prefix[2], 1)
}

#[async_trait]
impl Backend for DockerBackend {
    /// The run network's gateway: the host's own address on that network,
    /// reachable from its containers and from nowhere else.
    async fn harness_ip(&self) -> Result<std::net::IpAddr, StackError> {
        let (prefix, _) = self.ensure_network().await?;
        Ok(std::net::IpAddr::V4(gateway(prefix)))
    }

    async fn start(&self, service: &str, overrides: &EnvOverrides) -> Result<u32, StackError> {
        let svc = self.service(service)?;
        let (prefix, network) = self.ensure_network().await?;
        if let Some((_, old, _)) = self.current(service) {
            self.remove_container(&old).await;
        }
        let generation = self.next_generation(service);
        let name = format!("{}-{}-{generation}", self.scope, sanitize(service));
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&svc.log)?;
        writeln!(
            log,
            "--- chaosgate: starting {} at +{} ms (container {name}) ---",
            svc.name,
            self.recorder.clock.now() / 1000
        )?;
        let log_from = log.metadata().map(|m| m.len()).unwrap_or(0);
        // Each named port: the container's port, published on the plan's host port.
        let published: Vec<(u16, u16)> = svc
            .ports
            .iter()
            .map(|(name, host)| (svc.container_ports.get(name).copied().unwrap_or(*host), *host))
            .collect();
        let port_bindings = published
            .iter()
            .map(|(inside, host)| {
                (
                    format!("{inside}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(host.to_string()),
                    }]),
                )
            })
            .collect();
        let mut binds = self.binds();
        for (host, target, read_only) in &svc.mounts {
            binds.push(format!("{}:{target}{}", host.display(), if *read_only { ":ro" } else { "" }));
        }
        for (volume, target, read_only) in self.named_volumes(&svc).await? {
            binds.push(format!("{volume}:{target}{}", if read_only { ":ro" } else { "" }));
        }
        // A compose service keeps its image's entrypoint and command unless the file (or the manifest) replaces them.
        let (entrypoint, cmd) = match &svc.compose {
            Some(c) if svc.argv.is_empty() => (c.entrypoint.clone(), c.command.clone()),
            _ => (Some(svc.argv.clone()), Some(Vec::new())),
        };
        let working_dir = match &svc.compose {
            Some(c) => c.working_dir.clone(),
            None => Some(svc.dir.display().to_string()),
        };
        let endpoint = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(self.address_of(prefix, service).to_string()),
                ..Default::default()
            }),
            aliases: Some(vec![svc.name.clone()]),
            ..Default::default()
        };
        let template = self.instances.template_of(service);
        let stop_signal = self.stop_signals.get(&template).copied().unwrap_or(Signal::SIGTERM);
        let body = ContainerCreateBody {
            image: Some(self.images[&template].clone()),
            entrypoint,
            cmd,
            env: Some(self.container_env(&svc, overrides)),
            working_dir,
            labels: Some(self.labels(Some(service))),
            hostname: Some(svc.name.clone()),
            exposed_ports: Some(published.iter().map(|(inside, _)| format!("{inside}/tcp")).collect()),
            stop_signal: Some(stop_signal.as_str().to_string()),
            host_config: Some(HostConfig {
                binds: Some(binds),
                port_bindings: Some(port_bindings),
                network_mode: Some(network.clone()),
                // `{{ harness.webhook }}` names the harness; it listens on the network's gateway.
                extra_hosts: Some(vec![format!("{}:{}", super::render::HARNESS_HOST, gateway(prefix))]),
                init: Some(false),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network.clone(), endpoint)])),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(self.docker_error(format!("create container {name} for service `{service}`")))?;
        let spawned_at = self.recorder.clock.now();
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            self.remove_container(&created.id).await;
            return Err(StackError::Docker {
                action: format!("start container {name} for service `{service}`"),
                detail: e.to_string(),
            });
        }
        let inspected = self
            .docker
            .inspect_container(&created.id, None::<InspectContainerOptions>)
            .await
            .map_err(self.docker_error(format!("inspect container {name}")))?;
        let pid = inspected.state.as_ref().and_then(|s| s.pid).unwrap_or(0).max(0) as u32;
        let (tx, rx) = watch::channel(None);
        self.running().insert(
            service.to_string(),
            Running {
                container: created.id.clone(),
                pid,
                log_from,
                exit: rx,
            },
        );
        self.recorder.event_at(spawned_at, service, ServiceEventKind::Started { pid });
        // The container's output, streamed into the service's log as it comes.
        let logs_task = {
            let docker = self.docker.clone();
            let id = created.id.clone();
            tokio::spawn(async move {
                let opts = LogsOptionsBuilder::new().follow(true).stdout(true).stderr(true).build();
                let mut stream = docker.logs(&id, Some(opts));
                while let Some(Ok(chunk)) = stream.next().await {
                    let bytes = match chunk {
                        LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message } => message,
                        LogOutput::StdIn { .. } => continue,
                    };
                    if log.write_all(&bytes).is_err() {
                        break;
                    }
                }
            })
        };
        let recorder = self.recorder.clone();
        let docker = self.docker.clone();
        let id = created.id.clone();
        let name_of_service = service.to_string();
        tokio::spawn(async move {
            let mut waits = docker.wait_container(&id, None::<WaitContainerOptions>);
            let code = match waits.next().await {
                Some(Ok(r)) => Some(r.status_code),
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Some(code),
                _ => None,
            };
            let exit = code.map(exit_of_status).unwrap_or(ExitInfo { code: None, signal: None });
            // Its last words are in the log before anyone hears it ended.
            let _ = tokio::time::timeout(Duration::from_secs(2), logs_task).await;
            recorder.event(&name_of_service, ServiceEventKind::Exited { pid, exit });
            let _ = tx.send(Some(exit));
        });
        Ok(pid)
    }

    async fn wait_ready(&self, service: &str, deadline: Duration) -> Result<Duration, StackError> {
        let svc = self.service(service)?;
        let log_from = self.running().get(service).map_or(0, |r| r.log_from);
        let exited = || self.current(service).and_then(|(_, _, exit)| *exit.borrow());
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
        self.alive(service).map(|(pid, _)| pid)
    }

    async fn signal(&self, service: &str, signal: Signal) -> Result<u32, StackError> {
        let (pid, container) = self.alive(service).ok_or_else(|| StackError::NotRunning {
            service: service.to_string(),
        })?;
        let opts = KillContainerOptionsBuilder::new().signal(signal.as_str()).build();
        self.docker
            .kill_container(&container, Some(opts))
            .await
            .map_err(self.docker_error(format!("send {} to service `{service}`", signal.as_str())))?;
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
        let (_, _, mut exit) = self.current(service)?;
        let waited = tokio::time::timeout(timeout, exit.wait_for(|e| e.is_some())).await;
        match waited {
            Ok(Ok(e)) => *e,
            _ => None,
        }
    }

    async fn stop(&self, service: &str, grace: Duration) -> Result<Option<ExitInfo>, StackError> {
        let Some((pid, container)) = self.alive(service) else {
            return Ok(self.current(service).and_then(|(_, _, e)| *e.borrow()));
        };
        // A process stopped by SIGSTOP never handles its stop signal: let it run so it can.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGCONT);
        // The engine sends the container's stop signal, waits, then kills.
        let secs = grace.as_secs_f64().ceil().max(1.0) as i32;
        let opts = StopContainerOptionsBuilder::new().t(secs).build();
        let _ = self.docker.stop_container(&container, Some(opts)).await;
        Ok(self.wait_exit(service, Duration::from_secs(5)).await)
    }

    async fn kill(&self, service: &str) -> Result<Option<ExitInfo>, StackError> {
        let Some((_, container)) = self.alive(service) else {
            return Ok(self.current(service).and_then(|(_, _, e)| *e.borrow()));
        };
        let opts = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        let _ = self.docker.kill_container(&container, Some(opts)).await;
        Ok(self.wait_exit(service, Duration::from_secs(5)).await)
    }

    /// Runs inside the service's container while it runs (`nginx -t` sees what nginx sees).
    async fn exec(&self, service: &str, argv: &[String]) -> Result<std::process::Output, StackError> {
        use std::os::unix::process::ExitStatusExt;
        let svc = self.service(service)?;
        let (_, container) = self.alive(service).ok_or_else(|| StackError::NotRunning {
            service: service.to_string(),
        })?;
        let config = ExecConfig {
            cmd: Some(argv.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            working_dir: Some(svc.dir.display().to_string()),
            env: Some(self.container_env(&svc, &EnvOverrides::default())),
            ..Default::default()
        };
        let action = format!("run `{}` in service `{service}`", argv.join(" "));
        let exec = self
            .docker
            .create_exec(&container, config)
            .await
            .map_err(self.docker_error(action.clone()))?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(self.docker_error(action.clone()))?
        {
            while let Some(Ok(chunk)) = output.next().await {
                match chunk {
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => stdout.extend_from_slice(&message),
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        let inspected = self.docker.inspect_exec(&exec.id).await.map_err(self.docker_error(action))?;
        let code = inspected.exit_code.unwrap_or(-1) as i32;
        Ok(std::process::Output {
            status: std::process::ExitStatus::from_raw((code & 0xff) << 8),
            stdout,
            stderr,
        })
    }

    fn processes(&self, service: &str) -> Vec<(u32, String)> {
        let mut found: Vec<(u32, String)> = reaper::tagged_processes(Some(&self.run_id), Some(service))
            .into_iter()
            .map(|p| (p.pid, p.command))
            .collect();
        if let Some((leader, _)) = self.alive(service) {
            for pid in std::iter::once(leader).chain(reaper::group_members(leader)) {
                if !found.iter().any(|(p, _)| *p == pid) {
                    found.push((pid, reaper::command_line(pid)));
                }
            }
        }
        found
    }

    fn process_state(&self, service: &str) -> Option<char> {
        reaper::process_state(self.alive(service)?.0)
    }

    async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        for name in self.instances.stop_order(&self.plan) {
            if self.alive(&name).is_some() {
                let _ = self.stop(&name, grace).await;
                report.stopped.push(name);
            }
        }
        let containers: Vec<String> = self.running().values().map(|r| r.container.clone()).collect();
        for c in containers {
            self.remove_container(&c).await;
        }
        if let Some(net) = self.network.lock().await.take() {
            let _ = self.docker.remove_network(&net.name).await;
        }
        // Whatever else carries this run's label (a container the map lost track of).
        report.swept.extend(docker_objects::remove_run(&self.run_id));
        report
    }

    fn keep_running(&self) {
        self.keep.store(true, Ordering::SeqCst);
    }
}

impl Drop for DockerBackend {
    /// The safety net for a panic or an error path: no container or network
    /// of the run stays unless the user asked for it with --keep.
    fn drop(&mut self) {
        if !self.keep.load(Ordering::SeqCst) {
            docker_objects::remove_run(&self.run_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_death_of_pid_1_reads_as_the_signal() {
        assert_eq!(exit_of_status(137).signal, Some(9));
        assert_eq!(exit_of_status(143).signal, Some(15));
        assert_eq!(exit_of_status(0).code, Some(0));
        assert_eq!(exit_of_status(1).code, Some(1));
    }

    #[test]
    fn names_are_what_docker_accepts() {
        assert_eq!(sanitize("cg-20261202/a b"), "cg-20261202-a-b");
    }
}
