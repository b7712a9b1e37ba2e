//! Deployment steps: the stack's own `[deploy]` commands, run while the load
//! goes on, with the platform API served to them for the instances they
//! start. What the step did to traffic is judged from the responses' version
//! headers (check::deploy), not from what the command says.

use super::Nemesis;
use crate::deploy::api::{ApiServer, Call, Reply, StartInstance, valid_instance_name};
use crate::deploy::{ALL_IDS, DeployDecl, Step, command};
use crate::history::{FaultDetail, FaultRecord, PlatformCall, RecordProbe, ReleaseObservation};
use crate::manifest::SignalName;
use crate::scenario::FaultSpec;
use crate::stack::EnvOverrides;
use nix::sys::signal::Signal;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// The folder of the run where the stack's commands run and keep their state.
pub const DEPLOY_DIR: &str = "deploy";

pub async fn release_step(n: &Nemesis<'_>, index: usize, step: Step, spec: &FaultSpec) -> FaultRecord {
    let version = spec.version.clone();
    let label = match (&version, &spec.variant) {
        (Some(v), Some(bad)) => format!("{} {v} ({bad} build)", step.as_str()),
        (Some(v), None) => format!("{} {v}", step.as_str()),
        _ => step.as_str().to_string(),
    };
    let empty = || {
        FaultDetail::Release(ReleaseObservation {
            step: step.as_str().into(),
            version: version.clone(),
            variant: spec.variant.clone(),
            ..ReleaseObservation::default()
        })
    };
    let Some(decl) = n.manifest.deploy.as_ref() else {
        return n.lacks(index, label, &spec.target, &ALL_IDS, "a deployment interface", "[deploy]", empty());
    };
    let Some(template) = step.command(decl) else {
        let what = format!("a `{}` command", step.as_str());
        let field = format!("[deploy] {} = [...]", step.as_str());
        return n.lacks(index, label, &decl.service, step.requirements(), &what, &field, empty());
    };
    let mut extra_args = Vec::new();
    if let Some(variant) = &spec.variant {
        match decl.variants.get(variant) {
            Some(args) => extra_args.extend(args.iter().cloned()),
            None => {
                let known: Vec<&str> = decl.variants.keys().map(String::as_str).collect();
                let why = format!(
                    "the stack declares no defective build `{variant}` in [deploy.variants] (it has: {}), so the harness cannot make one",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                );
                return n.not_landed(index, label, &decl.service, why, empty());
            }
        }
    }
    let dir = n.plan.run_dir.join(DEPLOY_DIR);
    let mut vars = BTreeMap::new();
    vars.insert("version".to_string(), version.clone().unwrap_or_default());
    let render = |value: &str, what: &str| n.plan.render_with(&dir, value, &vars, what);
    let mut argv = Vec::new();
    for (i, arg) in template.iter().enumerate() {
        match render(arg, &format!("deploy.{}[{i}]", step.as_str())) {
            Ok(a) => argv.push(a),
            Err(e) => return n.not_landed(index, label, &decl.service, format!("cannot render the command: {e}"), empty()),
        }
    }
    argv.extend(extra_args);
    let mut env = BTreeMap::new();
    for (k, v) in &decl.env {
        match render(v, &format!("deploy.env.{k}")) {
            Ok(value) => {
                env.insert(k.clone(), value);
            }
            Err(e) => return n.not_landed(index, label, &decl.service, format!("cannot render deploy.env: {e}"), empty()),
        }
    }
    let mut observation = ReleaseObservation {
        step: step.as_str().into(),
        version: version.clone(),
        variant: spec.variant.clone(),
        command: argv.clone(),
        switching: decl.switching.as_str().into(),
        first_step_max_percent: decl.first_step_max_percent,
        ..ReleaseObservation::default()
    };
    if step == Step::Rollback && spec.check_data {
        observation.record = write_record(n, index).await;
    }
    let injected_at = n.now();
    let outcome = run_command(n, decl, &argv, &dir, env, &mut observation).await;
    observation.ended_at = Some(n.now());
    if let (Step::Rollback, Some(record)) = (step, observation.record.as_mut()) {
        read_back(n, record).await;
    }
    if step == Step::Releases {
        observation.releases = observation
            .output
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| !w.starts_with("---") && !w.starts_with('['))
            .map(str::to_string)
            .collect();
    }
    let (landed, proof) = match outcome {
        Ok(code) => (
            true,
            format!(
                "`{}` exited {code} after {} ms; {} platform call(s)",
                shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_default(),
                (n.now() - injected_at) / 1000,
                observation.calls.len()
            ),
        ),
        Err(why) => (false, why),
    };
    FaultRecord {
        index,
        label,
        service: decl.service.clone(),
        injected_at,
        healed_at: observation.ended_at,
        provokes: Vec::new(),
        landed,
        proof,
        detail: FaultDetail::Release(observation),
    }
}

/// Run the command to its end (or its time limit), serving the platform API to it meanwhile.
async fn run_command(
    n: &Nemesis<'_>,
    decl: &DeployDecl,
    argv: &[String],
    dir: &std::path::Path,
    mut env: BTreeMap<String, String>,
    observation: &mut ReleaseObservation,
) -> Result<i32, String> {
    let mut api = ApiServer::start()
        .await
        .map_err(|e| format!("cannot serve the platform API: {e}"))?;
    env.insert("CHAOSGATE_API".into(), api.url.clone());
    let spec = command::CommandSpec {
        argv,
        dir,
        path_var: &n.plan.path_var,
        env: &env,
        run_id: n.backend.run_id(),
    };
    let mut started = command::spawn(&spec).map_err(|e| format!("cannot run `{}`: {e}", argv[0]))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(decl.timeout_s);
    let status = loop {
        tokio::select! {
            status = started.child.wait() => break status.ok(),
            Some((call, reply)) = api.calls.recv() => {
                let (answer, line) = serve(n, call).await;
                observation.calls.push(PlatformCall { at: n.now(), call: line });
                let _ = reply.send(answer);
            }
            _ = tokio::time::sleep_until(deadline) => break None,
        }
    };
    observation.output = command::output_since(&started.log, started.log_from, 4_000);
    match status {
        Some(status) => {
            let code = status
                .code()
                .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
            observation.exit_code = Some(code);
            Ok(code)
        }
        None => {
            if let Some(pid) = started.child.id() {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = started.child.wait().await;
            observation.exit_code = None;
            Err(format!(
                "`{}` still ran after deploy.timeout_s = {} s: killed",
                argv[0], decl.timeout_s
            ))
        }
    }
}

/// One platform API call: the answer, and a line for the record.
async fn serve(n: &Nemesis<'_>, call: Call) -> (Reply, String) {
    let ready_timeout = Duration::from_secs_f64(n.manifest.stack.ready_timeout_s);
    match call {
        Call::StartInstance(req) => {
            let line = format!("start {} (copy of {})", req.name, req.of);
            match start_instance(n, &req, ready_timeout).await {
                Ok((value, took)) => (Ok(value), format!("{line}: ready in {took} ms")),
                Err(e) => (Err(e.clone()), format!("{line}: refused: {e}")),
            }
        }
        Call::StopInstance { name } => {
            if n.backend.instances().get(&name).is_none() {
                let e = format!("`{name}` is not an instance started through this API");
                return (Err(e.clone()), format!("stop {name}: refused: {e}"));
            }
            match n.backend.stop(&name, n.manifest.grace()).await {
                Ok(exit) => {
                    let how = exit.map(|e| e.describe()).unwrap_or_else(|| "was not running".into());
                    (Ok(json!({ "name": name, "exit": how })), format!("stop {name}: {how}"))
                }
                Err(e) => (Err(e.to_string()), format!("stop {name}: {e}")),
            }
        }
        Call::Signal { service, signal } => {
            let Some(sig) = Signal::from_str_lenient(&signal) else {
                let e = format!("unknown signal `{signal}`");
                return (Err(e.clone()), format!("signal {service}: {e}"));
            };
            match n.backend.signal(&service, sig).await {
                Ok(pid) => (
                    Ok(json!({ "service": service, "pid": pid })),
                    format!("signal {service} {}", sig.as_str()),
                ),
                Err(e) => (Err(e.to_string()), format!("signal {service}: {e}")),
            }
        }
        Call::Restart { service } => {
            let result = async {
                n.backend.stop(&service, n.manifest.grace()).await.map_err(|e| e.to_string())?;
                n.backend
                    .start(&service, &EnvOverrides::default())
                    .await
                    .map_err(|e| e.to_string())?;
                n.backend.wait_ready(&service, ready_timeout).await.map_err(|e| e.to_string())
            }
            .await;
            match result {
                Ok(took) => (
                    Ok(json!({ "service": service })),
                    format!("restart {service}: ready in {} ms", took.as_millis()),
                ),
                Err(e) => (Err(e.clone()), format!("restart {service}: {e}")),
            }
        }
    }
}

async fn start_instance(n: &Nemesis<'_>, req: &StartInstance, ready_timeout: Duration) -> Result<(serde_json::Value, u128), String> {
    if !valid_instance_name(&req.name) {
        return Err(format!(
            "an instance name is letters, digits, `-` and `_` (at most 48, a letter or digit first); got `{}`",
            req.name
        ));
    }
    if n.manifest.service(&req.of).is_none() {
        return Err(format!("the manifest has no service `{}` to copy", req.of));
    }
    let plan = n
        .plan
        .render_instance(n.manifest, &req.of, &req.name, req.command.as_deref(), &req.env)
        .map_err(|e| e.to_string())?;
    let ports = plan.ports.clone();
    n.backend.add_instance(&req.of, plan).map_err(|e| e.to_string())?;
    n.backend
        .start(&req.name, &EnvOverrides::default())
        .await
        .map_err(|e| e.to_string())?;
    let took = match n.backend.wait_ready(&req.name, ready_timeout).await {
        Ok(took) => took,
        Err(e) => {
            let tail = n.backend.log_tail(&req.name, 5);
            let _ = n.backend.stop(&req.name, n.manifest.grace()).await;
            return Err(format!("not ready: {e}; its last lines: {tail}"));
        }
    };
    let address: BTreeMap<&String, String> = ports.iter().map(|(k, p)| (k, format!("127.0.0.1:{p}"))).collect();
    Ok((
        json!({ "name": req.name, "host": n.plan.host_of(&req.name), "ports": ports, "address": address }),
        took.as_millis(),
    ))
}

/// RB-DATA, before the rollback: write one record through the entry and read it back.
async fn write_record(n: &Nemesis<'_>, index: usize) -> Option<RecordProbe> {
    let (write, read) = (n.manifest.endpoint("write")?, n.manifest.endpoint("read-record")?);
    if !read.path().contains(crate::load::driver::ID_PLACEHOLDER) {
        return None;
    }
    let base = entry_url(n)?;
    let id = (900_000_000 + n.seed % 1_000_000 * 100 + index as u64).to_string();
    let path_written = write.path().replace(crate::load::driver::ID_PLACEHOLDER, &id);
    let path_read = read.path().replace(crate::load::driver::ID_PLACEHOLDER, &id);
    let client = super::proxy::wire_client(Duration::from_secs(5));
    let written = send(n, &client, write.method(), &format!("{base}{path_written}"), write.body()).await;
    let read_before = send(n, &client, read.method(), &format!("{base}{path_read}"), read.body()).await;
    Some(RecordProbe {
        path_written,
        path_read,
        written,
        read_before,
        read_after: Vec::new(),
    })
}

/// RB-DATA, after the rollback: read the record until an answer comes from
/// another version than wrote it (or 10 s pass).
async fn read_back(n: &Nemesis<'_>, record: &mut RecordProbe) {
    let (Some(base), Some(read)) = (entry_url(n), n.manifest.endpoint("read-record")) else {
        return;
    };
    let client = super::proxy::wire_client(Duration::from_secs(5));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline && record.read_after.len() < 200 {
        let answer = send(n, &client, read.method(), &format!("{base}{}", record.path_read), read.body()).await;
        let other = answer.1 != record.written.1 && !answer.1.is_empty();
        record.read_after.push(answer);
        if other {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn entry_url(n: &Nemesis<'_>) -> Option<String> {
    let svc = n.manifest.resolve("entry")?;
    super::proxy::http_addr(n, svc).map(|a| format!("http://{a}"))
}

async fn send(n: &Nemesis<'_>, client: &reqwest::Client, method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    match req.send().await {
        Ok(resp) => {
            let version = n
                .manifest
                .stack
                .version_header
                .as_deref()
                .and_then(|h| resp.headers().get(h))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (resp.status().as_u16(), version)
        }
        Err(_) => (0, String::new()),
    }
}
