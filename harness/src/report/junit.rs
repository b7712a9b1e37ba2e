//! JUnit XML: one `<testsuite>` per scenario, one `<testcase>` per verdict,
//! so CI systems show requirements as tests.
//!
//! Mapping: pass → success, fail → `<failure>`, inconclusive → `<error
//! type="inconclusive">` (the harness could not prove it, which is not a
//! violation), skipped → `<skipped>`. A scenario that could not run gets a
//! testcase named `scenario` with an `<error type="could_not_run">`.

use crate::check::verdict::{Outcome, Verdict};
use crate::history::FaultRecord;
use crate::report::ReportError;
use crate::report::model::{RunReport, ScenarioResult};
use crate::report::text::{cdata_safe, printable};
use junit_report::{Duration, OffsetDateTime, Report, TestCase, TestResult, TestSuite};
use std::fmt::Write as _;

/// Renders the run as a JUnit XML document (on one line, as junit-report writes it).
pub fn render_junit(report: &RunReport) -> Result<String, ReportError> {
    let mut junit = Report::new();
    junit.add_testsuites(report.scenarios.iter().map(|s| suite(report, s)));
    let mut out = Vec::new();
    junit.write_xml(&mut out).map_err(ReportError::Junit)?;
    // junit-report writes only what it was given as &str, so this holds.
    let mut xml = String::from_utf8_lossy(&out).into_owned();
    xml.push('\n');
    Ok(xml)
}

fn suite(report: &RunReport, scenario: &ScenarioResult) -> TestSuite {
    let mut suite = TestSuite::new(&printable(&scenario.name));
    // Scenario start times are not recorded, so every suite carries the run's
    // start; this also keeps the output reproducible.
    suite.set_timestamp(run_start(report.started_unix_ms));
    let classname = format!("chaosgate.{}", printable(&scenario.name));
    let mut times = split_time(scenario).into_iter();
    let mut next_time = |timed: bool| {
        if timed {
            times.next().unwrap_or(Duration::ZERO)
        } else {
            Duration::ZERO
        }
    };
    if let Some(error) = &scenario.error {
        // The message attribute holds one line; a longer error goes in the body.
        let first_line = error.lines().next().unwrap_or_default();
        let result = TestResult::Error {
            type_: "could_not_run".to_string(),
            message: printable(first_line).into_owned(),
            cause: error.contains('\n').then(|| cdata_safe(error)),
        };
        suite.add_testcase(case("scenario", next_time(true), result, &classname, scenario));
    }
    for verdict in &scenario.verdicts {
        let time = next_time(verdict.outcome != Outcome::Skipped);
        let mut testcase = case(&verdict.requirement, time, result(verdict), &classname, scenario);
        // A pass's evidence (which fault landed, what was measured) is part of
        // the proof, so it is kept where CI shows it.
        if verdict.outcome == Outcome::Pass {
            testcase.system_out = Some(cdata_safe(&pass_details(verdict)));
        }
        suite.add_testcase(testcase);
    }
    suite.set_system_out(&cdata_safe(&suite_details(report, scenario)));
    suite
}

fn case(name: &str, time: Duration, result: TestResult, classname: &str, scenario: &ScenarioResult) -> TestCase {
    TestCase {
        name: printable(name).into_owned(),
        time,
        result,
        classname: Some(classname.to_string()),
        filepath: Some(printable(&scenario.file).into_owned()),
        system_out: None,
        system_err: None,
    }
}

fn result(verdict: &Verdict) -> TestResult {
    let message = printable(&format!("measured: {}; expected: {}", verdict.measured, verdict.expected)).into_owned();
    let cause = failure_text(verdict);
    match verdict.outcome {
        Outcome::Pass => TestResult::Success,
        Outcome::Fail => TestResult::Failure {
            type_: "fail".to_string(),
            message,
            cause,
        },
        Outcome::Inconclusive => TestResult::Error {
            type_: "inconclusive".to_string(),
            message,
            cause,
        },
        Outcome::Skipped => TestResult::SkippedWithCause {
            type_: "skipped".to_string(),
            message: printable(&verdict.measured).into_owned(),
            cause,
        },
    }
}

/// The body of a `<failure>`/`<error>`/`<skipped>`: the reading, then the
/// evidence, one per line. `None` when there is nothing to add to the message.
fn failure_text(verdict: &Verdict) -> Option<String> {
    let mut text = String::new();
    if let Some(reading) = &verdict.reading {
        let _ = writeln!(text, "reading: {reading}");
    }
    for line in &verdict.evidence {
        let _ = writeln!(text, "{line}");
    }
    (!text.is_empty()).then(|| cdata_safe(&text))
}

fn pass_details(verdict: &Verdict) -> String {
    let mut text = format!("measured: {}\nexpected: {}\n", verdict.measured, verdict.expected);
    if let Some(reading) = &verdict.reading {
        let _ = writeln!(text, "reading: {reading}");
    }
    for line in &verdict.evidence {
        let _ = writeln!(text, "{line}");
    }
    text
}

/// What a reader of a CI page needs to rerun or place the scenario.
fn suite_details(report: &RunReport, scenario: &ScenarioResult) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "scenario: {} ({})", scenario.name, scenario.file);
    if !scenario.description.is_empty() {
        let _ = writeln!(text, "description: {}", scenario.description);
    }
    let _ = writeln!(text, "stack: {} ({})", report.stack.name, report.stack.manifest);
    if !report.stack.breaks.is_empty() {
        let _ = writeln!(text, "breaks on purpose: {}", report.stack.breaks.join(", "));
    }
    let _ = writeln!(text, "seed: {}", report.seed);
    let _ = writeln!(text, "run: {}", report.run_id);
    match scenario.healthy_after_ms {
        Some(ms) => {
            let _ = writeln!(text, "healthy after: {ms} ms");
        }
        None => text.push_str("healthy after: never\n"),
    }
    for fault in &scenario.history.faults {
        let _ = writeln!(text, "{}", fault_line(fault));
    }
    for finding in &scenario.history.findings {
        let _ = writeln!(text, "finding {}: {}: {}", finding.id, finding.title, finding.evidence);
    }
    let _ = writeln!(text, "reproduce: {}", report.reproduce);
    text
}

fn fault_line(fault: &FaultRecord) -> String {
    let landed = if fault.landed { "landed" } else { "NOT proven to land" };
    format!(
        "fault #{} {} at {:.3} s: {landed} ({})",
        fault.index,
        fault.label,
        fault.injected_at as f64 / 1e6,
        fault.proof
    )
}

fn run_start(unix_ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The scenario's duration shared in whole milliseconds among its timed
/// testcases (skipped ones take no time), so each suite's time adds up to
/// the scenario's. Verdicts are judged after the run, so a per-verdict time
/// does not exist; an even split is the honest approximation.
fn split_time(scenario: &ScenarioResult) -> Vec<Duration> {
    let timed = usize::from(scenario.error.is_some()) + scenario.verdicts.iter().filter(|v| v.outcome != Outcome::Skipped).count();
    let Some(count) = u64::try_from(timed).ok().filter(|&n| n > 0) else {
        return Vec::new();
    };
    let share = scenario.duration_ms / count;
    let first = share + scenario.duration_ms % count;
    std::iter::once(first)
        .chain(std::iter::repeat_n(share, timed - 1))
        .map(|ms| Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample_report;

    /// Breaks the one-line XML at tag boundaries outside CDATA, so the
    /// snapshot can be read and diffed.
    fn one_tag_per_line(xml: &str) -> String {
        let mut out = String::new();
        let mut rest = xml;
        while let Some(start) = rest.find("<![CDATA[") {
            out.push_str(&rest[..start].replace("><", ">\n<"));
            let Some(len) = rest[start..].find("]]>") else {
                break;
            };
            out.push_str(&rest[start..start + len + 3]);
            rest = &rest[start + len + 3..];
        }
        out.push_str(&rest.replace("><", ">\n<"));
        out
    }

    /// The XML with every CDATA section removed: what the parser sees as markup.
    fn markup_only(xml: &str) -> String {
        let mut out = String::new();
        let mut rest = xml;
        while let Some(start) = rest.find("<![CDATA[") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("]]>").map_or(rest.len(), |len| start + len + 3);
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn junit_snapshot() {
        let xml = render_junit(&sample_report()).expect("renders");
        insta::assert_snapshot!(one_tag_per_line(&xml));
    }

    #[test]
    fn one_testcase_per_verdict_and_per_scenario_error() {
        let report = sample_report();
        let xml = render_junit(&report).expect("renders");
        let count = |needle: &str| xml.matches(needle).count();
        let outcomes = report.counts();
        let errors = report.scenarios.iter().filter(|s| s.error.is_some()).count();
        assert_eq!(count("<testsuite "), report.scenarios.len());
        assert_eq!(count("<testcase "), report.all_verdicts().count() + errors);
        assert_eq!(count("<failure "), outcomes[1].1);
        assert_eq!(count("<error "), outcomes[2].1 + errors);
        assert_eq!(count("<skipped "), outcomes[3].1);
        assert!(xml.contains(r#"<testcase name="GS-EXIT""#));
        assert!(xml.contains(r#"classname="chaosgate.graceful-shutdown""#));
        assert!(xml.contains(r#"<error type="could_not_run""#));
    }

    #[test]
    fn special_characters_are_escaped() {
        let xml = render_junit(&sample_report()).expect("renders");
        // In attributes: escaped as entities.
        assert!(xml.contains("&quot;503 &lt;draining&gt;&quot; &amp; kept"));
        // In text: inside CDATA, with `]]>` split so the section does not end early.
        assert!(xml.contains("<error> \"redis\" & 'cache' ]]]]><![CDATA[> still open"));
        let markup = markup_only(&xml);
        for (i, _) in markup.match_indices('&') {
            let entity = &markup[i..markup.len().min(i + 6)];
            assert!(
                ["&lt;", "&gt;", "&amp;", "&quot;", "&apos;"].iter().any(|e| entity.starts_with(e)),
                "bare & in markup: {entity}"
            );
        }
        assert!(!markup.contains("\"redis\""), "quote left raw in markup");
    }

    #[test]
    fn control_characters_do_not_reach_the_xml() {
        let mut report = sample_report();
        report.scenarios[0].verdicts[1]
            .evidence
            .push("colour \u{1b}[31mred\u{0}".to_string());
        report.scenarios[0].verdicts[1].measured.push('\u{7}');
        let xml = render_junit(&report).expect("renders");
        assert!(!xml.chars().any(|c| c.is_control() && c != '\n'));
        assert!(xml.contains("colour \\u{1b}[31mred\\u{0}"));
    }

    #[test]
    fn suite_time_adds_up_to_the_scenario_duration() {
        let report = sample_report();
        let scenario = &report.scenarios[0];
        let total: Duration = split_time(scenario).into_iter().sum();
        assert_eq!(total, Duration::milliseconds(41_500));
        assert_eq!(split_time(scenario).len(), 3, "skipped verdicts take no time");
    }
}
