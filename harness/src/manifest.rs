//! The stack manifest (`stack.toml`): what the stack under test is and how to
//! run and reach it. Parsed raw with serde (unknown fields are errors), then
//! checked for references that serde cannot see (depends_on, ports, roles).
//!
//! A mutant manifest is an overlay: `extends = "../reference/stack.toml"`
//! plus the env vars or templates it changes.

use crate::input_error::{InputError, InputErrors};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A validated stack manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file the user named (the overlay, for a mutant).
    pub file: PathBuf,
    /// Directory templates and relative paths are resolved against.
    pub dir: PathBuf,
    pub stack: StackSection,
    pub build: Vec<BuildStep>,
    /// Secret name -> length of the random value generated per run.
    pub secrets: BTreeMap<String, usize>,
    /// Services in start order (dependencies first).
    pub services: Vec<Service>,
    pub mutant: Option<MutantSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackSection {
    pub name: String,
    /// Response header that carries the served version.
    #[serde(default)]
    pub version_header: Option<String>,
    /// How long a service may take to exit after SIGTERM (the standard's reading: 30 s).
    #[serde(default = "default_grace")]
    pub grace_period_s: f64,
    /// Directories, relative to the manifest, put in front of PATH for the stack's commands.
    #[serde(default)]
    pub path: Vec<String>,
    /// How long the whole stack may take to become ready.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_s: f64,
}

fn default_grace() -> f64 {
    30.0
}
fn default_ready_timeout() -> f64 {
    20.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildStep {
    pub command: Vec<String>,
    /// Working directory, relative to the manifest.
    #[serde(default)]
    pub workdir: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutantSection {
    pub name: String,
    /// Requirement IDs this mutant breaks on purpose.
    pub breaks: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// A service of the stack.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub role: Role,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Named ports allocated on loopback at run time.
    pub ports: Vec<String>,
    /// Rendered file name (in the service dir) -> template path (absolute).
    pub files: BTreeMap<String, PathBuf>,
    pub depends_on: Vec<String>,
    pub ready: ReadyCheck,
    pub health: Option<HealthPaths>,
    pub redis: Option<RedisAccess>,
    pub config: Option<ConfigDecl>,
    /// Command a user runs to get the service's binary, shown by `doctor`.
    pub install: Option<String>,
}

/// What a service does in the stack; scenarios address services by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Where the load goes (nginx).
    Entry,
    /// The application.
    App,
    Redis,
    Worker,
    Monitoring,
    Other,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Entry => "entry",
            Role::App => "app",
            Role::Redis => "redis",
            Role::Worker => "worker",
            Role::Monitoring => "monitoring",
            Role::Other => "other",
        }
    }
}

/// How the harness knows a service is ready.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, untagged)]
pub enum ReadyCheck {
    /// An HTTP GET on the named port answers 2xx.
    Http { http: String, port: String },
    /// A TCP connection to the named port succeeds.
    Tcp { tcp: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthPaths {
    pub port: String,
    pub ready: Option<String>,
    pub live: Option<String>,
    pub aggregate: Option<String>,
}

/// How the harness talks to a Redis service (for CLIENT LIST and INFO).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisAccess {
    pub port: String,
    #[serde(default)]
    pub password: Option<String>,
}

/// Configuration facts a service declares, used by the CF-* checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDecl {
    /// Variables without which the service must refuse to start.
    #[serde(default)]
    pub required_env: Vec<String>,
    /// Variable -> a malformed value the service must reject at startup.
    #[serde(default)]
    pub malformed_env: BTreeMap<String, String>,
    /// A variable whose effect the harness can observe from outside.
    #[serde(default)]
    pub env_observable: Option<EnvObservable>,
    /// A reloadable setting, and how it is reloaded.
    #[serde(default)]
    pub reload: Option<ReloadDecl>,
    /// How long a bad configuration may take to stop the process.
    #[serde(default = "default_validate_deadline")]
    pub validate_deadline_s: f64,
}

fn default_validate_deadline() -> f64 {
    5.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvObservable {
    pub variable: String,
    /// Only "version-header" for now: the value shows in the stack's version header.
    pub via: ObservedVia,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObservedVia {
    VersionHeader,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadDecl {
    /// File in the service dir holding the setting; rendered from `template`.
    pub file: String,
    pub template: String,
    /// Template variable (under `settings.`) that holds the reloadable value.
    pub setting: String,
    /// The value used at start.
    pub initial: String,
    /// Signal that makes the service re-read the file ("HUP").
    pub signal: String,
    /// GET path on the health port whose body shows the value in effect.
    pub probe: String,
}

// ---- raw layer -------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    stack: StackSection,
    #[serde(default)]
    build: Vec<BuildStep>,
    #[serde(default)]
    secrets: BTreeMap<String, usize>,
    services: BTreeMap<String, Spanned<RawService>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    role: Role,
    command: Spanned<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    ready: Spanned<ReadyCheck>,
    #[serde(default)]
    health: Option<Spanned<HealthPaths>>,
    #[serde(default)]
    redis: Option<Spanned<RedisAccess>>,
    #[serde(default)]
    config: Option<ConfigDecl>,
    #[serde(default)]
    install: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlay {
    extends: Spanned<String>,
    mutant: MutantSection,
    #[serde(default)]
    services: BTreeMap<String, Spanned<RawServiceOverlay>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceOverlay {
    /// Variables added or replaced.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Templates replaced, relative to the overlay file.
    #[serde(default)]
    files: BTreeMap<String, String>,
}

/// Read and validate a manifest. `path` may be a file or a directory holding `stack.toml`.
pub fn load(path: &Path) -> Result<Manifest, InputErrors> {
    let file = if path.is_dir() { path.join("stack.toml") } else { path.to_path_buf() };
    let source = std::fs::read_to_string(&file)
        .map_err(|e| InputError::whole_file(&file, format!("cannot read the stack manifest: {e}")))?;
    let table: toml::Table =
        toml::from_str(&source).map_err(|e| InputError::from_toml(&file, &source, &e))?;
    if table.contains_key("extends") {
        load_overlay(&file, &source)
    } else {
        load_base(&file, &source)
    }
}

fn load_overlay(file: &Path, source: &str) -> Result<Manifest, InputErrors> {
    let raw: RawOverlay = toml::from_str(source).map_err(|e| InputError::from_toml(file, source, &e))?;
    let dir = parent_dir(file);
    let base_path = dir.join(raw.extends.get_ref());
    if !base_path.is_file() {
        return Err(InputError::at(
            file,
            source,
            Some(raw.extends.span()),
            "extends",
            format!("expected the path of a base stack.toml, relative to this file; {} does not exist", base_path.display()),
        )
        .into());
    }
    let mut base = load(&base_path)?;
    if base.mutant.is_some() {
        return Err(InputError::at(file, source, Some(raw.extends.span()), "extends", "an overlay must extend a base manifest, not another overlay").into());
    }
    let mut errors = Vec::new();
    for (name, overlay) in &raw.services {
        let Some(service) = base.services.iter_mut().find(|s| &s.name == name) else {
            errors.push(InputError::at(
                file,
                source,
                Some(overlay.span()),
                &format!("services.{name}"),
                format!("the base manifest has no service named `{name}` (it has: {})", base_names(&base)),
            ));
            continue;
        };
        let overlay = overlay.get_ref();
        service.env.extend(overlay.env.clone());
        for (dest, template) in &overlay.files {
            service.files.insert(dest.clone(), dir.join(template));
        }
    }
    for id in &raw.mutant.breaks {
        if !crate::requirements::is_known(id) {
            errors.push(InputError::at(file, source, None, "mutant.breaks", format!("unknown requirement ID `{id}`; see `chaosgate list --requirements`")));
        }
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }
    base.file = file.to_path_buf();
    base.mutant = Some(raw.mutant);
    Ok(base)
}

fn base_names(m: &Manifest) -> String {
    m.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn load_base(file: &Path, source: &str) -> Result<Manifest, InputErrors> {
    let raw: RawManifest = toml::from_str(source).map_err(|e| InputError::from_toml(file, source, &e))?;
    let dir = parent_dir(file);
    let mut errors = Vec::new();
    let err = |span: std::ops::Range<usize>, field: String, msg: String| InputError::at(file, source, Some(span), &field, msg);

    if raw.stack.grace_period_s <= 0.0 {
        errors.push(InputError::at(file, source, None, "stack.grace_period_s", "expected a positive number of seconds"));
    }
    let names: Vec<&String> = raw.services.keys().collect();
    for (name, svc) in &raw.services {
        let s = svc.get_ref();
        if s.command.get_ref().is_empty() {
            errors.push(err(s.command.span(), format!("services.{name}.command"), "expected a non-empty array: program and arguments".into()));
        }
        for dep in &s.depends_on {
            if !raw.services.contains_key(dep.get_ref()) {
                errors.push(err(dep.span(), format!("services.{name}.depends_on"), format!("no service named `{}` (services: {})", dep.get_ref(), join(&names))));
            }
        }
        let port_known = |p: &str| s.ports.iter().any(|x| x == p);
        let ready_port = match s.ready.get_ref() {
            ReadyCheck::Http { port, .. } => port,
            ReadyCheck::Tcp { tcp } => tcp,
        };
        if !port_known(ready_port) {
            errors.push(err(s.ready.span(), format!("services.{name}.ready"), format!("port `{ready_port}` is not in this service's `ports` ({})", s.ports.join(", "))));
        }
        if let Some(h) = &s.health {
            if !port_known(&h.get_ref().port) {
                errors.push(err(h.span(), format!("services.{name}.health.port"), format!("port `{}` is not in this service's `ports`", h.get_ref().port)));
            }
        }
        if let Some(r) = &s.redis {
            if !port_known(&r.get_ref().port) {
                errors.push(err(r.span(), format!("services.{name}.redis.port"), format!("port `{}` is not in this service's `ports`", r.get_ref().port)));
            }
        }
        for (dest, template) in &s.files {
            if !dir.join(template).is_file() {
                errors.push(err(svc.span(), format!("services.{name}.files.{dest}"), format!("template `{template}` not found next to the manifest")));
            }
        }
        if let Some(reload) = s.config.as_ref().and_then(|c| c.reload.as_ref()) {
            if !dir.join(&reload.template).is_file() {
                errors.push(err(svc.span(), format!("services.{name}.config.reload.template"), format!("template `{}` not found next to the manifest", reload.template)));
            }
            if nix::sys::signal::Signal::from_str_lenient(&reload.signal).is_none() {
                errors.push(err(svc.span(), format!("services.{name}.config.reload.signal"), format!("expected a signal name such as \"HUP\", got `{}`", reload.signal)));
            }
        }
    }
    let order = match start_order(&raw.services) {
        Ok(order) => order,
        Err(cycle) => {
            errors.push(InputError::at(file, source, None, "depends_on", format!("dependency cycle among services: {cycle}")));
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }
    let services = order
        .into_iter()
        .map(|name| {
            let s = raw.services[&name].get_ref();
            Service {
                name: name.clone(),
                role: s.role,
                command: s.command.get_ref().clone(),
                env: s.env.clone(),
                ports: s.ports.clone(),
                files: s.files.iter().map(|(d, t)| (d.clone(), dir.join(t))).collect(),
                depends_on: s.depends_on.iter().map(|d| d.get_ref().clone()).collect(),
                ready: s.ready.get_ref().clone(),
                health: s.health.as_ref().map(|h| h.get_ref().clone()),
                redis: s.redis.as_ref().map(|r| r.get_ref().clone()),
                config: s.config.clone(),
                install: s.install.clone(),
            }
        })
        .collect();
    Ok(Manifest {
        file: file.to_path_buf(),
        dir,
        stack: raw.stack,
        build: raw.build,
        secrets: raw.secrets,
        services,
        mutant: None,
    })
}

fn join(names: &[&String]) -> String {
    names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// Topological order of services; an error names a cycle.
fn start_order(services: &BTreeMap<String, Spanned<RawService>>) -> Result<Vec<String>, String> {
    let mut order: Vec<String> = Vec::new();
    let mut remaining: Vec<&String> = services.keys().collect();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|name| {
            let deps = &services[*name].get_ref().depends_on;
            let ready = deps.iter().all(|d| order.contains(d.get_ref()) || !services.contains_key(d.get_ref()));
            if ready {
                order.push((*name).clone());
            }
            !ready
        });
        if remaining.len() == before {
            return Err(remaining.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" -> "));
        }
    }
    Ok(order)
}

/// Small extension so signal names read naturally in manifests ("HUP" or "SIGHUP").
pub trait SignalName {
    fn from_str_lenient(name: &str) -> Option<nix::sys::signal::Signal>;
}

impl SignalName for nix::sys::signal::Signal {
    fn from_str_lenient(name: &str) -> Option<nix::sys::signal::Signal> {
        let upper = name.trim().to_ascii_uppercase();
        let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
        full.parse().ok()
    }
}

impl Manifest {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// A service by name, or the first with that role.
    pub fn resolve(&self, target: &str) -> Option<&Service> {
        self.service(target)
            .or_else(|| self.services.iter().find(|s| s.role.as_str() == target))
    }

    pub fn grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.stack.grace_period_s)
    }

    pub fn display_name(&self) -> String {
        match &self.mutant {
            Some(m) => format!("{} (mutant {})", self.stack.name, m.name),
            None => self.stack.name.clone(),
        }
    }
}
