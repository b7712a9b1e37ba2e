//! Section 6 (nginx): rate limiting, dead and failing upstreams, keepalive,
//! gzip, the proxy cache and reloads, judged from the faults' observations
//! and the load's requests.

use super::verdict::{Outcome, Verdict};
use super::{CheckInput, ms};
use crate::history::{BurstObservation, FaultDetail, FaultRecord, History, Micros, RequestRecord};

fn landed<'a>(h: &'a History) -> impl Iterator<Item = &'a FaultRecord> + 'a {
    h.faults.iter().filter(|f| f.landed)
}

fn count(b: &BurstObservation, status: u16) -> u32 {
    b.statuses.get(&status).copied().unwrap_or(0)
}

fn describe_burst(b: &BurstObservation) -> String {
    let allowed = b.limit_rate_per_s * b.duration_ms as f64 / 1000.0 + f64::from(b.limit_burst);
    format!(
        "{} at {:.0}/s for {} ms: {} × 2xx, {} × 429, {} × 503, {} without response; backend saw {} (limit {:.0}/s + burst {} = {allowed:.0})",
        b.sent,
        b.rate_per_s,
        b.duration_ms,
        b.statuses
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, c)| c)
            .sum::<u32>(),
        count(b, 429),
        count(b, 503),
        b.transport_errors,
        b.backend_requests.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
        b.limit_rate_per_s,
        b.limit_burst
    )
}

/// NX-RATE: above the limit 429s (no 503, no dropped connection) and the
/// backend sees at most rate × time + burst; below it, no rejection.
pub fn nx_rate(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "NX-RATE";
    let expected =
        "a burst above the limit gets 429 (not 503, not a reset); traffic below gets none; the backend sees ≤ rate × time + burst";
    let bursts: Vec<&BurstObservation> = landed(input.history)
        .filter_map(|f| match &f.detail {
            FaultDetail::Burst(b) => Some(b),
            _ => None,
        })
        .collect();
    let above: Vec<_> = bursts.iter().filter(|b| b.rate_per_s > b.limit_rate_per_s * 1.5).collect();
    let below: Vec<_> = bursts.iter().filter(|b| b.rate_per_s < b.limit_rate_per_s * 0.75).collect();
    if above.is_empty() || below.is_empty() {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!(
                "{} burst(s) above and {} below the limit landed; both are needed (the others did not land or did not run)",
                above.len(),
                below.len()
            ),
            expected,
        );
    }
    let mut problems = Vec::new();
    for b in &above {
        if count(b, 503) > 0 {
            problems.push(format!("{} × 503 and {} × 429 above the limit", count(b, 503), count(b, 429)));
        } else if count(b, 429) == 0 {
            problems.push(format!(
                "no 429 at {:.0}/s against a limit of {:.0}/s",
                b.rate_per_s, b.limit_rate_per_s
            ));
        }
        if b.transport_errors > 0 {
            problems.push(format!("{} requests without a response above the limit", b.transport_errors));
        }
        let allowed = b.limit_rate_per_s * b.duration_ms as f64 / 1000.0 + f64::from(b.limit_burst);
        // One second of slack: the limiter's window does not start with the burst.
        if let Some(seen) = b.backend_requests
            && seen as f64 > allowed + b.limit_rate_per_s
        {
            problems.push(format!("the backend saw {seen} requests, more than rate + burst ({allowed:.0})"));
        }
    }
    for b in &below {
        let rejected = count(b, 429) + count(b, 503);
        if rejected > 0 || b.transport_errors > 0 {
            problems.push(format!(
                "{rejected} rejected and {} failed at {:.0}/s, below the limit",
                b.transport_errors, b.rate_per_s
            ));
        }
    }
    let evidence: Vec<String> = above.iter().chain(below.iter()).map(|b| describe_burst(b)).collect();
    let head = above.first().map(|b| describe_burst(b)).unwrap_or_default();
    let mut v = if problems.is_empty() {
        Verdict::new(ID, Outcome::Pass, format!("above the limit: {head}; below: no rejection"), expected)
    } else {
        Verdict::new(ID, Outcome::Fail, format!("{}; {head}", problems.join("; ")), expected)
    };
    for e in evidence {
        v = v.with_evidence(e);
    }
    v.with_reading("above = sent faster than 1.5 × the declared rate; below = slower than 0.75 ×; the backend may exceed rate × time + burst by one second of rate")
}

fn in_window(h: &History, from: Micros, to: Micros) -> Vec<&RequestRecord> {
    h.requests_between(from, to).collect()
}

/// NX-502: with every upstream down, the proxy answers 502 quickly.
pub fn nx_502(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "NX-502";
    let expected =
        "with every upstream down, requests get 502 within 1 s (counted as 5xx), no reset, no other answer, and AL-NGX-5XX fires";
    let mut judged = 0;
    let mut verdict: Option<Verdict> = None;
    for f in landed(input.history) {
        let FaultDetail::AllDown {
            services,
            down_at: Some(down),
            restarted_at: Some(up),
            access_log_502,
        } = &f.detail
        else {
            continue;
        };
        // Requests that started once everything was dead and ended before the restart.
        let reqs: Vec<_> = in_window(input.history, *down, *up).into_iter().filter(|r| r.end <= *up).collect();
        judged += reqs.len();
        let n502 = reqs.iter().filter(|r| r.status == 502).count();
        let other: Vec<_> = reqs.iter().filter(|r| r.status != 502).collect();
        let mut lat: Vec<u64> = reqs.iter().filter(|r| r.status == 502).map(|r| r.end - r.start).collect();
        lat.sort_unstable();
        let p95 = lat.get(lat.len().saturating_sub(1) * 95 / 100).copied().unwrap_or(0);
        let mut statuses = std::collections::BTreeMap::new();
        for r in &other {
            *statuses
                .entry(if r.error.is_error() {
                    format!("{:?}", r.error).to_lowercase()
                } else {
                    r.status.to_string()
                })
                .or_insert(0) += 1;
        }
        let measured = format!(
            "{} of {} requests got 502 while {} were down ({} ms), p95 {} ms; other answers: {:?}",
            n502,
            reqs.len(),
            services.join(", "),
            ms(up - down),
            ms(p95),
            statuses
        );
        let outcome = if reqs.is_empty() {
            Outcome::Inconclusive
        } else if other.is_empty() && p95 <= 1_000_000 {
            Outcome::Pass
        } else {
            Outcome::Fail
        };
        let mut v = Verdict::new(ID, outcome, measured, expected).with_evidence(f.proof.clone());
        if let Some(c) = access_log_502 {
            v = v.with_evidence(format!(
                "the proxy's access log counted {c} × 502 in the outage: the 5xx rate (AL-NGX-5XX) sees them"
            ));
        }
        verdict = Some(match verdict {
            Some(prev) => prev.merge(v),
            None => v,
        });
    }
    let all_down = landed(input.history).find(|f| matches!(f.detail, FaultDetail::AllDown { .. }));
    match verdict {
        // The standard's NX-502 includes its alert: AL-NGX-5XX fires.
        Some(v) if judged > 0 => match all_down {
            Some(f) => super::with_alert_half(v, "AL-NGX-5XX", input, f, None),
            None => v,
        },
        Some(v) => Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("no request ran while every upstream was down: {}", v.measured),
            expected,
        ),
        None => Verdict::new(
            ID,
            Outcome::Inconclusive,
            "no kill-all fault landed (none ran, or it did not land)",
            expected,
        ),
    }
}

/// NX-FAILOVER: one of two upstreams down, requests keep succeeding.
pub fn nx_failover(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "NX-FAILOVER";
    let expected = "with one of the app instances down, every request through the proxy succeeds";
    let apps = input.roles.iter().filter(|(_, r)| r.as_str() == "app").count();
    let mut verdict: Option<Verdict> = None;
    for f in landed(input.history) {
        let FaultDetail::Outage {
            down_at: Some(down),
            restarted_at: Some(up),
            ..
        } = &f.detail
        else {
            continue;
        };
        if input.roles.get(&f.service).map(String::as_str) != Some("app") {
            continue;
        }
        let reqs = in_window(input.history, *down, *up);
        let failed: Vec<_> = reqs.iter().filter(|r| !r.ok()).collect();
        let measured = format!(
            "{} of {} requests failed while {} was down ({} ms; {apps} app instance(s) declared)",
            failed.len(),
            reqs.len(),
            f.service,
            ms(up - down)
        );
        let outcome = if reqs.len() < 20 {
            Outcome::Inconclusive
        } else if failed.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail
        };
        let mut v = Verdict::new(ID, outcome, measured, expected).with_evidence(f.proof.clone());
        for r in failed.iter().take(5) {
            v = v.with_evidence(format!("failed: started {} ms, status {}, {:?}", ms(r.start), r.status, r.error));
        }
        verdict = Some(match verdict {
            Some(prev) => prev.merge(v),
            None => v,
        });
    }
    verdict.unwrap_or_else(|| {
        Verdict::new(
            ID,
            Outcome::Inconclusive,
            "no outage of an app instance landed (none ran, or it did not land)",
            expected,
        )
    })
}

/// NX-KEEPALIVE: far fewer new backend connections than requests.
pub fn nx_keepalive(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "NX-KEEPALIVE";
    let expected = "backends accept at most 1 new connection per 10 requests (the proxy reuses upstream connections)";
    for f in landed(input.history) {
        let FaultDetail::BackendTraffic {
            window_ms,
            client_requests,
            backend_requests,
            backend_connections,
            kernel_connections,
        } = &f.detail
        else {
            continue;
        };
        // The app's own counters where it keeps them; else the kernel's
        // socket table, and every proxied request counted once.
        let source = if backend_connections.is_some() {
            "the backends' own counters"
        } else {
            "the kernel's socket table (new connections) and the load's requests through the proxy"
        };
        let conns = backend_connections.or(*kernel_connections);
        let reqs = backend_requests.or(kernel_connections.map(|_| *client_requests));
        let (Some(reqs), Some(conns)) = (reqs.as_ref(), conns.as_ref()) else {
            return Verdict::new(
                ID,
                Outcome::Inconclusive,
                "the backends' request or connection counters could not be read",
                expected,
            )
            .with_evidence(f.proof.clone());
        };
        if *reqs < 100 {
            return Verdict::new(
                ID,
                Outcome::Inconclusive,
                format!("only {reqs} backend requests in {window_ms} ms (need 100)"),
                expected,
            );
        }
        let ratio = *conns as f64 / *reqs as f64;
        let measured = format!(
            "{conns} new backend connections for {reqs} backend requests ({client_requests} client requests) in {window_ms} ms: ratio {ratio:.3}"
        );
        let outcome = if ratio <= 0.1 { Outcome::Pass } else { Outcome::Fail };
        return Verdict::new(ID, outcome, measured, expected)
            .with_evidence(f.proof.clone())
            .with_evidence(format!("counted by {source}"))
            .with_reading("\"far fewer\": at most 1 new connection per 10 requests");
    }
    Verdict::new(
        ID,
        Outcome::Inconclusive,
        "no backend-traffic observation landed (none ran, or it did not land)",
        expected,
    )
}

/// NX-GZIP: a large text/JSON response is gzip-encoded, a small one is not.
pub fn nx_gzip(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "NX-GZIP";
    let expected =
        "with Accept-Encoding: gzip, a text/CSS/JSON/JS response above the threshold comes back gzip-encoded; a smaller one does not";
    for f in landed(input.history) {
        let FaultDetail::Gzip { answers, min_length } = &f.detail else {
            continue;
        };
        let (Some(large), Some(small)) = (answers.first(), answers.get(1)) else {
            continue;
        };
        let gz = |a: &crate::history::GzipAnswer| a.encoding.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
        let show = |a: &crate::history::GzipAnswer| {
            format!(
                "{} ({}, {} B uncompressed): {} B {}",
                a.path,
                a.content_type,
                a.identity_bytes,
                a.wire_bytes,
                a.encoding.as_deref().unwrap_or("identity")
            )
        };
        if large.identity_bytes <= u64::from(*min_length) || small.identity_bytes > u64::from(*min_length) {
            return Verdict::new(
                ID,
                Outcome::Inconclusive,
                format!("the probe sizes do not straddle {min_length} B: {}; {}", show(large), show(small)),
                expected,
            );
        }
        let mut problems = Vec::new();
        if !gz(large) {
            problems.push(format!("{} not gzip-encoded", large.path));
        }
        if gz(small) {
            problems.push(format!(
                "{} ({} B) gzip-encoded below {min_length} B",
                small.path, small.identity_bytes
            ));
        }
        let measured = format!("{}; {}", show(large), show(small));
        let outcome = if problems.is_empty() { Outcome::Pass } else { Outcome::Fail };
        let measured = if problems.is_empty() {
            measured
        } else {
            format!("{}: {measured}", problems.join("; "))
        };
        return Verdict::new(ID, outcome, measured, expected).with_evidence(f.proof.clone());
    }
    Verdict::new(
        ID,
        Outcome::Inconclusive,
        "no gzip probe landed (none ran, or it did not land)",
        expected,
    )
}

/// NX-CACHE: a repeated cacheable GET is served from the cache.
pub fn nx_cache(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "NX-CACHE";
    let expected = "repeated GETs of a cacheable 200 are served from the cache (cache header HIT, the backend hit at most once)";
    for f in landed(input.history) {
        let FaultDetail::Cache {
            path,
            header,
            answers,
            backend_requests,
        } = &f.detail
        else {
            continue;
        };
        let hits = answers
            .iter()
            .skip(1)
            .filter(|(_, h)| h.as_deref().is_some_and(|h| h.eq_ignore_ascii_case("HIT")))
            .count();
        let shown: Vec<String> = answers
            .iter()
            .map(|(s, h)| format!("{s} {header}: {}", h.as_deref().unwrap_or("(none)")))
            .collect();
        let backend = backend_requests.map(|b| b.to_string()).unwrap_or_else(|| "?".into());
        let measured = format!(
            "{hits} of {} repeats were cache hits; backend counted {backend} of {} GETs of {path}",
            answers.len().saturating_sub(1),
            answers.len()
        );
        let from_cache = hits + 1 == answers.len() || backend_requests.is_some_and(|b| b <= 1);
        let outcome = if from_cache { Outcome::Pass } else { Outcome::Fail };
        return Verdict::new(ID, outcome, measured, expected).with_evidence(shown.join(", "));
    }
    Verdict::new(
        ID,
        Outcome::Inconclusive,
        "no cache probe landed (none ran, or it did not land)",
        expected,
    )
}

/// NX-RELOAD: no failed request across a reload (certificate renewal or a
/// rejected broken config); a broken config leaves the old one serving.
pub fn nx_reload(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "NX-RELOAD";
    let expected = "no request fails across a reload; a broken config is rejected and the old one keeps serving";
    let h = input.history;
    let mut verdict: Option<Verdict> = None;
    let (mut reloads, mut total) = (0, 0);
    for f in landed(h) {
        let (what, end, extra) = match &f.detail {
            FaultDetail::CertReload {
                certificate,
                via,
                served_at,
                pid_before,
                pid_after,
                ..
            } => (
                format!(
                    "certificate `{certificate}` by {via}, pid {pid_before} -> {}",
                    pid_after.unwrap_or(0)
                ),
                served_at.unwrap_or(f.injected_at) + 1_000_000,
                None,
            ),
            FaultDetail::BrokenReload {
                served_after,
                test_failed,
                pid_before,
                pid_after,
                ..
            } => {
                let problem = (*served_after < 10 || !test_failed || pid_after != &Some(*pid_before))
                    .then(|| format!("broken config: test rejected it: {test_failed}; {served_after}/10 GETs 2xx after; pid {pid_before} -> {pid_after:?}"));
                (
                    "broken config + reload".to_string(),
                    f.healed_at.unwrap_or(f.injected_at) + 500_000,
                    problem,
                )
            }
            _ => continue,
        };
        let reqs = in_window(h, f.injected_at, end);
        let failed: Vec<_> = reqs.iter().filter(|r| !r.ok()).collect();
        reloads += 1;
        total += reqs.len();
        let measured = format!("{} of {} requests failed across the reload ({what})", failed.len(), reqs.len());
        let outcome = if extra.is_some() || !failed.is_empty() {
            Outcome::Fail
        } else if reqs.len() < 10 {
            Outcome::Inconclusive
        } else {
            Outcome::Pass
        };
        let measured = match &extra {
            Some(p) => format!("{p}; {measured}"),
            None => measured,
        };
        let mut v = Verdict::new(ID, outcome, measured, expected).with_evidence(f.proof.clone());
        for r in failed.iter().take(5) {
            v = v.with_evidence(format!("failed: started {} ms, status {}, {:?}", ms(r.start), r.status, r.error));
        }
        verdict = Some(match verdict {
            Some(prev) => prev.merge(v),
            None => v,
        });
    }
    if let Some(v) = verdict.as_mut()
        && v.outcome == Outcome::Pass
        && reloads > 1
    {
        v.measured = format!("0 of {total} requests failed across {reloads} reloads; first: {}", v.measured);
    }
    verdict.unwrap_or_else(|| {
        Verdict::new(
            ID,
            Outcome::Inconclusive,
            "no reload fault landed (none ran, or it did not land)",
            expected,
        )
    })
}
