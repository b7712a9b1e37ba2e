//! Observers sample the stack into the history: health probes, Redis's view
//! of its clients, the kernel's view of sockets and processes.

pub mod health;
pub mod http;
pub mod redis_clients;
pub mod sockets;
