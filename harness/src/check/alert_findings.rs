//! Findings the stack's own alert rules give evidence for (spec findings 10
//! and 13): read from the expressions its Prometheus loaded, so they name
//! the stack's rules, never the reference's.

use super::alert_rules::windows_and_metrics;
use crate::history::{DeclaredAlert, Finding, RuleDef};
use std::collections::BTreeMap;

/// The rate rules whose window and denominator the standard leaves open.
const RATE_RULES: &[(&str, &str)] = &[("AL-ERR", "> 5 %"), ("AL-NGX-5XX", "> 1 %"), ("AL-TASK-FAIL", "> 10 %")];

/// Metric names that count Celery heartbeats rather than watch the process.
fn reads_heartbeats(metric: &str) -> bool {
    ["worker_online", "heartbeat", "celery_worker_up", "celery_workers"]
        .iter()
        .any(|m| metric.contains(m))
}

fn seconds(d: &std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 && s % 60.0 == 0.0 {
        format!("{}m", s / 60.0)
    } else {
        format!("{s}s")
    }
}

pub fn findings(declared: &BTreeMap<String, DeclaredAlert>, defs: &[RuleDef]) -> Vec<Finding> {
    let rule = |id: &str| {
        let alert = &declared.get(id)?.alert;
        defs.iter().find(|d| &d.name == alert)
    };
    let mut out = Vec::new();
    let mut rates = Vec::new();
    for (id, threshold) in RATE_RULES {
        let Some(def) = rule(id) else { continue };
        let Some((windows, metrics)) = windows_and_metrics(&def.expr) else {
            continue;
        };
        let over = if windows.is_empty() {
            "no range window (an instant ratio)".to_string()
        } else {
            format!("windows {}", windows.iter().map(seconds).collect::<Vec<_>>().join(", "))
        };
        rates.push(format!(
            "{id} ({threshold}): `{}` = `{}`, {over}, over {} (for: {} s)",
            def.name,
            def.expr,
            metrics.join(" / "),
            def.for_s
        ));
    }
    if !rates.is_empty() {
        out.push(Finding {
            id: "F13-RATE-WINDOWS-UNSTATED".into(),
            title: "the standard's rate alerts state a threshold but no window or denominator".into(),
            evidence: format!(
                "{}; the standard gives none of these, so two conforming stacks can page at very different moments: a short \
                 window pages on a handful of failed requests, a long one minutes late",
                rates.join("; ")
            ),
        });
    }
    if let Some(def) = rule("AL-WORKER")
        && let Some((_, metrics)) = windows_and_metrics(&def.expr)
        && let Some(m) = metrics.iter().find(|m| reads_heartbeats(m))
    {
        out.push(Finding {
            id: "F10-WORKER-DOWN-BY-HEARTBEAT".into(),
            title: "worker-down detected from Celery heartbeats comes late".into(),
            evidence: format!(
                "AL-WORKER's rule `{}` = `{}` reads `{m}`, which follows Celery's worker heartbeats: a stopped worker counts as \
                 online until its heartbeats are missed long enough (about 2 minutes by the standard's own account); a scrape of \
                 the worker's process (`up`) or its exit sees it at once",
                def.name, def.expr
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(pairs: &[(&str, &str)]) -> BTreeMap<String, DeclaredAlert> {
        pairs
            .iter()
            .map(|(id, a)| {
                (
                    id.to_string(),
                    DeclaredAlert {
                        alert: a.to_string(),
                        query: None,
                    },
                )
            })
            .collect()
    }

    fn def(name: &str, expr: &str) -> RuleDef {
        RuleDef {
            name: name.into(),
            expr: expr.into(),
            for_s: 60.0,
        }
    }

    #[test]
    fn rate_rules_are_reported_with_their_windows_and_metrics() {
        let d = declared(&[("AL-ERR", "Errors"), ("AL-WORKER", "Down")]);
        let defs = [
            def(
                "Errors",
                "sum(rate(http_requests_total{status=~\"5..\"}[5m])) / sum(rate(http_requests_total[5m])) > 0.05",
            ),
            def("Down", "up{job=\"worker\"} == 0"),
        ];
        let f = findings(&d, &defs);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].id, "F13-RATE-WINDOWS-UNSTATED");
        assert!(f[0].evidence.contains("windows 5m, over http_requests_total"), "{}", f[0].evidence);
    }

    #[test]
    fn a_heartbeat_based_worker_rule_is_reported_and_an_up_rule_is_not() {
        let d = declared(&[("AL-WORKER", "Down")]);
        let f = findings(&d, &[def("Down", "flower_worker_online == 0")]);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].evidence.contains("reads `flower_worker_online`"), "{}", f[0].evidence);
        assert!(findings(&d, &[def("Down", "up == 0")]).is_empty());
        assert!(findings(&BTreeMap::new(), &[def("Down", "flower_worker_online == 0")]).is_empty());
    }
}
