//! Put another of the run's certificates in place (expired, expiring,
//! renewed, ...) and reload the TLS service the way it declares; prove it
//! by reading the served certificate before and after over TLS.

use super::Nemesis;
use super::proxy::{proxy_service, reload};
use crate::history::{FaultDetail, FaultRecord, HttpsTally, ServedCert};
use crate::observe::tls::read_served_cert;
use crate::stack::certs::activate_in;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

async fn served(n: &Nemesis<'_>) -> Result<ServedCert, String> {
    let tls = n.manifest.tls.as_ref().ok_or("the stack has no [tls] section")?;
    let certs = n.plan.certs.as_ref().ok_or("no certificates were generated")?;
    let addr = n.backend.endpoint(&tls.service, &tls.port).ok_or("the TLS port has no address")?;
    let ca = certs.ca_pem().map_err(|e| e.to_string())?;
    read_served_cert(addr, &tls.host, &ca, Duration::from_secs(2)).await
}

pub async fn cert_swap(n: &Nemesis<'_>, index: usize, target: &str, certificate: &str) -> FaultRecord {
    let label = format!("certificate `{certificate}` put in place and reloaded");
    let mut detail = FaultDetail::CertReload {
        certificate: certificate.to_string(),
        via: String::new(),
        pid_before: 0,
        pid_after: None,
        reloaded_at: None,
        served_at: None,
        before: None,
        after: None,
        https: HttpsTally::default(),
    };
    let (Some(tls), Some(certs)) = (n.manifest.tls.as_ref(), n.plan.certs.as_ref()) else {
        return n.lacks(
            index,
            label,
            target,
            &["TLS-EXPIRY"],
            "TLS with certificates that can be renewed",
            "[tls] service, port, host (and a template reading {{ certs.active.cert }})",
            detail,
        );
    };
    let Some(svc) = n.manifest.service(&tls.service) else {
        return n.not_landed(index, label, target, "the [tls] service is not in the stack".into(), detail);
    };
    let Some((_, decl)) = proxy_service(n, &svc.name) else {
        return n.lacks(
            index,
            label,
            &svc.name,
            &["TLS-EXPIRY", "NX-RELOAD"],
            "a reload that applies new certificates without dropping traffic",
            "[services.<tls service>.proxy] reload = { signal = \"HUP\" }",
            detail,
        );
    };
    if !certs.paths.contains_key(certificate) || certificate == "active" || certificate == "ca" {
        let names: Vec<&str> = crate::stack::certs::KINDS.iter().map(|k| k.0).collect();
        return n.not_landed(
            index,
            label,
            &svc.name,
            format!("no certificate `{certificate}` (known: {})", names.join(", ")),
            detail,
        );
    }
    let before = served(n).await.ok();
    let pid_before = n.backend.pid(&svc.name).unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let client_loop = https_loop(n, svc, stop.clone());
    let injected_at = n.now();
    if let Err(e) = activate_in(&certs.dir, certificate) {
        return n.not_landed(index, label, &svc.name, e.to_string(), detail);
    }
    let (via, pid_after) = match reload(n, svc, decl).await {
        Ok(r) => r,
        Err(e) => return n.not_landed(index, label, &svc.name, format!("reload failed: {e}"), detail),
    };
    let reloaded_at = n.now();
    // The new certificate is served once the new workers run; poll for it.
    let expected = crate::observe::tls::describe_file(&certs.paths[certificate].cert, &tls.host);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = None;
    let mut served_at = None;
    while Instant::now() < deadline {
        if let Ok(c) = served(n).await {
            let new = expected.as_ref().is_some_and(|e| e.serial == c.serial);
            after = Some(c);
            if new {
                served_at = Some(n.now());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let https = match client_loop {
        Some(task) => task.await.unwrap_or_default(),
        None => HttpsTally::default(),
    };
    let landed = served_at.is_some();
    let alert = match (served_at, after.as_ref()) {
        (Some(at), Some(cert)) => await_alert(n, at, cert).await,
        _ => None,
    };
    let describe = |c: &Option<ServedCert>| {
        c.as_ref()
            .map(|c| format!("serial {} not-after {} ({:.1} days left)", c.serial, c.not_after, c.days_left))
            .unwrap_or_else(|| "(unreadable)".into())
    };
    let proof = format!(
        "{via}: before {}; after {}; pid {pid_before} -> {}; verifying HTTPS client: {} ok, {} failed{}",
        describe(&before),
        describe(&after),
        n.backend.pid(&svc.name).unwrap_or(pid_after),
        https.ok,
        https.failed,
        https.first_error.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default()
    );
    let proof = match alert {
        Some(note) => format!("{proof}; {note}"),
        None => proof,
    };
    detail = FaultDetail::CertReload {
        certificate: certificate.to_string(),
        via,
        pid_before,
        pid_after: n.backend.pid(&svc.name),
        reloaded_at: Some(reloaded_at),
        served_at,
        before: before.map(Box::new),
        after: after.map(Box::new),
        https,
    };
    FaultRecord {
        index,
        label,
        service: svc.name.clone(),
        injected_at,
        healed_at: None,
        provokes: Vec::new(),
        landed,
        proof: if landed {
            proof
        } else {
            format!("the new certificate was not served within 5 s: {proof}")
        },
        detail,
    }
}

/// When the stack declares an alert for AL-CERT, wait (up to the scenario's
/// `alert_deadline_ms`) until its monitoring shows the alert in the state this
/// certificate calls for: firing below 14 days left, quiet otherwise. This
/// only paces the schedule, so the next swap starts from settled evidence;
/// AL-CERT is judged from the recorded samples.
async fn await_alert(n: &Nemesis<'_>, served_at: crate::history::Micros, cert: &ServedCert) -> Option<String> {
    use crate::check::alerts::{WARN_DAYS, firing_before, reached};
    const ID: &str = "AL-CERT";
    let decl = n.manifest.monitoring.as_ref()?.alerts.get(ID)?;
    let want = cert.days_left < WARN_DAYS;
    let state = if want { "firing" } else { "quiet" };
    let so_far = n.recorder.alert_samples_since(0);
    if so_far
        .iter()
        .rev()
        .find(|s| s.error.is_none())
        .is_some_and(|s| !s.rules.contains_key(&decl.alert))
    {
        return Some(format!("the monitoring has no rule named `{}`; nothing to wait for", decl.alert));
    }
    let was = firing_before(&so_far, &decl.alert, served_at);
    if was == want && decl.query.is_none() {
        return Some(format!("alert `{}` already {state}; nothing to wait for", decl.alert));
    }
    let limit = Duration::from_millis(n.settings.alert_deadline_ms);
    let deadline = Instant::now() + limit;
    loop {
        let samples = n.recorder.alert_samples_since(served_at);
        if let Some(t) = reached(&samples, &decl.alert, ID, served_at, cert.days_left, was, want) {
            return Some(format!("alert `{}` {state} {} ms after", decl.alert, (t - served_at) / 1000));
        }
        if Instant::now() >= deadline {
            return Some(format!("alert `{}` not {state} within {} ms", decl.alert, limit.as_millis()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GETs of the TLS service's ready path over HTTPS, verifying the chain
/// against the run's CA (as a real client would), until `stop`.
fn https_loop(n: &Nemesis<'_>, svc: &crate::manifest::Service, stop: Arc<AtomicBool>) -> Option<tokio::task::JoinHandle<HttpsTally>> {
    let tls = n.manifest.tls.as_ref()?;
    let addr = n.backend.endpoint(&tls.service, &tls.port)?;
    let ca = reqwest::Certificate::from_pem(&n.plan.certs.as_ref()?.ca_pem().ok()?).ok()?;
    let path = svc.ready.http_path().unwrap_or("/").to_string();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .resolve(&tls.host, addr)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let url = format!("https://{}:{}{path}", tls.host, addr.port());
    Some(tokio::spawn(async move {
        let mut tally = HttpsTally::default();
        while !stop.load(Ordering::Relaxed) {
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => tally.ok += 1,
                Ok(r) => {
                    tally.failed += 1;
                    tally.first_error.get_or_insert_with(|| format!("status {}", r.status()));
                }
                Err(e) => {
                    tally.failed += 1;
                    tally.first_error.get_or_insert_with(|| describe_error(&e));
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tally
    }))
}

fn describe_error(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}
