//! A queue flood: `count` tasks at the standard's priorities 10, 5 and 1,
//! enqueued as fast as the stack's declared endpoint takes them. It returns
//! once they are enqueued; the end-of-run observer waits for the drain.

use super::Nemesis;
use crate::history::{FaultDetail, FaultRecord, Finding, TaskRecord};
use crate::observe::redis_state;
use crate::scenario::FloodOrder;
use futures_util::StreamExt;
use std::time::Duration;

/// Enqueue requests in flight at once.
const FLOOD_IN_FLIGHT: usize = 8;

/// POST one task; its id from the 2xx answer, or why there is none.
async fn enqueue_one(client: &reqwest::Client, url: &str, decl: &crate::manifest::EnqueueDecl) -> Result<String, String> {
    let resp = client.post(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status().as_u16()));
    }
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    decl.task_id_in(&body).ok_or_else(|| {
        format!(
            "2xx without a task id at `{}` (the manifest's enqueue.task_id): {body}",
            decl.task_id
        )
    })
}

/// The standard's priorities: high, medium, low.
pub const PRIORITIES: [u8; 3] = [10, 5, 1];
const LOW: u8 = 1;

pub async fn flood(n: &Nemesis<'_>, index: usize, count: u32, task_ms: u64, failing: bool, order: FloodOrder) -> FaultRecord {
    let label = format!(
        "flood of {count} {}tasks ({task_ms} ms each{})",
        if failing { "failing " } else { "" },
        if order == FloodOrder::LowFirst { ", every low first" } else { "" }
    );
    let empty = FaultDetail::Flood {
        requested: count,
        accepted: 0,
        queue_total: None,
        queue_base_list: None,
        enqueued_until: 0,
    };
    let Some((worker, decl)) = n.manifest.services.iter().find_map(|s| s.worker.as_ref().map(|w| (s, w))) else {
        return n.lacks(
            index,
            label,
            "worker",
            &["CW-FLOOD", "CW-CONC", "CW-PRIO", "CW-RECONNECT", "GS-WORKER"],
            "a task worker (Celery on the Redis broker)",
            "[services.<worker>.worker] queue, concurrency_env, enqueue, visibility_timeout_s",
            empty,
        );
    };
    if failing && decl.enqueue.failing_path.is_none() {
        let why = "the stack declares no request for a failing task ([services.<worker>.worker] enqueue.failing_path)".to_string();
        return n.not_landed(index, label, &worker.name, why, empty);
    }
    let Some(addr) = n.backend.endpoint(&decl.enqueue.service, &decl.enqueue.port) else {
        let why = format!("no address for the enqueue endpoint {}:{}", decl.enqueue.service, decl.enqueue.port);
        return n.not_landed(index, label, &worker.name, why, empty);
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let mut rng = fastrand::Rng::with_seed(n.seed ^ index as u64);
    let mut priorities: Vec<u8> = (0..count).map(|_| PRIORITIES[rng.usize(..PRIORITIES.len())]).collect();
    if order == FloodOrder::LowFirst {
        // Stable: the higher ones keep their shuffled order behind the lows.
        priorities.sort_by_key(|p| *p != LOW);
    }
    let injected_at = n.now();
    let mut accepted = 0;
    let mut failures = Vec::new();
    // Several in flight: a flood outpaces the worker even where one enqueue
    // takes milliseconds (a Python app behind gunicorn), so a backlog forms.
    let answers: Vec<(u8, u64, Result<String, String>)> = futures_util::stream::iter(priorities)
        .map(|priority| {
            let path = if failing {
                decl.enqueue.failing_path_for(priority, task_ms).unwrap_or_default()
            } else {
                decl.enqueue.path_for(priority, task_ms)
            };
            let url = format!("http://{addr}{path}");
            let client = client.clone();
            // When the answer came: from then on the task is surely on the broker.
            async move {
                let answer = enqueue_one(&client, &url, &decl.enqueue).await;
                (priority, n.now(), answer)
            }
        })
        .buffered(FLOOD_IN_FLIGHT)
        .collect()
        .await;
    for (priority, at, answer) in answers {
        match answer {
            Ok(id) => {
                accepted += 1;
                n.recorder.task_enqueued(TaskRecord {
                    id,
                    priority,
                    enqueued_at: at,
                    ..TaskRecord::default()
                });
            }
            Err(why) => failures.push(why),
        }
    }
    let enqueued_until = n.now();
    let targets = redis_state::targets(n.manifest, n.plan);
    let queue = match targets.first() {
        Some(t) => redis_state::queue_sample(t, &decl.queue, &decl.unacked_key, enqueued_until).await,
        None => None,
    };
    if let Some(q) = queue {
        n.recorder.queue_sample(q);
        if q.base_list != q.total {
            n.recorder.finding(Finding {
                id: "F8-LLEN-ONE-LIST".into(),
                title: "queue length read with LLEN on one list under-counts a prioritised queue".into(),
                evidence: format!(
                    "after the flood: LLEN {queue_name} = {}, but the priority lists {lists:?} held {} together; \
                     an AL-QUEUE rule on `LLEN {queue_name}` sees {} of the {} waiting tasks",
                    q.base_list,
                    q.total,
                    q.base_list,
                    q.total,
                    queue_name = decl.queue,
                    lists = redis_state::queue_lists(&decl.queue),
                ),
            });
        }
        n.recorder.finding(Finding {
            id: "F1-PRIORITY-DIRECTION".into(),
            title: "on kombu's Redis transport the lowest priority number runs first".into(),
            evidence: format!(
                "the queue `{}` is the lists {:?}, emptied in that order (priority steps 0, 3, 6, 9; 0 highest); the standard's \
                 \"10 is high\" holds only if the client maps it (CW-PRIO shows whether this stack does)",
                decl.queue,
                redis_state::queue_lists(&decl.queue)
            ),
        });
    }
    let mut proof = format!(
        "{accepted} of {count} enqueued (2xx) in {} ms",
        (enqueued_until - injected_at) / 1000
    );
    if let Some(q) = queue {
        proof.push_str(&format!(
            "; queue right after: {} over all priority lists, {} in `{}` alone",
            q.total, q.base_list, decl.queue
        ));
    }
    if let Some(first) = failures.first() {
        proof.push_str(&format!("; {} refused, first: {first}", failures.len()));
    }
    FaultRecord {
        index,
        label,
        service: worker.name.clone(),
        injected_at,
        healed_at: None,
        provokes: Vec::new(),
        landed: accepted > 0,
        proof,
        detail: FaultDetail::Flood {
            requested: count,
            accepted,
            queue_total: queue.map(|q| q.total),
            queue_base_list: queue.map(|q| q.base_list),
            enqueued_until,
        },
    }
}
