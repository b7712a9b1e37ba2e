//! Turns a manifest into a concrete plan for one run: free loopback ports,
//! random secrets, and the config templates rendered with them.

use crate::manifest::{Manifest, ReadyCheck, Role};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

/// Everything needed to start one service of one run.
#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub name: String,
    pub role: Role,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// The service's folder in the run directory: rendered files, data, log.
    pub dir: PathBuf,
    pub log: PathBuf,
    pub ports: BTreeMap<String, u16>,
    pub ready: ReadyCheck,
    /// Where each named port listens inside its container (the host port, unless a compose file says otherwise).
    pub container_ports: BTreeMap<String, u16>,
    /// The compose service it comes from, with `environment` merged into `env`.
    pub compose: Option<super::compose::ComposeService>,
    /// Bind mounts for its container: (host path, container path, read-only). A
    /// compose file's single-file mounts are copies in the service folder, so
    /// a fault that rewrites a config never touches the user's tree.
    pub mounts: Vec<(PathBuf, String, bool)>,
}

impl ServicePlan {
    /// The host file behind a path the service sees: a file of a compose
    /// mount, or a name in its service folder.
    pub fn host_path(&self, name: &str) -> PathBuf {
        self.mounts
            .iter()
            .find(|(_, target, _)| target == name)
            .map(|(host, _, _)| host.clone())
            .unwrap_or_else(|| self.dir.join(name))
    }
}

impl ServicePlan {
    pub fn addr(&self, port: &str) -> Option<SocketAddr> {
        self.ports.get(port).map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
    }
}

/// The rendered stack of one run.
#[derive(Debug, Clone)]
pub struct StackPlan {
    pub run_dir: PathBuf,
    pub services: Vec<ServicePlan>,
    /// PATH for the stack's commands: the manifest's dirs, then the harness's PATH.
    pub path_var: String,
    /// The run's test certificates, when the manifest has a `[tls]` section.
    pub certs: Option<super::certs::CertSet>,
    /// The manifest's `[stack] path` folders, absolute (a container mounts them read-only).
    pub path_dirs: Vec<PathBuf>,
    /// The manifest's folder, absolute.
    pub manifest_dir: PathBuf,
    pub placement: Placement,
    /// The port of the harness's alert receiver (`{{ harness.webhook }}`).
    pub webhook_port: u16,
    context: RenderContext,
}

/// Where the services reach the harness itself.
#[derive(Debug, Clone, Serialize)]
struct HarnessContext {
    /// `{{ harness.webhook }}`: the URL an alert router (Alertmanager's
    /// `webhook_configs`) delivers alerts to.
    webhook: String,
}

/// The name containers reach the harness by (an extra hosts entry pointing at
/// their network's gateway).
pub const HARNESS_HOST: &str = "chaosgate-harness";

/// Where the services run, which decides how they address each other.
///
/// Templates say `{{ hosts.redis }}` for "the address the other services reach
/// redis at" and `{{ listen }}` for "the address a service binds", so one
/// manifest serves both backends: on the process backend both are loopback;
/// in containers a service binds every interface of its own network namespace
/// and is reached by its service name on the run's network. Ports keep their
/// numbers either way (a container's port is published on the same host port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    LocalProcesses,
    Containers,
}

#[derive(Debug, Clone, Serialize)]
struct RenderContext {
    ports: BTreeMap<String, BTreeMap<String, u16>>,
    secrets: BTreeMap<String, String>,
    run_dir: String,
    manifest_dir: String,
    /// `{{ hosts.<service> }}`: the name or address other services reach it at.
    hosts: BTreeMap<String, String>,
    /// `{{ listen }}`: the address a service binds.
    listen: String,
    service_dir: String,
    settings: BTreeMap<String, String>,
    /// `{{ certs.<name>.cert }}` / `.key`; empty without `[tls]`.
    certs: BTreeMap<String, super::certs::CertPaths>,
    harness: HarnessContext,
    /// A rendered file holding a secret is made readable by its owner only.
    /// Local processes run as the harness's user; a container's user may be
    /// another one, which must still read it (the run folder is then what
    /// keeps it from other users).
    #[serde(skip)]
    private_secrets: bool,
}

/// Owner read and write only.
pub fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("no free loopback port: {0}")]
    NoPort(std::io::Error),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Template { what: String, message: String },
    #[error(transparent)]
    Certs(#[from] super::certs::CertError),
    #[error("{0}")]
    Compose(String),
}

/// Picks free loopback ports for a run's services.
///
/// Ports come from below the kernel's ephemeral range, so no outgoing
/// connection (a Redis client, the load generator) can be handed the same
/// port between the pick and the service's bind; and each picked port stays
/// bound until the whole plan is allocated, so two services never get the same
/// one (two bind(0) in a row may return the same port once the first is closed).
pub struct PortPicker {
    held: Vec<TcpListener>,
    range: std::ops::Range<u16>,
    rng: fastrand::Rng,
}

impl PortPicker {
    pub fn new() -> Self {
        let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse::<u16>().ok()))
            .unwrap_or(32768);
        // Below the ephemeral range, above the well-known and common service ports.
        let range = if low > 12_000 { 10_000..low } else { 0..0 };
        Self {
            held: Vec::new(),
            range,
            rng: fastrand::Rng::new(),
        }
    }

    pub fn pick(&mut self) -> Result<u16, RenderError> {
        for _ in 0..200 {
            if self.range.is_empty() {
                break;
            }
            let port = self.rng.u16(self.range.clone());
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
                self.held.push(listener);
                return Ok(port);
            }
        }
        // Fall back on the kernel's choice.
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(RenderError::NoPort)?;
        let port = listener.local_addr().map_err(RenderError::NoPort)?.port();
        self.held.push(listener);
        Ok(port)
    }
}

impl Default for PortPicker {
    fn default() -> Self {
        Self::new()
    }
}

fn random_secret(len: usize, rng: &mut fastrand::Rng) -> String {
    (0..len).map(|_| rng.alphanumeric()).collect()
}

fn render_str(env: &Environment, template: &str, ctx: &RenderContext, what: &str) -> Result<String, RenderError> {
    env.render_str(template, ctx).map_err(|e| RenderError::Template {
        what: what.to_string(),
        message: describe_template_error(&e),
    })
}

fn describe_template_error(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

fn strict_env() -> Environment<'static> {
    let mut env = Environment::new();
    // A typo in a template must fail the run before anything starts, not render as "".
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env
}

impl StackPlan {
    /// Allocate ports and secrets, render every template into `run_dir`.
    pub fn render(manifest: &Manifest, run_dir: &Path, secret_seed: u64) -> Result<StackPlan, RenderError> {
        Self::render_for(manifest, run_dir, secret_seed, Placement::LocalProcesses)
    }

    /// As `render`, for services placed as `placement` says.
    pub fn render_for(manifest: &Manifest, run_dir: &Path, secret_seed: u64, placement: Placement) -> Result<StackPlan, RenderError> {
        // Services run in their own directories: every path they get must be absolute.
        // Canonical, too: a path with `..` in it names no folder inside a
        // container, where the folders it passes through are not mounted.
        let _ = std::fs::create_dir_all(run_dir);
        let run_dir = &canonical(run_dir);
        let mut ports = BTreeMap::new();
        let mut picker = PortPicker::new();
        for s in &manifest.services {
            let mut named = BTreeMap::new();
            for p in &s.ports {
                named.insert(p.clone(), picker.pick()?);
            }
            ports.insert(s.name.clone(), named);
        }
        let webhook_port = picker.pick()?;
        // Released here, just before the services are started.
        drop(picker);
        // Secrets come from their own generator: the scenario seed must not make them guessable.
        let mut rng = fastrand::Rng::with_seed(secret_seed);
        let secrets = manifest
            .secrets
            .iter()
            .map(|(name, len)| (name.clone(), random_secret(*len, &mut rng)))
            .collect();
        let mut settings = BTreeMap::new();
        for s in &manifest.services {
            if let Some(reload) = s.config.as_ref().and_then(|c| c.reload.as_ref()) {
                settings.insert(reload.setting.clone(), reload.initial.clone());
            }
        }
        let base_path = std::env::var("PATH").unwrap_or_default();
        let stack_path: Vec<PathBuf> = manifest.stack.path.iter().map(|p| canonical(&manifest.dir.join(p))).collect();
        let mut path_dirs: Vec<String> = stack_path.iter().map(|p| p.display().to_string()).collect();
        path_dirs.push(base_path);
        let (hosts, listen) = match placement {
            Placement::LocalProcesses => (
                manifest
                    .services
                    .iter()
                    .map(|s| (s.name.clone(), "127.0.0.1".to_string()))
                    .collect(),
                "127.0.0.1".to_string(),
            ),
            Placement::Containers => (
                manifest.services.iter().map(|s| (s.name.clone(), s.name.clone())).collect(),
                "0.0.0.0".to_string(),
            ),
        };
        let harness_host = match placement {
            Placement::LocalProcesses => "127.0.0.1",
            Placement::Containers => HARNESS_HOST,
        };
        let manifest_dir = std::fs::canonicalize(&manifest.dir).unwrap_or_else(|_| manifest.dir.clone());
        // Certificates exist before any template that names them is rendered.
        let certs = match &manifest.tls {
            Some(tls) => Some(super::certs::CertSet::generate(run_dir, &tls.host)?),
            None => None,
        };
        let mut plan = StackPlan {
            run_dir: run_dir.to_path_buf(),
            services: Vec::new(),
            path_var: path_dirs.join(":"),
            path_dirs: stack_path,
            manifest_dir: manifest_dir.clone(),
            placement,
            webhook_port,
            context: RenderContext {
                private_secrets: placement == Placement::LocalProcesses,
                harness: HarnessContext {
                    webhook: format!("http://{harness_host}:{webhook_port}/alerts"),
                },
                hosts,
                listen,
                certs: certs.as_ref().map(|c| c.paths.clone()).unwrap_or_default(),
                ports,
                secrets,
                run_dir: run_dir.display().to_string(),
                // Absolute: commands run in the service's own directory.
                manifest_dir: manifest_dir.display().to_string(),
                service_dir: String::new(),
                settings,
            },
            certs,
        };
        if let Some(compose) = &manifest.stack.compose
            && placement == Placement::LocalProcesses
        {
            return Err(RenderError::Compose(format!(
                "the stack's services come from {} (`[stack] compose`): run it with `--backend docker`",
                compose.display()
            )));
        }
        for s in &manifest.services {
            let dir = run_dir.join(&s.name);
            let ctx = plan.context_for(&dir);
            let service = plan.build_service(manifest, s, &s.name, &ctx, None, &BTreeMap::new())?;
            plan.services.push(service);
        }
        Ok(plan)
    }

    /// One service's plan: its command, environment and files rendered with
    /// `ctx`, in `ctx.service_dir`. A mid-run instance passes its own name and
    /// a context where the template's ports and host are the instance's.
    fn build_service(
        &self,
        manifest: &Manifest,
        s: &crate::manifest::Service,
        name: &str,
        ctx: &RenderContext,
        command: Option<&[String]>,
        extra_env: &BTreeMap<String, String>,
    ) -> Result<ServicePlan, RenderError> {
        let env = strict_env();
        let dir = PathBuf::from(&ctx.service_dir);
        std::fs::create_dir_all(&dir).map_err(|source| RenderError::Io { path: dir.clone(), source })?;
        let what = |field: &str| format!("services.{}.{field}", s.name);
        let argv = match command {
            Some(argv) => argv.to_vec(),
            None => s
                .command
                .iter()
                .map(|a| render_str(&env, a, ctx, &what("command")))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let mut rendered_env = BTreeMap::new();
        for (k, v) in &s.env {
            rendered_env.insert(k.clone(), render_str(&env, v, ctx, &what(&format!("env.{k}")))?);
        }
        rendered_env.extend(extra_env.clone());
        for (dest, template) in &s.files {
            render_file_in(ctx, template, &dir.join(dest), &BTreeMap::new())?;
        }
        if let Some(reload) = s.config.as_ref().and_then(|c| c.reload.as_ref()) {
            render_file_in(ctx, &manifest.dir.join(&reload.template), &dir.join(&reload.file), &BTreeMap::new())?;
        }
        let ports = ctx.ports[&s.name].clone();
        let mut container_ports = ports.clone();
        let mut mounts = Vec::new();
        if let Some(c) = &s.compose {
            for (i, port_name) in s.ports.iter().enumerate() {
                let Some(target) = c.ports.get(i) else {
                    return Err(RenderError::Compose(format!(
                        "services.{}.ports: `{port_name}` is port {} of the service, but its compose service lists {} port(s) \
                         (`ports:`/`expose:`); the manifest names them in that order",
                        s.name,
                        i + 1,
                        c.ports.len()
                    )));
                };
                container_ports.insert(port_name.clone(), *target);
            }
            for (k, v) in &c.environment {
                rendered_env.entry(k.clone()).or_insert_with(|| v.clone());
            }
            mounts = compose_mounts(name, c, &dir)?;
        }
        Ok(ServicePlan {
            name: name.to_string(),
            role: s.role,
            argv,
            env: rendered_env,
            log: dir.join("service.log"),
            dir,
            ports,
            ready: s.ready.clone(),
            container_ports,
            compose: s.compose.clone(),
            mounts,
        })
    }

    /// A new instance of manifest service `template`, started mid-run (a
    /// release's instance): ports picked now, files rendered into its own
    /// folder, where `{{ ports.<template> }}` and `{{ hosts.<template> }}`
    /// name the instance's own.
    pub fn render_instance(
        &self,
        manifest: &Manifest,
        template: &str,
        name: &str,
        command: Option<&[String]>,
        extra_env: &BTreeMap<String, String>,
    ) -> Result<ServicePlan, RenderError> {
        let Some(s) = manifest.services.iter().find(|s| s.name == template) else {
            return Err(RenderError::Template {
                what: format!("instance {name}"),
                message: format!("the manifest has no service `{template}` to start an instance of"),
            });
        };
        let taken: std::collections::BTreeSet<u16> = self.context.ports.values().flat_map(|p| p.values().copied()).collect();
        let mut picker = PortPicker::new();
        let mut ports = BTreeMap::new();
        for p in &s.ports {
            let mut port = picker.pick()?;
            while taken.contains(&port) {
                port = picker.pick()?;
            }
            ports.insert(p.clone(), port);
        }
        drop(picker);
        let mut ctx = self.context_for(&self.run_dir.join(name));
        ctx.ports.insert(template.to_string(), ports.clone());
        ctx.ports.insert(name.to_string(), ports);
        let host = match self.placement {
            Placement::LocalProcesses => "127.0.0.1".to_string(),
            Placement::Containers => name.to_string(),
        };
        ctx.hosts.insert(template.to_string(), host.clone());
        ctx.hosts.insert(name.to_string(), host);
        self.build_service(manifest, s, name, &ctx, command, extra_env)
    }

    /// What other services reach a service at (`{{ hosts.<name> }}`).
    pub fn host_of(&self, name: &str) -> String {
        match self.placement {
            Placement::LocalProcesses => "127.0.0.1".to_string(),
            Placement::Containers => name.to_string(),
        }
    }

    /// Render a value with the run's context and extra variables (a deploy
    /// command's `{{ version }}`), with `service_dir` set to `dir`.
    pub fn render_with(&self, dir: &Path, value: &str, extra: &BTreeMap<String, String>, what: &str) -> Result<String, RenderError> {
        let ctx = self.context_for(dir);
        let mut value_ctx = serde_json::to_value(&ctx).unwrap_or_default();
        if let Some(map) = value_ctx.as_object_mut() {
            for (k, v) in extra {
                map.insert(k.clone(), serde_json::Value::String(v.clone()));
            }
        }
        strict_env().render_str(value, value_ctx).map_err(|e| RenderError::Template {
            what: what.to_string(),
            message: describe_template_error(&e),
        })
    }

    fn context_for(&self, service_dir: &Path) -> RenderContext {
        let mut ctx = self.context.clone();
        ctx.service_dir = service_dir.display().to_string();
        ctx
    }

    /// Render one template for a service, with some settings overridden
    /// (a reload fault writes a new value this way).
    pub fn render_file(
        &self,
        service: &str,
        template: &Path,
        dest: &Path,
        setting_overrides: &BTreeMap<String, String>,
    ) -> Result<(), RenderError> {
        let ctx = self.context_for(&self.run_dir.join(service));
        render_file_in(&ctx, template, dest, setting_overrides)
    }

    pub fn service(&self, name: &str) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn secret(&self, name: &str) -> Option<&str> {
        self.context.secrets.get(name).map(String::as_str)
    }

    /// Render a manifest value (a Redis password, say) with this run's context.
    pub fn render_value(&self, service: &str, value: &str) -> Result<String, RenderError> {
        let ctx = self.context_for(&self.run_dir.join(service));
        render_str(&strict_env(), value, &ctx, value)
    }
}

fn render_file_in(
    ctx: &RenderContext,
    template: &Path,
    dest: &Path,
    setting_overrides: &BTreeMap<String, String>,
) -> Result<(), RenderError> {
    let source = std::fs::read_to_string(template).map_err(|source| RenderError::Io {
        path: template.to_path_buf(),
        source,
    })?;
    let mut ctx = ctx.clone();
    ctx.settings.extend(setting_overrides.clone());
    let text = render_str(&strict_env(), &source, &ctx, &template.display().to_string())?;
    let io = |source| RenderError::Io {
        path: dest.to_path_buf(),
        source,
    };
    std::fs::write(dest, &text).map_err(io)?;
    if ctx.private_secrets && ctx.secrets.values().any(|s| !s.is_empty() && text.contains(s.as_str())) {
        make_private(dest).map_err(io)?;
    }
    Ok(())
}

/// A compose service's bind mounts: a single file is copied into the
/// service folder (`mounts/`) and mounted from there; a folder is mounted
/// as it is. Named volumes are the backend's (one per run).
fn compose_mounts(service: &str, c: &super::compose::ComposeService, dir: &Path) -> Result<Vec<(PathBuf, String, bool)>, RenderError> {
    use super::compose::VolumeSource;
    let copies = dir.join("mounts");
    let mut mounts = Vec::new();
    for (i, v) in c.volumes.iter().enumerate() {
        let VolumeSource::Bind(source) = &v.source else {
            continue;
        };
        let source = canonical(source);
        if source.is_file() {
            std::fs::create_dir_all(&copies).map_err(|e| RenderError::Io {
                path: copies.clone(),
                source: e,
            })?;
            let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let copy = copies.join(format!("{i}-{name}"));
            std::fs::copy(&source, &copy).map_err(|e| RenderError::Io {
                path: copy.clone(),
                source: e,
            })?;
            mounts.push((copy, v.target.clone(), v.read_only));
        } else if source.is_dir() {
            mounts.push((source, v.target.clone(), v.read_only));
        } else {
            return Err(RenderError::Compose(format!(
                "service `{service}`: volume source {} does not exist",
                source.display()
            )));
        }
    }
    Ok(mounts)
}

/// Absolute, and without `..` or symlinks where the folder exists.
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| absolute(p))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod port_tests {
    use super::PortPicker;
    use std::collections::HashSet;

    #[test]
    fn picked_ports_are_distinct_and_below_the_ephemeral_range() {
        let mut picker = PortPicker::new();
        let ports: Vec<u16> = (0..50).map(|_| picker.pick().expect("a port")).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        if !picker.range.is_empty() {
            assert!(
                ports.iter().all(|p| picker.range.contains(p)),
                "{ports:?} outside {:?}",
                picker.range
            );
        }
    }
}

#[cfg(test)]
mod privacy_tests {
    use super::{Placement, StackPlan};
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).expect("rendered").permissions().mode() & 0o777
    }

    /// The reference's redis.conf holds the Redis password; its Prometheus
    /// configuration holds none; nginx's keys are private whatever the placement.
    #[test]
    fn files_holding_a_secret_and_keys_are_readable_by_their_owner_only() {
        let manifest = crate::manifest::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/stacks/reference"
        )))
        .expect("reference manifest");
        let dir = std::env::temp_dir().join(format!("chaosgate-privacy-{}", std::process::id()));
        let plan = StackPlan::render_for(&manifest, &dir, 1, Placement::LocalProcesses).expect("rendered");
        let redis_conf = plan.run_dir.join("redis/redis.conf");
        assert!(std::fs::read_to_string(&redis_conf).expect("redis.conf").contains("requirepass "));
        assert_eq!(mode(&redis_conf), 0o600);
        assert_ne!(
            mode(&plan.run_dir.join("prometheus/rules.yml")) & 0o044,
            0,
            "no secret there: left readable"
        );
        assert_eq!(mode(&plan.run_dir.join("certs/valid.key")), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
