//! chaosgate: proves or disproves that a web stack meets the Deployment and
//! Operations Standard, by running it, loading it, breaking it and judging
//! what it recorded.

pub mod check;
pub mod cli;
pub mod deploy;
pub mod doctor;
pub mod history;
pub mod images;
pub mod input_error;
pub mod interrupt;
pub mod load;
pub mod logging;
pub mod manifest;
pub mod nemesis;
pub mod observe;
pub mod progress;
pub mod report;
pub mod requirements;
pub mod run;
pub mod scenario;
pub mod stack;
pub mod timeline;
pub mod validate;
