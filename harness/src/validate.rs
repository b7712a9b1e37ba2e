//! `chaosgate validate`: everything that can be checked without starting
//! the stack. The manifest and scenarios as `run` reads them, every template
//! rendered (into a scratch folder, with ports picked but never served),
//! and each scenario's needs against what the stack declares: endpoint
//! roles it does not map, and capabilities it lacks.

use crate::manifest::Manifest;
use crate::run::{RunOptions, load_inputs, resolve_endpoints};
use crate::scenario::{FaultAction, Scenario};

/// What validation found beyond the input errors (those stop it earlier).
#[derive(Debug, Default)]
pub struct Validation {
    pub lines: Vec<String>,
    /// Problems that make verdicts inconclusive or failing, but are no input error.
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

pub fn validate(opts: &RunOptions) -> Result<Validation, crate::input_error::InputErrors> {
    let (manifest, scenarios) = load_inputs(opts)?;
    let mut v = Validation::default();
    v.lines.push(format!(
        "manifest {}: {} services ({})",
        manifest.file.display(),
        manifest.services.len(),
        manifest
            .services
            .iter()
            .map(|s| format!("{} = {}", s.name, s.role.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    render_templates(&manifest, &mut v);
    for s in &scenarios {
        v.lines
            .push(format!("scenario {} ({}): covers {}", s.name, s.file.display(), s.covers.join(" ")));
        let (_, unmapped) = resolve_endpoints(&manifest, &s.load);
        for role in unmapped {
            v.warnings.push(format!(
                "{}: the load asks for endpoint `{role}`, which {} does not map: its verdicts will be inconclusive; declare [endpoints] {role} = {{ method, path, body }}",
                s.file.display(),
                manifest.file.display()
            ));
        }
        for lack in lacking(&manifest, s) {
            v.warnings.push(format!("{}: {lack}", s.file.display()));
        }
    }
    Ok(v)
}

/// Render every template into a scratch folder, as a run would.
fn render_templates(manifest: &Manifest, v: &mut Validation) {
    let scratch = std::env::temp_dir().join(format!("chaosgate-validate-{}", std::process::id()));
    use crate::stack::render::{Placement, StackPlan};
    // A compose stack runs only in containers; everything else is checked as on local processes.
    let placement = if manifest.stack.compose.is_some() {
        Placement::Containers
    } else {
        Placement::LocalProcesses
    };
    match StackPlan::render_for(manifest, &scratch, 0, placement) {
        Ok(plan) => {
            let files: usize = manifest.services.iter().map(|s| s.files.len()).sum();
            v.lines.push(format!(
                "templates: {files} rendered for {} services (ports picked: {})",
                plan.services.len(),
                plan.services.iter().map(|s| s.ports.len()).sum::<usize>()
            ));
        }
        Err(e) => v.errors.push(format!("templates: {e}")),
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Capabilities a scenario's faults need that the manifest does not declare
/// (each a fail at run time, as the standard requires them).
fn lacking(manifest: &Manifest, s: &Scenario) -> Vec<String> {
    let proxy = manifest.services.iter().find_map(|svc| svc.proxy.as_ref());
    let app_config = manifest.services.iter().find_map(|svc| svc.config.as_ref());
    let has_worker = manifest.services.iter().any(|svc| svc.worker.is_some());
    let mut out = Vec::new();
    for f in &s.faults {
        let missing = match f.action {
            FaultAction::Burst if proxy.is_none_or(|p| p.rate_limit.is_none()) => Some("NX-RATE: no proxy rate_limit declared"),
            FaultAction::GzipProbe if proxy.is_none_or(|p| p.gzip.is_none()) => Some("NX-GZIP: no proxy gzip paths declared"),
            FaultAction::CacheProbe if proxy.is_none_or(|p| p.cache.is_none()) => Some("NX-CACHE: no proxy cache declared"),
            FaultAction::CertSwap if manifest.tls.is_none() => Some("TLS-EXPIRY: no [tls] declared"),
            FaultAction::ReloadConfig if app_config.is_none_or(|c| c.reload.is_none()) => Some("CF-HOT: no config.reload declared"),
            FaultAction::EnvChange if app_config.is_none_or(|c| c.env_observable.is_none()) => {
                Some("CF-ENV: no config.env_observable declared")
            }
            FaultAction::Flood if !has_worker => Some("CW-*: no [services.<worker>.worker] declared"),
            _ => None,
        };
        if let Some(m) = missing
            && !out.iter().any(|o: &String| o.starts_with(m))
        {
            out.push(format!("{m}: the stack lacks it, so the requirement will fail"));
        }
    }
    out
}

impl Validation {
    pub fn render(&self) -> String {
        let mut text = String::new();
        for l in &self.lines {
            text.push_str(&format!("ok      {l}\n"));
        }
        for w in &self.warnings {
            text.push_str(&format!("warning {w}\n"));
        }
        for e in &self.errors {
            text.push_str(&format!("error   {e}\n"));
        }
        text.push_str(&format!(
            "{} error(s), {} warning(s); nothing was started\n",
            self.errors.len(),
            self.warnings.len()
        ));
        text
    }
}
