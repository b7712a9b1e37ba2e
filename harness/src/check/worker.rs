//! Section 8 and GS-WORKER: the task worker, judged from the record of every
//! task the harness enqueued (Jepsen's total-queue idea: each enqueued task
//! must be done; none run twice unless it was handed back after a kill).

use super::verdict::{Outcome, Verdict};
use super::{CheckInput, outages, rel};
use crate::history::{FaultDetail, FaultRecord, History, Micros, TaskRecord};

/// The standard's queue-length alert threshold (AL-QUEUE).
pub const QUEUE_ALERT: u64 = 100;

/// Lost (never finished), duplicated (finished more than once) and re-run (started more than once).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaskTally {
    pub enqueued: usize,
    pub done: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub rerun: Vec<String>,
}

impl TaskTally {
    pub fn of<'a>(tasks: impl IntoIterator<Item = &'a TaskRecord>) -> TaskTally {
        let mut t = TaskTally::default();
        for task in tasks {
            t.enqueued += 1;
            if task.finishes.is_empty() {
                t.lost.push(task.id.clone());
            } else {
                t.done += 1;
            }
            if task.finishes.len() > 1 {
                t.duplicated.push(task.id.clone());
            }
            if task.starts.len() > 1 {
                t.rerun.push(task.id.clone());
            }
        }
        t
    }

    pub fn describe(&self) -> String {
        format!(
            "{} enqueued, {} done, {} lost, {} duplicated, {} started more than once",
            self.enqueued,
            self.done,
            self.lost.len(),
            self.duplicated.len(),
            self.rerun.len()
        )
    }
}

fn floods(h: &History) -> impl Iterator<Item = &FaultRecord> {
    h.faults.iter().filter(|f| matches!(f.detail, FaultDetail::Flood { .. }))
}

fn no_tasks(id: &str, expected: &str) -> Verdict {
    Verdict::new(
        id,
        Outcome::Inconclusive,
        "the harness did not enqueue any task in this scenario",
        expected,
    )
}

fn first_ids(ids: &[String]) -> String {
    ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
}

/// CW-FLOOD: the queue went far above the alert threshold, drained, nothing lost or duplicated.
pub fn cw_flood(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CW-FLOOD";
    let expected = format!("queue above {QUEUE_ALERT} (AL-QUEUE would fire), then empty; every task done exactly once");
    let h = input.history;
    if floods(h).next().is_none() || h.redis.tasks.is_empty() {
        return no_tasks(ID, &expected);
    }
    let tally = TaskTally::of(&h.redis.tasks);
    let peak = h.redis.queue.iter().map(|q| q.total).max().unwrap_or(0);
    let last = h.redis.queue.last().map(|q| q.total);
    let mut v = if !tally.lost.is_empty() || !tally.duplicated.is_empty() {
        Verdict::new(ID, Outcome::Fail, tally.describe(), expected)
            .with_evidence(format!("lost (first 5): {}", first_ids(&tally.lost)))
            .with_evidence(format!("duplicated (first 5): {}", first_ids(&tally.duplicated)))
    } else if peak <= QUEUE_ALERT {
        Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("queue peaked at {peak}, not above the alert threshold {QUEUE_ALERT}"),
            expected,
        )
    } else if last != Some(0) {
        Verdict::new(
            ID,
            Outcome::Fail,
            format!("queue still held {} tasks at the end", last.unwrap_or(0)),
            expected,
        )
    } else {
        let drained = h.redis.queue.iter().find(|q| q.total == 0 && q.at > 0).map(|q| q.at);
        let start = floods(h).next().map(|f| f.injected_at).unwrap_or(0);
        Verdict::new(
            ID,
            Outcome::Pass,
            format!(
                "queue peaked at {peak} (> {QUEUE_ALERT}), drained {}; {}",
                drained.map(|d| rel(d, start)).unwrap_or_default(),
                tally.describe()
            ),
            expected,
        )
    };
    if let Some(base) = h.redis.queue.iter().find(|q| q.total == peak).map(|q| q.base_list)
        && base != peak
    {
        v = v.with_evidence(format!(
            "finding 8: at the peak LLEN of the base list alone was {base}, all priority lists held {peak}"
        ));
    }
    v.with_reading("the queue length is the sum of LLEN over every priority list of the queue (finding 8); AL-QUEUE's rule itself is not evaluated here")
}

/// Running intervals (start, finish) of every finished run of a task, paired in order.
fn intervals(h: &History) -> Vec<(Micros, Micros)> {
    h.redis
        .tasks
        .iter()
        .flat_map(|t| t.starts.iter().zip(t.finishes.iter()).map(|(s, f)| (s.0, f.0)))
        .collect()
}

/// The most tasks running at once.
pub fn max_concurrent(spans: &[(Micros, Micros)]) -> usize {
    let mut edges: Vec<(Micros, i32)> = spans.iter().flat_map(|(s, f)| [(*s, 1), (*f, -1)]).collect();
    // A finish before a start at the same microsecond.
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max.max(0) as usize
}

/// CW-CONC: tasks run exactly as many at once as the concurrency variable says.
pub fn cw_conc(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CW-CONC";
    let expected = "with a backlog, the most tasks running at once equals CELERY_WORKER_CONCURRENCY";
    let h = input.history;
    let Some(declared) = h.redis.worker_concurrency else {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            "the harness did not read the worker's concurrency variable",
            expected,
        );
    };
    let spans = intervals(h);
    if spans.len() < (declared as usize) * 3 {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("only {} task runs recorded", spans.len()),
            expected,
        );
    }
    let seen = max_concurrent(&spans);
    let measured = format!(
        "at most {seen} tasks ran at once over {} runs; the variable says {declared}",
        spans.len()
    );
    Verdict::new(
        ID,
        if seen == declared as usize { Outcome::Pass } else { Outcome::Fail },
        measured,
        expected,
    )
    .with_reading("running = between the start and finish events the tasks wrote themselves (wall clock of one machine)")
}

/// CW-PRIO: with a backlog, tasks start in priority order (the standard's 10 first).
pub fn cw_prio(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CW-PRIO";
    let expected = "once the backlog is there, no task starts while a task of higher priority (10 > 5 > 1) waits";
    let h = input.history;
    let Some(until) = floods(h).find_map(|f| match f.detail {
        FaultDetail::Flood { enqueued_until, .. } => Some(enqueued_until),
        _ => None,
    }) else {
        return no_tasks(ID, expected);
    };
    let concurrency = h.redis.worker_concurrency.unwrap_or(1) as usize;
    // Tasks that started after the whole backlog was in the queue.
    let mut started: Vec<(&TaskRecord, Micros)> = h
        .redis
        .tasks
        .iter()
        .filter_map(|t| t.starts.first().map(|s| (t, s.0)))
        .filter(|(_, s)| *s > until)
        .collect();
    started.sort_by_key(|(_, s)| *s);
    if started.len() < 20 {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("only {} tasks started after the backlog formed", started.len()),
            expected,
        );
    }
    let mut inversions = 0;
    let mut example = None;
    for (i, (t, s)) in started.iter().enumerate() {
        // A task of higher priority enqueued before this one started and started only later.
        if let Some((u, us)) = started[i + 1..].iter().find(|(u, _)| u.priority > t.priority && u.enqueued_at < *s) {
            inversions += 1;
            example.get_or_insert(format!(
                "priority {} started at {} while priority {} (enqueued {}) waited until {}",
                t.priority,
                rel(*s, until),
                u.priority,
                rel(u.enqueued_at, until),
                rel(*us, until)
            ));
        }
    }
    let order: Vec<String> = started.iter().take(12).map(|(t, _)| t.priority.to_string()).collect();
    let measured = format!(
        "{inversions} of {} starts after the backlog jumped a higher priority; first starts: {}",
        started.len(),
        order.join(" ")
    );
    // Tasks already fetched (one per slot) may run ahead of a later higher-priority one.
    let outcome = if inversions <= concurrency { Outcome::Pass } else { Outcome::Fail };
    let mut v = Verdict::new(ID, outcome, measured, expected).with_reading(format!(
        "the standard's 10 is high; up to {concurrency} (one per slot, already fetched) out of order allowed"
    ));
    if let Some(e) = example {
        v = v.with_evidence(e);
    }
    v
}

/// Faults that stopped the worker service: (fault, signal).
fn worker_stops<'a>(h: &'a History, worker: &'a str) -> impl Iterator<Item = (&'a FaultRecord, &'a str)> + 'a {
    h.faults
        .iter()
        .filter(move |f| f.service == worker)
        .filter_map(|f| match &f.detail {
            FaultDetail::Outage { signal, .. } | FaultDetail::Signal { signal, .. } => Some((f, signal.as_str())),
            _ => None,
        })
}

fn worker_name(h: &History) -> Option<&str> {
    floods(h).next().map(|f| f.service.as_str())
}

/// GS-WORKER: no task taken before a stop signal is lost; after SIGTERM none runs twice.
pub fn gs_worker(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "GS-WORKER";
    let expected = "every task taken before the signal completes or is redelivered and completes; after SIGTERM none runs twice";
    let h = input.history;
    let Some(worker) = worker_name(h) else {
        return no_tasks(ID, expected);
    };
    let stops: Vec<_> = worker_stops(h, worker).collect();
    if stops.is_empty() {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            "the worker did not get a stop signal in this scenario",
            expected,
        );
    }
    if let Some((f, _)) = stops.iter().find(|(f, _)| !f.landed) {
        return Verdict::new(ID, Outcome::Inconclusive, format!("the stop did not land: {}", f.proof), expected);
    }
    let tally = TaskTally::of(&h.redis.tasks);
    let running_at = |t: &TaskRecord, at: Micros| t.starts.iter().any(|s| s.0 <= at) && !t.finishes.iter().any(|f| f.0 <= at);
    let mut evidence = Vec::new();
    for (f, sig) in &stops {
        let n = h.redis.tasks.iter().filter(|t| running_at(t, f.injected_at)).count();
        evidence.push(format!("{sig} at {}: {n} tasks running", rel(f.injected_at, 0)));
    }
    let term_only = stops.iter().all(|(_, s)| *s == "SIGTERM");
    let visibility = h.redis.visibility_timeout_ms.unwrap_or(3_600_000);
    let end = h.redis.queue.last().map(|q| q.at).unwrap_or(0);
    let last_kill = stops.iter().filter(|(_, s)| *s == "SIGKILL").map(|(f, _)| f.injected_at).max();
    let mut v = if !tally.lost.is_empty() {
        // After a SIGKILL the task comes back only after the visibility timeout.
        let waited = last_kill.map(|k| end.saturating_sub(k) / 1000).unwrap_or(u64::MAX);
        if waited < visibility {
            Verdict::new(
                ID,
                Outcome::Inconclusive,
                format!(
                    "{}; the run ended {waited} ms after the SIGKILL, before the {visibility} ms visibility timeout",
                    tally.describe()
                ),
                expected,
            )
        } else {
            Verdict::new(
                ID,
                Outcome::Fail,
                format!("{} tasks lost: {}", tally.lost.len(), tally.describe()),
                expected,
            )
            .with_evidence(format!("lost (first 5): {}", first_ids(&tally.lost)))
        }
    } else if term_only && !tally.rerun.is_empty() {
        Verdict::new(
            ID,
            Outcome::Fail,
            format!("{} tasks ran twice after SIGTERM: {}", tally.rerun.len(), tally.describe()),
            expected,
        )
        .with_evidence(format!("ran twice (first 5): {}", first_ids(&tally.rerun)))
    } else {
        Verdict::new(ID, Outcome::Pass, tally.describe(), expected)
    };
    for e in evidence {
        v = v.with_evidence(e);
    }
    v.with_reading(format!(
        "after a SIGKILL a task comes back once the visibility timeout ({visibility} ms, declared by the stack) has passed; running twice then is at-least-once delivery, not a loss"
    ))
}

/// CW-RECONNECT: after a Redis outage during the work, every task still gets done.
pub fn cw_reconnect(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CW-RECONNECT";
    let expected = "after Redis returns, the worker reconnects by itself and every enqueued task is done";
    let h = input.history;
    if h.redis.tasks.is_empty() {
        return no_tasks(ID, expected);
    }
    let Some((f, _, back)) = outages(h, &input.dependency_services).next() else {
        return Verdict::new(ID, Outcome::Inconclusive, "Redis did not go down in this scenario", expected);
    };
    if !f.landed {
        return Verdict::new(ID, Outcome::Inconclusive, format!("the outage did not land: {}", f.proof), expected);
    }
    let back = back.unwrap_or(f.injected_at);
    let tally = TaskTally::of(&h.redis.tasks);
    let after: Vec<Micros> = h
        .redis
        .tasks
        .iter()
        .flat_map(|t| t.starts.iter().map(|s| s.0))
        .filter(|s| *s > back)
        .collect();
    if !tally.lost.is_empty() {
        return Verdict::new(
            ID,
            Outcome::Fail,
            format!(
                "{} tasks never done after Redis returned ({} started after it): {}",
                tally.lost.len(),
                after.len(),
                tally.describe()
            ),
            expected,
        )
        .with_evidence(format!("lost (first 5): {}", first_ids(&tally.lost)));
    }
    if after.is_empty() {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("every task was done before Redis went down: {}", tally.describe()),
            expected,
        );
    }
    let first = after.iter().min().copied().unwrap_or(back);
    Verdict::new(
        ID,
        Outcome::Pass,
        format!(
            "first task started {} after Redis was back; {} later starts; {}",
            rel(first, back),
            after.len(),
            tally.describe()
        ),
        expected,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, pri: u8, enq: Micros, starts: &[Micros], finishes: &[Micros]) -> TaskRecord {
        TaskRecord {
            id: id.into(),
            priority: pri,
            enqueued_at: enq,
            starts: starts.iter().map(|s| (*s, 1)).collect(),
            finishes: finishes.iter().map(|f| (*f, 1)).collect(),
        }
    }

    #[test]
    fn tally_counts_lost_duplicated_and_rerun() {
        let tasks = [
            task("a", 1, 0, &[1], &[2]),
            task("b", 1, 0, &[1], &[]),
            task("c", 1, 0, &[1, 5], &[2, 6]),
        ];
        let t = TaskTally::of(&tasks);
        assert_eq!((t.enqueued, t.done), (3, 2));
        assert_eq!(t.lost, vec!["b"]);
        assert_eq!(t.duplicated, vec!["c"]);
        assert_eq!(t.rerun, vec!["c"]);
    }

    #[test]
    fn concurrency_is_the_most_overlapping_runs() {
        assert_eq!(max_concurrent(&[(0, 10), (5, 15), (10, 20), (12, 13)]), 3);
        assert_eq!(max_concurrent(&[(0, 10), (10, 20)]), 1);
        assert_eq!(max_concurrent(&[]), 0);
    }
}
