//! A docker-compose file as the source of a stack's services
//! (`[stack] compose = "docker-compose.test.yml"`): image, entrypoint and
//! command, environment, container ports, volumes, depends_on and stop
//! signal come from the file, parsed with docker-compose-types; the manifest
//! adds only what the harness must know (roles, readiness, endpoints), by
//! compose service name. Such a stack runs on `--backend docker`.

use docker_compose_types as dc;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One compose service, as the Docker backend needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComposeService {
    pub image: Option<String>,
    /// `entrypoint:`; None keeps the image's.
    pub entrypoint: Option<Vec<String>>,
    /// `command:`; None keeps the image's.
    pub command: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    /// Container ports in the order the file lists them (`ports:`, then `expose:`).
    pub ports: Vec<u16>,
    pub volumes: Vec<ComposeVolume>,
    pub depends_on: Vec<String>,
    pub stop_signal: Option<String>,
    pub working_dir: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VolumeSource {
    /// A host path, absolute (resolved against the compose file's folder).
    Bind(PathBuf),
    /// A named volume of the file (one per run on the engine).
    Named(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComposeVolume {
    pub source: VolumeSource,
    pub target: String,
    pub read_only: bool,
}

/// The services of a compose file, by name.
#[derive(Debug, Clone, Default)]
pub struct ComposeFile {
    pub path: PathBuf,
    pub services: BTreeMap<String, ComposeService>,
}

impl ComposeFile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, String> {
        let compose: dc::Compose = serde_yaml::from_str(text).map_err(|e| match e.location() {
            Some(at) => format!("{}:{}:{}: {e}", path.display(), at.line(), at.column()),
            None => format!("{}: {e}", path.display()),
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut services = BTreeMap::new();
        for (name, svc) in compose.services.0 {
            let svc = svc.unwrap_or_default();
            services.insert(name.clone(), convert(&name, &svc, &dir)?);
        }
        Ok(Self {
            path: path.to_path_buf(),
            services,
        })
    }

    pub fn names(&self) -> Vec<&str> {
        self.services.keys().map(String::as_str).collect()
    }
}

fn convert(name: &str, svc: &dc::Service, dir: &Path) -> Result<ComposeService, String> {
    let words = |s: &str, field: &str| shlex::split(s).ok_or_else(|| format!("service `{name}`: `{field}` has unbalanced quotes: {s}"));
    let entrypoint = match &svc.entrypoint {
        Some(dc::Entrypoint::List(v)) => Some(v.clone()),
        Some(dc::Entrypoint::Simple(s)) => Some(words(s, "entrypoint")?),
        None => None,
    };
    let command = match &svc.command {
        Some(dc::Command::Args(v)) => Some(v.clone()),
        Some(dc::Command::Simple(s)) => Some(words(s, "command")?),
        None => None,
    };
    let mut environment = BTreeMap::new();
    match &svc.environment {
        dc::Environment::List(items) => {
            for item in items {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                environment.insert(k.to_string(), v.to_string());
            }
        }
        dc::Environment::KvPair(map) => {
            for (k, v) in map {
                environment.insert(k.clone(), v.as_ref().map(single_value).unwrap_or_default());
            }
        }
    }
    let mut ports = Vec::new();
    match &svc.ports {
        dc::Ports::Short(items) => {
            for item in items {
                ports.push(container_port(item).ok_or_else(|| format!("service `{name}`: cannot read port `{item}`"))?);
            }
        }
        dc::Ports::Long(items) => ports.extend(items.iter().map(|p| p.target)),
    }
    for item in &svc.expose {
        ports.push(container_port(item).ok_or_else(|| format!("service `{name}`: cannot read expose `{item}`"))?);
    }
    let mut volumes = Vec::new();
    for v in &svc.volumes {
        volumes.push(volume(name, v, dir)?);
    }
    let depends_on = match &svc.depends_on {
        dc::DependsOnOptions::Simple(v) => v.clone(),
        dc::DependsOnOptions::Conditional(m) => m.keys().cloned().collect(),
    };
    Ok(ComposeService {
        image: svc.image.clone(),
        entrypoint,
        command,
        environment,
        ports,
        volumes,
        depends_on,
        stop_signal: svc.stop_signal.clone(),
        working_dir: svc.working_dir.clone(),
    })
}

fn single_value(v: &dc::SingleValue) -> String {
    match v {
        dc::SingleValue::String(s) => s.clone(),
        dc::SingleValue::Bool(b) => b.to_string(),
        dc::SingleValue::Unsigned(n) => n.to_string(),
        dc::SingleValue::Signed(n) => n.to_string(),
        dc::SingleValue::Float(f) => f.to_string(),
    }
}

/// The container side of `[ip:][host:]container[/proto]`.
fn container_port(item: &str) -> Option<u16> {
    let last = item.rsplit(':').next()?;
    last.split('/').next()?.parse().ok()
}

fn volume(name: &str, v: &dc::Volumes, dir: &Path) -> Result<ComposeVolume, String> {
    let (source, target, read_only) = match v {
        dc::Volumes::Simple(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            match parts.as_slice() {
                [src, target] => (src.to_string(), target.to_string(), false),
                [src, target, mode] => (src.to_string(), target.to_string(), mode.split(',').any(|m| m == "ro")),
                _ => return Err(format!("service `{name}`: volume `{s}`: expected SOURCE:TARGET[:MODE]")),
            }
        }
        dc::Volumes::Advanced(a) => (a.source.clone().unwrap_or_default(), a.target.clone(), a.read_only),
    };
    let is_path = source.starts_with('.') || source.starts_with('/') || source.starts_with('~');
    let source = if is_path {
        VolumeSource::Bind(dir.join(&source))
    } else if source.is_empty() {
        return Err(format!(
            "service `{name}`: volume for `{target}` has no source (anonymous volumes are not supported)"
        ));
    } else {
        VolumeSource::Named(source)
    };
    Ok(ComposeVolume { source, target, read_only })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parts_the_backend_needs() {
        let text = r#"
services:
  redis:
    image: redis:7
    command: redis-server /etc/redis.conf --appendonly "yes"
    ports: ["127.0.0.1:6380:6379"]
    volumes: ["./redis.conf:/etc/redis.conf:ro", "data:/data"]
  app:
    image: my/app
    environment:
      REDIS_URL: redis://redis:6379/0
      WORKERS: 4
    expose: ["8000"]
    depends_on:
      redis: { condition: service_healthy }
    stop_signal: SIGQUIT
volumes:
  data:
"#;
        let f = ComposeFile::parse(Path::new("/stack/docker-compose.yml"), text).expect("parses");
        let redis = &f.services["redis"];
        assert_eq!(
            redis.command.as_deref(),
            Some(
                &[
                    "redis-server".to_string(),
                    "/etc/redis.conf".into(),
                    "--appendonly".into(),
                    "yes".into()
                ][..]
            )
        );
        assert_eq!(redis.ports, vec![6379]);
        assert_eq!(redis.volumes[0].source, VolumeSource::Bind(PathBuf::from("/stack/./redis.conf")));
        assert!(redis.volumes[0].read_only);
        assert_eq!(redis.volumes[1].source, VolumeSource::Named("data".into()));
        let app = &f.services["app"];
        assert_eq!(app.environment["WORKERS"], "4");
        assert_eq!(app.ports, vec![8000]);
        assert_eq!(app.depends_on, vec!["redis".to_string()]);
        assert_eq!(app.stop_signal.as_deref(), Some("SIGQUIT"));
    }

    #[test]
    fn a_syntax_error_names_file_and_line() {
        let e = ComposeFile::parse(Path::new("c.yml"), "services:\n  a:\n    ports: [\n").unwrap_err();
        assert!(e.starts_with("c.yml:"), "{e}");
    }
}
