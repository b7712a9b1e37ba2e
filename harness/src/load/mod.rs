//! The client: drives the scenario's load with goose and records every request.

pub mod classify;
pub mod driver;
pub mod reload_race;

pub use driver::{LoadHandle, LoadShared, LoadTls};
