//! The declared Redis's own account of itself (RD-AOF, RD-RDB, RD-MAXMEM,
//! RD-AUTH), and the audit of acknowledged writes against what it holds.
//!
//! Both run after the faults, with the load stopped, and only record: the
//! checkers judge later from the history.

use crate::history::{AckedWrite, Finding, LostWhere, Micros, QueueSample, RedisSample, TaskRecord, WriteAudit};
use crate::manifest::Manifest;
use crate::observe::celery_events::{CeleryWatch, Watched};
use crate::stack::render::StackPlan;
use redis::aio::MultiplexedConnection;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Configuration names read with `CONFIG GET`.
pub const CONFIG_NAMES: &[&str] = &[
    "appendonly",
    "appendfsync",
    "save",
    "maxmemory",
    "maxmemory-policy",
    "dir",
    "dbfilename",
];

/// A Redis service the manifest declares access to.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    pub service: String,
    pub addr: SocketAddr,
    pub password: Option<String>,
    pub broker: bool,
}

/// Every Redis the manifest declares, with its rendered password.
pub fn targets(manifest: &Manifest, plan: &StackPlan) -> Vec<RedisTarget> {
    let has_worker = manifest.services.iter().any(|s| s.role == crate::manifest::Role::Worker);
    manifest
        .services
        .iter()
        .filter_map(|svc| {
            let access = svc.redis.as_ref()?;
            let addr = plan.service(&svc.name)?.addr(&access.port)?;
            let password = access
                .password
                .as_ref()
                .and_then(|p| plan.render_value(&svc.name, p).ok())
                .filter(|p| !p.is_empty());
            Some(RedisTarget {
                service: svc.name.clone(),
                addr,
                password,
                broker: access.broker || has_worker,
            })
        })
        .collect()
}

fn url(addr: SocketAddr, password: Option<&str>) -> String {
    match password {
        Some(p) => format!("redis://:{p}@{addr}/"),
        None => format!("redis://{addr}/"),
    }
}

async fn connect(addr: SocketAddr, password: Option<&str>) -> Result<MultiplexedConnection, String> {
    let client = redis::Client::open(url(addr, password)).map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection())
        .await
        .map_err(|_| "no connection within 2 s".to_string())?
        .map_err(|e| e.to_string())
}

/// A connection as the stack's own clients get one: with the password if
/// the server wants one, without if it does not (a server without
/// `requirepass` rejects AUTH).
pub async fn connect_as_client(t: &RedisTarget) -> Result<MultiplexedConnection, String> {
    match connect(t.addr, t.password.as_deref()).await {
        Ok(c) => Ok(c),
        Err(with_password) => connect(t.addr, None).await.map_err(|_| with_password),
    }
}

/// Parse `INFO` text into field -> value.
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Look at one Redis: PING without the password, CONFIG GET, a BGSAVE and `INFO persistence`.
pub async fn sample(t: &RedisTarget, at: Micros) -> RedisSample {
    let mut s = RedisSample {
        at,
        service: t.service.clone(),
        broker: t.broker,
        ..RedisSample::default()
    };
    // A client without the password: refused (NOAUTH) is what RD-AUTH wants.
    match connect(t.addr, None).await {
        Ok(mut c) => match redis::cmd("PING").query_async::<String>(&mut c).await {
            Ok(reply) => s.unauthenticated_reply = reply,
            Err(e) => {
                s.unauthenticated_refused = true;
                s.unauthenticated_reply = e.to_string();
            }
        },
        Err(e) => {
            s.unauthenticated_refused = true;
            s.unauthenticated_reply = e;
        }
    }
    let mut conn = match connect_as_client(t).await {
        Ok(c) => c,
        Err(e) => {
            s.error = Some(format!("cannot connect to {} at {}: {e}", t.service, t.addr));
            return s;
        }
    };
    for name in CONFIG_NAMES {
        match redis::cmd("CONFIG")
            .arg("GET")
            .arg(*name)
            .query_async::<Vec<String>>(&mut conn)
            .await
        {
            Ok(pair) if pair.len() >= 2 => {
                s.config.insert(pair[0].clone(), pair[1].clone());
            }
            Ok(_) => {}
            Err(e) => s.error = Some(format!("CONFIG GET {name}: {e}")),
        }
    }
    // Ask for a snapshot now: proves the instance can write one where it is configured to.
    if let Err(e) = redis::cmd("BGSAVE").arg("SCHEDULE").query_async::<String>(&mut conn).await {
        s.error = Some(format!("BGSAVE: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match redis::cmd("INFO").arg("persistence").query_async::<String>(&mut conn).await {
            Ok(text) => s.persistence = parse_info(&text),
            Err(e) => {
                s.error = Some(format!("INFO persistence: {e}"));
                break;
            }
        }
        let busy = |k: &str| s.persistence.get(k).is_some_and(|v| v != "0");
        if !(busy("rdb_bgsave_in_progress") || busy("aof_rewrite_in_progress")) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let (Some(dir), Some(file)) = (s.config.get("dir"), s.config.get("dbfilename")) {
        s.rdb_file_bytes = std::fs::metadata(std::path::Path::new(dir).join(file)).ok().map(|m| m.len());
    }
    s
}

/// The Redis key each acknowledged write should be in, with when it was
/// acknowledged, by the manifest's `writes` declarations; writes on routes
/// nobody declared are left out.
pub fn expected_keys(manifest: &Manifest, routes: &[String], acked: &[AckedWrite]) -> Vec<(String, Micros)> {
    let decls: Vec<_> = manifest.services.iter().flat_map(|s| s.writes.iter()).collect();
    acked
        .iter()
        .filter_map(|w| {
            let route = routes.get(w.route as usize)?;
            let path = route.split_once(' ').map(|(_, p)| p).unwrap_or(route);
            let decl = decls.iter().find(|d| d.path == path)?;
            Some((decl.key.replace(crate::load::driver::ID_PLACEHOLDER, &w.id.to_string()), w.at))
        })
        .collect()
}

/// Look every expected key up (EXISTS, pipelined).
pub async fn audit(t: &RedisTarget, keys: &[(String, Micros)], at: Micros) -> WriteAudit {
    let mut audit = WriteAudit {
        at,
        service: t.service.clone(),
        ..WriteAudit::default()
    };
    let mut conn = match connect_as_client(t).await {
        Ok(c) => c,
        Err(e) => {
            audit.error = Some(format!("cannot connect to {} at {}: {e}", t.service, t.addr));
            return audit;
        }
    };
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for (k, _) in chunk {
            pipe.cmd("EXISTS").arg(k);
        }
        match pipe.query_async::<Vec<u8>>(&mut conn).await {
            Ok(found) => {
                audit.checked += chunk.len() as u64;
                for ((key, acked_at), _) in chunk.iter().zip(found).filter(|(_, f)| *f == 0) {
                    audit.missing.push(key.clone());
                    audit.missing_acked_at.push(*acked_at);
                }
            }
            Err(e) => {
                audit.error = Some(format!("EXISTS: {e}"));
                break;
            }
        }
    }
    audit
}

/// The worker's declared concurrency and visibility timeout, as rendered for this run.
fn record_worker_settings(manifest: &Manifest, plan: &StackPlan, recorder: &crate::history::Recorder) {
    let Some((svc, decl)) = manifest.services.iter().find_map(|s| s.worker.as_ref().map(|w| (s, w))) else {
        return;
    };
    let concurrency = svc
        .env
        .get(&decl.concurrency_env)
        .and_then(|v| plan.render_value(&svc.name, v).ok())
        .and_then(|v| v.trim().parse().ok());
    recorder.with_redis(|r| {
        r.worker_concurrency = concurrency;
        r.visibility_timeout_ms = Some((decl.visibility_timeout_s * 1000.0) as u64);
    });
}

/// The lists kombu keeps for `queue` on Redis, one per default priority step.
pub fn queue_lists(queue: &str) -> Vec<String> {
    [0u8, 3, 6, 9]
        .iter()
        .map(|p| {
            if *p == 0 {
                queue.to_string()
            } else {
                format!("{queue}\x06\x16{p}")
            }
        })
        .collect()
}

/// LLEN of every priority list of `queue`, of its base list alone, and how
/// many messages are delivered but unacknowledged (`unacked_key`).
pub async fn queue_sample(t: &RedisTarget, queue: &str, unacked_key: &str, at: Micros) -> Option<QueueSample> {
    let mut conn = connect_as_client(t).await.ok()?;
    let mut pipe = redis::pipe();
    for list in queue_lists(queue) {
        pipe.cmd("LLEN").arg(list);
    }
    let lens: Vec<u64> = pipe.query_async(&mut conn).await.ok()?;
    let reserved: Option<u64> = redis::cmd("HLEN").arg(unacked_key).query_async(&mut conn).await.ok();
    Some(QueueSample {
        at,
        total: lens.iter().sum(),
        base_list: lens.first().copied().unwrap_or(0),
        reserved,
    })
}

/// Start watching Celery's event stream on the broker, when the stack has a worker.
pub fn watch_celery(manifest: &Manifest, plan: &StackPlan, recorder: &crate::history::Recorder) -> Option<CeleryWatch> {
    let decl = manifest.services.iter().find_map(|s| s.worker.as_ref())?;
    let target = targets(manifest, plan).into_iter().next()?;
    Some(CeleryWatch::start(target, &decl.events_exchange, recorder.clock))
}

/// Wait (bounded) until every enqueued task has finished and the queue is
/// empty, sampling the queue; then fold the Celery events into the tasks.
pub async fn observe_tasks(manifest: &Manifest, t: &RedisTarget, watch: Option<CeleryWatch>, recorder: &crate::history::Recorder) {
    let Some(decl) = manifest.services.iter().find_map(|s| s.worker.as_ref()) else {
        return;
    };
    let enqueued: Vec<String> = recorder.with_redis(|r| r.tasks.iter().map(|t| t.id.clone()).collect());
    // Redelivery after a kill waits for the visibility timeout: wait a little longer than that.
    let redelivery_window = decl.visibility_timeout_s * 2.0 + 5.0;
    let wait = Duration::from_secs_f64(redelivery_window.min(60.0));
    let deadline = Instant::now() + wait;
    // Tasks held unacknowledged for longer than the wait can only come back
    // after it: waiting for them proves nothing. Then a longer silence (a
    // task may run that long without an event) ends the wait instead.
    let redelivery_unobservable = redelivery_window > 60.0;
    const QUIET_WITH_UNACKED: Duration = Duration::from_secs(10);
    // Nothing queued, nothing unacknowledged and no event for this long: nothing more will come.
    const QUIET: Duration = Duration::from_secs(3);
    let mut last_change = (Instant::now(), 0usize);
    while !enqueued.is_empty() {
        let q = queue_sample(t, &decl.queue, &decl.unacked_key, recorder.clock.now()).await;
        if let Some(q) = q {
            recorder.queue_sample(q);
        }
        let events = watch.as_ref().map(|w| w.task_events()).unwrap_or_default();
        let finished: std::collections::HashSet<&str> = events
            .iter()
            .filter(|e| e.kind == "task-succeeded")
            .map(|e| e.uuid.as_str())
            .collect();
        if enqueued.iter().all(|id| finished.contains(id.as_str())) || Instant::now() >= deadline {
            break;
        }
        if events.len() != last_change.1 {
            last_change = (Instant::now(), events.len());
        }
        let idle = q.is_some_and(|q| q.total == 0 && q.reserved.unwrap_or(0) == 0);
        if idle && last_change.0.elapsed() >= QUIET {
            break;
        }
        let stuck = q.is_some_and(|q| q.total == 0) && redelivery_unobservable;
        if stuck && last_change.0.elapsed() >= QUIET_WITH_UNACKED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let watched = watch.map(|w| w.stop(recorder.clock.now())).unwrap_or_default();
    recorder.with_redis(|r| fold_events(r, watched));
    read_results(t, recorder).await;
    locate_unfinished(t, decl, recorder).await;
}

/// Celery's Redis result backend keeps each result at `celery-task-meta-<id>`
/// (JSON with `status` and `date_done`). Where the stack has one, a task's
/// success is there even when its task-succeeded event was never seen.
async fn read_results(t: &RedisTarget, recorder: &crate::history::Recorder) {
    let ids: Vec<String> = recorder.with_redis(|r| r.tasks.iter().map(|t| t.id.clone()).collect());
    let Ok(mut conn) = connect_as_client(t).await else { return };
    let wall_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let offset = wall_now.saturating_sub(recorder.clock.now());
    let mut results = std::collections::HashMap::new();
    for chunk in ids.chunks(200) {
        let keys: Vec<String> = chunk.iter().map(|id| format!("celery-task-meta-{id}")).collect();
        let Ok(values) = redis::cmd("MGET").arg(&keys).query_async::<Vec<Option<String>>>(&mut conn).await else {
            return;
        };
        for (id, value) in chunk.iter().zip(values) {
            if let Some(meta) = value.and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok()) {
                results.insert(id.clone(), meta);
            }
        }
    }
    recorder.with_redis(|r| {
        r.celery.results_stored = results.len() as u64;
        for task in r.tasks.iter_mut().filter(|t| t.finishes.is_empty()) {
            let Some(meta) = results.get(&task.id) else { continue };
            let at = meta["date_done"]
                .as_str()
                .and_then(parse_date_done)
                .map_or(0, |us| us.saturating_sub(offset));
            match meta["status"].as_str() {
                Some("SUCCESS") => {
                    task.finishes.push((at, 0));
                    r.celery.finishes_from_results += 1;
                }
                Some("FAILURE") if task.failures.is_empty() => task.failures.push((at, 0)),
                _ => {}
            }
        }
    });
}

/// Celery's `date_done`: ISO 8601, with an offset (Celery 5) or naive UTC (older).
pub fn parse_date_done(text: &str) -> Option<u64> {
    use time::format_description::well_known::Iso8601;
    let parsed = time::OffsetDateTime::parse(text, &Iso8601::DEFAULT)
        .or_else(|_| time::PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(|p| p.assume_utc()))
        .ok()?;
    u64::try_from(parsed.unix_timestamp_nanos() / 1000).ok()
}

/// Put each task event on its task; a task the harness did not enqueue
/// (the stack's own) gets a record of its own, with priority 0 (unknown).
fn fold_events(r: &mut crate::history::RedisRecord, watched: Watched) {
    let mut index: std::collections::HashMap<String, usize> = r.tasks.iter().enumerate().map(|(i, t)| (t.id.clone(), i)).collect();
    let mut events = watched.tasks;
    events.sort_by_key(|e| e.at);
    r.celery = watched.record;
    // What the worker says it is (worker-* events); else the host name its
    // task events carry, when no worker event came while subscribed.
    r.worker_kind = r
        .celery
        .workers
        .iter()
        .find_map(|w| w.software.clone())
        .or_else(|| events.first().map(|e| e.hostname.clone()).filter(|h| !h.is_empty()));
    for e in events {
        let i = match index.get(&e.uuid) {
            Some(i) => *i,
            None => {
                r.celery.foreign_tasks += 1;
                r.tasks.push(TaskRecord {
                    id: e.uuid.clone(),
                    enqueued_at: e.at,
                    ..TaskRecord::default()
                });
                index.insert(e.uuid.clone(), r.tasks.len() - 1);
                r.tasks.len() - 1
            }
        };
        let task = &mut r.tasks[i];
        match e.kind.as_str() {
            "task-started" => task.starts.push((e.at, e.pid)),
            "task-succeeded" => task.finishes.push((e.at, e.pid)),
            "task-failed" => {
                task.failures.push((e.at, e.pid));
                task.exception = e.exception;
            }
            _ => {}
        }
    }
}

/// For every task that never finished, look where it is in Redis: still in a
/// queue list, in the unacknowledged hash, or nowhere (lost in delivery).
async fn locate_unfinished(t: &RedisTarget, decl: &crate::manifest::WorkerDecl, recorder: &crate::history::Recorder) {
    let now = recorder.clock.now();
    // (id, started, failed, whether its finish could have fallen in a gap of
    // the event subscription). While Redis is down no worker can take a task
    // or publish, so only a task seen to start before a gap can have
    // finished unseen; with a result backend a missing result settles it.
    let unfinished: Vec<(String, bool, bool, bool)> = recorder.with_redis(|r| {
        let results = r.celery.results_stored > 0;
        r.tasks
            .iter()
            .filter(|t| t.finishes.is_empty())
            .map(|t| {
                let gap = !results && t.starts.last().is_some_and(|(s, _)| r.celery.gap_within(*s, now).is_some());
                (t.id.clone(), !t.starts.is_empty(), !t.failures.is_empty(), gap)
            })
            .collect()
    });
    if unfinished.is_empty() {
        return;
    }
    let Ok(mut conn) = connect_as_client(t).await else { return };
    let mut queued = Vec::new();
    for list in queue_lists(&decl.queue) {
        if let Ok(messages) = redis::cmd("LRANGE")
            .arg(&list)
            .arg(0)
            .arg(-1)
            .query_async::<Vec<String>>(&mut conn)
            .await
        {
            queued.extend(messages);
        }
    }
    let Ok(unacked) = redis::cmd("HVALS")
        .arg(&decl.unacked_key)
        .query_async::<Vec<String>>(&mut conn)
        .await
    else {
        return;
    };
    // Messages carry the task id in their headers; a substring match is enough for a UUID.
    let found = |id: &str, messages: &[String]| messages.iter().any(|m| m.contains(id));
    recorder.with_redis(|r| {
        for (id, started, failed, gap) in &unfinished {
            let place = if found(id, &queued) {
                LostWhere::Queued
            } else if found(id, &unacked) {
                LostWhere::Unacknowledged
            } else if *failed {
                LostWhere::Failed
            } else if *gap {
                LostWhere::Unobserved
            } else if *started {
                LostWhere::StartedNeverFinished
            } else {
                LostWhere::TakenNeverRun
            };
            r.lost_whereabouts.insert(id.clone(), place);
        }
    });
}

/// Finding 6: whether the harness's (the app's) Redis user may run FLUSHDB.
struct FlushDb {
    allowed: bool,
    /// What ACL DRYRUN said, for the evidence.
    acl: String,
    keys: u64,
}

async fn flushdb_allowed(t: &RedisTarget) -> Option<FlushDb> {
    let mut conn = connect_as_client(t).await.ok()?;
    // A renamed-away command is unknown to COMMAND INFO: [nil].
    let info: redis::Value = redis::cmd("COMMAND").arg("INFO").arg("FLUSHDB").query_async(&mut conn).await.ok()?;
    let present = matches!(&info, redis::Value::Array(items) if items.first().is_some_and(|v| !matches!(v, redis::Value::Nil)));
    let user: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|_| "default".into());
    let dryrun: Result<String, _> = redis::cmd("ACL")
        .arg("DRYRUN")
        .arg(&user)
        .arg("FLUSHDB")
        .query_async(&mut conn)
        .await;
    let (permitted, acl) = match dryrun {
        Ok(answer) => (answer == "OK", format!("ACL DRYRUN {user} FLUSHDB = {answer}")),
        // Before Redis 7 there is no DRYRUN: the command's presence decides.
        Err(e) => (true, format!("ACL DRYRUN unavailable ({e})")),
    };
    let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap_or(0);
    Some(FlushDb {
        allowed: present && permitted,
        acl,
        keys,
    })
}

/// After the faults: sample every declared Redis and audit the acknowledged
/// writes against the first one, recording both.
pub async fn observe_after_faults(manifest: &Manifest, plan: &StackPlan, watch: Option<CeleryWatch>, recorder: &crate::history::Recorder) {
    let targets = targets(manifest, plan);
    for t in &targets {
        let s = sample(t, recorder.clock.now()).await;
        let policy = s.config.get("maxmemory-policy").cloned().unwrap_or_default();
        if s.broker && crate::check::redis::evicts(&policy) {
            recorder.finding(Finding {
                id: "F5-BROKER-EVICTION".into(),
                title: "an evicting maxmemory policy on the Redis that is the task broker".into(),
                evidence: format!(
                    "{}: CONFIG GET maxmemory-policy = {policy}; under memory pressure Redis may evict queued tasks (silent task loss), \
                     and used memory sits near maxmemory so the 80 % alert fires for good; a broker wants noeviction",
                    t.service
                ),
            });
        }
        recorder.redis_sample(s);
    }
    if let Some(t) = targets.first() {
        observe_tasks(manifest, t, watch, recorder).await;
        record_worker_settings(manifest, plan, recorder);
        if t.broker
            && let Some(flush) = flushdb_allowed(t).await
            && flush.allowed
        {
            recorder.finding(Finding {
                id: "F6-FLUSHDB-ON-BROKER".into(),
                title: "FLUSHDB, which the standard's troubleshooting advises, empties the task broker too".into(),
                evidence: format!(
                    "{}: COMMAND INFO FLUSHDB answers and {}; FLUSHDB \"to clear expired keys\" would delete all {} keys of this \
                     database, the queue lists and the unacknowledged hash among them (expired keys need no clearing: Redis \
                     removes them itself); `rename-command FLUSHDB \"\"` or an ACL without it closes the trap",
                    t.service, flush.acl, flush.keys
                ),
            });
        }
    }
    let (routes, acked) = recorder.acked_writes();
    if acked.is_empty() {
        return;
    }
    let Some(t) = targets.first() else { return };
    let keys = expected_keys(manifest, &routes, &acked);
    let audit = audit(t, &keys, recorder.clock.now()).await;
    recorder.finding(Finding {
        id: "F7-KILL9-NOT-FSYNC".into(),
        title: "a kill -9 of Redis proves restart, not fsync durability".into(),
        evidence: format!(
            "{} of {} acknowledged writes looked up in {} after the faults; writes sit in the OS page cache, so a SIGKILL of \
             redis-server loses none that Redis had written, whatever appendfsync says (under everysec it may not yet have written \
             those of its last 2 s while a background fsync ran); only a fault that drops unsynced writes (power loss, lazyfs) \
             tests appendfsync everysec",
            audit.checked,
            acked.len(),
            t.service
        ),
    });
    recorder.write_audit(audit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_celerys_date_done_with_and_without_an_offset() {
        assert_eq!(parse_date_done("2026-12-02T06:31:40.500000+00:00"), Some(1_796_193_100_500_000));
        assert_eq!(parse_date_done("2026-12-02T06:31:40.500000"), Some(1_796_193_100_500_000));
        // What refstack's worker writes (RFC 3339, `Z`).
        assert_eq!(parse_date_done("2026-12-02T06:31:40.5Z"), Some(1_796_193_100_500_000));
        assert_eq!(parse_date_done("yesterday"), None);
    }

    #[test]
    fn parses_info_sections() {
        let info = parse_info("# Persistence\r\nloading:0\r\nrdb_last_bgsave_status:ok\r\naof_enabled:1\r\n");
        assert_eq!(info.get("rdb_last_bgsave_status").map(String::as_str), Some("ok"));
        assert_eq!(info.get("aof_enabled").map(String::as_str), Some("1"));
        assert!(!info.contains_key("# Persistence"));
    }
}
