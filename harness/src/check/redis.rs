//! Section 7: Redis (RD-AOF, RD-RDB, RD-MAXMEM, RD-AUTH, RD-RECOVER), judged
//! from what the declared Redis said about itself after the faults and from
//! the audit of acknowledged writes.

use super::verdict::{Outcome, Verdict};
use super::{CheckInput, health, outages, rel};
use crate::history::{History, Micros, ProbeKind, RedisSample, WriteAudit};

/// Finding 7, carried by every verdict that rests on a kill -9.
pub const KILL9_READING: &str = "a SIGKILL of redis-server alone loses nothing already written to the OS page cache, so surviving it proves \
     restart and reload, not fsync durability (finding 7); proving `appendfsync everysec` needs a fault that drops unsynced writes. \
     What Redis had not yet written, because everysec postponed the write behind a running fsync, a kill -9 does lose: writes \
     acknowledged in the 3 s before it are allowed to be missing";

/// The last sample of each Redis service.
fn latest(h: &History) -> Vec<&RedisSample> {
    let mut by: std::collections::BTreeMap<&str, &RedisSample> = Default::default();
    for s in &h.redis.samples {
        by.insert(&s.service, s);
    }
    by.into_values().collect()
}

fn config<'a>(s: &'a RedisSample, name: &str) -> &'a str {
    s.config.get(name).map(String::as_str).unwrap_or("?")
}

/// Judge each sampled Redis with `one`; no sample is inconclusive, and worst wins.
fn per_sample(id: &str, h: &History, expected: &str, one: impl Fn(&RedisSample) -> Verdict) -> Verdict {
    let parts: Vec<Verdict> = latest(h)
        .into_iter()
        .map(|s| match &s.error {
            Some(e) if s.config.is_empty() => {
                Verdict::new(id, Outcome::Inconclusive, format!("{} could not be read: {e}", s.service), expected)
            }
            _ => one(s),
        })
        .collect();
    parts.into_iter().reduce(Verdict::merge).unwrap_or_else(|| {
        Verdict::new(
            id,
            Outcome::Inconclusive,
            "the harness did not sample Redis in this scenario",
            expected,
        )
    })
}

/// How long before a SIGKILL an acknowledged write may still be only in
/// Redis's own buffer under `appendfsync everysec`: while a background fsync
/// runs, Redis postpones the AOF write itself (it has answered the client
/// already) for up to 2 s, counted in whole seconds of its clock, so up to 3 s.
pub const EVERYSEC_WINDOW: Micros = 3_000_000;

/// Acknowledged writes missing after a SIGKILL outage of the audited Redis, as a verdict part.
fn audit_part(id: &str, input: &CheckInput<'_>) -> Option<Verdict> {
    let h = input.history;
    let audit = h.redis.audit.as_ref()?;
    let landed: Vec<_> = outages(h, &input.dependency_services)
        .filter(|(f, _, _)| f.landed && f.service == audit.service)
        .collect();
    // From the signal to when Redis was seen gone: a write acknowledged in
    // between was answered by a Redis about to die.
    let kills: Vec<(Micros, Micros)> = landed
        .iter()
        .filter(|(f, _, _)| {
            matches!(&f.detail, crate::history::FaultDetail::Outage { signal, .. } if signal.trim_start_matches("SIG") == "KILL")
        })
        .map(|(f, down_at, _)| (f.injected_at, down_at.unwrap_or(f.injected_at).max(f.injected_at)))
        .collect();
    Some(audit_verdict(id, audit, h.redis.acknowledged.len(), !landed.is_empty(), &kills))
}

/// The kill (signal sent, Redis seen gone) an acknowledged write came within
/// the everysec window of, if any.
fn kill_within_window(acked_at: Option<&Micros>, kills: &[(Micros, Micros)]) -> Option<(Micros, Micros)> {
    let at = *acked_at?;
    kills
        .iter()
        .copied()
        .find(|(signal, gone)| at <= *gone && at + EVERYSEC_WINDOW >= *signal)
}

fn audit_verdict(id: &str, audit: &WriteAudit, acked: usize, after_outage: bool, kills: &[(Micros, Micros)]) -> Verdict {
    let expected = "every write the app acknowledged (2xx) is in Redis after it was killed and restarted \
                    (under appendfsync everysec, those of the last 3 s before a SIGKILL excepted)";
    if let Some(e) = &audit.error {
        return Verdict::new(
            id,
            Outcome::Inconclusive,
            format!("the acknowledged writes could not be looked up: {e}"),
            expected,
        );
    }
    if audit.checked == 0 {
        return Verdict::new(
            id,
            Outcome::Inconclusive,
            format!("{acked} writes acknowledged, none mapped to a Redis key (declare `writes` on the service)"),
            expected,
        );
    }
    let (recent, old): (Vec<usize>, Vec<usize>) =
        (0..audit.missing.len()).partition(|i| kill_within_window(audit.missing_acked_at.get(*i), kills).is_some());
    let keys = |which: &[usize]| {
        which
            .iter()
            .take(5)
            .map(|i| audit.missing[*i].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let recent_evidence = (!recent.is_empty()).then(|| {
        format!(
            "{} acknowledged within 3 s before a SIGKILL were lost: under appendfsync everysec Redis answers a write before it \
             writes it to the AOF, and while a background fsync is still running it postpones that write for up to 2 s \
             (redis.conf: \"you may lose up to 2 seconds of data\"), so a kill -9 can lose them (first 5: {})",
            recent.len(),
            keys(&recent)
        )
    });
    if !old.is_empty() {
        let mut v = Verdict::new(
            id,
            Outcome::Fail,
            format!(
                "{} of {} acknowledged writes missing after the restart",
                audit.missing.len(),
                audit.checked
            ),
            expected,
        )
        .with_evidence(format!(
            "missing keys acknowledged before the everysec window of any kill (first 5): {}",
            keys(&old)
        ));
        if let Some(e) = recent_evidence {
            v = v.with_evidence(e);
        }
        return v;
    }
    if !after_outage {
        return Verdict::new(
            id,
            Outcome::Inconclusive,
            format!(
                "all {} acknowledged writes present, but Redis was not killed and restarted in this scenario",
                audit.checked
            ),
            expected,
        );
    }
    let present = audit.checked - recent.len() as u64;
    let measured = if recent.is_empty() {
        format!("all {} acknowledged writes present after the restart", audit.checked)
    } else {
        format!(
            "{present} of {} acknowledged writes present after the restart; the {} missing were acknowledged within 3 s before the SIGKILL",
            audit.checked,
            recent.len()
        )
    };
    let mut v = Verdict::new(id, Outcome::Pass, measured, expected);
    if let Some(e) = recent_evidence {
        v = v.with_evidence(e);
    }
    v
}

/// RD-AOF: AOF on with `appendfsync everysec`, and acknowledged writes survive a kill -9.
pub fn rd_aof(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "RD-AOF";
    let expected = "appendonly yes, appendfsync everysec, last AOF write ok; acknowledged writes present after kill -9 and restart";
    let config = per_sample(ID, input.history, expected, |s| {
        let (on, fsync) = (config(s, "appendonly"), config(s, "appendfsync"));
        let write = s.persistence.get("aof_last_write_status").map(String::as_str).unwrap_or("?");
        let measured = format!("{}: appendonly {on}, appendfsync {fsync}, aof_last_write_status {write}", s.service);
        let ok = on == "yes" && fsync == "everysec" && write == "ok";
        Verdict::new(ID, if ok { Outcome::Pass } else { Outcome::Fail }, measured, expected)
    });
    // The audit first, so a pass headline carries the counts.
    // Configuration alone proves nothing about what survives a kill.
    let part = audit_part(ID, input).unwrap_or_else(|| {
        Verdict::new(
            ID,
            Outcome::Inconclusive,
            "no acknowledged write was looked up after a Redis kill and restart: no kill of Redis landed, or the load did not acknowledge a write",
            expected,
        )
    });
    part.merge(config).with_reading(KILL9_READING)
}

/// RD-RDB: snapshot save points set, a snapshot succeeds, the file is there.
pub fn rd_rdb(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "RD-RDB";
    let expected = "save points configured; a BGSAVE succeeds (INFO persistence rdb_last_bgsave_status:ok); the RDB file exists";
    per_sample(ID, input.history, expected, |s| {
        let save = config(s, "save");
        let status = s.persistence.get("rdb_last_bgsave_status").map(String::as_str).unwrap_or("?");
        let file = match s.rdb_file_bytes {
            Some(n) => format!("{} present ({n} bytes)", config(s, "dbfilename")),
            None => format!("{} absent", config(s, "dbfilename")),
        };
        let points = if save.trim().is_empty() {
            "none".to_string()
        } else {
            format!("\"{save}\"")
        };
        let measured = format!("{}: save points {points}, rdb_last_bgsave_status {status}, {file}", s.service);
        let ok = !save.trim().is_empty() && save != "?" && status == "ok" && s.rdb_file_bytes.is_some();
        Verdict::new(ID, if ok { Outcome::Pass } else { Outcome::Fail }, measured, expected)
    })
    .with_reading("RDB is on when save points are configured; the harness asks for one BGSAVE to prove snapshots can be written")
}

/// RD-MAXMEM: a memory limit with an eviction policy.
pub fn rd_maxmem(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "RD-MAXMEM";
    let expected = "maxmemory > 0 with a maxmemory-policy (the standard's example: 2 GB)";
    per_sample(ID, input.history, expected, |s| {
        let (max, policy) = (config(s, "maxmemory"), config(s, "maxmemory-policy"));
        let bytes: u64 = max.parse().unwrap_or(0);
        let measured = format!(
            "{}: maxmemory {bytes} bytes ({} MiB), maxmemory-policy {policy}",
            s.service,
            bytes >> 20
        );
        let ok = bytes > 0 && policy != "?";
        let mut v = Verdict::new(ID, if ok { Outcome::Pass } else { Outcome::Fail }, measured, expected);
        if ok && s.broker && evicts(policy) {
            v = v.with_evidence(format!("risk (finding 5): {policy} on the task broker can evict queued tasks"));
        }
        v
    })
    .with_reading(
        "any limit above 0 counts: the 2 GB of the standard is an example; the policy is reported, a broker should use noeviction",
    )
}

/// Whether a maxmemory policy evicts keys (everything but noeviction).
pub fn evicts(policy: &str) -> bool {
    policy.starts_with("allkeys-") || policy.starts_with("volatile-")
}

/// RD-AUTH: a client without the password is refused.
pub fn rd_auth(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "RD-AUTH";
    let expected = "PING without the password refused (NOAUTH)";
    per_sample(ID, input.history, expected, |s| {
        let reply = s.unauthenticated_reply.trim();
        let auth_error = reply.contains("NOAUTH") || reply.to_ascii_lowercase().contains("authentication required");
        match (s.unauthenticated_refused, auth_error) {
            (true, true) => Verdict::new(
                ID,
                Outcome::Pass,
                format!("{}: PING without password refused: {reply}", s.service),
                expected,
            ),
            (true, false) => Verdict::new(
                ID,
                Outcome::Inconclusive,
                format!(
                    "{}: PING without password failed, but not for want of a password: {reply}",
                    s.service
                ),
                expected,
            ),
            (false, _) => Verdict::new(
                ID,
                Outcome::Fail,
                format!("{}: PING without password answered {reply}", s.service),
                expected,
            ),
        }
    })
}

/// RD-RECOVER: readiness fails during the outage and returns, liveness holds,
/// no 5xx once ready again, and every acknowledged write is still there.
pub fn rd_recover(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "RD-RECOVER";
    let expected = "during the outage not ready, live; after it ready again, no 5xx once ready, every acknowledged write present";
    let h = input.history;
    let landed: Vec<_> = outages(h, &input.dependency_services).collect();
    if landed.is_empty() {
        return Verdict::new(ID, Outcome::Inconclusive, "Redis did not go down in this scenario", expected);
    }
    let relabel = |mut v: Verdict, what: &str| {
        v.measured = format!("{what}: {}", v.measured);
        v.requirement = ID.to_string();
        v.reading = None;
        v
    };
    // Lost writes first: of several failures, the headline is the first.
    let mut parts = vec![match audit_part(ID, input) {
        Some(part) => relabel(part, "writes"),
        None => Verdict::new(
            ID,
            Outcome::Inconclusive,
            "writes: the harness did not audit any acknowledged write",
            expected,
        ),
    }];
    if !h.redis.tasks.is_empty() {
        parts.push(tasks_part(h));
    }
    parts.push(relabel(health::hc_ready(input), "readiness"));
    parts.push(relabel(health::hc_live(input), "liveness"));
    for (i, (f, _, back)) in landed.iter().enumerate() {
        // Judged until the next outage starts, which has its own window.
        let until = landed.get(i + 1).map(|(next, _, _)| next.injected_at).unwrap_or(Micros::MAX);
        if let Some(back) = back {
            parts.push(no_5xx_once_ready(input, &f.service, *back, until));
        }
    }
    // Merge keeps the worst part as the headline; a pass names every part.
    let summary = parts.iter().map(|p| p.measured.clone()).collect::<Vec<_>>().join("; ");
    let mut v = parts
        .into_iter()
        .reduce(Verdict::merge)
        .unwrap_or_else(|| unreachable!("parts is not empty"));
    if v.outcome == Outcome::Pass {
        v.measured = summary;
        v.evidence.retain(|e| !e.starts_with("also: pass"));
    }
    v.expected = expected.to_string();
    v.with_reading(format!(
        "recovery: the first 2xx readiness probe after Redis is back; from then on no request may get 5xx. {KILL9_READING}"
    ))
}

/// Every task the stack accepted (2xx) is eventually done: one never done is lost.
fn tasks_part(h: &History) -> Verdict {
    const ID: &str = "RD-RECOVER";
    let tally = super::worker::TaskTally::of_history(h);
    let expected = "every task accepted before or during the outage is eventually done";
    if let Some(v) = super::worker::tasks_unseen(ID, h, expected) {
        return v;
    }
    if tally.lost.is_empty() && !tally.unobserved.is_empty() {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!(
                "tasks: {}: the harness's event subscription was down when they could have finished",
                tally.describe()
            ),
            expected,
        );
    }
    if tally.lost.is_empty() {
        Verdict::new(ID, Outcome::Pass, format!("tasks: {}", tally.describe()), expected)
    } else {
        Verdict::new(
            ID,
            Outcome::Fail,
            format!("tasks: {} accepted tasks never done: {}", tally.lost.len(), tally.describe()),
            expected,
        )
        .with_evidence(super::worker::lost_evidence(h, &tally.lost))
    }
}

/// Requests that started once readiness was 2xx again after the outage: none may get 5xx.
fn no_5xx_once_ready(input: &CheckInput<'_>, dependency: &str, back: Micros, until: Micros) -> Verdict {
    const ID: &str = "RD-RECOVER";
    let expected = "no 5xx for requests started after readiness returned and done before the next fault";
    let h = input.history;
    let Some(ready) = h
        .probes_of(input.probed_service, ProbeKind::Ready)
        .find(|p| p.at >= back && p.is_2xx())
    else {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!("after-recovery: readiness never 2xx after {dependency} returned"),
            expected,
        );
    };
    // A request still in flight when the next outage began belongs to that
    // outage: Redis going down under it is the fault, not a failed recovery.
    let after: Vec<_> = h.requests.iter().filter(|r| r.start >= ready.at && r.end < until).collect();
    let bad: Vec<_> = after.iter().filter(|r| r.status >= 500 || r.error.is_error()).collect();
    if after.is_empty() {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            "after-recovery: no request started after readiness returned",
            expected,
        );
    }
    match bad.first() {
        Some(first) => Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "after-recovery: {} of {} requests failed after readiness returned",
                bad.len(),
                after.len()
            ),
            expected,
        )
        .with_evidence(format!("first at {} with status {}", rel(first.start, ready.at), first.status)),
        None => Verdict::new(
            ID,
            Outcome::Pass,
            format!(
                "after-recovery: ready again {} after {dependency} returned; all {} later requests succeeded",
                rel(ready.at, back),
                after.len()
            ),
            expected,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{FaultDetail, FaultRecord, History, WriteAudit};
    use crate::scenario::Settings;

    fn good_sample() -> RedisSample {
        let config = [
            ("appendonly", "yes"),
            ("appendfsync", "everysec"),
            ("save", "300 10 60 1000"),
            ("maxmemory", "268435456"),
            ("maxmemory-policy", "noeviction"),
            ("dbfilename", "dump.rdb"),
        ];
        RedisSample {
            service: "redis".into(),
            config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            persistence: [("aof_last_write_status", "ok"), ("rdb_last_bgsave_status", "ok")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            rdb_file_bytes: Some(100),
            unauthenticated_reply: "NOAUTH Authentication required.".into(),
            unauthenticated_refused: true,
            ..RedisSample::default()
        }
    }

    fn kill_outage() -> FaultRecord {
        FaultRecord {
            index: 0,
            label: "redis down".into(),
            service: "redis".into(),
            injected_at: 1_000_000,
            healed_at: Some(4_000_000),
            provokes: Vec::new(),
            landed: true,
            proof: "exit observed".into(),
            detail: FaultDetail::Outage {
                signal: "SIGKILL".into(),
                down_at: Some(1_000_000),
                restarted_at: Some(4_000_000),
                ready_at: Some(4_100_000),
            },
        }
    }

    fn judge(h: &History, f: fn(&CheckInput<'_>) -> Verdict) -> Verdict {
        let settings = Settings::default();
        let input = CheckInput {
            history: h,
            settings: &settings,
            probed_service: "app",
            dependency_services: vec!["redis".into()],
            roles: Default::default(),
        };
        f(&input)
    }

    fn with_sample(s: RedisSample) -> History {
        let mut h = History::default();
        h.redis.samples.push(s);
        h
    }

    #[test]
    fn the_reference_configuration_passes() {
        let h = with_sample(good_sample());
        for f in [rd_rdb, rd_maxmem, rd_auth] {
            assert_eq!(judge(&h, f).outcome, Outcome::Pass);
        }
        // AOF configured but never put to a kill -9: configuration alone is no pass.
        let v = judge(&h, rd_aof);
        assert_eq!(v.outcome, Outcome::Inconclusive, "{v:#?}");
        assert!(v.measured.contains("no acknowledged write was looked up"), "{}", v.measured);
    }

    #[test]
    fn each_misconfiguration_fails_its_check() {
        let mut s = good_sample();
        s.config.insert("appendonly".into(), "no".into());
        assert_eq!(judge(&with_sample(s), rd_aof).outcome, Outcome::Fail);
        let mut s = good_sample();
        s.config.insert("save".into(), String::new());
        assert_eq!(judge(&with_sample(s), rd_rdb).outcome, Outcome::Fail);
        let mut s = good_sample();
        s.config.insert("maxmemory".into(), "0".into());
        assert_eq!(judge(&with_sample(s), rd_maxmem).outcome, Outcome::Fail);
        let mut s = good_sample();
        s.unauthenticated_refused = false;
        s.unauthenticated_reply = "PONG".into();
        let v = judge(&with_sample(s), rd_auth);
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(v.measured.contains("PONG"));
    }

    #[test]
    fn an_unreachable_redis_is_inconclusive_not_refused() {
        let mut s = good_sample();
        s.unauthenticated_reply = "Connection refused".into();
        assert_eq!(judge(&with_sample(s), rd_auth).outcome, Outcome::Inconclusive);
        assert_eq!(judge(&History::default(), rd_rdb).outcome, Outcome::Inconclusive);
    }

    #[test]
    fn missing_acknowledged_writes_fail_aof_and_recover() {
        let mut h = with_sample(good_sample());
        h.faults.push(kill_outage());
        h.redis.audit = Some(WriteAudit {
            service: "redis".into(),
            checked: 10,
            missing: vec!["order:3".into(), "order:4".into()],
            ..WriteAudit::default()
        });
        let v = judge(&h, rd_aof);
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(v.measured.contains("2 of 10 acknowledged writes missing"), "{}", v.measured);
        assert_eq!(judge(&h, rd_recover).outcome, Outcome::Fail);
        if let Some(a) = h.redis.audit.as_mut() {
            a.missing.clear();
        }
        assert_eq!(judge(&h, rd_aof).outcome, Outcome::Pass);
    }

    #[test]
    fn writes_lost_in_the_everysec_window_before_a_kill_are_no_failure_older_ones_are() {
        let mut h = with_sample(good_sample());
        let mut kill = kill_outage();
        kill.injected_at = 10_000_000;
        let at = kill.injected_at;
        h.faults.push(kill);
        let audit = |acked_at: Vec<Micros>| WriteAudit {
            service: "redis".into(),
            checked: 10,
            missing: (0..acked_at.len()).map(|i| format!("order:{i}")).collect(),
            missing_acked_at: acked_at,
            ..WriteAudit::default()
        };
        // One acknowledged after the signal, before Redis was seen gone (down_at is 1 s later in kill_outage's record).
        if let FaultDetail::Outage { down_at, .. } = &mut h.faults[0].detail {
            *down_at = Some(at + 10_000);
        }
        h.redis.audit = Some(audit(vec![at + 5_000, at - 2_900_000]));
        let v = judge(&h, rd_aof);
        assert_eq!(v.outcome, Outcome::Pass, "{v:?}");
        assert!(
            v.measured.contains("8 of 10") && v.measured.contains("within 3 s"),
            "{}",
            v.measured
        );
        assert!(v.evidence.iter().any(|e| e.contains("postpones")), "{:?}", v.evidence);
        // One acknowledged 3.5 s before the kill is a loss everysec does not excuse.
        h.redis.audit = Some(audit(vec![at - 100_000, at - 3_500_000]));
        let v = judge(&h, rd_aof);
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(
            v.evidence.iter().any(|e| e.contains("before the everysec window")),
            "{:?}",
            v.evidence
        );
        assert_eq!(judge(&h, rd_recover).outcome, Outcome::Fail);
        // Without ack times (an older run.json) nothing is excused.
        h.redis.audit = Some(WriteAudit {
            missing_acked_at: vec![],
            ..audit(vec![at - 100_000])
        });
        assert_eq!(judge(&h, rd_aof).outcome, Outcome::Fail);
    }

    #[test]
    fn a_request_cut_by_the_next_outage_is_not_a_failed_recovery() {
        use crate::history::{ProbeKind, ProbeSample, RequestRecord, TransportError};
        let mut h = History::default();
        h.probes.push(ProbeSample {
            at: 4_100_000,
            service: "app".into(),
            probe: ProbeKind::Ready,
            status: 200,
            error: TransportError::None,
            latency_us: 900,
            body: None,
        });
        let request = |start: Micros, end: Micros, status: u16| RequestRecord {
            start,
            end,
            status,
            route: 0,
            version: 0,
            error: TransportError::None,
            bytes: 0,
        };
        h.requests.push(request(4_200_000, 4_210_000, 200));
        // Started before the next outage (at 5.1 s), still waiting on Redis when it went down.
        h.requests.push(request(5_099_000, 5_400_000, 503));
        let judge_after = |h: &History| judge(h, |input| no_5xx_once_ready(input, "redis", 4_000_000, 5_100_000));
        let v = judge_after(&h);
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.measured);
        // The same 503 finishing before the next outage is a failed recovery.
        h.requests[1].end = 5_090_000;
        let v = judge_after(&h);
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.measured);
    }

    #[test]
    fn recover_without_an_outage_is_inconclusive() {
        assert_eq!(judge(&with_sample(good_sample()), rd_recover).outcome, Outcome::Inconclusive);
    }

    #[test]
    fn evicting_policies() {
        assert!(evicts("allkeys-lru"));
        assert!(evicts("volatile-ttl"));
        assert!(!evicts("noeviction"));
    }
}
