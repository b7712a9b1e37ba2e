//! Section 8 and GS-WORKER: the task worker, judged from the record of every
//! task the harness enqueued (Jepsen's total-queue idea: each enqueued task
//! must be done; none run twice unless it was handed back after a kill).

use super::verdict::{Outcome, Verdict};
use super::{CheckInput, outages, rel};
use crate::history::{FaultDetail, FaultRecord, History, LostWhere, Micros, ServiceEventKind, TaskRecord};

/// The standard's queue-length alert threshold (AL-QUEUE).
pub const QUEUE_ALERT: u64 = 100;

/// Lost (never finished), duplicated (finished more than once) and re-run
/// (started more than once); `unobserved`: never seen to finish, but the
/// harness's event subscription was down when it could have.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaskTally {
    pub enqueued: usize,
    pub done: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub rerun: Vec<String>,
    pub unobserved: Vec<String>,
    /// Of `lost`, those still on the broker (in a queue list, or delivered
    /// and unacknowledged): not done when the run ended, not yet gone.
    pub still_on_broker: usize,
}

impl TaskTally {
    /// The tally of a run's tasks, a task the harness could not have seen
    /// finish kept apart from the lost ones.
    pub fn of_history(h: &History) -> TaskTally {
        let mut t = TaskTally::of(&h.redis.tasks);
        let (unobserved, lost) = t
            .lost
            .into_iter()
            .partition(|id| h.redis.lost_whereabouts.get(id) == Some(&LostWhere::Unobserved));
        t.unobserved = unobserved;
        t.still_on_broker = lost
            .iter()
            .filter(|id| {
                matches!(
                    h.redis.lost_whereabouts.get(*id),
                    Some(LostWhere::Queued | LostWhere::Unacknowledged)
                )
            })
            .count();
        t.lost = lost;
        t
    }

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
        let unobserved = if self.unobserved.is_empty() {
            String::new()
        } else {
            format!(", {} not observed", self.unobserved.len())
        };
        let on_broker = if self.still_on_broker > 0 {
            format!(" ({} of them still queued or unacknowledged)", self.still_on_broker)
        } else {
            String::new()
        };
        format!(
            "{} enqueued, {} done, {} lost{on_broker}, {} duplicated, {} started more than once{unobserved}",
            self.enqueued,
            self.done,
            self.lost.len(),
            self.duplicated.len(),
            self.rerun.len()
        )
    }
}

/// Inconclusive when the run cannot show what the tasks did: no task at
/// all (with the flood's own proof when it did not land), or a worker that
/// sends no task events (the fix named, and what Redis alone shows).
pub fn tasks_unseen(id: &str, h: &History, expected: &str) -> Option<Verdict> {
    if h.redis.tasks.is_empty() {
        let why = match floods(h).find(|f| !f.landed) {
            Some(f) => format!("no task was enqueued: the flood did not land: {}", f.proof),
            None => "the harness did not enqueue any task in this scenario".to_string(),
        };
        return Some(Verdict::new(id, Outcome::Inconclusive, why, expected));
    }
    let c = &h.redis.celery;
    if c.watched && c.task_events() == 0 {
        let peak = h.redis.queue.iter().map(|q| q.total).max().unwrap_or(0);
        let last = h.redis.queue.last();
        return Some(
            Verdict::new(id, Outcome::Inconclusive, crate::observe::celery_events::NO_EVENTS_FIX, expected).with_evidence(format!(
                "what Redis alone shows: {} tasks enqueued, queue peaked at {peak}, at the end {} queued and {} unacknowledged; \
                 {} worker events (worker-online/heartbeat) seen",
                h.redis.tasks.len(),
                last.map_or(0, |q| q.total),
                last.and_then(|q| q.reserved).unwrap_or(0),
                c.workers.len()
            )),
        );
    }
    None
}

/// Inconclusive when every task not seen to finish fell in a gap of the event subscription.
fn only_unobserved(id: &str, h: &History, tally: &TaskTally, expected: &str) -> Option<Verdict> {
    if !tally.lost.is_empty() || tally.unobserved.is_empty() {
        return None;
    }
    let gaps: Vec<String> = h
        .redis
        .celery
        .subscriptions
        .windows(2)
        .filter_map(|w| w[0].1.map(|down| format!("{}..{}", rel(down, 0), rel(w[1].0, 0))))
        .collect();
    Some(
        Verdict::new(
            id,
            Outcome::Inconclusive,
            format!(
                "{}: the finish of {} tasks was not seen while the harness's event subscription was down ({})",
                tally.describe(),
                tally.unobserved.len(),
                gaps.join(", ")
            ),
            expected,
        )
        .with_evidence(format!("not observed (first 5): {}", first_ids(&tally.unobserved))),
    )
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

/// The first lost tasks, and where each was found at the end, with a count per place.
pub fn lost_evidence(h: &History, lost: &[String]) -> String {
    let mut places: std::collections::BTreeMap<&str, usize> = Default::default();
    for id in lost {
        let place = h.redis.lost_whereabouts.get(id).map_or("not looked for", |w| w.describe());
        *places.entry(place).or_default() += 1;
    }
    let counts: Vec<String> = places.iter().map(|(place, n)| format!("{n} {place}")).collect();
    format!("lost: {}; first 5: {}", counts.join(", "), first_ids(lost))
}

fn first_ids(ids: &[String]) -> String {
    ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
}

/// CW-FLOOD: the queue went far above the alert threshold, drained, nothing lost or duplicated.
pub fn cw_flood(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "CW-FLOOD";
    let expected =
        format!("queue above {QUEUE_ALERT} and AL-QUEUE fires, then the queue empties and AL-QUEUE resolves; every task done exactly once");
    let h = input.history;
    if floods(h).next().is_none() {
        return no_tasks(ID, &expected);
    }
    if let Some(v) = tasks_unseen(ID, h, &expected) {
        return v;
    }
    let tally = TaskTally::of_history(h);
    if let Some(v) = only_unobserved(ID, h, &tally, &expected) {
        return v;
    }
    let peak = h.redis.queue.iter().map(|q| q.total).max().unwrap_or(0);
    let last = h.redis.queue.last().map(|q| q.total);
    let mut v = if !tally.lost.is_empty() || !tally.duplicated.is_empty() {
        Verdict::new(ID, Outcome::Fail, tally.describe(), expected)
            .with_evidence(lost_evidence(h, &tally.lost))
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
    // The standard's CW-FLOOD includes its alert: AL-QUEUE fires, and resolves once the queue is back under the threshold.
    let peak_at = h.redis.queue.iter().find(|q| q.total == peak).map(|q| q.at).unwrap_or(0);
    let under = h
        .redis
        .queue
        .iter()
        .find(|q| q.at > peak_at && q.total <= QUEUE_ALERT)
        .map(|q| q.at);
    if let Some(flood) = floods(h).next() {
        v = super::with_alert_half(v, "AL-QUEUE", input, flood, under);
    }
    v.with_reading("the queue length is the sum of LLEN over every priority list of the queue (finding 8)")
}

/// Running intervals (start, finish) of every finished run of a task: each
/// start paired with the first later finish from the same process, so a run
/// cut off by a kill (a start without a finish) does not stretch into the rerun.
pub fn intervals(h: &History) -> Vec<(Micros, Micros)> {
    h.redis
        .tasks
        .iter()
        .flat_map(|t| {
            t.starts.iter().filter_map(|(s, pid)| {
                t.finishes
                    .iter()
                    .filter(|(f, fpid)| fpid == pid && f >= s)
                    .map(|(f, _)| (*s, *f))
                    .min_by_key(|(_, f)| *f)
            })
        })
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
    if let Some(v) = tasks_unseen(ID, h, expected) {
        return v;
    }
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
    let Some(until) = backlog_complete_at(h) else {
        return no_tasks(ID, expected);
    };
    if let Some(v) = tasks_unseen(ID, h, expected) {
        return v;
    }
    let concurrency = h.redis.worker_concurrency.unwrap_or(1) as usize;
    let from = backlog_formed_at(h, concurrency).unwrap_or(until).min(until);
    let forming = starts_between(h, from, until);
    let started = starts_after(h, until);
    if forming.len() + started.len() < 20 {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("only {} tasks started after the backlog formed", forming.len() + started.len()),
            expected,
        );
    }
    let (early, early_example) = priority_inversions(&forming, &h.redis.tasks, from);
    let (late, late_example) = priority_inversions(&started, &h.redis.tasks, until);
    let inversions = early + late;
    let order: Vec<String> = started.iter().take(12).map(|(t, _)| t.priority.to_string()).collect();
    let measured = format!(
        "{inversions} of {} starts with a backlog jumped a higher priority ({early} of {} while the flood was still being enqueued, {late} of {} after); first starts after it: {}",
        forming.len() + started.len(),
        forming.len(),
        started.len(),
        order.join(" ")
    );
    // Tasks already fetched (one per slot) may run ahead of a later higher-priority one.
    let outcome = if inversions <= concurrency { Outcome::Pass } else { Outcome::Fail };
    let flood_began = h
        .faults
        .iter()
        .find(|f| matches!(f.detail, FaultDetail::Flood { .. }))
        .map_or(from, |f| f.injected_at);
    let mut v = Verdict::new(ID, outcome, measured, expected)
        .with_reading(format!(
            "the standard's 10 is high; up to {concurrency} (one per slot, already fetched) out of order allowed"
        ))
        .with_reading(format!(
            "the backlog is there once more tasks wait than the worker has slots ({} after the flood began); a task waits from the answer to its enqueue request",
            rel(from, flood_began)
        ));
    for e in [early_example, late_example].into_iter().flatten() {
        v = v.with_evidence(e);
    }
    v
}

/// The first moment more tasks waited (enqueue answered, not yet started)
/// than the worker has slots: from then on priority decides what runs next.
pub fn backlog_formed_at(h: &History, concurrency: usize) -> Option<Micros> {
    // +1 at each answered enqueue, -1 at each first start; starts first at a tie.
    let mut steps: Vec<(Micros, i64)> = Vec::new();
    for t in &h.redis.tasks {
        steps.push((t.enqueued_at, 1));
        if let Some(s) = t.starts.first() {
            steps.push((s.0, -1));
        }
    }
    steps.sort_unstable();
    let mut waiting: i64 = 0;
    for (at, step) in steps {
        waiting += step;
        if waiting > concurrency as i64 {
            return Some(at);
        }
    }
    None
}

/// Tasks whose first start came in (from, until], in start order.
fn starts_between(h: &History, from: Micros, until: Micros) -> Vec<(&TaskRecord, Micros)> {
    let mut started: Vec<(&TaskRecord, Micros)> = h
        .redis
        .tasks
        .iter()
        .filter_map(|t| t.starts.first().map(|s| (t, s.0)))
        .filter(|(_, s)| *s > from && *s <= until)
        .collect();
    started.sort_by_key(|(_, s)| *s);
    started
}

/// The end of the first flood's enqueueing: from then on the backlog is complete.
pub fn backlog_complete_at(h: &History) -> Option<Micros> {
    floods(h).find_map(|f| match f.detail {
        FaultDetail::Flood { enqueued_until, .. } => Some(enqueued_until),
        _ => None,
    })
}

/// Tasks whose first start came after `until`, in start order.
pub fn starts_after(h: &History, until: Micros) -> Vec<(&TaskRecord, Micros)> {
    let mut started: Vec<(&TaskRecord, Micros)> = h
        .redis
        .tasks
        .iter()
        .filter_map(|t| t.starts.first().map(|s| (t, s.0)))
        .filter(|(_, s)| *s > until)
        .collect();
    started.sort_by_key(|(_, s)| *s);
    started
}

/// Of `started`, those that jumped a task of higher priority already waiting
/// (its enqueue answered before the start, and it started later; one that
/// never started is CW-FLOOD's), and the first example; times relative to
/// `origin`.
pub fn priority_inversions(started: &[(&TaskRecord, Micros)], tasks: &[TaskRecord], origin: Micros) -> (usize, Option<String>) {
    let mut inversions = 0;
    let mut example = None;
    for (t, s) in started {
        let jumped = tasks
            .iter()
            .find(|u| u.priority > t.priority && u.enqueued_at < *s && u.starts.first().is_some_and(|us| us.0 > *s));
        if let Some(u) = jumped {
            inversions += 1;
            example.get_or_insert(format!(
                "priority {} started at {} while priority {} (enqueued {}) waited until {}",
                t.priority,
                rel(*s, origin),
                u.priority,
                rel(u.enqueued_at, origin),
                u.starts.first().map_or_else(String::new, |us| rel(us.0, origin))
            ));
        }
    }
    (inversions, example)
}

/// Worker services that exited after `from` though no fault stopped them
/// (a crash while Redis was away, say): each as one line of evidence.
fn unbidden_exits(h: &History, from: Micros) -> Vec<String> {
    let workers: Vec<&str> = floods(h).map(|f| f.service.as_str()).collect();
    // The stack is stopped after the last look at the queue: exits from then on are the harness's.
    let observed_until = h.redis.queue.last().map_or(Micros::MAX, |q| q.at);
    let signalled = |pid: u32, at: Micros| {
        h.events
            .iter()
            .any(|e| e.at <= at && matches!(e.kind, ServiceEventKind::Signalled { pid: p, .. } if p == pid))
    };
    h.events
        .iter()
        .filter(|e| e.at >= from && e.at < observed_until && workers.contains(&e.service.as_str()))
        .filter(|e| !matches!(e.kind, ServiceEventKind::Exited { pid, .. } if signalled(pid, e.at)))
        .filter_map(|e| match &e.kind {
            ServiceEventKind::Exited { pid, exit } if worker_stops(h, &e.service).all(|(f, _)| f.injected_at > e.at) => Some(format!(
                "{} (pid {pid}) exited by itself at {} after the outage began: {}; a crashed worker does not reconnect",
                e.service,
                rel(e.at, from),
                exit.describe()
            )),
            _ => None,
        })
        .collect()
}

/// The broker itself lost acknowledged writes across its restart (AOF off,
/// say): queued tasks went with them, which no worker can bring back.
fn broker_lost_writes(h: &History) -> Option<String> {
    let audit = h.redis.audit.as_ref()?;
    (!audit.missing.is_empty()).then(|| {
        format!(
            "the broker lost {} of {} acknowledged writes across its restart: tasks queued in it were lost with them",
            audit.missing.len(),
            audit.checked
        )
    })
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
    if let Some(v) = tasks_unseen(ID, h, expected) {
        return v;
    }
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
    let tally = TaskTally::of_history(h);
    if let Some(v) = only_unobserved(ID, h, &tally, expected) {
        return v;
    }
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
    // A lost task in no queue and not unacknowledged can never come back
    // (acknowledged before it ran, say); one still unacknowledged or queued
    // may, once the visibility timeout has passed.
    let gone: Vec<String> = tally
        .lost
        .iter()
        .filter(|id| {
            matches!(
                h.redis.lost_whereabouts.get(*id),
                Some(LostWhere::StartedNeverFinished | LostWhere::TakenNeverRun | LostWhere::Failed)
            )
        })
        .cloned()
        .collect();
    let mut v = if !tally.lost.is_empty() {
        // After a SIGKILL the task comes back only after the visibility timeout.
        let waited = last_kill.map(|k| end.saturating_sub(k) / 1000).unwrap_or(u64::MAX);
        if waited < visibility && gone.is_empty() {
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
            let never_back = if gone.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} in no queue and not unacknowledged: they cannot be delivered again)",
                    gone.len()
                )
            };
            Verdict::new(
                ID,
                Outcome::Fail,
                format!("{} tasks lost{never_back}: {}", tally.lost.len(), tally.describe()),
                expected,
            )
            .with_evidence(lost_evidence(h, &tally.lost))
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
    if let Some(v) = tasks_unseen(ID, h, expected) {
        return v;
    }
    let Some((f, _, back)) = outages(h, &input.dependency_services).next() else {
        return Verdict::new(ID, Outcome::Inconclusive, "Redis did not go down in this scenario", expected);
    };
    if !f.landed {
        return Verdict::new(ID, Outcome::Inconclusive, format!("the outage did not land: {}", f.proof), expected);
    }
    let back = back.unwrap_or(f.injected_at);
    let tally = TaskTally::of_history(h);
    if let Some(v) = only_unobserved(ID, h, &tally, expected) {
        return v;
    }
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
        .with_evidence(lost_evidence(h, &tally.lost))
        .with_evidences(unbidden_exits(h, f.injected_at))
        .with_evidences(broker_lost_writes(h));
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
            ..TaskRecord::default()
        }
    }

    fn flood(landed: bool) -> FaultRecord {
        FaultRecord {
            index: 0,
            label: "flood".into(),
            service: "worker".into(),
            injected_at: 0,
            healed_at: None,
            provokes: Vec::new(),
            landed,
            proof: if landed {
                "500 of 500 enqueued".into()
            } else {
                "0 of 500 enqueued (2xx)".into()
            },
            detail: FaultDetail::Flood {
                requested: 500,
                accepted: if landed { 500 } else { 0 },
                queue_total: None,
                queue_base_list: None,
                enqueued_until: 0,
            },
        }
    }

    fn input(h: &History) -> CheckInput<'_> {
        static SETTINGS: std::sync::OnceLock<crate::scenario::Settings> = std::sync::OnceLock::new();
        CheckInput {
            history: h,
            settings: SETTINGS.get_or_init(Default::default),
            probed_service: "app",
            dependency_services: vec!["redis".into()],
            roles: Default::default(),
        }
    }

    /// The false pass a third-party stack showed: a stop signal, a flood that
    /// enqueued nothing, and "0 enqueued, 0 done, 0 lost" called a pass.
    #[test]
    fn gs_worker_is_inconclusive_when_the_flood_enqueued_nothing() {
        let mut h = History::default();
        h.faults.push(flood(false));
        let mut stop = flood(true);
        stop.index = 1;
        stop.detail = FaultDetail::Signal {
            signal: "SIGTERM".into(),
            pid: 9,
            in_flight: 0,
            exited_at: None,
            exit: None,
            grace_ms: 5000,
            killed_after_grace: false,
            cleanup: None,
            declared_stop: true,
        };
        h.faults.push(stop);
        let v = gs_worker(&input(&h));
        assert_eq!(v.outcome, Outcome::Inconclusive, "{v:#?}");
        assert!(v.measured.contains("flood did not land"), "{}", v.measured);
    }

    /// A task acknowledged before it ran (Celery's default, acks_late off)
    /// and cut off by a SIGKILL is in no queue and not unacknowledged: it can
    /// never come back, so waiting for the visibility timeout proves nothing.
    #[test]
    fn gs_worker_fails_before_the_visibility_timeout_when_a_task_cannot_come_back() {
        let mut h = History::default();
        h.faults.push(flood(true));
        let mut kill = flood(true);
        kill.index = 1;
        kill.injected_at = 1_000_000;
        kill.detail = FaultDetail::Outage {
            signal: "SIGKILL".into(),
            down_at: Some(1_000_000),
            restarted_at: Some(3_500_000),
            ready_at: Some(4_000_000),
        };
        h.faults.push(kill);
        h.redis.visibility_timeout_ms = Some(3_600_000);
        h.redis.celery.watched = true;
        h.redis.celery.subscriptions.push((0, None));
        h.redis.celery.counts.insert("task-started".into(), 2);
        h.redis.tasks = vec![task("a", 5, 10, &[500_000], &[]), task("b", 5, 10, &[600_000], &[700_000])];
        h.redis.queue.push(crate::history::QueueSample {
            at: 9_000_000,
            total: 0,
            base_list: 0,
            reserved: Some(0),
        });
        h.redis.lost_whereabouts.insert("a".into(), LostWhere::Unacknowledged);
        assert_eq!(
            gs_worker(&input(&h)).outcome,
            Outcome::Inconclusive,
            "unacknowledged: it may still come back"
        );
        h.redis.lost_whereabouts.insert("a".into(), LostWhere::StartedNeverFinished);
        let v = gs_worker(&input(&h));
        assert_eq!(v.outcome, Outcome::Fail, "{v:#?}");
        assert!(v.measured.contains("cannot be delivered again"), "{}", v.measured);
    }

    /// A worker without -E: tasks enqueued, the queue emptied, no task event.
    #[test]
    fn no_task_events_names_the_fix_and_what_redis_shows() {
        let mut h = History::default();
        h.faults.push(flood(true));
        h.redis.celery.watched = true;
        h.redis.celery.subscriptions.push((0, None));
        h.redis.tasks = (0..500).map(|i| task(&format!("t{i}"), 5, 0, &[], &[])).collect();
        for check in [cw_flood, cw_conc, cw_prio, cw_reconnect] {
            let v = check(&input(&h));
            assert_eq!(v.outcome, Outcome::Inconclusive, "{v:#?}");
            assert!(
                v.measured.contains("-E") && v.measured.contains("worker_send_task_events"),
                "{}",
                v.measured
            );
        }
    }

    /// A task whose finish fell in a gap of the subscription is not called lost.
    #[test]
    fn a_finish_missed_in_a_subscription_gap_is_not_a_loss() {
        let mut h = History::default();
        h.faults.push(flood(true));
        h.redis.celery.watched = true;
        h.redis.celery.subscriptions = vec![(0, Some(1_000)), (3_000, None)];
        h.redis.celery.counts.insert("task-started".into(), 2);
        h.redis.tasks = vec![task("a", 5, 10, &[20], &[30]), task("b", 5, 10, &[900], &[])];
        h.redis.lost_whereabouts.insert("b".into(), crate::history::LostWhere::Unobserved);
        h.redis.queue.push(crate::history::QueueSample {
            at: 5_000,
            total: 200,
            base_list: 200,
            reserved: Some(0),
        });
        let v = cw_flood(&input(&h));
        assert_eq!(v.outcome, Outcome::Inconclusive, "{v:#?}");
        assert!(v.measured.contains("1 not observed"), "{}", v.measured);
        h.redis
            .lost_whereabouts
            .insert("b".into(), crate::history::LostWhere::TakenNeverRun);
        assert_eq!(cw_flood(&input(&h)).outcome, Outcome::Fail);
    }

    #[test]
    fn a_worker_exit_nobody_asked_for_is_evidence_and_teardown_is_not() {
        use crate::history::{ExitInfo, QueueSample, ServiceEvent};
        let mut h = History::default();
        h.faults.push(FaultRecord {
            index: 0,
            label: "flood".into(),
            service: "worker".into(),
            injected_at: 0,
            healed_at: None,
            provokes: Vec::new(),
            landed: true,
            proof: String::new(),
            detail: FaultDetail::Flood {
                requested: 1,
                accepted: 1,
                queue_total: None,
                queue_base_list: None,
                enqueued_until: 0,
            },
        });
        let exit = |at, pid| ServiceEvent {
            at,
            service: "worker".into(),
            kind: ServiceEventKind::Exited {
                pid,
                exit: ExitInfo {
                    code: Some(1),
                    signal: None,
                },
            },
        };
        h.events.push(exit(2_000_000, 7));
        h.events.push(ServiceEvent {
            at: 2_500_000,
            service: "worker".into(),
            kind: ServiceEventKind::Signalled {
                pid: 8,
                signal: "SIGTERM".into(),
            },
        });
        h.events.push(exit(2_600_000, 8));
        h.events.push(exit(9_000_000, 9));
        h.redis.queue.push(QueueSample {
            at: 5_000_000,
            total: 0,
            base_list: 0,
            reserved: None,
        });
        let lines = unbidden_exits(&h, 1_000_000);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("pid 7") && lines[0].contains("+1000 ms") && lines[0].contains("exit status 1"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn a_run_cut_off_by_a_kill_does_not_stretch_into_its_rerun() {
        let mut h = History::default();
        h.redis.tasks.push(TaskRecord {
            id: "a".into(),
            priority: 5,
            enqueued_at: 0,
            starts: vec![(10, 1), (500, 2)],
            finishes: vec![(520, 2)],
            ..TaskRecord::default()
        });
        assert_eq!(intervals(&h), vec![(500, 520)]);
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
    fn the_backlog_forms_when_more_wait_than_the_worker_has_slots() {
        let mut h = History::default();
        // a and b start at once; c, d and e pile up: three waiting at 45.
        h.redis.tasks = vec![
            task("a", 1, 10, &[11], &[50]),
            task("b", 1, 20, &[21], &[60]),
            task("c", 1, 30, &[55], &[90]),
            task("d", 1, 40, &[65], &[95]),
            task("e", 1, 45, &[70], &[99]),
        ];
        assert_eq!(backlog_formed_at(&h, 3), None);
        assert_eq!(backlog_formed_at(&h, 2), Some(45));
        assert_eq!(backlog_formed_at(&h, 1), Some(40));
    }

    #[test]
    fn a_start_jumps_a_higher_priority_that_was_waiting_and_ran_later() {
        let tasks = vec![
            task("low", 1, 0, &[300], &[330]),
            task("high-waiting", 10, 50, &[400], &[430]),
            task("high-after", 10, 310, &[320], &[340]),
            task("high-never-ran", 10, 10, &[], &[]),
        ];
        let low_start = [(&tasks[0], 300)];
        let (n, example) = priority_inversions(&low_start, &tasks, 0);
        assert_eq!(n, 1);
        assert!(example.unwrap().contains("(enqueued +0 ms) waited until +0 ms"));
        let high_start = [(&tasks[1], 400)];
        assert_eq!(priority_inversions(&high_start, &tasks, 0).0, 0);
    }

    #[test]
    fn cw_prio_fails_a_worker_that_runs_a_prefetched_backlog_in_arrival_order() {
        let mut h = History::default();
        let mut f = flood(true);
        // Enqueued from 0 to 1 s; a single slot; 1 ms apart, priorities 1, 5, 10 in turn.
        if let FaultDetail::Flood { enqueued_until, .. } = &mut f.detail {
            *enqueued_until = 1_000_000;
        }
        h.faults.push(f);
        h.redis.worker_concurrency = Some(1);
        for i in 0..60u64 {
            let pri = [1, 5, 10][i as usize % 3];
            let enq = i * 1_000;
            // Arrival order, 10 ms each: the priority never changes what runs next.
            let start = 2_000 + i * 10_000;
            h.redis.tasks.push(task(&format!("t{i}"), pri, enq, &[start], &[start + 9_000]));
        }
        let v = cw_prio(&input(&h));
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.measured);
        assert!(v.measured.contains("while the flood was still being enqueued"), "{}", v.measured);
    }

    #[test]
    fn concurrency_is_the_most_overlapping_runs() {
        assert_eq!(max_concurrent(&[(0, 10), (5, 15), (10, 20), (12, 13)]), 3);
        assert_eq!(max_concurrent(&[(0, 10), (10, 20)]), 1);
        assert_eq!(max_concurrent(&[]), 0);
    }
}
