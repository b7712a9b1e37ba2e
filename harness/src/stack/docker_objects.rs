//! The Docker objects of a run, found by label, and their removal.
//!
//! This runs where no async runtime can be relied on (a backend's `Drop`
//! after a panic, `chaosgate clean`, the reaper before a run), so it drives
//! the `docker` command line synchronously instead of the engine API.

use std::process::{Command, Stdio};

/// Label on every container and network a run creates: its run id.
pub const RUN_LABEL: &str = "io.chaosgate.run";
/// Label naming the service a container runs.
pub const SERVICE_LABEL: &str = "io.chaosgate.service";
/// Label naming the state folder of the harness that made the object: a
/// `clean` reaps only what its own state folder speaks for, never another
/// user's (or another test's) runs on a shared engine.
pub const STATE_LABEL: &str = "io.chaosgate.state";

/// This harness's value of `STATE_LABEL`.
pub fn state_label() -> String {
    super::reaper::markers_dir().display().to_string()
}

/// What a removal took away ("container <name>", "network <name>").
pub fn remove_run(run_id: &str) -> Vec<String> {
    let filter = format!("label={RUN_LABEL}={run_id}");
    let mut removed = Vec::new();
    let containers = docker_lines(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(containers.iter().map(String::as_str));
        if docker_ok(&args) {
            removed.extend(containers.iter().map(|c| format!("container {c}")));
        }
    }
    for net in docker_lines(&["network", "ls", "--filter", &filter, "--format", "{{.Name}}"]) {
        if docker_ok(&["network", "rm", &net]) {
            removed.push(format!("network {net}"));
        }
    }
    for vol in docker_lines(&["volume", "ls", "-q", "--filter", &filter]) {
        if docker_ok(&["volume", "rm", "-f", &vol]) {
            removed.push(format!("volume {vol}"));
        }
    }
    removed
}

/// Run ids that own a container or network on this engine, made by a
/// harness with this state folder.
pub fn labelled_runs() -> Vec<String> {
    let format = format!("{{{{.Label \"{RUN_LABEL}\"}}}}");
    let mine = format!("label={STATE_LABEL}={}", state_label());
    let mut runs = docker_lines(&["ps", "-a", "--filter", &mine, "--format", &format]);
    runs.extend(docker_lines(&["network", "ls", "--filter", &mine, "--format", &format]));
    runs.sort();
    runs.dedup();
    runs.retain(|r| !r.is_empty());
    runs
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let Ok(out) = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
