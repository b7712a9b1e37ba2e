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
    for svc in &manifest.services {
        // A program under the manifest (a virtualenv, say) is looked up where it will be.
        let manifest_dir = std::fs::canonicalize(&manifest.dir).unwrap_or_else(|_| manifest.dir.clone());
        let program = &svc.command[0].replace("{{ manifest_dir }}", &manifest_dir.display().to_string());
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
    let state = crate::stack::reaper::markers_dir();
    let state_ok = std::fs::create_dir_all(&state).is_ok();
    findings.push(Finding {
        what: format!("state directory {}", state.display()),
        ok: state_ok,
        detail: if state_ok { "writable".into() } else { "cannot create".into() },
        fix: Some("export CHAOSGATE_STATE_DIR=/some/writable/dir".into()),
    });
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
