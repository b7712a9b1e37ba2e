//! The baseline: the load before the first fault. A stack that already
//! fails its ordinary load (a limiter on every path, a route that is 404)
//! cannot show what a fault did to it, so every verdict that judges the
//! load is inconclusive, with the baseline's figures, instead of blaming
//! the fault for what was there before it.

use super::verdict::{Outcome, Verdict};
use crate::history::{BaselineRecord, History};

/// More failed or unexpected answers than this share of the baseline: it already fails.
pub const MAX_BAD_SHARE: f64 = 0.01;
/// Fewer completed requests than this before the first fault: too few to say.
pub const MIN_REQUESTS: u64 = 20;

/// Requirements judged from the load's outcomes (not from probes or the harness's own requests).
pub const LOAD_JUDGED: &[&str] = &[
    "GS-DRAIN",
    "NX-RELOAD",
    "NX-FAILOVER",
    "NX-502",
    "NX-KEEPALIVE",
    "RD-RECOVER",
    "CF-HOT",
    "TLS-EXPIRY",
];

/// The requests that completed before the first fault was injected.
pub fn of(h: &History) -> Option<BaselineRecord> {
    let (load_from, _) = h.load_window?;
    let until = h.faults.iter().map(|f| f.injected_at).min().unwrap_or(u64::MAX);
    let mut b = BaselineRecord {
        from: load_from,
        until: until.min(h.requests.iter().map(|r| r.end).max().unwrap_or(0)),
        ..Default::default()
    };
    for r in h.requests.iter().filter(|r| r.end <= until) {
        b.requests += 1;
        if !h.as_expected(r) {
            b.bad += 1;
        }
        let key = if r.error.is_error() {
            format!("{:?}", r.error).to_lowercase()
        } else {
            r.status.to_string()
        };
        *b.statuses.entry(key).or_default() += 1;
    }
    Some(b)
}

impl BaselineRecord {
    pub fn fails(&self) -> bool {
        self.requests >= MIN_REQUESTS && self.bad as f64 > self.requests as f64 * MAX_BAD_SHARE
    }

    pub fn describe(&self) -> String {
        let mix: Vec<String> = self.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        format!(
            "before any fault, {} of {} requests ({:.1} %) failed or got a status their route does not expect ({})",
            self.bad,
            self.requests,
            100.0 * self.bad as f64 / self.requests.max(1) as f64,
            mix.join(", ")
        )
    }
}

/// A load-judged verdict on a stack whose baseline already fails becomes inconclusive.
pub fn apply(id: &str, h: &History, v: Verdict) -> Verdict {
    let Some(b) = h.baseline.as_ref().filter(|b| b.fails()) else {
        return v;
    };
    if !LOAD_JUDGED.contains(&id) {
        return v;
    }
    let mut out = Verdict::new(
        id,
        Outcome::Inconclusive,
        format!(
            "{}: the stack already failed its ordinary load, so no fault can be judged by it",
            b.describe()
        ),
        v.expected.clone(),
    )
    .with_evidence(format!("what the check would have said ({}): {}", v.outcome.as_str(), v.measured));
    if let Some(why) = &b.explanation {
        out = out.with_evidence(why.clone());
    }
    out.with_reading(format!(
        "the baseline (requests completed before the first fault) must have at most {:.0} % failures",
        MAX_BAD_SHARE * 100.0
    ))
}
