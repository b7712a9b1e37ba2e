//! The stack's alerts, read from its monitoring's Prometheus HTTP API:
//! `/api/v1/rules?type=alert` (every alerting rule: name, state, when its
//! group last evaluated) and `/api/v1/query` (the queries the manifest
//! declares beside an alert). A watcher samples both into the history while a
//! scenario runs; checkers and the nemesis read only those samples.

use crate::history::{AlertSample, DeclaredAlert, Micros, Recorder, RuleDef, RuleState};
use crate::manifest::Manifest;
use crate::stack::Backend;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A Prometheus server's HTTP API on loopback.
#[derive(Debug, Clone)]
pub struct PromApi {
    base: String,
    client: reqwest::Client,
}

/// One alerting rule as `/api/v1/rules` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub name: String,
    /// "firing", "pending" or "inactive".
    pub state: String,
    /// Unix seconds of the group's last evaluation (None: not yet evaluated).
    pub last_evaluation: Option<f64>,
    /// The rule's PromQL expression and its `for:` in seconds.
    pub expr: String,
    pub for_s: f64,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct Envelope<T> {
    status: String,
    #[serde(default = "Option::default")]
    data: Option<T>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct RulesData {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
struct RawRule {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, rename = "lastEvaluation")]
    last_evaluation: Option<String>,
    #[serde(default)]
    query: String,
    #[serde(default)]
    duration: f64,
}

#[derive(Deserialize)]
struct TargetsData {
    #[serde(rename = "activeTargets", default)]
    active_targets: Vec<RawTarget>,
}

#[derive(Deserialize)]
struct RawTarget {
    /// "up", "down", or "unknown" until its first scrape.
    #[serde(default)]
    health: String,
}

#[derive(Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

impl PromApi {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            client: crate::observe::http::probe_client(Duration::from_millis(800)),
        }
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, path_and_query: &str) -> Result<T, String> {
        let url = format!("{}{path_and_query}", self.base);
        let resp = self.client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
        let env: Envelope<T> =
            serde_json::from_str(&body).map_err(|e| format!("GET {url}: status {status}, not a Prometheus API answer ({e})"))?;
        match (env.status.as_str(), env.data) {
            ("success", Some(data)) => Ok(data),
            _ => Err(format!(
                "GET {url}: status {status}: {}",
                env.error.unwrap_or_else(|| "no data".into())
            )),
        }
    }

    /// Every alerting rule Prometheus has loaded, with its state.
    pub async fn alert_rules(&self) -> Result<Vec<AlertRule>, String> {
        let data: RulesData = self.get("/api/v1/rules?type=alert").await?;
        Ok(data
            .groups
            .into_iter()
            .flat_map(|g| g.rules)
            .filter(|r| r.kind == "alerting")
            .map(|r| AlertRule {
                name: r.name,
                state: r.state.unwrap_or_else(|| "inactive".into()),
                last_evaluation: r.last_evaluation.as_deref().and_then(parse_rfc3339),
                expr: r.query,
                for_s: r.duration,
            })
            .collect())
    }

    /// Active scrape targets: (scraped at least once, all).
    pub async fn targets_scraped(&self) -> Result<(usize, usize), String> {
        let data: TargetsData = self.get("/api/v1/targets?state=active").await?;
        let scraped = data.active_targets.iter().filter(|t| t.health != "unknown").count();
        Ok((scraped, data.active_targets.len()))
    }

    /// An instant query; the smallest value when it returns several series,
    /// `None` when it returns none.
    pub async fn query_min(&self, expr: &str) -> Result<Option<f64>, String> {
        let data: QueryData = self.get(&format!("/api/v1/query?query={}", url_encode(expr))).await?;
        let values: Vec<f64> = match data.result_type.as_str() {
            "vector" => data
                .result
                .as_array()
                .map(|a| a.iter().filter_map(|s| sample_value(&s["value"])).collect())
                .unwrap_or_default(),
            "scalar" => sample_value(&data.result).into_iter().collect(),
            other => return Err(format!("query `{expr}` returned a {other}, expected a vector or scalar")),
        };
        Ok(values.into_iter().reduce(f64::min))
    }
}

/// `[<unix time>, "<value>"]` -> the value.
fn sample_value(v: &serde_json::Value) -> Option<f64> {
    v.get(1)?.as_str()?.parse().ok()
}

/// RFC 3339 (Prometheus's `lastEvaluation`, nanoseconds) -> unix seconds;
/// Go's zero time ("0001-01-01T00:00:00Z") means never.
fn parse_rfc3339(s: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let secs = t.unix_timestamp_nanos() as f64 / 1e9;
    (secs > 0.0).then_some(secs)
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Samples the declared alerts into the history until stopped.
pub struct AlertWatcher {
    recorder: Arc<Recorder>,
    /// What the last look at the targets saw, until all were scraped.
    scrape_status: Arc<std::sync::Mutex<String>>,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl AlertWatcher {
    /// Records what the stack declares and starts sampling; `None` when the
    /// stack declares no `[monitoring]` (the history then says so).
    pub fn start(manifest: &Manifest, backend: &dyn Backend, recorder: Arc<Recorder>, interval: Duration) -> Option<Self> {
        let m = manifest.monitoring.as_ref()?;
        let addr = backend.endpoint(&m.service, &m.port)?;
        let declared: BTreeMap<String, DeclaredAlert> = m
            .alerts
            .iter()
            .map(|(id, d)| {
                (
                    id.clone(),
                    DeclaredAlert {
                        alert: d.alert.clone(),
                        query: d.query.clone(),
                    },
                )
            })
            .collect();
        recorder.monitoring_declared(format!("{} (Prometheus API on {addr})", m.service), declared.clone(), m.time_scale);
        let api = PromApi::new(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let (sampling, sampled) = (api.clone(), recorder.clone());
        let scrape_status = Arc::new(std::sync::Mutex::new(String::from("no answer")));
        let status = scrape_status.clone();
        let task = tokio::spawn(async move {
            let (api, recorder) = (sampling, sampled);
            let mut rules_recorded = false;
            let mut last_scrape_status = String::from("no answer");
            while !stopping.load(Ordering::Relaxed) {
                if recorder.monitoring_scraped_at().is_none() {
                    match api.targets_scraped().await {
                        Ok((scraped, all)) if scraped == all && all > 0 => recorder.monitoring_scraped(recorder.clock.now()),
                        Ok((scraped, all)) => last_scrape_status = format!("{scraped} of {all} targets scraped"),
                        Err(e) => last_scrape_status = e,
                    }
                    *scrape_status.lock().unwrap_or_else(|p| p.into_inner()) = last_scrape_status.clone();
                }
                let sample = sample(&api, &declared, &recorder, &mut rules_recorded).await;
                recorder.alert_sample(sample);
                tokio::time::sleep(interval).await;
            }
        });
        Some(Self {
            recorder,
            stop,
            task: Some(task),
            scrape_status: status,
        })
    }

    /// Wait until Prometheus has scraped every active target once: before
    /// that no alert can see a fault, however real. Returns what it saw.
    pub async fn wait_scraped(&self, deadline: Duration) -> Result<Duration, String> {
        let started = tokio::time::Instant::now();
        while started.elapsed() < deadline {
            if self.recorder.monitoring_scraped_at().is_some() {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(self.scrape_status.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Wait until none of `alerts` is pending or firing (a resolution is
    /// evidence the checks need), the router has told of each resolution,
    /// and none fired without the router paging it (its absence is evidence
    /// only once the whole deadline has passed); up to `deadline`; whether
    /// they settled.
    ///
    /// Each alert comes with the start of the last fault meant to provoke it
    /// (if any): until it has fired since, or the deadline from that start
    /// has passed, "inactive" means "not yet", not "resolved".
    pub async fn wait_settled(&self, expected: &[(String, Option<Micros>)], deadline: Duration) -> bool {
        let started = tokio::time::Instant::now();
        let from = self.recorder.clock.now();
        // Only an alert a fault provoked has a resolution to judge: one that
        // fires unprovoked (a false alarm) is a fail whenever it stops.
        let alerts: Vec<String> = expected
            .iter()
            .filter(|(_, provoked)| provoked.is_some())
            .map(|(a, _)| a.clone())
            .collect();
        let alerts = alerts.as_slice();
        // Past the deadline by more than one sample, so that "never fired" is
        // measured over the whole budget and is a fail, not an inconclusive.
        let deadline_us = deadline.as_micros() as Micros + 1_000_000;
        let cap = deadline + Duration::from_secs(1);
        loop {
            let now = self.recorder.clock.now();
            let earliest = expected.iter().filter_map(|(_, t)| *t).min().unwrap_or(now);
            let watched = self.recorder.alert_samples_since(earliest.min(from));
            let awaited = expected.iter().any(|(a, provoked)| {
                provoked.is_some_and(|t| now < t + deadline_us && !watched.iter().any(|s| s.at >= t && s.is_firing(a)))
            });
            let samples = self.recorder.alert_samples_since(from);
            // Inactive in Prometheus, and the router (if any) has said so too.
            if !awaited
                && let Some(s) = samples.iter().rev().find(|s| s.error.is_none())
                && alerts.iter().all(|a| s.rules.get(a).is_none_or(|r| r.state == "inactive"))
                && self.recorder.alerts_paged_and_not_resolved(alerts).is_empty()
                && self
                    .recorder
                    .alerts_fired_but_not_paged(alerts, now.saturating_sub(deadline_us))
                    .is_empty()
            {
                return true;
            }
            if started.elapsed() >= cap {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

impl Drop for AlertWatcher {
    /// A scenario that ends early (an error, Ctrl-C) must not leave the sampler running.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn sample(api: &PromApi, declared: &BTreeMap<String, DeclaredAlert>, recorder: &Recorder, rules_recorded: &mut bool) -> AlertSample {
    // The queries first, then the clock: a value in this sample was in the
    // monitoring's storage at `at`, so an evaluation at or after `at` saw it.
    let mut s = AlertSample::default();
    for (id, d) in declared {
        let Some(q) = &d.query else { continue };
        match api.query_min(q).await {
            Ok(Some(v)) => {
                s.values.insert(id.clone(), v);
            }
            Ok(None) => {}
            Err(e) => {
                s.error.get_or_insert(e);
            }
        }
    }
    let at: Micros = recorder.clock.now();
    let wall = unix_now();
    s.at = at;
    match api.alert_rules().await {
        Ok(rules) => {
            if !*rules_recorded {
                let mut names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
                names.sort();
                names.dedup();
                let defs = rules
                    .iter()
                    .map(|r| RuleDef {
                        name: r.name.clone(),
                        expr: r.expr.clone(),
                        for_s: r.for_s,
                    })
                    .collect::<Vec<_>>();
                for f in crate::check::alert_findings::findings(declared, &defs) {
                    recorder.finding(f);
                }
                recorder.rules_loaded(names, defs);
                *rules_recorded = true;
            }
            for r in &rules {
                if r.state == "firing" && !s.firing.contains(&r.name) {
                    s.firing.push(r.name.clone());
                }
            }
            for d in declared.values() {
                // Several rules may share a name: the most alarming state, the latest evaluation.
                let mine: Vec<&AlertRule> = rules.iter().filter(|r| r.name == d.alert).collect();
                if mine.is_empty() {
                    continue;
                }
                let state = ["firing", "pending"]
                    .into_iter()
                    .find(|st| mine.iter().any(|r| r.state == *st))
                    .unwrap_or("inactive");
                let evaluated = mine.iter().filter_map(|r| r.last_evaluation).reduce(f64::max);
                s.rules.insert(
                    d.alert.clone(),
                    RuleState {
                        state: state.to_string(),
                        evaluated_at: evaluated.map(|e| at.saturating_sub(((wall - e).max(0.0) * 1e6) as Micros)),
                    },
                );
            }
        }
        Err(e) => s.error = Some(e),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_zero_time_is_never() {
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
        let t = parse_rfc3339("2024-05-01T10:00:00.5Z").expect("parsed");
        assert!((t - 1_714_557_600.5).abs() < 1e-6, "{t}");
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(url_encode("(a - time()) / 86400"), "%28a%20-%20time%28%29%29%20%2F%2086400");
    }
}
