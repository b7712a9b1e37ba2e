//! `chaosgate compare A B`: two runs side by side, scenario by scenario, so a
//! user sees where two stacks (the reference worker and real Celery, a stack
//! before and after a change) behave differently: verdicts that differ, and
//! the task worker's figures that differ (see `WorkerProfile::differences`).

use super::error::ReportError;
use super::model::{RunReport, ScenarioResult};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use tabled::settings::{Modify, Style, Width, object::Columns};
use tabled::{Table, Tabled};

/// A run's `run.json`, given the file or the run directory holding it.
pub fn load_run(path: &Path) -> Result<RunReport, ReportError> {
    let file = if path.is_dir() { path.join("run.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file).map_err(|e| ReportError::Read {
        path: file.clone(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| ReportError::NotARun {
        path: file,
        reason: e.to_string(),
    })
}

#[derive(Tabled)]
struct Row {
    scenario: String,
    what: String,
    a: String,
    b: String,
}

/// The comparison as text: a header naming both runs, then one table of
/// differences (empty when the runs agree on everything compared).
pub fn render(a: &RunReport, a_name: &str, b: &RunReport, b_name: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "A: {a_name} (stack {}, seed {})", a.stack.name, a.seed);
    let _ = writeln!(out, "B: {b_name} (stack {}, seed {})", b.stack.name, b.seed);
    let rows = differences(a, b);
    let only: Vec<String> = only_in(a, b)
        .map(|s| format!("{} only in A", s.name))
        .chain(only_in(b, a).map(|s| format!("{} only in B", s.name)))
        .collect();
    if rows.is_empty() {
        let _ = writeln!(out, "\nno differences in the {} scenario(s) both ran", common(a, b).count());
    } else {
        let mut table = Table::new(&rows);
        table.with(Style::modern());
        for (column, width) in [(0, 22), (1, 32), (2, 40), (3, 40)] {
            table.with(Modify::new(Columns::one(column)).with(Width::wrap(width).keep_words(true)));
        }
        let _ = writeln!(out, "\n{table}");
    }
    for line in only {
        let _ = writeln!(out, "{line}");
    }
    out
}

fn common<'a>(a: &'a RunReport, b: &'a RunReport) -> impl Iterator<Item = (&'a ScenarioResult, &'a ScenarioResult)> {
    a.scenarios
        .iter()
        .filter_map(|s| b.scenarios.iter().find(|t| t.name == s.name).map(|t| (s, t)))
}

fn only_in<'a>(x: &'a RunReport, y: &'a RunReport) -> impl Iterator<Item = &'a ScenarioResult> {
    x.scenarios.iter().filter(|s| y.scenarios.iter().all(|t| t.name != s.name))
}

fn differences(a: &RunReport, b: &RunReport) -> Vec<Row> {
    let mut rows = Vec::new();
    for (sa, sb) in common(a, b) {
        for va in &sa.verdicts {
            let vb = sb.verdicts.iter().find(|v| v.requirement == va.requirement);
            if vb.is_none_or(|vb| vb.outcome != va.outcome) {
                rows.push(Row {
                    scenario: sa.name.clone(),
                    what: va.requirement.clone(),
                    a: format!("{}: {}", va.outcome.as_str(), va.measured),
                    b: vb.map_or("not judged".into(), |vb| format!("{}: {}", vb.outcome.as_str(), vb.measured)),
                });
            }
        }
        match (&sa.worker, &sb.worker) {
            (Some(pa), Some(pb)) => {
                if pa.worker != pb.worker {
                    rows.push(Row {
                        scenario: sa.name.clone(),
                        what: "worker".into(),
                        a: pa.worker.clone(),
                        b: pb.worker.clone(),
                    });
                }
                rows.extend(pa.differences(pb).into_iter().map(|(what, x, y)| Row {
                    scenario: sa.name.clone(),
                    what: what.into(),
                    a: x,
                    b: y,
                }));
            }
            (Some(p), None) | (None, Some(p)) => rows.push(Row {
                scenario: sa.name.clone(),
                what: "tasks".into(),
                a: if sa.worker.is_some() { p.worker.clone() } else { "no tasks".into() },
                b: if sb.worker.is_some() { p.worker.clone() } else { "no tasks".into() },
            }),
            (None, None) => {}
        }
    }
    rows
}

/// The display name of a run path: its directory name.
pub fn run_name(path: &Path) -> String {
    let dir: PathBuf = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::worker_profile::WorkerProfile;
    use crate::report::sample_report;

    fn profile(worker: &str, duplicated: usize, reconnect_ms: u64) -> WorkerProfile {
        WorkerProfile {
            worker: worker.into(),
            enqueued: 200,
            done: 200,
            lost: 0,
            duplicated,
            started_again: duplicated,
            concurrency_declared: Some(4),
            max_running: 4,
            max_reserved: Some(4),
            priority_order: None,
            priority_inversions: None,
            reconnect_ms: Some(reconnect_ms),
            drain_ms: None,
        }
    }

    #[test]
    fn same_run_has_no_differences() {
        let a = sample_report();
        let text = render(&a, "a", &a, "b");
        assert!(text.contains("no differences"), "{text}");
    }

    #[test]
    fn worker_behaviour_and_verdicts_that_differ_are_listed() {
        let mut a = sample_report();
        let mut b = sample_report();
        a.scenarios[0].worker = Some(profile("refstack", 0, 180));
        b.scenarios[0].worker = Some(profile("celery", 4, 3018));
        b.scenarios[0].verdicts[0].outcome = crate::check::verdict::Outcome::Fail;
        let rows = differences(&a, &b);
        let what: Vec<&str> = rows.iter().map(|r| r.what.as_str()).collect();
        let requirement = a.scenarios[0].verdicts[0].requirement.as_str();
        assert_eq!(what, [requirement, "worker", "tasks", "first task after Redis returned"]);
        assert!(rows[2].b.contains("4 duplicated"), "{}", rows[2].b);
        assert_eq!((rows[3].a.as_str(), rows[3].b.as_str()), ("180 ms", "3018 ms"));
        let text = render(&a, "ref", &b, "celery");
        assert!(text.starts_with("A: ref (stack refstack, seed 42)"), "{text}");
        assert!(!text.contains("no differences"), "{text}");
    }
}
