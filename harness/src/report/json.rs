//! `run.json`: the whole run, verdicts and histories, for tools and audits.
//!
//! The document is [`RunReport`] serialized with serde; `docs/run-json.md`
//! describes every field. In short (schema_version 2):
//!
//! - top level: `schema_version`, `run_id`, `harness_version`, `stack`
//!   (`name`, `manifest`, `breaks` when non-empty), `seed`,
//!   `started_unix_ms` (wall clock, ms since the Unix epoch), `duration_ms`,
//!   `scenarios`, `reproduce` (the command that reruns it);
//! - each scenario: `name`, `file`, `description`, `duration_ms`,
//!   `healthy_after_ms` (null if never), `verdicts`, `error` (null if it
//!   ran), `history`;
//! - each verdict: `requirement`, `outcome` (`pass`, `fail`, `inconclusive`,
//!   `skipped`), `measured`, `expected`, `evidence` (lines), `reading` when
//!   the verdict relies on a reading of a vague requirement;
//! - `history`: `requests` (rows `[start, end, status, route, version,
//!   error, bytes]`), `versions`, `routes`, `probes`, `events`,
//!   `faults`, `findings`, `load_window`. Every time in a history is in
//!   microseconds since the run's clock started (one monotonic axis per
//!   run); fields ending in `_ms` are milliseconds and `_us` microseconds.
//!
//! Readers should check `schema_version` and ignore fields they do not know:
//! new fields may appear without a version bump, removals and changes bump it.

use crate::report::ReportError;
use crate::report::model::RunReport;
use std::io::Write;

/// Renders the run as run.json holds it (compact).
pub fn render_json(report: &RunReport) -> Result<String, ReportError> {
    serde_json::to_string(report).map_err(ReportError::Json)
}

/// Streams the run as compact JSON: a long soak records millions of requests,
/// which need not be held in memory twice, nor indented (`jq .` pretty-prints).
pub(crate) fn write_json(report: &RunReport, out: impl Write) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample_report;

    #[test]
    fn requests_are_rows_and_schema_1_objects_still_read() {
        use crate::history::{RequestRecord, TransportError};
        let r = RequestRecord {
            start: 1,
            end: 2,
            status: 200,
            route: 0,
            version: 1,
            error: TransportError::None,
            bytes: 5,
        };
        let row = serde_json::to_string(&r).expect("serializes");
        assert_eq!(row, r#"[1,2,200,0,1,"none",5]"#);
        assert_eq!(serde_json::from_str::<RequestRecord>(&row).expect("row"), r);
        let object = r#"{"start":1,"end":2,"status":200,"route":0,"version":1,"error":"none","bytes":5}"#;
        assert_eq!(serde_json::from_str::<RequestRecord>(object).expect("schema 1 object"), r);
    }

    #[test]
    fn round_trip_keeps_the_verdicts() {
        let report = sample_report();
        let json = render_json(&report).expect("renders");
        let back: RunReport = serde_json::from_str(&json).expect("parses");
        let verdicts = |r: &RunReport| r.all_verdicts().cloned().collect::<Vec<_>>();
        assert_eq!(verdicts(&back), verdicts(&report));
        assert_eq!(back.scenarios[1].error, report.scenarios[1].error);
        assert_eq!(back.scenarios[0].history.faults, report.scenarios[0].history.faults);
        assert_eq!(back.scenarios[0].history.requests, report.scenarios[0].history.requests);
    }

    #[test]
    fn schema_version_is_present() {
        let json = render_json(&sample_report()).expect("renders");
        let value: serde_json::Value = serde_json::from_str(&json).expect("parses");
        assert_eq!(value["schema_version"], 2);
        assert_eq!(value["scenarios"][0]["verdicts"][0]["outcome"], "pass");
    }

    #[test]
    fn streaming_and_string_agree() {
        let report = sample_report();
        let mut streamed = Vec::new();
        write_json(&report, &mut streamed).expect("writes");
        assert_eq!(String::from_utf8(streamed).expect("utf-8"), render_json(&report).expect("renders"));
    }

    /// The schema is a contract with other tools: any change shows up here.
    #[test]
    fn json_snapshot() {
        // Pretty-printed for a readable snapshot; the file itself is compact.
        insta::assert_snapshot!(serde_json::to_string_pretty(&sample_report()).expect("renders"));
    }
}
