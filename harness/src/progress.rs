//! What the user sees while a run goes: phase, fault, elapsed / budget, live
//! request rate and errors. A spinner on a terminal (indicatif); plain
//! periodic lines otherwise (CI logs), so a hung run is visible either way.

use crate::history::Recorder;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Progress of one scenario.
pub struct Progress {
    scenario: String,
    enabled: bool,
    bar: Option<ProgressBar>,
    phase: Arc<Mutex<String>>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn new(scenario: &str, enabled: bool) -> Self {
        let tty = enabled && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bar = tty.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{prefix}] {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(scenario.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            scenario: scenario.to_string(),
            enabled,
            bar,
            phase: Arc::new(Mutex::new(String::from("starting"))),
            ticker: None,
        }
    }

    /// A line that stays (milestones: stack healthy, fault landed, verdicts).
    pub fn line(&self, msg: impl AsRef<str>) {
        if !self.enabled {
            return;
        }
        let text = format!("[{}] {}", self.scenario, msg.as_ref());
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// The current phase ("load", "fault #1 SIGTERM to app", "stopping").
    pub fn phase(&self, phase: impl Into<String>) {
        let phase = phase.into();
        if let Some(bar) = &self.bar {
            bar.set_message(phase.clone());
        }
        if let Ok(mut p) = self.phase.lock() {
            *p = phase;
        }
    }

    /// Report the live request rate every `every` (plain) or continuously (terminal).
    pub fn watch_load(&mut self, recorder: Arc<Recorder>, budget: Duration) {
        if !self.enabled {
            return;
        }
        let bar = self.bar.clone();
        let phase = self.phase.clone();
        let scenario = self.scenario.clone();
        let started = Instant::now();
        let every = if bar.is_some() {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        self.ticker = Some(tokio::spawn(async move {
            let mut last = (Instant::now(), recorder.request_counts().0);
            let mut interval = tokio::time::interval(every);
            interval.tick().await;
            loop {
                interval.tick().await;
                let (requests, errors) = recorder.request_counts();
                let rate = (requests - last.1) as f64 / last.0.elapsed().as_secs_f64().max(0.001);
                last = (Instant::now(), requests);
                let phase = phase.lock().map(|p| p.clone()).unwrap_or_default();
                let status = format!(
                    "{phase} · {:.0}/{:.0} s · {requests} requests ({rate:.0}/s) · {errors} failed",
                    started.elapsed().as_secs_f64(),
                    budget.as_secs_f64()
                );
                match &bar {
                    Some(bar) => bar.set_message(status),
                    None => eprintln!("[{scenario}] {status}"),
                }
            }
        }));
    }

    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
