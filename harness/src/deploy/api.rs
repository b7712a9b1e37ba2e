//! The platform API a stack's release controller calls while the harness
//! runs one of its commands: start and stop instances of a service, signal
//! or restart a service. It is to the controller what the Docker or
//! Kubernetes API is to a real one, and it runs every request on the run's
//! backend, so a controller works unchanged on processes and containers and
//! everything it starts is logged and cleaned up with the rest of the run.
//!
//! Served on loopback only while the command runs; the address is in the
//! command's `CHAOSGATE_API`. Requests (JSON):
//! - `POST /v1/instances` `{"of": "app", "name": "app-v2", "command": [...], "env": {...}}`:
//!   starts a copy of service `of` with fresh ports and waits until it is
//!   ready; answers `{"name", "host", "ports": {"http": 1234}, "address": {"http": "127.0.0.1:1234"}}`
//!   (`host`: where the other services reach it; `address`: where the controller does).
//! - `DELETE /v1/instances/<name>`: stops it with its stop signal and the grace period.
//! - `POST /v1/services/<name>/signal` `{"signal": "HUP"}`.
//! - `POST /v1/services/<name>/restart`: stop, start, wait until ready.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use tokio::sync::{mpsc, oneshot};

/// One request, handed from the server task to the scenario's task, which
/// owns the backend.
#[derive(Debug)]
pub enum Call {
    StartInstance(StartInstance),
    StopInstance { name: String },
    Signal { service: String, signal: String },
    Restart { service: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartInstance {
    pub of: String,
    pub name: String,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    signal: String,
}

pub type Reply = Result<Value, String>;
type Channel = mpsc::Sender<(Call, oneshot::Sender<Reply>)>;

/// The server, listening on loopback; dropped, it stops.
pub struct ApiServer {
    pub url: String,
    pub calls: mpsc::Receiver<(Call, oneshot::Sender<Reply>)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    pub async fn start() -> std::io::Result<ApiServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = mpsc::channel(16);
        let app = axum::Router::new()
            .route("/v1/instances", post(start_instance))
            .route("/v1/instances/{name}", delete(stop_instance))
            .route("/v1/services/{name}/signal", post(signal))
            .route("/v1/services/{name}/restart", post(restart))
            .with_state(tx);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ApiServer { url, calls: rx, task })
    }
}

async fn forward(tx: &Channel, call: Call) -> (StatusCode, Json<Value>) {
    let (reply_tx, reply_rx) = oneshot::channel();
    if tx.send((call, reply_tx)).await.is_err() {
        return failure(StatusCode::SERVICE_UNAVAILABLE, "the harness is not taking requests now".into());
    }
    match reply_rx.await {
        Ok(Ok(value)) => (StatusCode::OK, Json(value)),
        Ok(Err(message)) => failure(StatusCode::UNPROCESSABLE_ENTITY, message),
        Err(_) => failure(StatusCode::SERVICE_UNAVAILABLE, "the command's time ran out".into()),
    }
}

fn failure(status: StatusCode, message: String) -> (StatusCode, Json<Value>) {
    (status, Json(serde_json::json!({ "error": message })))
}

async fn start_instance(State(tx): State<Channel>, Json(body): Json<StartInstance>) -> (StatusCode, Json<Value>) {
    forward(&tx, Call::StartInstance(body)).await
}

async fn stop_instance(State(tx): State<Channel>, Path(name): Path<String>) -> (StatusCode, Json<Value>) {
    forward(&tx, Call::StopInstance { name }).await
}

async fn signal(State(tx): State<Channel>, Path(service): Path<String>, Json(body): Json<SignalBody>) -> (StatusCode, Json<Value>) {
    forward(
        &tx,
        Call::Signal {
            service,
            signal: body.signal,
        },
    )
    .await
}

async fn restart(State(tx): State<Channel>, Path(service): Path<String>) -> (StatusCode, Json<Value>) {
    forward(&tx, Call::Restart { service }).await
}

/// A name an instance may take: it becomes a folder, a container name and a host name.
pub fn valid_instance_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
}
