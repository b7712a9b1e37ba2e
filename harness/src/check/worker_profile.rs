//! What the task worker did in one scenario, as figures that let two workers
//! (the reference worker and real Celery, say) be set side by side. Not a
//! verdict: the CW-* checks judge; this says how a worker behaved where the
//! standard leaves room (redelivery after a lost connection, prefetch,
//! reconnect delay, priority order).

use super::outages;
use super::worker::{TaskTally, backlog_complete_at, intervals, max_concurrent, priority_inversions, starts_after};
use crate::history::History;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerProfile {
    /// What the tasks said ran them ("celery", "refstack"), or "unknown".
    pub worker: String,
    pub enqueued: usize,
    pub done: usize,
    pub lost: usize,
    /// Finished more than once.
    pub duplicated: usize,
    /// Started more than once (a redelivery, finished or not).
    pub started_again: usize,
    pub concurrency_declared: Option<u32>,
    pub max_running: usize,
    /// Most messages delivered and not yet acknowledged at one sample: above
    /// the concurrency, the worker prefetches.
    pub max_reserved: Option<u64>,
    /// Priorities (the standard's, 10 high) in the order their tasks started on
    /// average once the backlog was complete, e.g. "10 > 5 > 1".
    pub priority_order: Option<String>,
    /// Starts that jumped a waiting task of higher priority.
    pub priority_inversions: Option<usize>,
    /// From Redis answering again to the first task start after it.
    pub reconnect_ms: Option<u64>,
    /// From the backlog's completion to the queue's first empty sample.
    pub drain_ms: Option<u64>,
}

impl WorkerProfile {
    /// None when the scenario enqueued no task.
    pub fn of(h: &History) -> Option<WorkerProfile> {
        if h.redis.tasks.is_empty() {
            return None;
        }
        let tally = TaskTally::of(&h.redis.tasks);
        let backlog = backlog_complete_at(h);
        let (priority_order, priority_inversions) = match backlog {
            Some(until) => {
                let started = starts_after(h, until);
                if started.is_empty() {
                    (None, None)
                } else {
                    (
                        Some(priority_order(&started)),
                        Some(priority_inversions(&started, &h.redis.tasks, until).0),
                    )
                }
            }
            None => (None, None),
        };
        let mut redis_services: Vec<String> = h.redis.samples.iter().map(|s| s.service.clone()).collect();
        redis_services.dedup();
        let reconnect_ms = outages(h, &redis_services).find_map(|(f, _, back)| {
            let back = back.filter(|_| f.landed)?;
            let first = h
                .redis
                .tasks
                .iter()
                .flat_map(|t| t.starts.iter().map(|s| s.0))
                .filter(|s| *s > back)
                .min()?;
            Some((first - back) / 1000)
        });
        let drain_ms = backlog.and_then(|from| {
            let peaked = h.redis.queue.iter().any(|q| q.at >= from && q.total > 0);
            let empty = h.redis.queue.iter().find(|q| q.at >= from && q.total == 0)?;
            peaked.then(|| (empty.at - from) / 1000)
        });
        Some(WorkerProfile {
            worker: h.redis.worker_kind.clone().unwrap_or_else(|| "unknown".into()),
            enqueued: tally.enqueued,
            done: tally.done,
            lost: tally.lost.len(),
            duplicated: tally.duplicated.len(),
            started_again: tally.rerun.len(),
            concurrency_declared: h.redis.worker_concurrency,
            max_running: max_concurrent(&intervals(h)),
            max_reserved: reserved_without_stops(h),
            priority_order,
            priority_inversions,
            reconnect_ms,
            drain_ms,
        })
    }

    /// Prefetched beyond the running slots, at most.
    pub fn prefetch(&self) -> Option<u64> {
        Some(self.max_reserved?.saturating_sub(u64::from(self.concurrency_declared?)))
    }

    /// The figures as (label, value) rows, in a fixed order, for tables.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        vec![
            ("worker", self.worker.clone()),
            (
                "tasks",
                format!(
                    "{} enqueued, {} done, {} lost, {} duplicated, {} started again",
                    self.enqueued, self.done, self.lost, self.duplicated, self.started_again
                ),
            ),
            (
                "running at once",
                match self.concurrency_declared {
                    Some(c) => format!("at most {} (declared {c})", self.max_running),
                    None => format!("at most {}", self.max_running),
                },
            ),
            (
                "delivered, unacknowledged",
                opt(self.max_reserved.map(|r| match self.prefetch() {
                    Some(0) => format!("at most {r}: no prefetch beyond the running slots"),
                    Some(p) => format!("at most {r}: up to {p} prefetched beyond the running slots"),
                    None => format!("at most {r}"),
                })),
            ),
            (
                "priority order",
                opt(self.priority_order.as_ref().map(|o| match self.priority_inversions {
                    Some(i) => format!("{o} ({i} starts jumped a higher priority)"),
                    None => o.clone(),
                })),
            ),
            (
                "first task after Redis returned",
                opt(self.reconnect_ms.map(|ms| format!("{ms} ms"))),
            ),
            ("backlog drained in", opt(self.drain_ms.map(|ms| format!("{ms} ms")))),
        ]
    }

    /// Rows where two profiles differ: (label, this, other).
    pub fn differences(&self, other: &WorkerProfile) -> Vec<(&'static str, String, String)> {
        self.rows()
            .into_iter()
            .zip(other.rows())
            .filter(|((label, a), (_, b))| *label != "worker" && differs(label, a, b, self, other))
            .map(|((label, a), (_, b))| (label, a, b))
            .collect()
    }
}

/// Times always differ a little between runs: only a factor of two or more
/// counts as a difference in behaviour; everything else must match exactly.
fn differs(label: &str, a: &str, b: &str, x: &WorkerProfile, y: &WorkerProfile) -> bool {
    let pair = match label {
        "first task after Redis returned" => (x.reconnect_ms, y.reconnect_ms),
        "backlog drained in" => (x.drain_ms, y.drain_ms),
        "tasks" => return (x.lost, x.duplicated, x.started_again) != (y.lost, y.duplicated, y.started_again),
        "priority order" => return x.priority_order != y.priority_order,
        _ => return a != b,
    };
    match pair {
        (Some(p), Some(q)) => p.max(q) >= 2 * p.min(q).max(1) && p.abs_diff(q) > 200,
        (p, q) => p.is_some() != q.is_some(),
    }
}

/// The most delivered-unacknowledged messages, only where nothing but the
/// flood happened: after a kill or an outage, entries of the dead consumer stay
/// in the hash until redelivery and would read as prefetch.
fn reserved_without_stops(h: &History) -> Option<u64> {
    let only_floods = h
        .faults
        .iter()
        .all(|f| matches!(f.detail, crate::history::FaultDetail::Flood { .. }));
    only_floods.then(|| h.redis.queue.iter().filter_map(|q| q.reserved).max()).flatten()
}

/// Priorities ordered by the mean position of their starts ("10 > 5 > 1").
fn priority_order(started: &[(&crate::history::TaskRecord, crate::history::Micros)]) -> String {
    let mut by_priority: std::collections::BTreeMap<u8, (usize, usize)> = Default::default();
    for (pos, (t, _)) in started.iter().enumerate() {
        let e = by_priority.entry(t.priority).or_default();
        e.0 += pos;
        e.1 += 1;
    }
    let mut order: Vec<(f64, u8)> = by_priority.iter().map(|(p, (sum, n))| (*sum as f64 / *n as f64, *p)).collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    order.iter().map(|(_, p)| p.to_string()).collect::<Vec<_>>().join(" > ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{FaultDetail, FaultRecord, QueueSample, TaskRecord};

    fn task(id: &str, priority: u8, starts: &[u64]) -> TaskRecord {
        TaskRecord {
            id: id.into(),
            priority,
            enqueued_at: 1_000,
            starts: starts.iter().map(|s| (*s, 1)).collect(),
            finishes: starts.iter().map(|s| (*s + 500, 1)).collect(),
            ..TaskRecord::default()
        }
    }

    fn flooded(tasks: Vec<TaskRecord>) -> History {
        let mut h = History::default();
        h.redis.tasks = tasks;
        h.redis.worker_concurrency = Some(1);
        h.redis.worker_kind = Some("celery".into());
        h.redis.queue = vec![
            QueueSample {
                at: 2_000,
                total: 3,
                base_list: 1,
                reserved: Some(2),
            },
            QueueSample {
                at: 9_000,
                total: 0,
                base_list: 0,
                reserved: Some(0),
            },
        ];
        h.faults.push(FaultRecord {
            index: 0,
            label: "flood".into(),
            service: "worker".into(),
            injected_at: 1_000,
            healed_at: None,
            provokes: Vec::new(),
            landed: true,
            proof: String::new(),
            detail: FaultDetail::Flood {
                requested: 3,
                accepted: 3,
                queue_total: Some(3),
                queue_base_list: Some(1),
                enqueued_until: 2_000,
            },
        });
        h
    }

    #[test]
    fn profile_reads_order_prefetch_and_drain() {
        let h = flooded(vec![task("a", 1, &[7_000]), task("b", 10, &[3_000]), task("c", 5, &[5_000, 6_000])]);
        let p = WorkerProfile::of(&h).expect("tasks were enqueued");
        assert_eq!(p.worker, "celery");
        assert_eq!(p.priority_order.as_deref(), Some("10 > 5 > 1"));
        assert_eq!(p.priority_inversions, Some(0));
        assert_eq!((p.enqueued, p.done, p.lost, p.duplicated, p.started_again), (3, 3, 0, 1, 1));
        assert_eq!(p.prefetch(), Some(1));
        assert_eq!(p.drain_ms, Some(7));
    }

    #[test]
    fn differences_ignore_small_timing_noise_but_not_behaviour() {
        let h = flooded(vec![task("a", 1, &[7_000]), task("b", 10, &[3_000])]);
        let a = WorkerProfile::of(&h).expect("profile");
        let mut b = a.clone();
        b.worker = "refstack".into();
        b.drain_ms = a.drain_ms.map(|d| d + 100);
        assert!(a.differences(&b).is_empty(), "{:?}", a.differences(&b));
        b.duplicated = 4;
        b.reconnect_ms = Some(3_000);
        let mut c = a.clone();
        c.reconnect_ms = Some(180);
        let labels: Vec<&str> = c.differences(&b).iter().map(|d| d.0).collect();
        assert_eq!(labels, ["tasks", "first task after Redis returned"]);
    }
}
