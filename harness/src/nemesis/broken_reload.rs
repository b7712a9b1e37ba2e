//! A broken configuration followed by a reload: the stack's config test must
//! reject it and the proxy must keep serving with the old configuration.
//! The good file is put back and reloaded after.

use super::Nemesis;
use super::proxy::{http_addr, proxy_service, reload};
use crate::history::{FaultDetail, FaultRecord};
use crate::observe::http::{get, probe_client};
use std::time::Duration;

pub async fn broken_reload(n: &Nemesis<'_>, index: usize, target: &str) -> FaultRecord {
    let label = "broken config + reload".to_string();
    let mut detail = FaultDetail::BrokenReload {
        pid_before: 0,
        pid_after: None,
        test_failed: false,
        test_output: String::new(),
        served_after: 0,
        reloaded_at: None,
    };
    let Some((svc, decl)) = proxy_service(n, target) else {
        return n.not_landed(index, label, target, "no service declares [proxy]".into(), detail);
    };
    let (Some(file), Some(addr)) = (&decl.config_file, http_addr(n, svc)) else {
        return n.lacks(
            index,
            label,
            &svc.name,
            &["NX-RELOAD"],
            "a proxy configuration the harness can change and reload",
            "[services.<proxy>.proxy] config_file, test_config, reload",
            detail,
        );
    };
    let path = match n.plan.service(&svc.name) {
        Some(plan) => plan.host_path(file),
        None => n.plan.run_dir.join(&svc.name).join(file),
    };
    let Ok(good) = std::fs::read(&path) else {
        return n.not_landed(index, label, &svc.name, format!("cannot read {}", path.display()), detail);
    };
    let pid_before = n.backend.pid(&svc.name).unwrap_or(0);
    let injected_at = n.now();
    let mut broken = format!("{BROKEN_DIRECTIVE} on;\n").into_bytes();
    broken.extend_from_slice(&good);
    if let Err(e) = n.backend.put_file(&svc.name, file, &broken).await {
        return n.not_landed(index, label, &svc.name, format!("cannot write {}: {e}", path.display()), detail);
    }
    let (test_failed, test_output) = match render_argv(n, &svc.name, &decl.test_config) {
        Some(argv) if !argv.is_empty() => match n.backend.exec(&svc.name, &argv).await {
            Ok(out) => (
                !out.status.success(),
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
                    .trim()
                    .to_string(),
            ),
            Err(e) => (false, format!("config test could not run: {e}")),
        },
        _ => (false, "the proxy declares no test_config".to_string()),
    };
    let log = n.backend.log_path(&svc.name);
    let log_before = log.as_ref().and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len());
    let reloaded = reload(n, svc, decl).await;
    let reloaded_at = n.now();
    // The proxy has acted on the reload once its log names the broken directive.
    let rejection_logged = match &log {
        Some(path) => wait_for_log(path, log_before, BROKEN_DIRECTIVE, Duration::from_secs(3)).await,
        None => None,
    };
    let client = probe_client(Duration::from_secs(2));
    let ready_path = svc.ready.http_path().unwrap_or("/").to_string();
    let mut served_after = 0;
    for _ in 0..10 {
        if (200..300).contains(&get(&client, addr, &ready_path, None).await.status) {
            served_after += 1;
        }
    }
    let pid_after = n.backend.pid(&svc.name);
    // Put the good file back and apply it, whatever happened.
    let _ = n.backend.put_file(&svc.name, file, &good).await;
    let healed = if n.backend.pid(&svc.name).is_some() {
        reload(n, svc, decl).await.is_ok()
    } else {
        n.heal(&svc.name).await.is_ok()
    };
    let landed = reloaded.is_ok() && test_failed && rejection_logged.is_some();
    let proof = format!(
        "config test {} ({}); reload {}; {}; {served_after}/10 GETs 2xx after; pid {pid_before} -> {}; restored: {healed}",
        if test_failed {
            "rejected the broken file"
        } else {
            "did NOT reject the broken file"
        },
        test_output.lines().next().unwrap_or(""),
        match &reloaded {
            Ok((via, _)) => format!("by {via}"),
            Err(e) => format!("failed: {e}"),
        },
        match rejection_logged {
            Some(line) => format!("the proxy logged: {line}"),
            None => format!("the proxy's log never named `{BROKEN_DIRECTIVE}` within 3 s: the reload attempt is not proven"),
        },
        pid_after.map(|p| p.to_string()).unwrap_or_else(|| "(none)".into())
    );
    detail = FaultDetail::BrokenReload {
        pid_before,
        pid_after,
        test_failed,
        test_output,
        served_after,
        reloaded_at: Some(reloaded_at),
    };
    FaultRecord {
        index,
        label,
        service: svc.name.clone(),
        injected_at,
        healed_at: Some(n.now()),
        provokes: Vec::new(),
        landed,
        proof,
        detail,
    }
}

/// A directive no proxy knows, so its config test and its reload must reject it.
const BROKEN_DIRECTIVE: &str = "this_directive_does_not_exist";

/// Poll the log past `from` bytes for a line containing `needle`, until `deadline`.
async fn wait_for_log(path: &std::path::Path, from: u64, needle: &str, deadline: Duration) -> Option<String> {
    let until = std::time::Instant::now() + deadline;
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            let fresh = String::from_utf8_lossy(bytes.get(from as usize..).unwrap_or_default());
            if let Some(line) = fresh.lines().find(|l| l.contains(needle)) {
                return Some(line.trim().chars().take(200).collect());
            }
        }
        if std::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn render_argv(n: &Nemesis<'_>, service: &str, argv: &[String]) -> Option<Vec<String>> {
    argv.iter().map(|a| n.plan.render_value(service, a).ok()).collect()
}
