//! Reporters: views of a run's history and verdicts.

pub mod model;
