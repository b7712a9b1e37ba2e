//! The console summary: a verdict table, the totals, and for every verdict
//! that is not a pass or a skip, its evidence and how to reproduce it.
//!
//! Colour-free by design: the caller decides whether to colour (only when
//! stdout is a terminal), so this output is what logs and snapshots see.

use crate::check::verdict::{Outcome, RunStatus, Verdict};
use crate::report::model::{RunReport, ScenarioResult};
use crate::report::text::printable;
use std::fmt::Write as _;
use tabled::settings::object::Columns;
use tabled::settings::{Modify, Style, Width};
use tabled::{Table, Tabled};

/// Content width of each column at the default 120 columns: with
/// Style::modern (6 borders) and one space of padding each side (10).
const WIDTHS: [usize; 5] = [20, 14, 12, 30, 28];
/// Borders and padding of a row.
const CHROME: usize = 16;
/// The table's width when the terminal's is unknown (a log, a pipe).
pub const DEFAULT_WIDTH: usize = 120;

/// Column widths for a table `width` columns wide: requirement and verdict
/// keep theirs; in a narrow terminal the scenario column gives up to 8 first;
/// measured and expected share the rest as at 120 (30:28).
fn widths_for(width: usize) -> [usize; 5] {
    let [scenario, requirement, verdict, m, e] = WIDTHS;
    let content = width.saturating_sub(CHROME);
    let scenario = content.saturating_sub(requirement + verdict + 40).clamp(scenario - 8, scenario);
    let rest = content.saturating_sub(scenario + requirement + verdict).max(20);
    let expected = rest * e / (m + e);
    [scenario, requirement, verdict, rest - expected, expected]
}

/// Evidence lines shown per verdict; run.json has them all.
const EVIDENCE_SHOWN: usize = 5;

#[derive(Tabled)]
struct Row {
    scenario: String,
    requirement: String,
    verdict: String,
    measured: String,
    expected: String,
}

/// Renders the run for a terminal or a CI log, at most 120 columns wide
/// (the table; evidence lines are printed whole).
pub fn render_console(report: &RunReport) -> String {
    render_console_width(report, DEFAULT_WIDTH)
}

/// As `render_console`, the table fitted to `width` columns (a terminal's).
pub fn render_console_width(report: &RunReport, width: usize) -> String {
    let mut out = table(report, width);
    out.push('\n');
    summary(&mut out, report);
    tasks_and_writes(&mut out, report);
    findings(&mut out, report);
    details(&mut out, report);
    out
}

/// Each finding once, with the scenarios that reported it; the evidence is
/// in the HTML and JSON reports.
fn findings(out: &mut String, report: &RunReport) {
    let mut seen: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for scenario in &report.scenarios {
        for f in &scenario.history.findings {
            match seen.iter_mut().find(|(id, _, _)| *id == f.id) {
                Some((_, _, scenarios)) => {
                    if !scenarios.contains(&scenario.name.as_str()) {
                        scenarios.push(&scenario.name);
                    }
                }
                None => seen.push((&f.id, &f.title, vec![&scenario.name])),
            }
        }
    }
    for (id, title, scenarios) in seen {
        let _ = writeln!(out, "finding:  {}: {} ({})", cell(id), cell(title), cell(&scenarios.join(", ")));
    }
}

/// Per scenario, the task tally and the acknowledged-write audit, where there were any.
fn tasks_and_writes(out: &mut String, report: &RunReport) {
    for scenario in &report.scenarios {
        let redis = &scenario.history.redis;
        if !redis.tasks.is_empty() {
            let tally = crate::check::worker::TaskTally::of(&redis.tasks);
            let _ = writeln!(out, "tasks:    {}: {}", scenario.name, tally.describe());
        }
        if let Some(profile) = &scenario.worker {
            let figures: Vec<String> = profile
                .rows()
                .into_iter()
                .filter(|(label, value)| !matches!(*label, "worker" | "tasks") && value != "-")
                .map(|(label, value)| format!("{label}: {value}"))
                .collect();
            let _ = writeln!(out, "worker:   {}: {}; {}", scenario.name, profile.worker, figures.join("; "));
        }
        if let Some(audit) = &redis.audit {
            let _ = writeln!(
                out,
                "writes:   {}: {} acknowledged, {} checked in {}, {} missing",
                scenario.name,
                redis.acknowledged.len(),
                audit.checked,
                audit.service,
                audit.missing.len()
            );
        }
    }
}

fn table(report: &RunReport, width: usize) -> String {
    let rows: Vec<Row> = report.scenarios.iter().flat_map(scenario_rows).collect();
    let mut table = Table::new(&rows);
    table.with(Style::modern());
    for (column, width) in widths_for(width).into_iter().enumerate() {
        table.with(Modify::new(Columns::one(column)).with(Width::wrap(width).keep_words(true)));
    }
    table.to_string()
}

/// One row per verdict, plus one for a scenario that could not run. The
/// scenario name is shown on its first row only, so groups stand out.
fn scenario_rows(scenario: &ScenarioResult) -> Vec<Row> {
    let mut rows = Vec::with_capacity(scenario.verdicts.len() + 1);
    if let Some(error) = &scenario.error {
        rows.push(Row {
            scenario: String::new(),
            requirement: "(scenario)".to_string(),
            verdict: "error".to_string(),
            measured: cell(error),
            expected: "the scenario runs".to_string(),
        });
    }
    rows.extend(scenario.verdicts.iter().map(|v| Row {
        scenario: String::new(),
        requirement: cell(&v.requirement),
        verdict: v.outcome.to_string(),
        measured: cell(&v.measured),
        expected: cell(&v.expected),
    }));
    if let Some(first) = rows.first_mut() {
        first.scenario = cell(&scenario.name);
    } else {
        rows.push(Row {
            scenario: cell(&scenario.name),
            requirement: String::new(),
            verdict: "no verdicts".to_string(),
            measured: String::new(),
            expected: String::new(),
        });
    }
    rows
}

/// Cell text: printable, and tabs as spaces (tabled measures a tab as one column).
fn cell(text: &str) -> String {
    printable(text).replace('\t', " ")
}

fn summary(out: &mut String, report: &RunReport) {
    let counts = report
        .counts()
        .iter()
        .map(|(outcome, n)| format!("{n} {outcome}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(out, "verdicts: {counts}");
    let status = report.status();
    if report.interrupted {
        let _ = writeln!(
            out,
            "result:   interrupted before the end, {} so far (exit code 130)",
            status_word(status)
        );
    } else {
        let _ = writeln!(out, "result:   {} (exit code {})", status_word(status), status.code());
    }
    let on = if report.stack.backend.is_empty() {
        String::new()
    } else {
        format!(", on {}", report.stack.backend)
    };
    let _ = writeln!(out, "stack:    {} ({}){on}", report.stack.name, report.stack.manifest);
    if !report.stack.breaks.is_empty() {
        let _ = writeln!(out, "breaks:   {} (on purpose)", report.stack.breaks.join(", "));
    }
    let _ = writeln!(out, "seed:     {}", report.seed);
    let _ = writeln!(out, "run:      {}", report.run_id);
    let _ = writeln!(out, "duration: {}", duration(report.duration_ms));
}

fn status_word(status: RunStatus) -> &'static str {
    match status {
        RunStatus::AllPassed => "all passed",
        RunStatus::Failed => "failed",
        RunStatus::Inconclusive => "inconclusive",
        RunStatus::CouldNotRun => "could not run",
    }
}

/// What someone fixing the stack needs first: what went wrong, the first
/// evidence, and the command to see it again.
fn details(out: &mut String, report: &RunReport) {
    let mut any = false;
    for scenario in &report.scenarios {
        if let Some(error) = &scenario.error {
            let _ = writeln!(out, "\ncould not run {}: {}", scenario.name, printable(error));
            any = true;
        }
        let bad = scenario
            .verdicts
            .iter()
            .filter(|v| matches!(v.outcome, Outcome::Fail | Outcome::Inconclusive));
        for verdict in bad {
            verdict_details(out, &scenario.name, verdict);
            any = true;
        }
    }
    if any {
        let _ = writeln!(out, "\nreproduce: {}", report.reproduce);
    }
}

fn verdict_details(out: &mut String, scenario: &str, verdict: &Verdict) {
    let _ = writeln!(
        out,
        "\n{} {} in {}: {}",
        verdict.outcome,
        printable(&verdict.requirement),
        scenario,
        printable(&verdict.measured)
    );
    let _ = writeln!(out, "    expected: {}", printable(&verdict.expected));
    if let Some(reading) = &verdict.reading {
        let _ = writeln!(out, "    reading: {}", printable(reading));
    }
    for line in verdict.evidence.iter().take(EVIDENCE_SHOWN) {
        let _ = writeln!(out, "    {}", printable(line));
    }
    let hidden = verdict.evidence.len().saturating_sub(EVIDENCE_SHOWN);
    if hidden > 0 {
        let _ = writeln!(out, "    … {hidden} more evidence lines in run.json");
    }
}

fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1e3),
        _ => format!("{} min {:02} s", ms / 60_000, ms % 60_000 / 1_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample_report;

    #[test]
    fn console_snapshot() {
        insta::assert_snapshot!(render_console(&sample_report()));
    }

    #[test]
    fn table_fits_in_120_columns() {
        let mut report = sample_report();
        report.scenarios[0].verdicts[0].measured = "word ".repeat(60);
        report.scenarios[0].verdicts[0].expected = "x".repeat(200);
        report.scenarios[0].name = "a-very-long-scenario-name-that-goes-on".to_string();
        for width in [120, 100, 80] {
            let table = table(&report, width);
            let widest = table.lines().map(|l| l.chars().count()).max().unwrap_or(0);
            assert!(widest <= width, "{widest} columns in a {width}-column table:\n{table}");
        }
    }

    #[test]
    fn evidence_is_capped_per_verdict() {
        let text = render_console(&sample_report());
        // GS-EXIT has 7 evidence lines: 5 shown, 2 announced.
        assert!(text.contains("surviving process: 4250 worker"));
        assert!(!text.contains("harness sent SIGKILL"));
        assert!(text.contains("… 2 more evidence lines in run.json"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(250), "250 ms");
        assert_eq!(duration(47_250), "47.2 s");
        assert_eq!(duration(125_000), "2 min 05 s");
    }
}
