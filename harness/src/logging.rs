//! Diagnostics of chaosgate and the crates it drives go through `tracing`,
//! filtered by `CHAOSGATE_LOG` (e.g. `CHAOSGATE_LOG=debug`), on stderr.
//!
//! Installing the subscriber also claims the `log` facade. That matters:
//! goose installs its own terminal logger when none is set and then prints a
//! WARN line for every failed request, which buried the test output under
//! tens of thousands of lines whenever a scenario made requests fail on purpose.

/// Install the subscriber once per process; later calls (and a subscriber a
/// test or embedding program installed first) are left alone.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CHAOSGATE_LOG"))
        .with_writer(std::io::stderr)
        .try_init();
}
