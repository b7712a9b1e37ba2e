//! Section 3: configuration (CF-ENV, CF-VALIDATE, CF-HOT).

use super::verdict::{Outcome, Verdict};
use super::{CheckInput, ms, rel};
use crate::history::{FaultDetail, FaultRecord};

fn faults_where<'a>(input: &'a CheckInput<'_>, pred: impl Fn(&FaultDetail) -> bool + 'a) -> impl Iterator<Item = &'a FaultRecord> + 'a {
    input.history.faults.iter().filter(move |f| pred(&f.detail))
}

fn inconclusive(id: &str, why: impl Into<String>, expected: &str) -> Verdict {
    Verdict::new(id, Outcome::Inconclusive, why, expected)
}

/// CF-ENV: the service's behaviour follows its environment.
pub fn cf_env(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CF-ENV";
    let expected = "after a restart with the variable changed, the service shows the new value";
    faults_where(input, |d| matches!(d, FaultDetail::EnvRestart { .. }))
        .map(|f| {
            let FaultDetail::EnvRestart {
                variable,
                value,
                ready_at,
                observed,
            } = &f.detail
            else {
                unreachable!("filtered above")
            };
            if !f.landed || ready_at.is_none() {
                return inconclusive(
                    ID,
                    format!("the restart with a changed variable did not happen: {}", f.proof),
                    expected,
                );
            }
            if observed.is_empty() {
                return inconclusive(ID, "the changed value could not be read back (no probe answered)", expected);
            }
            let wrong: Vec<&String> = observed.iter().filter(|o| *o != value).collect();
            if wrong.is_empty() {
                Verdict::new(
                    ID,
                    Outcome::Pass,
                    format!(
                        "{variable}={value:?} → served {value:?} in {} of {} probes",
                        observed.len(),
                        observed.len()
                    ),
                    expected,
                )
            } else {
                Verdict::new(
                    ID,
                    Outcome::Fail,
                    format!("{variable}={value:?} but the service showed {:?}", wrong[0]),
                    expected,
                )
                .with_evidence(format!("observed: {}", observed.join(", ")))
            }
        })
        .reduce(Verdict::merge)
        .unwrap_or_else(|| inconclusive(ID, "no env-change fault in this scenario", expected))
}

/// CF-VALIDATE: bad configuration stops the process at startup, loudly.
pub fn cf_validate(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CF-VALIDATE";
    let expected = "exits non-zero within the deadline, naming the variable, having served nothing";
    let records: Vec<&FaultRecord> = faults_where(input, |d| matches!(d, FaultDetail::BadConfigStart { .. })).collect();
    if records.is_empty() {
        return inconclusive(ID, "no bad-config fault in this scenario", expected);
    }
    let mut failures = Vec::new();
    let mut passes = Vec::new();
    let mut not_landed = Vec::new();
    for f in &records {
        let FaultDetail::BadConfigStart {
            variable,
            value,
            exit,
            exited_after_ms,
            deadline_ms,
            served,
            message_names_variable,
            log_tail,
            ..
        } = &f.detail
        else {
            continue;
        };
        if !f.landed {
            not_landed.push(format!("a bad-config start did not happen: {}", f.proof));
            continue;
        }
        let what = match value {
            Some(v) => format!("{variable}={v:?}"),
            None => format!("{variable} missing"),
        };
        let mut problems = Vec::new();
        match (exit, exited_after_ms) {
            (Some(e), Some(after)) if e.code.is_some_and(|c| c != 0) => {
                if !message_names_variable {
                    problems.push(format!(
                        "exited after {after} ms ({}) but its output does not name {variable}",
                        e.describe()
                    ));
                }
            }
            (Some(e), Some(after)) => problems.push(format!("exited after {after} ms with {}, not a non-zero status", e.describe())),
            _ => problems.push(format!("still running {deadline_ms} ms after start")),
        }
        if *served {
            problems.push("answered HTTP while misconfigured".to_string());
        }
        if problems.is_empty() {
            passes.push(format!(
                "{what}: exited after {} ms ({}), naming it",
                exited_after_ms.unwrap_or(0),
                exit.map(|e| e.describe()).unwrap_or_default()
            ));
        } else {
            failures.push(format!("{what}: {}", problems.join(", ")));
            if !log_tail.is_empty() {
                failures.push(format!("  output: {}", log_tail.lines().last().unwrap_or("")));
            }
        }
    }
    let mut v = if let Some(first) = failures.first() {
        Verdict::new(ID, Outcome::Fail, first.clone(), expected)
    } else if let Some(first) = not_landed.first() {
        Verdict::new(ID, Outcome::Inconclusive, first.clone(), expected)
    } else {
        Verdict::new(
            ID,
            Outcome::Pass,
            format!("{} bad configurations, each refused at startup", passes.len()),
            expected,
        )
    };
    v.evidence.extend(failures);
    v.evidence.extend(not_landed);
    v.evidence.extend(passes);
    v.with_reading("\"within seconds\" is the stack's declared validate_deadline_s (default 5 s)")
}

/// CF-HOT: a declared reloadable setting takes effect without restart or failed request.
pub fn cf_hot(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CF-HOT";
    let deadline = input.settings.reload_deadline_ms;
    let expected = format!("new value in effect within {deadline} ms, same PID, no failed request meanwhile");
    faults_where(input, |d| matches!(d, FaultDetail::ConfigReload { .. }))
        .map(|f| {
            let FaultDetail::ConfigReload { setting, value, signal, pid_before, pid_after, observed_at } = &f.detail else {
                unreachable!("filtered above")
            };
            if !f.landed {
                return inconclusive(ID, format!("the reload did not happen: {}", f.proof), &expected);
            }
            let window_end = observed_at.unwrap_or(f.injected_at + deadline * 1000);
            let during: Vec<_> = input.history.requests.iter().filter(|r| r.end >= f.injected_at && r.start <= window_end).collect();
            let failed = during.iter().filter(|r| !r.ok()).count();
            let mut problems = Vec::new();
            match observed_at {
                Some(at) => {
                    if at.saturating_sub(f.injected_at) > deadline * 1000 {
                        let took = rel(*at, f.injected_at);
                        problems.push(format!("{setting}={value:?} in effect only {took} after {signal}, past the {deadline} ms deadline"));
                    }
                    if pid_after != &Some(*pid_before) {
                        problems.push(match pid_after {
                            Some(now) => format!("PID changed from {pid_before} to {now}"),
                            None => format!("PID {pid_before} gone"),
                        });
                    }
                    if failed > 0 {
                        problems.push(format!("{failed} of {} requests failed during the reload", during.len()));
                    }
                    if problems.is_empty() {
                        return Verdict::new(
                            ID,
                            Outcome::Pass,
                            format!("{setting}={value:?} in effect {} after {signal}, PID {pid_before} unchanged, {} requests meanwhile, none failed", rel(*at, f.injected_at), during.len()),
                            &expected,
                        );
                    }
                }
                None => problems.push(format!("{setting}={value:?} not in effect {} ms after {signal} (PID {pid_before} {})", ms(deadline * 1000), if pid_after == &Some(*pid_before) { "still running" } else { "gone" })),
            }
            Verdict::new(ID, Outcome::Fail, problems.join("; "), &expected).with_evidence(f.proof.clone())
        })
        .reduce(Verdict::merge)
        .unwrap_or_else(|| inconclusive(ID, "no reload-config fault in this scenario", &expected))
        .with_reading("reloadable settings and the means of reloading are what the stack declares (finding 4)")
}
