//! `chaosgate doctor`: every prerequisite of a stack, with the exact fix.

use crate::manifest::Manifest;
use crate::stack::process::find_on_path;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: String,
    pub ok: bool,
    pub detail: String,
    /// The command that fixes it.
    pub fix: Option<String>,
}

fn stack_path(manifest: &Manifest) -> String {
    let mut dirs: Vec<String> = manifest
        .stack
        .path
        .iter()
        .map(|p| {
            std::path::absolute(manifest.dir.join(p))
                .unwrap_or_else(|_| manifest.dir.join(p))
                .display()
                .to_string()
        })
        .collect();
    dirs.push(std::env::var("PATH").unwrap_or_default());
    dirs.join(":")
}

pub fn diagnose(manifest: &Manifest) -> Vec<Finding> {
    let mut findings = Vec::new();
    let path = stack_path(manifest);
    let built = manifest.build.iter().map(|b| b.command.join(" ")).collect::<Vec<_>>();
    if let Some(compose) = &manifest.stack.compose {
        findings.push(Finding {
            what: "backend".into(),
            ok: false,
            detail: format!("the services come from {}: they run in containers only", compose.display()),
            fix: Some(format!("chaosgate doctor --backend docker --stack {}", manifest.dir.display())),
        });
    }
    for svc in &manifest.services {
        // A program under the manifest (a virtualenv, say) is looked up where it will be.
        let manifest_dir = std::fs::canonicalize(&manifest.dir).unwrap_or_else(|_| manifest.dir.clone());
        let Some(first) = svc.command.first() else {
            continue;
        };
        let program = &first.replace("{{ manifest_dir }}", &manifest_dir.display().to_string());
        let found = if program.contains("{{") {
            None
        } else if program.contains('/') {
            Path::new(program).is_file().then(|| program.into())
        } else {
            find_on_path(program, &path)
        };
        let built_by_run = !built.is_empty() && svc.install.as_deref().is_some_and(|i| i.starts_with("cargo build"));
        findings.push(Finding {
            what: format!("service `{}`: program `{program}`", svc.name),
            ok: found.is_some() || built_by_run,
            detail: match (&found, built_by_run) {
                (Some(p), _) => p.display().to_string(),
                (None, true) => "not built yet; `chaosgate run` builds it first".into(),
                (None, false) => "not found on PATH".into(),
            },
            fix: svc.install.clone(),
        });
    }
    let port = std::net::TcpListener::bind(("127.0.0.1", 0));
    findings.push(Finding {
        what: "free ports on 127.0.0.1".into(),
        ok: port.is_ok(),
        detail: match &port {
            Ok(l) => format!("bound {}", l.local_addr().map(|a| a.to_string()).unwrap_or_default()),
            Err(e) => e.to_string(),
        },
        fix: Some("ip link set lo up".into()),
    });
    let proc_ok =
        std::fs::read_to_string("/proc/net/tcp").is_ok() && std::fs::read(format!("/proc/{}/environ", std::process::id())).is_ok();
    findings.push(Finding {
        what: "/proc readable (process and socket observation)".into(),
        ok: proc_ok,
        detail: if proc_ok {
            "ok".into()
        } else {
            "cannot read /proc/net/tcp or /proc/PID/environ".into()
        },
        fix: Some("mount -t proc proc /proc".into()),
    });
    findings.push(state_dir_finding());
    for step in &manifest.build {
        let program = &step.command[0];
        let found = find_on_path(program, &path);
        findings.push(Finding {
            what: format!("build step `{}`", step.command.join(" ")),
            ok: found.is_some(),
            detail: found
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("`{program}` not found")),
            fix: Some(format!("install {program}")),
        });
    }
    findings
}

/// What the Docker backend needs: a `docker` client, an engine that answers,
/// every service's image on that engine (nothing is pulled), the build steps.
pub fn diagnose_docker(manifest: &Manifest) -> Vec<Finding> {
    let mut findings = Vec::new();
    let path = std::env::var("PATH").unwrap_or_default();
    let client = find_on_path("docker", &path);
    findings.push(Finding {
        what: "program `docker` (the client; cleanup after a crash uses it)".into(),
        ok: client.is_some(),
        detail: client
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "not found on PATH".into()),
        fix: Some("apt-get install -y docker.io".into()),
    });
    let engine = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"])
        .output();
    let engine_ok = engine.as_ref().is_ok_and(|o| o.status.success());
    findings.push(Finding {
        what: "Docker engine".into(),
        ok: engine_ok,
        detail: match &engine {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            Ok(o) => String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("no answer").to_string(),
            Err(e) => e.to_string(),
        },
        fix: Some(crate::stack::docker::NO_ENGINE_FIX.into()),
    });
    let mut images: Vec<(String, Vec<String>)> = Vec::new();
    for svc in &manifest.services {
        match &svc.image {
            Some(image) => match images.iter_mut().find(|(i, _)| i == image) {
                Some((_, users)) => users.push(svc.name.clone()),
                None => images.push((image.clone(), vec![svc.name.clone()])),
            },
            None => findings.push(Finding {
                what: format!("service `{}`: image", svc.name),
                ok: false,
                detail: "the manifest names none".into(),
                fix: Some(format!(
                    "add `image = \"...\"` to [services.{}] (or `image` to [stack]) in {}",
                    svc.name,
                    manifest.file.display()
                )),
            }),
        }
    }
    for (image, users) in images {
        let present = engine_ok && crate::images::image_exists(&image);
        let ours = image.starts_with(crate::images::STACK_IMAGE);
        findings.push(Finding {
            what: format!("image `{image}` ({})", users.join(", ")),
            ok: present,
            detail: if present {
                "on the engine".into()
            } else {
                "not on the engine (chaosgate never pulls)".into()
            },
            fix: Some(if ours {
                "sudo chaosgate images build   (or: cargo run -p chaosgate -- images build)".into()
            } else {
                format!("docker pull {image}   (where a registry is reachable), or docker load it")
            }),
        });
    }
    findings.push(state_dir_finding());
    findings
}

/// Where run markers go (what `clean` and the reaper read).
fn state_dir_finding() -> Finding {
    let state = crate::stack::reaper::markers_dir();
    let state_ok = std::fs::create_dir_all(&state).is_ok();
    Finding {
        what: format!("state directory {}", state.display()),
        ok: state_ok,
        detail: if state_ok { "writable".into() } else { "cannot create".into() },
        fix: Some("export CHAOSGATE_STATE_DIR=/some/writable/dir".into()),
    }
}

pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!("{} {}: {}\n", if f.ok { "ok     " } else { "MISSING" }, f.what, f.detail));
        if !f.ok
            && let Some(fix) = &f.fix
        {
            out.push_str(&format!("        fix: {fix}\n"));
        }
    }
    let missing = findings.iter().filter(|f| !f.ok).count();
    if missing == 0 {
        out.push_str("all prerequisites present\n");
    } else {
        out.push_str(&format!("{missing} prerequisite(s) missing\n"));
    }
    out
}
