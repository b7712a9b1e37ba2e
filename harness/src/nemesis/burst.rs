//! A burst straight from the harness to the proxy's rate-limited path at a
//! fixed rate (above or below the declared limit), counting what came back
//! and what reached the backends. Detects finding 2 of the standard
//! (limit_req answering 503; a limited location that answers with `return`).

use super::Nemesis;
use super::proxy::{http_addr, proxy_service, wire_client};
use crate::history::{BurstObservation, FaultDetail, FaultRecord, Finding};
use crate::observe::backend_metrics;
use std::time::Duration;

/// The burst's rate: absolute, or a multiple of the limit the stack declares.
#[derive(Debug, Clone, Copy)]
pub enum Rate {
    PerSecond(f64),
    TimesLimit(f64),
}

impl Rate {
    pub fn of(rate_per_s: Option<f64>, times_limit: Option<f64>) -> Rate {
        match (times_limit, rate_per_s) {
            (Some(x), _) => Rate::TimesLimit(x),
            (None, Some(r)) => Rate::PerSecond(r),
            (None, None) => Rate::TimesLimit(5.0),
        }
    }

    fn per_second(self, limit: f64) -> f64 {
        match self {
            Rate::PerSecond(r) => r,
            Rate::TimesLimit(x) => x * limit,
        }
        .max(0.1)
    }
}

pub async fn burst(n: &Nemesis<'_>, index: usize, target: &str, rate: Rate, duration: Duration) -> FaultRecord {
    let label = match rate {
        Rate::PerSecond(r) => format!("burst {r:.0}/s for {:.1} s", duration.as_secs_f64()),
        Rate::TimesLimit(x) => format!("burst at {x} × the declared limit for {:.1} s", duration.as_secs_f64()),
    };
    let empty = FaultDetail::Burst(BurstObservation::default());
    let Some((svc, decl)) = proxy_service(n, target) else {
        return n.not_landed(index, label, target, "no service declares [proxy]".into(), empty);
    };
    let Some(limit) = &decl.rate_limit else {
        return n.lacks(
            index,
            label,
            &svc.name,
            &["NX-RATE"],
            "a rate limit on the proxy (the standard: requests beyond the configured rate are limited)",
            "[services.<proxy>.proxy] rate_limit = { path, rate_per_s, burst }",
            empty,
        );
    };
    let Some(addr) = http_addr(n, svc) else {
        return n.not_landed(index, label, &svc.name, "the proxy has no address".into(), empty);
    };
    let rate = rate.per_second(limit.rate_per_s);
    let label = format!("{label} ({rate:.0}/s against {}/s + {})", limit.rate_per_s, limit.burst);
    let backend_path = limit.backend_path.clone().unwrap_or_else(|| limit.path.clone());
    let before = backend_metrics::read(n.manifest, n.backend, Some(&backend_path)).await;
    let injected_at = n.now();
    let client = wire_client(Duration::from_secs(5));
    let url = format!("http://{addr}{}", limit.path);
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u32;
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(started + Duration::from_secs_f64(f64::from(i) / rate)).await;
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            match client.get(&url).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    match r.bytes().await {
                        Ok(_) => status,
                        Err(_) => 0,
                    }
                }
                Err(_) => 0,
            }
        }));
    }
    let mut obs = BurstObservation {
        path: limit.path.clone(),
        rate_per_s: rate,
        duration_ms: duration.as_millis() as u64,
        sent: total,
        limit_rate_per_s: limit.rate_per_s,
        limit_burst: limit.burst,
        ..Default::default()
    };
    for t in tasks {
        let status = t.await.unwrap_or(0);
        *obs.statuses.entry(status).or_default() += 1;
        if status == 0 {
            obs.transport_errors += 1;
        }
    }
    // The last request was sent at `duration`; the counters are read once all answered.
    let after = backend_metrics::read(n.manifest, n.backend, Some(&backend_path)).await;
    obs.backend_requests = before.zip(after).map(|(b, a)| a.requests.saturating_sub(b.requests));
    let count = |s: u16| obs.statuses.get(&s).copied().unwrap_or(0);
    if count(503) > 0 && count(429) == 0 {
        n.recorder.finding(Finding {
            id: "NX-LIMIT-503".into(),
            title: "the rate limit answers 503: rejections pollute the 5xx alert and no 429 is counted (limit_req_status 429 missing)"
                .into(),
            evidence: format!("burst of {total} at {rate:.0}/s to {}: {} × 503, 0 × 429", limit.path, count(503)),
        });
    }
    if let Some(evidence) = decl
        .config_file
        .as_ref()
        .and_then(|f| scan_limited_return(&n.plan.run_dir.join(&svc.name).join(f)))
    {
        n.recorder.finding(Finding {
            id: "NX-LIMIT-RETURN".into(),
            title: "a rate-limited location answers with `return`, which runs before limit_req: it is never limited".into(),
            evidence,
        });
    }
    let statuses: Vec<String> = obs
        .statuses
        .iter()
        .map(|(s, c)| format!("{c} × {}", if *s == 0 { "no response".into() } else { s.to_string() }))
        .collect();
    let landed = obs.sent > 0 && obs.transport_errors < obs.sent;
    FaultRecord {
        index,
        label,
        service: svc.name.clone(),
        injected_at,
        healed_at: Some(n.now()),
        provokes: Vec::new(),
        landed,
        proof: format!(
            "{total} requests to {} in {:.1} s: {}; backend saw {}",
            limit.path,
            duration.as_secs_f64(),
            statuses.join(", "),
            obs.backend_requests.map(|b| b.to_string()).unwrap_or_else(|| "(unreadable)".into())
        ),
        detail: FaultDetail::Burst(obs),
    }
}

/// A location block (nginx syntax) holding both `limit_req` and `return`:
/// evidence line, or None. Brace matching only; comments are dropped.
pub fn scan_limited_return(config: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(config).ok()?;
    find_limited_return(&text).map(|loc| format!("{}: `location {loc}` has both limit_req and return", config.display()))
}

pub fn find_limited_return(text: &str) -> Option<String> {
    let clean: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = clean.as_str();
    while let Some(at) = rest.find("location") {
        let after = &rest[at + "location".len()..];
        let open = after.find('{')?;
        let name = after[..open].trim().to_string();
        let body_start = &after[open + 1..];
        let mut depth = 1;
        let mut end = body_start.len();
        for (i, c) in body_start.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let body = &body_start[..end];
        let has = |word: &str| body.split([';', '{', '}']).any(|stmt| stmt.split_whitespace().next() == Some(word));
        if has("limit_req") && has("return") {
            return Some(name);
        }
        rest = &after[open + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::find_limited_return;

    #[test]
    fn finds_a_limited_location_that_returns() {
        let bad = "server {\n location = /a { limit_req zone=z burst=5; return 200 \"ok\"; }\n location / { proxy_pass http://x; } }";
        assert_eq!(find_limited_return(bad).as_deref(), Some("= /a"));
        let good = "server {\n location = /a { limit_req zone=z; proxy_pass http://x; }\n location = /h { return 200; } }";
        assert_eq!(find_limited_return(good), None);
        let commented = "location = /a { limit_req zone=z; # return 200;\n proxy_pass http://x; }";
        assert_eq!(find_limited_return(commented), None);
    }
}
