//! Section 4: blue-green, canary and rollback, judged from what each
//! response says about its version (the stack's version header), never from
//! what the release controller reports.

use super::verdict::{Outcome, Verdict};
use super::{CheckInput, rel};
use crate::history::{FaultDetail, FaultRecord, History, Micros, ReleaseObservation, RequestRecord};
use std::collections::BTreeMap;

/// Share timelines are cut into windows this long.
const WINDOW: Micros = 500_000;
/// After a step ends, traffic is read from here...
const SETTLE: Micros = 500_000;
/// ...for this long (or until the next fault starts).
const AFTER: Micros = 2_000_000;
/// CN-WATCH's reading: a crossed threshold is noticed within this long.
const NOTICE_DEADLINE: Micros = 30_000_000;
/// BG-BACK's reading of "within seconds".
const BACK_DEADLINE: Micros = 10_000_000;
/// The standard's canary thresholds (section 5): error rate and P95.
const MAX_ERROR_RATE: f64 = 0.05;
const MAX_P95: Micros = 2_000_000;
/// Canary answers needed before a threshold counts as crossed.
const MIN_ANSWERS: usize = 10;

struct Step<'a> {
    fault: &'a FaultRecord,
    obs: &'a ReleaseObservation,
}

impl Step<'_> {
    fn ended(&self) -> Micros {
        self.obs.ended_at.unwrap_or(self.fault.injected_at)
    }
    fn succeeded(&self) -> bool {
        self.obs.exit_code == Some(0)
    }
    fn describe_exit(&self) -> String {
        let out = self.obs.output.trim();
        let tail: Vec<&str> = out.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        match self.obs.exit_code {
            Some(c) => format!("`{}` exited {c}: {}", self.obs.step, tail.join(" / ")),
            None => format!("`{}` did not finish: {}", self.obs.step, self.fault.proof),
        }
    }
}

fn steps(h: &History) -> Vec<Step<'_>> {
    h.faults
        .iter()
        .filter_map(|f| match &f.detail {
            FaultDetail::Release(obs) if f.landed => Some(Step { fault: f, obs }),
            _ => None,
        })
        .collect()
}

/// The verdict when no step of a kind ran: the stack lacks the command
/// (recorded by the nemesis, turned into a fail by `lacking`), or the
/// scenario has none.
fn no_step(id: &str, h: &History, what: &str, expected: &str) -> Verdict {
    let not_landed = h.faults.iter().find(|f| matches!(f.detail, FaultDetail::Release(_)) && !f.landed);
    match not_landed {
        Some(f) => super::not_landed(id, f),
        None => Verdict::new(id, Outcome::Inconclusive, format!("no {what} in this scenario"), expected),
    }
}

fn failed(r: &RequestRecord) -> bool {
    r.error.is_error() || r.status == 0 || r.status >= 500
}

/// Answers carrying a version, by version, among requests started in [from, to).
fn tally(h: &History, from: Micros, to: Micros) -> BTreeMap<&str, u32> {
    let mut counts = BTreeMap::new();
    for r in h.requests_between(from, to).filter(|r| r.version != 0) {
        *counts.entry(h.version_name(r.version)).or_insert(0) += 1;
    }
    counts
}

/// The version that answered most in [from, to), its share and the number of answers.
fn dominant(h: &History, from: Micros, to: Micros) -> Option<(String, f64, u32)> {
    let counts = tally(h, from, to);
    let total: u32 = counts.values().sum();
    let (v, n) = counts.into_iter().max_by_key(|(_, n)| *n)?;
    Some((v.to_string(), n as f64 / total as f64, total))
}

fn share(h: &History, version: &str, from: Micros, to: Micros) -> (f64, u32) {
    let counts = tally(h, from, to);
    let total: u32 = counts.values().sum();
    let hits = counts.get(version).copied().unwrap_or(0);
    (if total == 0 { 0.0 } else { hits as f64 / total as f64 }, total)
}

/// Traffic right after a step: from a settling moment on, until the next fault starts.
fn after_window(h: &History, s: &Step<'_>) -> (Micros, Micros) {
    let from = s.ended() + SETTLE;
    let next = h
        .faults
        .iter()
        .filter(|f| f.index > s.fault.index)
        .map(|f| f.injected_at)
        .min()
        .unwrap_or(Micros::MAX);
    let last = h.requests.iter().map(|r| r.start).max().unwrap_or(0);
    (from, (from + AFTER).min(next).min(last + 1))
}

fn before_window(s: &Step<'_>) -> (Micros, Micros) {
    (s.fault.injected_at.saturating_sub(1_000_000), s.fault.injected_at)
}

/// Requests that failed while [from, to) lasted (started before its end, ended after its start).
fn failures(h: &History, from: Micros, to: Micros) -> Vec<&RequestRecord> {
    h.requests.iter().filter(|r| r.start < to && r.end >= from && failed(r)).collect()
}

fn overlapping(h: &History, from: Micros, to: Micros) -> usize {
    h.requests.iter().filter(|r| r.start < to && r.end >= from).count()
}

/// A version's share in consecutive windows: (window start, share, answers).
fn series(h: &History, version: &str, from: Micros, to: Micros) -> Vec<(Micros, f64, u32)> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let (s, n) = share(h, version, t, (t + WINDOW).min(to));
        if n > 0 {
            out.push((t, s, n));
        }
        t += WINDOW;
    }
    out
}

/// Plateaus of a share timeline: consecutive windows close to their mean
/// (within 2 points, or a fifth of the mean: 5 % and 0 % are two steps, 48 % and 52 % one).
#[derive(Debug, Clone, Copy)]
struct Plateau {
    windows: u32,
    share: f64,
}

fn plateaus(series: &[(Micros, f64, u32)]) -> Vec<Plateau> {
    let mut out: Vec<Plateau> = Vec::new();
    for &(_, s, _) in series {
        match out.last_mut() {
            Some(p) if (s - p.share).abs() <= (0.2 * p.share).max(0.02) => {
                p.share = (p.share * p.windows as f64 + s) / (p.windows + 1) as f64;
                p.windows += 1;
            }
            _ => out.push(Plateau { windows: 1, share: s }),
        }
    }
    out
}

fn describe_plateaus(ps: &[Plateau]) -> String {
    ps.iter()
        .map(|p| format!("{:.0} % for {:.1} s", p.share * 100.0, p.windows as f64 * WINDOW as f64 / 1e6))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Steps strictly between none and all: plateaus held for at least two
/// windows (1 s), below 90 %. A shorter one is the moment of a switch
/// split across two windows, and a share in the 90s the tail of one (the
/// old workers of a reloaded proxy finishing), so an all-at-once switch
/// shows none.
fn intermediate(ps: &[Plateau]) -> Vec<Plateau> {
    ps.iter()
        .copied()
        .filter(|p| p.windows >= 2 && p.share > 0.005 && p.share < 0.9)
        .collect()
}

fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

/// The version a deploy or canary step released, and whether it was a defective build.
fn build_of<'a>(all: &'a [Step<'a>], version: &str) -> Option<&'a Step<'a>> {
    all.iter()
        .find(|s| matches!(s.obs.step.as_str(), "deploy" | "canary") && s.obs.version.as_deref() == Some(version))
}

fn is_bad_build(all: &[Step<'_>], version: &str) -> bool {
    build_of(all, version).is_some_and(|s| s.obs.variant.is_some())
}

/// From-version and to-version of a switch-like step, as traffic shows them.
fn moved(h: &History, s: &Step<'_>) -> (Option<String>, Option<(String, f64, u32)>) {
    let (bf, bt) = before_window(s);
    let (af, at) = after_window(h, s);
    (dominant(h, bf, bt).map(|d| d.0), dominant(h, af, at))
}

pub fn bg_zero(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "BG-ZERO";
    let expected = "switching colours under steady load fails no request";
    let h = input.history;
    let all = steps(h);
    let switches: Vec<&Step> = all.iter().filter(|s| s.obs.step == "switch").collect();
    if switches.is_empty() {
        return no_step(ID, h, "blue-green switch", expected);
    }
    let mut judged = Vec::new();
    for s in switches {
        let (from, to) = moved(h, s);
        let (Some(from), Some((to, to_share, answers))) = (from, to) else {
            return Verdict::new(
                ID,
                Outcome::Inconclusive,
                "no answers with a version header around the switch",
                expected,
            );
        };
        // A switch to a broken build fails requests by design; BG-BACK judges the way back.
        if is_bad_build(&all, &to) || is_bad_build(&all, &from) {
            continue;
        }
        if !s.succeeded() {
            return Verdict::new(ID, Outcome::Fail, format!("the switch failed: {}", s.describe_exit()), expected);
        }
        if from == to {
            return Verdict::new(
                ID,
                Outcome::Fail,
                format!(
                    "the switch had no effect: {from} still answered {} of {answers} requests after it",
                    pct(to_share)
                ),
                expected,
            );
        }
        let total = match failed_during(ID, h, s, &format!("switch {from} → {to}"), expected) {
            Ok(total) => total,
            Err(fail) => return *fail,
        };
        judged.push(format!(
            "switch {from} → {to}: 0 of {total} requests failed; {to} answered {} afterwards",
            pct(to_share)
        ));
    }
    if judged.is_empty() {
        return Verdict::new(ID, Outcome::Inconclusive, "every switch involved a defective build", expected);
    }
    Verdict::new(ID, Outcome::Pass, judged.join("; "), expected)
}

/// The requests a step overlapped (until 1 s after it), or the fail
/// verdict when one of them failed.
fn failed_during(id: &str, h: &History, s: &Step<'_>, what: &str, expected: &str) -> Result<usize, Box<Verdict>> {
    let (from, to) = (s.fault.injected_at, s.ended() + 1_000_000);
    let bad = failures(h, from, to);
    let total = overlapping(h, from, to);
    match bad.first() {
        Some(first) => Err(Box::new(
            Verdict::new(
                id,
                Outcome::Fail,
                format!("{what}: {} of {total} requests failed during it", bad.len()),
                expected,
            )
            .with_evidence(first_failure(h, first, s)),
        )),
        None => Ok(total),
    }
}

/// "first at +812 ms with status 502 (no version header)", relative to the step.
fn first_failure(h: &History, r: &RequestRecord, s: &Step<'_>) -> String {
    format!(
        "first at {} with status {} ({})",
        rel(r.start, s.fault.injected_at),
        r.status,
        version_or_none(h, r)
    )
}

fn version_or_none(h: &History, r: &RequestRecord) -> String {
    match h.version_name(r.version) {
        "" => "no version header".into(),
        v => v.to_string(),
    }
}

pub fn bg_shift(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "BG-SHIFT";
    let expected = "the new version's share rises through steps during a switch";
    let h = input.history;
    let all = steps(h);
    let Some(s) = all.iter().find(|s| {
        s.obs.step == "switch" && s.succeeded() && {
            let (from, to) = moved(h, s);
            from.is_some_and(|f| !is_bad_build(&all, &f)) && to.is_some_and(|t| !is_bad_build(&all, &t.0))
        }
    }) else {
        return no_step(ID, h, "switch between two good builds", expected);
    };
    if s.obs.switching == "all-at-once" {
        return Verdict::new(
            ID,
            Outcome::Skipped,
            "the stack declares all-at-once switching (`[deploy] switching`); gradual shifting is a canary's (finding 3)",
            expected,
        )
        .with_reading("BG-SHIFT applies only where the stack declares gradual switching (spec finding 3)");
    }
    let (_, Some((to, _, _))) = moved(h, s) else {
        return Verdict::new(ID, Outcome::Inconclusive, "no answers after the switch", expected);
    };
    let timeline = series(h, &to, s.fault.injected_at, s.ended() + 2_000_000);
    let ps = plateaus(&timeline);
    let steps_seen = intermediate(&ps);
    let reached = ps.last().is_some_and(|p| p.share >= 0.95);
    let described = describe_plateaus(&ps);
    if steps_seen.is_empty() || !reached {
        return Verdict::new(
            ID,
            Outcome::Fail,
            if reached {
                format!("{to} went from 0 to 100 % with no step held in between: {described}")
            } else {
                format!("{to} never reached 100 % during the switch: {described}")
            },
            expected,
        );
    }
    Verdict::new(
        ID,
        Outcome::Pass,
        format!("{to}'s share rose through {} step(s): {described}", steps_seen.len()),
        expected,
    )
}

pub fn bg_back(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "BG-BACK";
    let expected = "switching back restores the old version within seconds, failing no request it serves";
    let h = input.history;
    let all = steps(h);
    let switches: Vec<&Step> = all.iter().filter(|s| s.obs.step == "switch").collect();
    // A switch back: it returns to the version the switch before it left.
    let back = switches.windows(2).find_map(|pair| {
        let (from1, to1) = moved(h, pair[0]);
        let (from2, to2) = moved(h, pair[1]);
        let (from1, to1, from2, to2) = (from1?, to1?.0, from2?, to2?.0);
        (from2 == to1 && to2 == from1).then(|| (pair[1], to1, from1))
    });
    let Some((s, bad, good)) = back else {
        // A switch back that restored nothing looks like no switch back: say so.
        if let Some(pair) = switches.windows(2).last() {
            let (from1, to1) = moved(h, pair[0]);
            let (_, to2) = moved(h, pair[1]);
            if let (Some(from1), Some(to1), Some(to2)) = (from1, to1, to2) {
                return Verdict::new(
                    ID,
                    Outcome::Fail,
                    format!(
                        "after switching {from1} → {} and switching back, {} answered {} (expected {from1})",
                        to1.0,
                        to2.0,
                        pct(to2.1)
                    ),
                    expected,
                )
                .with_evidence(pair[1].describe_exit());
            }
        }
        return no_step(ID, h, "switch followed by a switch back", expected);
    };
    if !s.succeeded() {
        return Verdict::new(ID, Outcome::Fail, format!("switching back failed: {}", s.describe_exit()), expected);
    }
    let restored_at = series(h, &good, s.fault.injected_at, s.ended() + AFTER)
        .into_iter()
        .find(|(_, share, _)| *share >= 0.99)
        .map(|(t, _, _)| t + WINDOW);
    let Some(restored_at) = restored_at else {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!("{good} never answered everything again after the switch back"),
            expected,
        );
    };
    let took = restored_at.saturating_sub(s.fault.injected_at);
    // The broken build's own errors are what the switch back ends; others are not allowed.
    let window = (s.fault.injected_at, s.ended() + 1_000_000);
    let others: Vec<&RequestRecord> = failures(h, window.0, window.1)
        .into_iter()
        .filter(|r| h.version_name(r.version) != bad)
        .collect();
    let label = if is_bad_build(&all, &bad) {
        format!("{bad} (defective build)")
    } else {
        bad.clone()
    };
    if let Some(first) = others.first() {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "switching back from {label} to {good}: {} requests failed that {bad} did not serve",
                others.len()
            ),
            expected,
        )
        .with_evidence(first_failure(h, first, s));
    }
    if took > BACK_DEADLINE {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "{good} answered everything again only {} ms after the switch back began",
                took / 1000
            ),
            expected,
        )
        .with_reading("\"within seconds\": within 10 s of the switch back");
    }
    Verdict::new(
        ID,
        Outcome::Pass,
        format!(
            "switched back from {label} to {good}: {good} answered 100 % within {} ms; no request failed that {bad} did not serve",
            took / 1000
        ),
        expected,
    )
    .with_reading("\"within seconds\": within 10 s of the switch back")
}

/// The canary's answers from the first one on: (first answer's start, share in the first second, answers then).
fn first_step(h: &History, version: &str, s: &Step<'_>) -> Option<(Micros, f64, u32)> {
    let t0 = h
        .requests
        .iter()
        .filter(|r| r.start >= s.fault.injected_at && h.version_name(r.version) == version)
        .map(|r| r.start)
        .min()?;
    let (share, n) = share(h, version, t0, t0 + 1_000_000);
    Some((t0, share, n))
}

pub fn cn_small(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CN-SMALL";
    let h = input.history;
    let all = steps(h);
    let Some(s) = all.iter().find(|s| s.obs.step == "canary") else {
        return no_step(ID, h, "canary", "a canary's first step gets a small share");
    };
    let limit = if s.obs.first_step_max_percent > 0.0 {
        s.obs.first_step_max_percent
    } else {
        10.0
    };
    let expected = format!("the canary's first step gets at most {limit:.0} % of traffic");
    let version = s.obs.version.clone().unwrap_or_default();
    let Some((t0, first, n)) = first_step(h, &version, s) else {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!("the canary {version} never answered a request: it got no traffic"),
            expected,
        )
        .with_evidence(s.describe_exit());
    };
    let measured = format!(
        "first canary answer at {}; {version} answered {:.1} % of {n} requests in the first second",
        rel(t0, s.fault.injected_at),
        first * 100.0
    );
    let outcome = if first * 100.0 <= limit { Outcome::Pass } else { Outcome::Fail };
    Verdict::new(ID, outcome, measured, expected).with_reading(format!(
        "\"small\": at most {limit:.0} % (the stack's `[deploy] first_step_max_percent`, 10 by default), measured over the first second of canary answers"
    ))
}

pub fn cn_widen(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CN-WIDEN";
    let expected = "a healthy canary's share rises through several steps to 100 %";
    let h = input.history;
    let all = steps(h);
    let Some(s) = all.iter().find(|s| s.obs.step == "canary" && s.obs.variant.is_none()) else {
        return no_step(ID, h, "healthy canary", expected);
    };
    let version = s.obs.version.clone().unwrap_or_default();
    let ps = plateaus(&series(h, &version, s.fault.injected_at, s.ended() + 1_000_000));
    let described = describe_plateaus(&ps);
    if !s.succeeded() {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!("the healthy canary {version} was not promoted: {}", s.describe_exit()),
            expected,
        )
        .with_evidence(format!("share: {described}"));
    }
    let (af, at) = after_window(h, s);
    let (after, answers) = share(h, &version, af, at);
    let steps_seen = intermediate(&ps);
    if after < 0.99 {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "after the canary finished, {version} answered {} of {answers} requests, not 100 %",
                pct(after)
            ),
            expected,
        )
        .with_evidence(format!("share: {described}"));
    }
    if steps_seen.len() < 2 {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "{version} reached 100 % through {} step(s), not several: {described}",
                steps_seen.len()
            ),
            expected,
        );
    }
    Verdict::new(
        ID,
        Outcome::Pass,
        format!("{version} widened through {} steps to 100 %: {described}", steps_seen.len()),
        expected,
    )
}

/// When the harness saw a bad canary cross the standard's thresholds, from
/// the canary's own answers in the order they ended.
fn crossing(h: &History, version: &str, from: Micros) -> Option<(Micros, String)> {
    let mut answers: Vec<&RequestRecord> = h
        .requests
        .iter()
        .filter(|r| r.start >= from && h.version_name(r.version) == version)
        .collect();
    answers.sort_by_key(|r| r.end);
    let mut errors = 0usize;
    let mut latencies: Vec<Micros> = Vec::new();
    for (i, r) in answers.iter().enumerate() {
        errors += usize::from(failed(r));
        latencies.push(r.end - r.start);
        let n = i + 1;
        if n < MIN_ANSWERS {
            continue;
        }
        let rate = errors as f64 / n as f64;
        if rate > MAX_ERROR_RATE {
            return Some((r.end, format!("error rate {:.0} % of its first {n} answers > 5 %", rate * 100.0)));
        }
        let mut sorted = latencies.clone();
        sorted.sort_unstable();
        let p95 = sorted[(n * 95).div_ceil(100) - 1];
        if p95 > MAX_P95 {
            return Some((r.end, format!("P95 {} ms of its first {n} answers > 2000 ms", p95 / 1000)));
        }
    }
    None
}

struct BadCanary {
    version: String,
    crossed_at: Micros,
    why: String,
    /// The start of the last request the canary answered.
    last_answer: Micros,
    highest_share: f64,
    timeline: String,
}

/// Judge every defective canary of the scenario with `judge`; the worst verdict leads, a pass names them all.
fn each_bad_canary(id: &str, h: &History, expected: &str, judge: impl Fn(&Step<'_>, &BadCanary) -> Verdict) -> Verdict {
    let all = steps(h);
    let bad: Vec<&Step> = all.iter().filter(|s| s.obs.step == "canary" && s.obs.variant.is_some()).collect();
    if bad.is_empty() {
        return no_step(id, h, "defective canary", expected);
    }
    let verdicts: Vec<Verdict> = bad
        .into_iter()
        .map(|s| match bad_canary(h, s) {
            Ok(c) => judge(s, &c),
            Err(why) => Verdict::new(id, Outcome::Inconclusive, why, expected),
        })
        .collect();
    let all_passed = verdicts.iter().all(|v| v.outcome == Outcome::Pass);
    let summary = verdicts.iter().map(|v| v.measured.clone()).collect::<Vec<_>>().join("; ");
    let mut v = verdicts
        .into_iter()
        .reduce(Verdict::merge)
        .unwrap_or_else(|| unreachable!("bad is not empty"));
    if all_passed {
        v.measured = summary;
        v.evidence.retain(|e| !e.starts_with("also: pass"));
    }
    v
}

fn bad_canary(h: &History, s: &Step<'_>) -> Result<BadCanary, String> {
    let version = s.obs.version.clone().unwrap_or_default();
    let Some((crossed_at, why)) = crossing(h, &version, s.fault.injected_at) else {
        let n = h.requests.iter().filter(|r| h.version_name(r.version) == version).count();
        return Err(format!(
            "the defective canary {version} never crossed a threshold in the {n} answers the harness saw: the fault did not take effect"
        ));
    };
    let last_answer = h
        .requests
        .iter()
        .filter(|r| r.start >= s.fault.injected_at && h.version_name(r.version) == version)
        .map(|r| r.start)
        .max()
        .unwrap_or(crossed_at);
    let timeline = series(h, &version, s.fault.injected_at, s.ended() + 1_000_000);
    let ps = plateaus(&timeline);
    Ok(BadCanary {
        version,
        crossed_at,
        why,
        last_answer,
        highest_share: timeline.iter().map(|w| w.1).fold(0.0, f64::max),
        timeline: describe_plateaus(&ps),
    })
}

pub fn cn_watch(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CN-WATCH";
    let expected = "a canary whose error rate exceeds 5 % or whose P95 exceeds 2 s is noticed and taken out";
    let h = input.history;
    each_bad_canary(ID, h, expected, |s, c| watch_one(h, s, c))
}

fn watch_one(h: &History, s: &Step<'_>, c: &BadCanary) -> Verdict {
    const ID: &str = "CN-WATCH";
    let expected = "a canary whose error rate exceeds 5 % or whose P95 exceeds 2 s is noticed and taken out";
    let reading = "noticed: taken out of traffic within 30 s of the harness seeing the threshold crossed, never widened to 100 %";
    let (af, at) = after_window(h, s);
    let (after, _) = share(h, &c.version, af, at);
    if c.highest_share >= 0.97 || after > 0.0 {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "{}: crossed at {} ({}) but never taken out: {} after the canary step",
                c.version,
                rel(c.crossed_at, s.fault.injected_at),
                c.why,
                pct(after)
            ),
            expected,
        )
        .with_evidence(format!("share: {}", c.timeline))
        .with_reading(reading);
    }
    let delay = c.last_answer.saturating_sub(c.crossed_at);
    let outcome = if delay <= NOTICE_DEADLINE { Outcome::Pass } else { Outcome::Fail };
    Verdict::new(
        ID,
        outcome,
        format!(
            "{}: {} at {}; last request sent to it {} ms later; highest share {}",
            c.version,
            c.why,
            rel(c.crossed_at, s.fault.injected_at),
            delay / 1000,
            pct(c.highest_share)
        ),
        expected,
    )
    .with_evidence(format!("share: {}", c.timeline))
    .with_evidence(s.describe_exit())
    .with_reading(reading)
}

pub fn cn_abort(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CN-ABORT";
    let expected = "a noticed bad canary's share returns to 0, the old version serves everything, and only the canary's requests failed";
    let h = input.history;
    each_bad_canary(ID, h, expected, |s, c| abort_one(h, s, c))
}

fn abort_one(h: &History, s: &Step<'_>, c: &BadCanary) -> Verdict {
    const ID: &str = "CN-ABORT";
    let expected = "a noticed bad canary's share returns to 0, the old version serves everything, and only the canary's requests failed";
    let (af, at) = after_window(h, s);
    let counts = tally(h, af, at);
    let total: u32 = counts.values().sum();
    let canary_after = counts.get(c.version.as_str()).copied().unwrap_or(0);
    let stable = dominant(h, af, at);
    let window = (s.fault.injected_at, s.ended() + 1_000_000);
    let bad = failures(h, window.0, window.1);
    let by_canary = bad.iter().filter(|r| h.version_name(r.version) == c.version).count();
    let canary_answers = h
        .requests
        .iter()
        .filter(|r| r.start >= s.fault.injected_at && h.version_name(r.version) == c.version)
        .count();
    let others: Vec<&&RequestRecord> = bad.iter().filter(|r| h.version_name(r.version) != c.version).collect();
    let out_after = c.last_answer.saturating_sub(c.crossed_at) / 1000;
    let figures = format!(
        "the canary {} failed {by_canary} of the {canary_answers} requests it answered; out of traffic {out_after} ms after the threshold was crossed",
        c.version
    );
    if total == 0 {
        return Verdict::new(ID, Outcome::Inconclusive, "no answers after the canary step", expected);
    }
    if canary_after > 0 {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "{} still answered {canary_after} of {total} requests after the canary step: not taken out",
                c.version
            ),
            expected,
        )
        .with_evidence(format!("share: {}", c.timeline));
    }
    if let Some(first) = others.first() {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!("{} requests failed that the canary did not serve; {figures}", others.len()),
            expected,
        )
        .with_evidence(first_failure(h, first, s));
    }
    let (stable_version, stable_share, _) = stable.unwrap_or_default();
    Verdict::new(
        ID,
        Outcome::Pass,
        format!(
            "{figures}; then {stable_version} answered {} of {total} requests",
            pct(stable_share)
        ),
        expected,
    )
    .with_evidence(format!("share: {}", c.timeline))
    .with_evidence(format!("threshold: {}", c.why))
}

/// Releases in the order they went live or were deployed: the version live
/// before the first step, then every deploy and every promoted canary.
fn chain(h: &History, all: &[Step<'_>]) -> Vec<String> {
    let Some(first) = all.first() else {
        return Vec::new();
    };
    let (bf, bt) = before_window(first);
    let mut out: Vec<String> = dominant(h, bf, bt).map(|d| d.0).into_iter().collect();
    for s in all {
        if matches!(s.obs.step.as_str(), "deploy" | "canary")
            && s.succeeded()
            && let Some(v) = &s.obs.version
        {
            out.push(v.clone());
        }
    }
    out
}

/// A rollback as traffic shows it: what was live before, what answered after.
struct Rolled {
    before: Option<String>,
    after: Option<(String, f64, u32)>,
}

fn rolled(h: &History, s: &Step<'_>) -> Rolled {
    let (from, to) = moved(h, s);
    Rolled { before: from, after: to }
}

pub fn rb_one(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "RB-ONE";
    let expected = "one declared command restores the previous version, failing no request";
    let h = input.history;
    let all = steps(h);
    let rollbacks: Vec<&Step> = all.iter().filter(|s| s.obs.step == "rollback").collect();
    if rollbacks.is_empty() {
        return no_step(ID, h, "rollback", expected);
    }
    let chain = chain(h, &all);
    // Rollbacks past the five most recent releases are RB-KEEP5's to judge.
    let oldest_kept = chain.len().saturating_sub(5);
    let mut verdicts = Vec::new();
    for s in rollbacks {
        let r = rolled(h, s);
        let Some(before) = r.before else {
            verdicts.push(Verdict::new(
                ID,
                Outcome::Inconclusive,
                "no answers with a version header before the rollback",
                expected,
            ));
            continue;
        };
        let Some(target) = chain.iter().position(|v| *v == before).and_then(|i| i.checked_sub(1)) else {
            verdicts.push(Verdict::new(
                ID,
                Outcome::Inconclusive,
                format!("{before} was live, but no release before it was deployed in this scenario"),
                expected,
            ));
            continue;
        };
        if target < oldest_kept {
            continue;
        }
        verdicts.push(rollback_one(h, s, &before, &chain[target], r.after));
    }
    let Some(first) = verdicts.first() else {
        return Verdict::new(ID, Outcome::Inconclusive, "no rollback to a release among the five kept", expected);
    };
    let all_passed = verdicts.iter().all(|v| v.outcome == Outcome::Pass);
    let summary = if all_passed {
        format!(
            "{}{}",
            first.measured,
            if verdicts.len() > 1 {
                format!("; {} later rollback(s) likewise", verdicts.len() - 1)
            } else {
                String::new()
            }
        )
    } else {
        String::new()
    };
    let mut v = verdicts
        .into_iter()
        .reduce(Verdict::merge)
        .unwrap_or_else(|| unreachable!("not empty"));
    if all_passed {
        v.measured = summary;
    }
    v
}

fn rollback_one(h: &History, s: &Step<'_>, before: &str, previous: &str, after: Option<(String, f64, u32)>) -> Verdict {
    const ID: &str = "RB-ONE";
    let expected = "one declared command restores the previous version, failing no request";
    if !s.succeeded() {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!("the rollback from {before} failed: {}", s.describe_exit()),
            expected,
        );
    }
    let Some((after, after_share, answers)) = after else {
        return Verdict::new(ID, Outcome::Inconclusive, "no answers after the rollback", expected);
    };
    if after != previous || after_share < 0.99 {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "after rolling back from {before}, {after} answered {} of {answers} requests; expected {previous} (the release before)",
                pct(after_share)
            ),
            expected,
        )
        .with_evidence(s.describe_exit());
    }
    let total = match failed_during(ID, h, s, &format!("rollback {before} → {previous}"), expected) {
        Ok(total) => total,
        Err(fail) => return *fail,
    };
    Verdict::new(
        ID,
        Outcome::Pass,
        format!(
            "one command rolled back {before} → {previous} in {} ms; 0 of {total} requests failed; {previous} answered 100 % after",
            (s.ended() - s.fault.injected_at) / 1000
        ),
        expected,
    )
}

pub fn rb_keep5(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "RB-KEEP5";
    let expected = "after 6 deployments, the 5 most recent can each be rolled back to and the 6th-oldest is gone";
    let h = input.history;
    let all = steps(h);
    let chain = chain(h, &all);
    let deployed = chain.len().saturating_sub(1);
    if deployed < 6 {
        if all.is_empty() {
            return no_step(ID, h, "deployment", expected);
        }
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("{deployed} deployment(s) in this scenario; the check needs 6"),
            expected,
        );
    }
    let kept: Vec<&String> = chain[chain.len() - 5..].iter().rev().collect();
    let gone = &chain[chain.len() - 6];
    let mut evidence = Vec::new();
    let last_deploy = all
        .iter()
        .rposition(|s| matches!(s.obs.step.as_str(), "deploy" | "canary"))
        .unwrap_or(0);
    let later = &all[last_deploy + 1..];
    if let Some(list) = later.iter().find(|s| s.obs.step == "releases") {
        let listed = &list.obs.releases;
        let missing: Vec<&&String> = kept.iter().filter(|v| !listed.contains(v)).collect();
        evidence.push(format!("`releases` listed: {}", listed.join(" ")));
        if !missing.is_empty() {
            return Verdict::new(
                ID,
                Outcome::Fail,
                format!(
                    "the releases kept after 6 deployments lack {}: listed {}",
                    missing.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
                    listed.join(" ")
                ),
                expected,
            );
        }
        if listed.contains(gone) {
            return Verdict::new(
                ID,
                Outcome::Fail,
                format!("the 6th-oldest release {gone} is still listed: {}", listed.join(" ")),
                expected,
            );
        }
    }
    // Rolled back one by one: each must bring the next older release back.
    let rollbacks: Vec<&Step> = later.iter().filter(|s| s.obs.step == "rollback").collect();
    if rollbacks.len() < 4 {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!(
                "{} rollback(s) after the deployments; 4 reach the oldest kept release",
                rollbacks.len()
            ),
            expected,
        );
    }
    let mut restored = Vec::new();
    for (k, s) in rollbacks.iter().enumerate() {
        let want = chain.len().checked_sub(2 + k).map(|i| &chain[i]);
        let r = rolled(h, s);
        let after = r.after.as_ref().map(|a| a.0.clone()).unwrap_or_default();
        match want {
            Some(w) if k < 4 => {
                if !s.succeeded() || &after != w {
                    return Verdict::new(
                        ID,
                        Outcome::Fail,
                        format!("rollback {} should have brought back {w} (kept); {after} answered after it", k + 1),
                        expected,
                    )
                    .with_evidence(s.describe_exit())
                    .with_evidences(evidence);
                }
                restored.push(w.clone());
            }
            Some(w) => {
                if &after == w {
                    return Verdict::new(
                        ID,
                        Outcome::Fail,
                        format!("the 6th-oldest release {w} could still be rolled back to: more than 5 kept"),
                        expected,
                    )
                    .with_evidences(evidence);
                }
                evidence.push(format!(
                    "rollback {} towards {w} refused or had no effect ({}); {after} still answered",
                    k + 1,
                    s.describe_exit()
                ));
            }
            None => {}
        }
    }
    Verdict::new(
        ID,
        Outcome::Pass,
        format!(
            "after {deployed} deployments: rolled back to {} in turn; {gone} is gone",
            restored.join(", ")
        ),
        expected,
    )
    .with_evidences(evidence)
}

pub fn rb_data(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "RB-DATA";
    let expected = "a record written through the API before a rollback reads back after it";
    let h = input.history;
    let all = steps(h);
    let Some(s) = all.iter().find(|s| s.obs.step == "rollback" && s.obs.record.is_some()) else {
        if all.iter().any(|s| s.obs.step == "rollback") {
            return Verdict::new(
                ID,
                Outcome::Inconclusive,
                "the rollback wrote no record first: the stack declares no `write` and `read-record` ({n}) endpoints",
                expected,
            );
        }
        return no_step(ID, h, "rollback with check_data", expected);
    };
    let Some(rec) = &s.obs.record else {
        unreachable!("filtered on record")
    };
    let (ws, wv) = &rec.written;
    if !(200..300).contains(ws) {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("the write before the rollback got {ws}"),
            expected,
        );
    }
    let Some((rs, rv)) = rec.read_after.last() else {
        return Verdict::new(ID, Outcome::Inconclusive, "no read after the rollback", expected);
    };
    if rv == wv || rv.is_empty() {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("every read after the rollback was still answered by {wv}: the rollback did not take effect"),
            expected,
        );
    }
    let measured = format!(
        "{} written by {wv} ({ws}), read back by {rv} after the rollback: {rs}",
        rec.path_written
    );
    let outcome = if (200..300).contains(rs) { Outcome::Pass } else { Outcome::Fail };
    Verdict::new(ID, outcome, measured, expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::TransportError;
    use crate::scenario::Settings;

    /// Steady load: a request every 5 ms from `from` to `to`, answered by
    /// `version_at(t)` (a version index; 0 = no answer, a reset).
    fn load(h: &mut History, from: Micros, to: Micros, mut version_at: impl FnMut(Micros) -> (u16, u16)) {
        let mut t = from;
        while t < to {
            let (version, status) = version_at(t);
            h.requests.push(RequestRecord {
                start: t,
                end: t + 2_000,
                status,
                route: 0,
                version,
                error: if status == 0 { TransportError::Reset } else { TransportError::None },
                bytes: 10,
            });
            t += 5_000;
        }
    }

    fn step(index: usize, step: &str, version: Option<&str>, variant: Option<&str>, at: Micros, ended: Micros, exit: i32) -> FaultRecord {
        FaultRecord {
            index,
            label: step.into(),
            service: "app".into(),
            injected_at: at,
            healed_at: Some(ended),
            provokes: Vec::new(),
            landed: true,
            proof: String::new(),
            detail: FaultDetail::Release(ReleaseObservation {
                step: step.into(),
                version: version.map(str::to_string),
                variant: variant.map(str::to_string),
                exit_code: Some(exit),
                ended_at: Some(ended),
                switching: "gradual".into(),
                first_step_max_percent: 10.0,
                ..ReleaseObservation::default()
            }),
        }
    }

    fn judge(h: &History, f: fn(&CheckInput<'_>) -> Verdict) -> Verdict {
        let settings = Settings::default();
        f(&CheckInput {
            history: h,
            settings: &settings,
            probed_service: "app",
            dependency_services: vec![],
            roles: Default::default(),
        })
    }

    fn versions() -> History {
        History {
            versions: vec![String::new(), "v1".into(), "v2".into()],
            ..History::default()
        }
    }

    /// v1 until 2 s, a switch from 2 s to 5 s moving 25 % a second, v2 after.
    fn gradual(t: Micros) -> u16 {
        if t < 2_000_000 {
            return 1;
        }
        if t >= 5_000_000 {
            return 2;
        }
        let quarter = (t - 2_000_000) / 1_000_000 + 1;
        // Deterministic interleave: quarter/4 of requests go to v2.
        if (t / 5_000) % 4 < quarter { 2 } else { 1 }
    }

    fn switch_history(fail_at: Option<Micros>) -> History {
        let mut h = versions();
        h.faults.push(step(0, "deploy", Some("v2"), None, 1_000_000, 1_050_000, 0));
        h.faults.push(step(1, "switch", None, None, 2_000_000, 5_000_000, 0));
        load(&mut h, 0, 8_000_000, |t| match fail_at {
            Some(f) if t == f => (0, 0),
            _ => (gradual(t), 200),
        });
        h
    }

    #[test]
    fn a_clean_gradual_switch_passes_zero_and_shift() {
        let h = switch_history(None);
        let v = judge(&h, bg_zero);
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.measured);
        assert!(v.measured.contains("v1 → v2"), "{}", v.measured);
        let v = judge(&h, bg_shift);
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.measured);
    }

    #[test]
    fn one_reset_during_the_switch_fails_zero() {
        let v = judge(&switch_history(Some(3_000_000)), bg_zero);
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(v.measured.contains("1 of"), "{}", v.measured);
    }

    #[test]
    fn a_switch_that_moves_nothing_fails_and_all_at_once_skips_shift() {
        let mut h = versions();
        h.faults.push(step(0, "deploy", Some("v2"), None, 1_000_000, 1_050_000, 0));
        h.faults.push(step(1, "switch", None, None, 2_000_000, 2_010_000, 0));
        load(&mut h, 0, 5_000_000, |_| (1, 200));
        let v = judge(&h, bg_zero);
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(v.measured.contains("no effect"), "{}", v.measured);
        if let FaultDetail::Release(o) = &mut h.faults[1].detail {
            o.switching = "all-at-once".into();
        }
        assert_eq!(judge(&h, bg_shift).outcome, Outcome::Skipped, "declared all-at-once (finding 3)");
    }

    /// A canary of v2 with 30 % errors at 5 %, taken out at 3 s (or never).
    fn bad_canary_history(abort_at: Micros, stable_error: bool) -> History {
        let mut h = versions();
        h.faults.push(step(0, "canary", Some("v2"), Some("errors"), 1_000_000, abort_at, 3));
        let mut n = 0u64;
        load(&mut h, 0, abort_at + 3_000_000, |t| {
            n += 1;
            if stable_error && t == 2_500_000 {
                return (1, 502);
            }
            if t >= 1_000_000 && t < abort_at && n.is_multiple_of(20) {
                // Every third canary answer fails.
                return (2, if n.is_multiple_of(60) { 500 } else { 200 });
            }
            (1, 200)
        });
        h
    }

    #[test]
    fn a_bad_canary_taken_out_passes_watch_and_abort_with_figures() {
        let h = bad_canary_history(3_000_000, false);
        let v = judge(&h, cn_watch);
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.measured);
        let v = judge(&h, cn_abort);
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.measured);
        assert!(v.measured.contains("the canary v2 failed"), "{}", v.measured);
        let v = judge(&h, cn_small);
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.measured);
    }

    #[test]
    fn a_stable_failure_during_the_canary_fails_abort() {
        let v = judge(&bad_canary_history(3_000_000, true), cn_abort);
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(v.measured.contains("did not serve"), "{}", v.measured);
    }

    #[test]
    fn a_rollback_that_leaves_the_new_version_fails_rb_one() {
        let mut h = versions();
        h.faults.push(step(0, "deploy", Some("v2"), None, 1_000_000, 1_050_000, 0));
        h.faults.push(step(1, "switch", None, None, 1_500_000, 1_510_000, 0));
        h.faults.push(step(2, "rollback", None, None, 3_000_000, 3_010_000, 0));
        load(&mut h, 0, 6_000_000, |t| (if t < 1_500_000 { 1 } else { 2 }, 200));
        let v = judge(&h, rb_one);
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.measured);
        assert!(v.measured.contains("expected v1"), "{}", v.measured);
        // The same rollback bringing v1 back passes.
        h.requests.clear();
        load(&mut h, 0, 6_000_000, |t| {
            (if (1_500_000..3_000_000).contains(&t) { 2 } else { 1 }, 200)
        });
        assert_eq!(judge(&h, rb_one).outcome, Outcome::Pass);
    }

    #[test]
    fn plateaus_group_steady_windows_and_split_on_steps() {
        let s = [
            (0, 0.0, 100),
            (1, 0.05, 100),
            (2, 0.06, 100),
            (3, 0.25, 100),
            (4, 0.24, 100),
            (5, 1.0, 100),
        ];
        let ps = plateaus(&s);
        assert_eq!(ps.len(), 4, "{}", describe_plateaus(&ps));
        assert_eq!(intermediate(&ps).len(), 2);
        assert!(
            describe_plateaus(&ps).starts_with("0 % for 0.5 s, 6 % for 1.0 s"),
            "{}",
            describe_plateaus(&ps)
        );
    }
}
