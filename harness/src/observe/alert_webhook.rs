//! The receiver a stack's alert router pages: Alertmanager's webhook
//! (`webhook_configs`, payload version 4), served by the harness for the
//! whole scenario. Every alert of every call goes into the history as it
//! arrives, so the AL-* checks can tell "Prometheus fired it" from "a person
//! was told" (a route that drops an alert shows only the first).
//!
//! It listens where the router reaches the harness: loopback for local
//! processes, the run network's gateway address for containers (never every
//! interface).

use crate::history::{AlertNotification, Recorder};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// The fields of Alertmanager's webhook payload the checks read; the rest
/// (annotations, group labels, URLs) are ignored.
#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    receiver: String,
    #[serde(default)]
    alerts: Vec<PayloadAlert>,
}

#[derive(Deserialize)]
struct PayloadAlert {
    status: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

/// The receiver, serving until dropped.
pub struct WebhookReceiver {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookReceiver {
    /// Listen on `addr` and record every alert delivered to any path.
    pub async fn start(addr: SocketAddr, recorder: Arc<Recorder>) -> std::io::Result<WebhookReceiver> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let app = axum::Router::new().fallback(receive).with_state(recorder);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(WebhookReceiver { task })
    }
}

async fn receive(State(recorder): State<Arc<Recorder>>, body: axum::body::Bytes) -> StatusCode {
    let at = recorder.clock.now();
    match notifications(&body, at) {
        Some(list) => {
            for n in list {
                recorder.alert_notification(n);
            }
            StatusCode::OK
        }
        // Alertmanager retries a failed call; a body it cannot send again correctly is still its bug.
        None => StatusCode::BAD_REQUEST,
    }
}

/// One notification per alert in a webhook body; `None` if it is not one.
fn notifications(body: &[u8], at: u64) -> Option<Vec<AlertNotification>> {
    let payload: Payload = serde_json::from_slice(body).ok()?;
    Some(
        payload
            .alerts
            .into_iter()
            .map(|a| AlertNotification {
                at,
                alert: a.labels.get("alertname").cloned().unwrap_or_default(),
                status: a.status,
                receiver: payload.receiver.clone(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_alert_of_an_alertmanager_payload() {
        // Shape of a real Alertmanager 0.25 webhook body, trimmed.
        let body = br#"{"receiver":"chaosgate","status":"firing","alerts":[
            {"status":"firing","labels":{"alertname":"AppErrorRateHigh","job":"app"},"annotations":{},"startsAt":"2026-12-03T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"a"},
            {"status":"resolved","labels":{"alertname":"WorkerDown"},"startsAt":"2026-12-03T10:00:00Z","endsAt":"2026-12-03T10:00:05Z"}],
            "groupLabels":{},"commonLabels":{},"version":"4","groupKey":"{}:{}","truncatedAlerts":0}"#;
        let got = notifications(body, 7).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].alert.as_str(), got[0].status.as_str(), got[0].receiver.as_str()),
            ("AppErrorRateHigh", "firing", "chaosgate")
        );
        assert_eq!(
            (got[1].alert.as_str(), got[1].status.as_str(), got[1].at),
            ("WorkerDown", "resolved", 7)
        );
        assert!(notifications(b"not json", 0).is_none());
    }
}
