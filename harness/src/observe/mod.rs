//! Observers sample the stack into the history: health probes, Redis's view
//! of its clients, the kernel's view of sockets and processes.

pub mod access_log;
pub mod alert_webhook;
pub mod backend_metrics;
pub mod celery_events;
pub mod health;
pub mod http;
pub mod prometheus;
pub mod redis_clients;
pub mod redis_state;
pub mod sockets;
pub mod tls;
