//! Celery's own event stream, read the way Flower reads it.
//!
//! A Celery worker started with `-E` (or `worker_send_task_events = True`)
//! publishes task-received/started/succeeded/failed/retried/revoked and
//! worker-online/heartbeat/offline on the `celeryev` exchange. On kombu's
//! Redis transport that exchange is a fanout over pub/sub: each event is a
//! PUBLISH to `/{db}.celeryev/{routing key}` of kombu's JSON envelope, whose
//! `body` (base64 when `properties.body_encoding` says so) is the event, or a
//! list of events when the worker sends them in a group (`task.multi`).
//!
//! The harness subscribes for the whole scenario and records the events with
//! the worker's own timestamps. Pub/sub keeps nothing for a subscriber that is
//! away, so every moment the subscription was down is recorded too: a task
//! whose finish fell in such a gap is "not observed", never "lost".

use crate::history::{CeleryEventsRecord, Micros, RunClock, WorkerEvent};
use crate::observe::redis_state::RedisTarget;
use base64::Engine;
use futures_util::StreamExt;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One task-* event: its type, the task, when the worker says it happened
/// (run clock) and which worker process sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    pub kind: String,
    pub uuid: String,
    pub at: Micros,
    pub pid: u32,
    pub hostname: String,
    /// task-failed: the exception's repr.
    pub exception: Option<String>,
}

/// An event as decoded from one message, before its time is put on the run clock.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub kind: String,
    pub uuid: Option<String>,
    /// Seconds since the epoch, the sender's clock (`timestamp`).
    pub timestamp: f64,
    pub pid: u32,
    pub hostname: String,
    pub active: Option<u64>,
    pub exception: Option<String>,
    /// worker-*: `sw_ident sw_ver` ("py-celery 5.7.0").
    pub software: Option<String>,
}

/// Decode one message published on the event exchange: kombu's envelope
/// around one event or a list of them. `None` when it is not an event.
pub fn decode(payload: &[u8]) -> Option<Vec<RawEvent>> {
    let envelope: Value = serde_json::from_slice(payload).ok()?;
    let body = envelope.get("body")?;
    let body: Value = match body {
        Value::String(text) => {
            let bytes = if envelope["properties"]["body_encoding"].as_str() == Some("base64") {
                base64::engine::general_purpose::STANDARD.decode(text).ok()?
            } else {
                text.as_bytes().to_vec()
            };
            serde_json::from_slice(&bytes).ok()?
        }
        other => other.clone(),
    };
    let items = match body {
        Value::Array(items) => items,
        one @ Value::Object(_) => vec![one],
        _ => return None,
    };
    let events: Vec<RawEvent> = items.iter().filter_map(raw_event).collect();
    (!events.is_empty()).then_some(events)
}

fn raw_event(v: &Value) -> Option<RawEvent> {
    Some(RawEvent {
        kind: v["type"].as_str()?.to_string(),
        uuid: v["uuid"].as_str().map(str::to_string),
        timestamp: v["timestamp"].as_f64()?,
        pid: v["pid"].as_u64().unwrap_or(0) as u32,
        hostname: v["hostname"].as_str().unwrap_or_default().to_string(),
        active: v["active"].as_u64(),
        exception: v["exception"].as_str().map(str::to_string),
        software: v["sw_ident"]
            .as_str()
            .map(|ident| format!("{ident} {}", v["sw_ver"].as_str().unwrap_or_default()).trim().to_string()),
    })
}

/// What the watcher gathered so far.
#[derive(Debug, Default)]
struct Gathered {
    record: CeleryEventsRecord,
    tasks: Vec<TaskEvent>,
}

/// The subscription, running in the background until `stop`.
pub struct CeleryWatch {
    gathered: Arc<Mutex<Gathered>>,
    task: tokio::task::JoinHandle<()>,
}

/// Everything the stream said, handed over when the watch stops.
#[derive(Debug, Default)]
pub struct Watched {
    pub record: CeleryEventsRecord,
    pub tasks: Vec<TaskEvent>,
}

impl CeleryWatch {
    /// Subscribe to `exchange`'s events on the broker `target`; resubscribes
    /// (every 10 ms) whenever the connection is lost.
    pub fn start(target: RedisTarget, exchange: &str, clock: RunClock) -> CeleryWatch {
        let gathered = Arc::new(Mutex::new(Gathered::default()));
        gathered_lock(&gathered).record.watched = true;
        // kombu: `/{db}.{exchange}/{routing_key}` (fanout_patterns), or `/{db}.{exchange}` without patterns.
        let pattern = format!("/*.{exchange}*");
        let task = tokio::spawn(subscribe_loop(target, pattern, clock, gathered.clone()));
        CeleryWatch { gathered, task }
    }

    /// Task events gathered so far (for the end-of-run wait).
    pub fn task_events(&self) -> Vec<TaskEvent> {
        gathered_lock(&self.gathered).tasks.clone()
    }

    pub fn stop(self, now: Micros) -> Watched {
        self.task.abort();
        let mut g = gathered_lock(&self.gathered);
        // Never subscribed at all: the whole scenario is one gap.
        if g.record.subscriptions.is_empty() {
            g.record.subscriptions.push((now, None));
        }
        Watched {
            record: std::mem::take(&mut g.record),
            tasks: std::mem::take(&mut g.tasks),
        }
    }
}

fn gathered_lock(g: &Mutex<Gathered>) -> std::sync::MutexGuard<'_, Gathered> {
    match g.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

async fn subscribe_loop(target: RedisTarget, pattern: String, clock: RunClock, gathered: Arc<Mutex<Gathered>>) {
    // Wall clock -> run clock, read together once.
    let offset = wall_us().saturating_sub(clock.now());
    loop {
        if let Ok(mut stream) = subscribe(&target, &pattern).await {
            gathered_lock(&gathered).record.subscriptions.push((clock.now(), None));
            while let Some(msg) = stream.next().await {
                let payload: &[u8] = msg.get_payload_bytes();
                let mut g = gathered_lock(&gathered);
                match decode(payload) {
                    Some(events) => events.into_iter().for_each(|e| file(&mut g, e, offset)),
                    None => g.record.undecodable += 1,
                }
            }
            let lost_at = clock.now();
            if let Some(last) = gathered_lock(&gathered).record.subscriptions.last_mut() {
                last.1 = Some(lost_at);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn subscribe(target: &RedisTarget, pattern: &str) -> Result<redis::aio::PubSubStream, String> {
    let url = match target.password.as_deref() {
        Some(p) => format!("redis://:{p}@{}/", target.addr),
        None => format!("redis://{}/", target.addr),
    };
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
        pubsub.psubscribe(pattern).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(pubsub.into_on_message())
    };
    tokio::time::timeout(Duration::from_millis(500), connect)
        .await
        .map_err(|_| "subscribe timed out".to_string())?
}

fn file(g: &mut Gathered, e: RawEvent, offset: Micros) {
    *g.record.counts.entry(e.kind.clone()).or_default() += 1;
    let at = ((e.timestamp * 1e6) as Micros).saturating_sub(offset);
    if e.kind.starts_with("worker-") {
        g.record.workers.push(WorkerEvent {
            at,
            hostname: e.hostname,
            kind: e.kind,
            pid: e.pid,
            active: e.active,
            software: e.software,
        });
    } else if let Some(uuid) = e.uuid
        && e.kind.starts_with("task-")
    {
        g.tasks.push(TaskEvent {
            kind: e.kind,
            uuid,
            at,
            pid: e.pid,
            hostname: e.hostname,
            exception: e.exception,
        });
    }
}

fn wall_us() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as Micros)
        .unwrap_or(0)
}

/// The fix to name when a worker sends no task events.
pub const NO_EVENTS_FIX: &str = "the worker sent no task events: start it with `celery worker -E`, or set \
     `worker_send_task_events = True` in its configuration (and `task_send_sent_event = True` on the producer for task-sent)";

#[cfg(test)]
mod tests {
    use super::*;

    /// A `task.multi` message as Celery 5.7 published it on Redis (captured with PSUBSCRIBE).
    const MULTI: &str = r#"{"body": "W3siaG9zdG5hbWUiOiAiY2VsZXJ5QHZtIiwgInV0Y29mZnNldCI6IDAuMCwgInBpZCI6IDQxNTksICJjbG9jayI6IDQsICJ1dWlkIjogIjRiY2EwMjMzLWYxNzYtNGUxZi05YmE0LTJmNmU3YjAyZmJhZCIsICJuYW1lIjogImRlbW8uc2xlZXAiLCAiYXJncyI6ICIoKSIsICJrd2FyZ3MiOiAieydtcyc6IDUwfSIsICJyb290X2lkIjogIjRiY2EwMjMzLWYxNzYtNGUxZi05YmE0LTJmNmU3YjAyZmJhZCIsICJwYXJlbnRfaWQiOiBudWxsLCAicmV0cmllcyI6IDAsICJldGEiOiBudWxsLCAiZXhwaXJlcyI6IG51bGwsICJ0aW1lc3RhbXAiOiAxNzk2MTkwOTcwLjM4MDE0MTcsICJ0eXBlIjogInRhc2stcmVjZWl2ZWQifV0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"hostname": "celery@vm"}, "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": "task.multi"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "0b1b4a32-6f2e-4b8c-a53c-5c0f4d0f3b11"}}"#;

    #[test]
    fn decodes_a_grouped_task_event_from_real_celery() {
        let events = decode(MULTI.as_bytes()).expect("an event");
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.kind, "task-received");
        assert_eq!(e.uuid.as_deref(), Some("4bca0233-f176-4e1f-9ba4-2f6e7b02fbad"));
        assert_eq!(e.pid, 4159);
        assert_eq!(e.hostname, "celery@vm");
        assert!((e.timestamp - 1_796_190_970.380_141_7).abs() < 1e-6);
    }

    #[test]
    fn decodes_a_plain_json_body_and_refuses_what_is_no_event() {
        let plain =
            r#"{"body": {"type": "worker-heartbeat", "timestamp": 12.5, "pid": 7, "hostname": "w@h", "active": 3}, "properties": {}}"#;
        let e = &decode(plain.as_bytes()).expect("an event")[0];
        assert_eq!((e.kind.as_str(), e.active, e.uuid.is_none()), ("worker-heartbeat", Some(3), true));
        assert!(decode(b"not json").is_none());
        assert!(decode(br#"{"body": "eyJtZXRob2QiOiAiaGVsbG8ifQ==", "properties": {"body_encoding": "base64"}}"#).is_none());
    }

    #[test]
    fn gaps_in_the_subscription_are_found() {
        let r = CeleryEventsRecord {
            subscriptions: vec![(100, Some(500)), (700, None)],
            ..Default::default()
        };
        assert_eq!(r.gap_within(200, 400), None);
        assert_eq!(r.gap_within(200, 800), Some((500, 700)));
        assert_eq!(r.gap_within(50, 80), Some((50, 80)));
        assert_eq!(r.gap_within(800, 900), None);
    }
}
