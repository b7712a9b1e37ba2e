//! The client: drives the scenario's load with goose (its users, ramp, pacing
//! and run time) over a lean HTTP/1.1 connection per user, and records every request.

pub mod classify;
pub mod driver;
pub mod http1;
pub mod reload_race;

pub use driver::{LoadHandle, LoadShared, LoadTls};
