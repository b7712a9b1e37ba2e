//! `index.html`: the whole run on one self-contained page (inline CSS and
//! SVG, no script, nothing fetched), for people deciding whether to trust a
//! verdict.
//!
//! The page is a minijinja template (auto-escaped, embedded at compile time)
//! fed with view structs built here; the charts are plotters SVG from the
//! scenario's [`Timeline`](crate::timeline::Timeline).

mod charts;

use crate::check::verdict::{Outcome, RunStatus, Verdict};
use crate::history::{FaultRecord, Micros};
use crate::report::ReportError;
use crate::report::model::{RunReport, ScenarioResult};
use crate::report::text::printable;
use crate::timeline::{Timeline, record_end, timeline};
use charts::{Chart, FAULT_FILL, hex, scenario_charts};
use minijinja::Environment;
use serde::Serialize;
use std::collections::BTreeMap;

const INDEX: &str = include_str!("templates/index.html");
const STYLE: &str = include_str!("templates/style.css");

/// Scenarios shorter than this are drawn in 250 ms buckets, longer ones in
/// 1 s buckets (or wider, so a long soak stays under [`MAX_BUCKETS`]).
const SHORT_SCENARIO_US: Micros = 60_000_000;
const MAX_BUCKETS: u64 = 1_200;

/// Service log excerpts of one scenario, by service name.
pub type LogExcerpts = BTreeMap<String, String>;

/// Renders the run as one HTML document that opens offline.
pub fn render_html(report: &RunReport) -> Result<String, ReportError> {
    let logs = report.scenarios.iter().map(|s| (s.name.clone(), s.logs.clone())).collect();
    render_html_with_logs(report, &logs)
}

/// [`render_html`] with log excerpts around the faults, by scenario name
/// (the run record does not carry logs yet, so [`render_html`] shows none).
pub fn render_html_with_logs(report: &RunReport, logs: &BTreeMap<String, LogExcerpts>) -> Result<String, ReportError> {
    let page = page(report, logs);
    let mut env = Environment::new();
    env.add_template("index.html", INDEX).map_err(template_error)?;
    env.add_template("style.css", STYLE).map_err(template_error)?;
    let template = env.get_template("index.html").map_err(template_error)?;
    template.render(&page).map_err(template_error)
}

/// ReportError has no variant for the HTML page yet; until it does, a
/// template error (a bug of ours: the templates are compiled in and tested)
/// is reported as a failure to write `index.html`, with the cause chained.
fn template_error(error: minijinja::Error) -> ReportError {
    ReportError::Html(error)
}

/// The bucket width for a scenario of this length.
pub fn bucket_ms_for(end: Micros) -> u64 {
    if end <= SHORT_SCENARIO_US {
        250
    } else {
        (end / 1_000).div_ceil(MAX_BUCKETS).div_ceil(1_000).max(1) * 1_000
    }
}

#[derive(Serialize)]
struct Page {
    title: String,
    run_id: String,
    harness_version: String,
    stack: String,
    manifest: String,
    breaks: Vec<String>,
    seed: u64,
    started: String,
    duration: String,
    status: &'static str,
    status_class: &'static str,
    exit_code: u8,
    interrupted: bool,
    counts: Vec<Count>,
    reproduce: String,
    any_bad: bool,
    scenarios: Vec<ScenarioView>,
    findings: Vec<FindingView>,
    readings: Vec<ReadingView>,
    fault_fill: String,
}

#[derive(Serialize)]
struct Count {
    outcome: &'static str,
    n: usize,
}

#[derive(Serialize)]
struct ScenarioView {
    name: String,
    anchor: String,
    file: String,
    description: String,
    duration: String,
    healthy_after: String,
    error: Option<String>,
    verdicts: Vec<VerdictView>,
    bucket_ms: u64,
    charts: Vec<Chart>,
    faults: Vec<FaultView>,
    events: Vec<EventView>,
    logs: Vec<LogView>,
    /// The task worker's figures and the acknowledged-write audit, as rows.
    tasks_and_writes: Vec<RowView>,
    /// Time to fire per alert a fault provoked.
    alert_timings: Vec<AlertTimingView>,
}

#[derive(Serialize)]
struct AlertTimingView {
    requirement: String,
    alert: String,
    fault: String,
    pending: String,
    fired: String,
    delivered: String,
    resolved: String,
}

#[derive(Serialize)]
struct RowView {
    label: String,
    value: String,
}

#[derive(Serialize)]
struct VerdictView {
    requirement: String,
    outcome: &'static str,
    measured: String,
    expected: String,
    reading: Option<String>,
    evidence: Vec<String>,
    /// Fail or inconclusive: someone will want to run it again.
    bad: bool,
}

#[derive(Serialize)]
struct FaultView {
    index: usize,
    label: String,
    service: String,
    from: String,
    to: String,
    healed: bool,
    landed: bool,
    proof: String,
}

#[derive(Serialize)]
struct EventView {
    at: String,
    service: String,
    kind: &'static str,
    label: String,
}

#[derive(Serialize)]
struct LogView {
    service: String,
    text: String,
}

#[derive(Serialize)]
struct FindingView {
    scenario: String,
    id: String,
    title: String,
    evidence: String,
}

#[derive(Serialize)]
struct ReadingView {
    reading: String,
    /// "GS-DRAIN in sigterm-drain", one per verdict that relied on it.
    used_by: Vec<String>,
}

fn page(report: &RunReport, logs: &BTreeMap<String, LogExcerpts>) -> Page {
    let status = report.status();
    let (status_word, status_class) = status_words(status);
    let no_logs = LogExcerpts::new();
    let scenarios: Vec<ScenarioView> = report
        .scenarios
        .iter()
        .enumerate()
        .map(|(i, s)| scenario_view(i, s, logs.get(&s.name).unwrap_or(&no_logs)))
        .collect();
    Page {
        title: format!("chaosgate · {} · {} · {}", report.stack.name, status_word, report.run_id),
        run_id: text(&report.run_id),
        harness_version: text(&report.harness_version),
        stack: text(&report.stack.name),
        manifest: text(&report.stack.manifest),
        breaks: report.stack.breaks.iter().map(|b| text(b)).collect(),
        seed: report.seed,
        started: utc(report.started_unix_ms),
        duration: duration(report.duration_ms),
        status: status_word,
        status_class,
        exit_code: if report.interrupted { 130 } else { status.code() },
        interrupted: report.interrupted,
        counts: report
            .counts()
            .iter()
            .map(|&(outcome, n)| Count {
                outcome: outcome.as_str(),
                n,
            })
            .collect(),
        reproduce: text(&report.reproduce),
        any_bad: scenarios.iter().any(|s| s.error.is_some() || s.verdicts.iter().any(|v| v.bad)),
        findings: findings(report),
        readings: readings(report),
        scenarios,
        fault_fill: hex(FAULT_FILL),
    }
}

fn status_words(status: RunStatus) -> (&'static str, &'static str) {
    match status {
        RunStatus::AllPassed => ("all passed", "pass"),
        RunStatus::Failed => ("failed", "fail"),
        RunStatus::Inconclusive => ("inconclusive", "inconclusive"),
        RunStatus::CouldNotRun => ("could not run", "error"),
    }
}

fn scenario_view(index: usize, scenario: &ScenarioResult, logs: &LogExcerpts) -> ScenarioView {
    let history = &scenario.history;
    // A scenario that never ran has nothing to draw.
    let ran = !history.requests.is_empty() || !history.events.is_empty() || !history.faults.is_empty();
    let (bucket_ms, charts, events) = if ran {
        let bucket_ms = bucket_ms_for(record_end(history));
        let timeline = timeline(history, bucket_ms);
        (bucket_ms, scenario_charts(&timeline), event_views(&timeline))
    } else {
        (0, Vec::new(), Vec::new())
    };
    ScenarioView {
        name: text(&scenario.name),
        anchor: format!("scenario-{index}"),
        file: text(&scenario.file),
        description: text(&scenario.description),
        duration: duration(scenario.duration_ms),
        healthy_after: scenario.healthy_after_ms.map_or("never".to_string(), |ms| format!("{ms} ms")),
        error: scenario.error.as_deref().map(text),
        verdicts: scenario.verdicts.iter().map(verdict_view).collect(),
        bucket_ms,
        charts,
        faults: history.faults.iter().map(fault_view).collect(),
        events,
        tasks_and_writes: tasks_and_writes(scenario),
        alert_timings: alert_timings(scenario),
        logs: logs
            .iter()
            .map(|(service, log)| LogView {
                service: text(service),
                text: text(log),
            })
            .collect(),
    }
}

/// When each provoked alert went pending, fired, reached the webhook and
/// resolved, measured without a deadline (the verdicts apply theirs).
fn alert_timings(scenario: &ScenarioResult) -> Vec<AlertTimingView> {
    let h = &scenario.history;
    let Some(declared) = &h.monitoring.declared else {
        return Vec::new();
    };
    let after = |v: Option<u64>| v.map_or("–".to_string(), |ms| format!("{ms} ms"));
    declared
        .iter()
        .flat_map(|(id, d)| {
            crate::check::alert_fire::timings(h, id, u64::MAX / 2_000)
                .into_iter()
                .map(move |t| AlertTimingView {
                    requirement: text(id),
                    alert: text(&d.alert),
                    fault: text(&t.fault),
                    pending: after(t.pending_after_ms),
                    fired: after(t.fired_after_ms),
                    delivered: after(t.delivered_after_ms),
                    resolved: after(t.resolved_after_ms),
                })
        })
        .collect()
}

fn tasks_and_writes(scenario: &ScenarioResult) -> Vec<RowView> {
    let mut rows: Vec<RowView> = scenario
        .worker
        .iter()
        .flat_map(|p| p.rows())
        .map(|(label, value)| RowView {
            label: label.to_string(),
            value: text(&value),
        })
        .collect();
    let redis = &scenario.history.redis;
    if let Some(audit) = &redis.audit {
        rows.push(RowView {
            label: "acknowledged writes".into(),
            value: format!(
                "{} acknowledged, {} checked in {}, {} missing",
                redis.acknowledged.len(),
                audit.checked,
                text(&audit.service),
                audit.missing.len()
            ),
        });
    }
    rows
}

fn verdict_view(verdict: &Verdict) -> VerdictView {
    VerdictView {
        requirement: text(&verdict.requirement),
        outcome: verdict.outcome.as_str(),
        measured: text(&verdict.measured),
        expected: text(&verdict.expected),
        reading: verdict.reading.as_deref().map(text),
        evidence: verdict.evidence.iter().map(|e| text(e)).collect(),
        bad: matches!(verdict.outcome, Outcome::Fail | Outcome::Inconclusive),
    }
}

fn fault_view(fault: &FaultRecord) -> FaultView {
    FaultView {
        index: fault.index,
        label: text(&fault.label),
        service: text(&fault.service),
        from: seconds(fault.injected_at),
        to: fault.healed_at.map_or("end of record".to_string(), seconds),
        healed: fault.healed_at.is_some(),
        landed: fault.landed,
        proof: text(&fault.proof),
    }
}

fn event_views(timeline: &Timeline) -> Vec<EventView> {
    timeline
        .events
        .iter()
        .map(|e| EventView {
            at: seconds(e.at),
            service: text(&e.service),
            kind: e.kind.as_str(),
            label: text(&e.label),
        })
        .collect()
}

fn findings(report: &RunReport) -> Vec<FindingView> {
    report
        .scenarios
        .iter()
        .flat_map(|s| {
            s.history.findings.iter().map(|f| FindingView {
                scenario: text(&s.name),
                id: text(&f.id),
                title: text(&f.title),
                evidence: text(&f.evidence),
            })
        })
        .collect()
}

/// Every distinct reading, in order of first use, with the verdicts using it.
fn readings(report: &RunReport) -> Vec<ReadingView> {
    let mut out: Vec<ReadingView> = Vec::new();
    for scenario in &report.scenarios {
        for verdict in &scenario.verdicts {
            let Some(reading) = &verdict.reading else { continue };
            let reading = text(reading);
            let used_by = format!("{} in {}", text(&verdict.requirement), text(&scenario.name));
            match out.iter_mut().find(|r| r.reading == reading) {
                Some(existing) => existing.used_by.push(used_by),
                None => out.push(ReadingView {
                    reading,
                    used_by: vec![used_by],
                }),
            }
        }
    }
    out
}

/// Recorded text made printable; the template escapes it for HTML.
fn text(s: &str) -> String {
    printable(s).into_owned()
}

fn seconds(us: Micros) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}

fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1e3),
        _ => format!("{} min {:02} s", ms / 60_000, ms % 60_000 / 1_000),
    }
}

fn utc(unix_ms: u64) -> String {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000) else {
        return format!("{unix_ms} ms after the Unix epoch");
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample_report;

    fn rows(html: &str) -> Vec<(String, String)> {
        html.split("<tr ")
            .skip(1)
            .filter_map(|tag| {
                let tag = &tag[..tag.find('>')?];
                let attr = |name: &str| {
                    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
                    Some(tag[start..start + tag[start..].find('"')?].to_string())
                };
                Some((attr("data-requirement")?, attr("data-outcome")?))
            })
            .collect()
    }

    #[test]
    fn one_row_per_verdict_with_its_outcome() {
        let html = render_html(&sample_report()).expect("renders");
        let expected = [
            ("GS-DRAIN", "pass"),
            ("GS-EXIT", "fail"),
            ("HC-READY", "inconclusive"),
            ("CFG-RELOAD", "skipped"),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(r, o)| (r.to_string(), o.to_string())).collect();
        assert_eq!(rows(&html), expected);
    }

    #[test]
    fn recorded_text_is_escaped() {
        let html = render_html(&sample_report()).expect("renders");
        assert!(html.contains("log: &lt;error&gt; &quot;redis&quot; &amp; &#x27;cache&#x27; ]]&gt; still open"));
        assert!(!html.contains("<error>"));
        assert!(!html.contains("<draining>"));
    }

    #[test]
    fn worker_figures_are_a_table_of_their_own() {
        let mut report = sample_report();
        report.scenarios[0].worker = Some(crate::check::worker_profile::WorkerProfile {
            worker: "celery".into(),
            enqueued: 265,
            done: 264,
            lost: 1,
            duplicated: 4,
            started_again: 4,
            concurrency_declared: Some(4),
            max_running: 4,
            max_reserved: Some(4),
            priority_order: Some("10 > 5 > 1".into()),
            priority_inversions: Some(0),
            reconnect_ms: Some(3213),
            drain_ms: None,
        });
        let html = render_html(&report).expect("renders");
        for needle in [
            "<h3>Tasks and writes</h3>",
            "<th>worker</th><td>celery</td>",
            "265 enqueued, 264 done, 1 lost, 4 duplicated, 4 started again",
            "at most 4: no prefetch beyond the running slots",
            "10 &gt; 5 &gt; 1 (0 starts jumped a higher priority)",
            "<th>first task after Redis returned</th><td>3213 ms</td>",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        assert_eq!(html.matches("<h3>Tasks and writes</h3>").count(), 1);
    }

    #[test]
    fn summary_findings_readings_and_reproduce() {
        let html = render_html(&sample_report()).expect("renders");
        for needle in [
            "refstack",
            "20250101T120000Z-7f3a",
            "2025-01-01 12:00:00 UTC",
            "47.2 s",
            "failed",
            "exit status 1",
            "F-GRACE",
            "grace period longer than the orchestrator&#x27;s",
            "stack never became healthy",
            "&quot;within 500 ms&quot; read as",
            // minijinja escapes "/" too.
            "<code>chaosgate run --stack stacks&#x2f;refstack.toml --seed 42</code>",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        // Reproduce blocks for the fail and the inconclusive verdict, plus the summary's.
        assert_eq!(html.matches("<code>chaosgate run").count(), 3);
    }

    #[test]
    fn no_findings_and_no_charts_for_a_scenario_that_never_ran() {
        let mut report = sample_report();
        report.scenarios[0].history.findings.clear();
        report.interrupted = true;
        let html = render_html(&report).expect("renders");
        assert!(html.contains("no findings detected"));
        assert!(html.contains("interrupted"));
        assert!(html.contains("exit status 130"));
        assert_eq!(html.matches("data-chart=").count(), 3, "only the scenario that ran has charts");
    }

    #[test]
    fn charts_are_inline_svg_with_their_point_counts() {
        let html = render_html(&sample_report()).expect("renders");
        for name in ["throughput", "latency", "in-flight"] {
            let at = html.find(&format!("data-chart=\"{name}\"")).expect(name);
            let tag = &html[at..at + html[at..].find('>').expect("tag end")];
            assert!(tag.contains("data-points=\"") && !tag.contains("data-points=\"0\""), "{tag}");
        }
        assert!(html.contains("class=\"fault-window\""));
    }

    #[test]
    fn opens_offline() {
        let html = render_html(&sample_report()).expect("renders");
        for needle in ["src=\"http", "href=\"http", "url(http", "@import", "<script src", "<link"] {
            assert!(!html.contains(needle), "{needle}");
        }
    }

    #[test]
    fn log_excerpts_are_shown_when_given() {
        let logs = BTreeMap::from([(
            "graceful-shutdown".to_string(),
            LogExcerpts::from([("app".to_string(), "draining <3 requests>\n".to_string())]),
        )]);
        let html = render_html_with_logs(&sample_report(), &logs).expect("renders");
        assert!(html.contains("draining &lt;3 requests&gt;"));
        let without = render_html(&sample_report()).expect("renders");
        assert!(!without.contains("class=\"logs\""));
    }

    #[test]
    fn bucket_width_follows_the_length() {
        assert_eq!(bucket_ms_for(4_000_000), 250);
        assert_eq!(bucket_ms_for(60_000_000), 250);
        assert_eq!(bucket_ms_for(600_000_000), 1_000);
        // Two hours: 7,200 s in at most 1,200 buckets.
        assert_eq!(bucket_ms_for(7_200_000_000), 6_000);
    }
}
