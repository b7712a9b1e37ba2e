//! Ctrl-C and SIGTERM of the harness: stop the run, clean up, say so.
//!
//! goose installs its own SIGINT handler on its first run, which would
//! replace ours; installing ours first makes goose's attempt fail quietly
//! (see the crate notes), and ours pulls goose's killswitch itself.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static NOTIFY: Notify = Notify::const_new();
/// The run whose processes a second Ctrl-C kills on the spot.
static CURRENT_RUN: Mutex<Option<String>> = Mutex::new(None);

/// Install the handler for SIGINT, SIGTERM and SIGHUP. Call before any goose run.
pub fn install() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            // Second signal: the user insists. Kill what we started, then go.
            if let Some(run) = current_run() {
                let killed = crate::stack::reaper::kill_run(&run);
                eprintln!(
                    "chaosgate: interrupted again: killed {} process(es) of run {run}; exiting",
                    killed.len()
                );
                crate::stack::reaper::remove_marker(&run);
            }
            std::process::exit(130);
        }
        eprintln!(
            "chaosgate: interrupted (Ctrl-C, SIGTERM or SIGHUP): stopping the load and the stack; a second signal kills them at once"
        );
        goose::trigger_killswitch("chaosgate: interrupted");
        NOTIFY.notify_waiters();
    })
}

pub fn set_current_run(run: Option<&str>) {
    if let Ok(mut g) = CURRENT_RUN.lock() {
        *g = run.map(str::to_string);
    }
}

fn current_run() -> Option<String> {
    CURRENT_RUN.lock().ok().and_then(|g| g.clone())
}

pub fn is_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Completes when the harness is interrupted.
pub async fn interrupted() {
    loop {
        let notified = NOTIFY.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if is_interrupted() {
            return;
        }
        notified.await;
    }
}
