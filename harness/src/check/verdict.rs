//! Verdicts: what a checker concludes about one requirement, with evidence.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The four outcomes, ordered from best to worst for merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The stack declares it does not implement the thing, or the user deselected it.
    Skipped,
    /// The requirement held and the fault that tests it is proven to have landed.
    Pass,
    /// The harness could not prove what it needed. Never reported as pass.
    Inconclusive,
    /// The requirement was violated.
    Fail,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The judgement of one requirement in one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Requirement ID from the standard, e.g. "GS-DRAIN".
    pub requirement: String,
    pub outcome: Outcome,
    /// What was measured, in one line ("12 of 12 in-flight requests completed with 2xx").
    pub measured: String,
    /// What it was measured against ("every request in flight at SIGTERM completes with 2xx").
    pub expected: String,
    /// Details: which requests, samples, log lines.
    pub evidence: Vec<String>,
    /// The reading of a vague requirement that this verdict relies on, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reading: Option<String>,
}

impl Verdict {
    pub fn new(requirement: &str, outcome: Outcome, measured: impl Into<String>, expected: impl Into<String>) -> Self {
        Self {
            requirement: requirement.to_string(),
            outcome,
            measured: measured.into(),
            expected: expected.into(),
            evidence: Vec::new(),
            reading: None,
        }
    }

    pub fn with_evidence(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }

    pub fn with_evidences(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(lines);
        self
    }

    pub fn with_reading(mut self, reading: impl Into<String>) -> Self {
        self.reading = Some(reading.into());
        self
    }

    /// Merge two verdicts on the same requirement: the worse outcome wins, and
    /// both keep their evidence (Jepsen's worst-first merge).
    pub fn merge(self, other: Verdict) -> Verdict {
        let (mut worse, better) = if other.outcome > self.outcome {
            (other, self)
        } else {
            (self, other)
        };
        if better.outcome != Outcome::Skipped {
            worse.evidence.push(format!("also: {}: {}", better.outcome, better.measured));
            worse.evidence.extend(better.evidence);
        }
        worse
    }
}

/// Exit status of a run, as documented in `chaosgate --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    AllPassed = 0,
    Failed = 1,
    Inconclusive = 2,
    CouldNotRun = 3,
}

impl RunStatus {
    pub fn from_outcomes<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Self {
        match outcomes.into_iter().max() {
            Some(Outcome::Fail) => RunStatus::Failed,
            Some(Outcome::Inconclusive) => RunStatus::Inconclusive,
            _ => RunStatus::AllPassed,
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_the_worse_outcome_and_both_evidences() {
        let pass = Verdict::new("HC-READY", Outcome::Pass, "ready fell in 12 ms", "≤ 500 ms").with_evidence("a");
        let fail = Verdict::new("HC-READY", Outcome::Fail, "ready 200 during outage", "non-2xx").with_evidence("b");
        let merged = pass.clone().merge(fail.clone());
        assert_eq!(merged.outcome, Outcome::Fail);
        assert_eq!(merged.measured, "ready 200 during outage");
        assert!(merged.evidence.contains(&"a".to_string()));
        assert!(merged.evidence.contains(&"b".to_string()));
        assert_eq!(fail.merge(pass).outcome, Outcome::Fail);
    }

    #[test]
    fn exit_status_follows_the_worst_outcome() {
        use Outcome::*;
        assert_eq!(RunStatus::from_outcomes(&[Pass, Skipped]), RunStatus::AllPassed);
        assert_eq!(RunStatus::from_outcomes(&[Pass, Inconclusive]), RunStatus::Inconclusive);
        assert_eq!(RunStatus::from_outcomes(&[Inconclusive, Fail, Pass]), RunStatus::Failed);
        assert_eq!(RunStatus::from_outcomes(&[]), RunStatus::AllPassed);
    }
}
