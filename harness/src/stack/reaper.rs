//! Nothing left behind: every process a run starts carries the run's tag in
//! its environment, so the harness can find (and kill) what a run left, even
//! after the harness itself was SIGKILLed. A marker file per live run tells
//! the next run (and `chaosgate clean`) which tags are orphaned.

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable carrying the run id into every service process.
pub const RUN_TAG: &str = "CHAOSGATE_RUN";
/// Environment variable carrying the service name.
pub const SERVICE_TAG: &str = "CHAOSGATE_SERVICE";

/// A process found by its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedProcess {
    pub pid: u32,
    pub run: String,
    pub service: String,
    pub command: String,
}

/// Every live process whose environment carries a chaosgate tag, optionally
/// only those of one run and one service.
pub fn tagged_processes(run: Option<&str>, service: Option<&str>) -> Vec<TaggedProcess> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let mut tag_run = None;
        let mut tag_service = None;
        for var in environ.split(|b| *b == 0) {
            if let Some(v) = var.strip_prefix(format!("{RUN_TAG}=").as_bytes()) {
                tag_run = Some(String::from_utf8_lossy(v).into_owned());
            } else if let Some(v) = var.strip_prefix(format!("{SERVICE_TAG}=").as_bytes()) {
                tag_service = Some(String::from_utf8_lossy(v).into_owned());
            }
        }
        let Some(tag_run) = tag_run else { continue };
        if is_zombie(pid) {
            continue;
        }
        let tag_service = tag_service.unwrap_or_default();
        if run.is_some_and(|r| r != tag_run) || service.is_some_and(|s| s != tag_service) {
            continue;
        }
        found.push(TaggedProcess {
            pid,
            run: tag_run,
            service: tag_service,
            command: command_line(pid),
        });
    }
    found.sort_by_key(|p| p.pid);
    found
}

/// The process's state letter from /proc/PID/stat ('R', 'S', 'T' stopped, 'Z' zombie...).
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: the state follows the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

fn is_zombie(pid: u32) -> bool {
    matches!(process_state(pid), Some('Z') | Some('X') | None)
}

pub fn command_line(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The process group of a process (field 5 of /proc/PID/stat).
pub fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(2)?.parse().ok()
}

/// Live members of a process group.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| process_group(*pid) == Some(pgid) && !is_zombie(*pid))
        .collect()
}

/// SIGKILL every process of a run: those carrying its tag, and every member
/// of the process groups its services led. Both, because some programs (nginx)
/// overwrite their environment to set their process title, hiding the tag.
pub fn kill_run(run: &str) -> Vec<TaggedProcess> {
    let mut victims = tagged_processes(Some(run), None);
    let leaders = read_marker(run).map(|m| m.processes).unwrap_or_default();
    for leader in &leaders {
        // A live process under the leader's pid that started at another time is a stranger.
        if start_time(leader.pid).is_some_and(|t| t != leader.started) {
            continue;
        }
        for pid in group_members(leader.pid) {
            if !victims.iter().any(|v| v.pid == pid) {
                victims.push(TaggedProcess {
                    pid,
                    run: run.to_string(),
                    service: leader.service.clone(),
                    command: command_line(pid),
                });
            }
        }
        let _ = killpg(Pid::from_raw(leader.pid as i32), Signal::SIGKILL);
    }
    for p in &victims {
        let pid = Pid::from_raw(p.pid as i32);
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = kill(pid, Signal::SIGKILL);
    }
    victims
}

/// A service's main process, which leads its own process group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub service: String,
    pub pid: u32,
    pub started: u64,
}

static MARKER_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Add a started service to its run's marker, if the run has one.
pub fn record_leader(run: &str, service: &str, pid: u32) {
    let _guard = MARKER_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(mut marker) = read_marker(run) {
        marker.processes.push(LeaderRecord {
            service: service.to_string(),
            pid,
            started: start_time(pid).unwrap_or(0),
        });
        let _ = write_marker(&marker);
    }
}

/// Flag a run as kept up on purpose (--keep): only `chaosgate clean` reaps it.
pub fn mark_kept(run: &str) -> std::io::Result<()> {
    let _guard = MARKER_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    match read_marker(run) {
        Some(mut marker) => {
            marker.kept = true;
            write_marker(&marker)
        }
        None => Ok(()),
    }
}

/// Whether the state folder knows this run (in progress, killed, or kept).
pub fn run_known(run: &str) -> bool {
    read_marker(run).is_some()
}

fn read_marker(run: &str) -> Option<RunMarker> {
    let text = std::fs::read_to_string(marker_path(&markers_dir(), run)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Marker of a run in progress (or kept up with --keep).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMarker {
    pub run_id: String,
    pub harness_pid: u32,
    /// The harness's start time (clock ticks since boot), against pid reuse.
    pub harness_started: u64,
    pub run_dir: PathBuf,
    /// Left up on purpose with --keep: only `chaosgate clean` reaps it.
    pub kept: bool,
    /// Every service process started, so its group can be reaped.
    #[serde(default)]
    pub processes: Vec<LeaderRecord>,
}

/// Where run markers live: `CHAOSGATE_STATE_DIR`, else a folder of this
/// user's own, so that `clean` and the reaper never see (nor stop) another
/// user's runs on a shared machine.
pub fn markers_dir() -> PathBuf {
    std::env::var_os("CHAOSGATE_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("chaosgate-runs-{}", nix::unistd::getuid())))
}

fn marker_path(dir: &Path, run_id: &str) -> PathBuf {
    dir.join(format!("{run_id}.json"))
}

pub fn write_marker(marker: &RunMarker) -> std::io::Result<()> {
    let dir = markers_dir();
    std::fs::create_dir_all(&dir)?;
    // The default folder is private: a marker names the run folder, whose files hold the run's secrets.
    if std::env::var_os("CHAOSGATE_STATE_DIR").is_none() {
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    }
    let text = serde_json::to_string_pretty(marker).map_err(std::io::Error::other)?;
    std::fs::write(marker_path(&dir, &marker.run_id), text)
}

pub fn remove_marker(run_id: &str) {
    let _ = std::fs::remove_file(marker_path(&markers_dir(), run_id));
}

pub fn read_markers() -> Vec<RunMarker> {
    let Ok(entries) = std::fs::read_dir(markers_dir()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect()
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields after the command start at field 3 (state); starttime is field 22.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the harness that wrote a marker is still running (same pid, same start time).
fn harness_alive(marker: &RunMarker) -> bool {
    !is_zombie(marker.harness_pid) && start_time(marker.harness_pid) == Some(marker.harness_started)
}

/// What a reap found and killed.
#[derive(Debug, Default)]
pub struct Reaped {
    pub runs: Vec<String>,
    pub processes: Vec<TaggedProcess>,
    /// Containers, networks and volumes removed ("container <name>").
    pub docker_objects: Vec<String>,
}

/// Kill what runs of dead harnesses left behind. Kept runs are reaped only
/// when `include_kept` (that is `chaosgate clean`).
pub fn reap_orphans(include_kept: bool, only_run: Option<&str>) -> Reaped {
    let mut reaped = Reaped::default();
    for marker in read_markers() {
        if only_run.is_some_and(|r| r != marker.run_id) {
            continue;
        }
        let reap = if marker.kept { include_kept } else { !harness_alive(&marker) };
        if reap {
            // Containers first: the engine stops their processes as a whole.
            reaped.docker_objects.extend(super::docker_objects::remove_run(&marker.run_id));
            reaped.processes.extend(kill_run(&marker.run_id));
            remove_marker(&marker.run_id);
            reaped.runs.push(marker.run_id);
        }
    }
    // Objects labelled by a run no marker speaks for: its marker was lost with
    // its state folder, and no harness that could still own them is known.
    let known: Vec<String> = read_markers().into_iter().map(|m| m.run_id).collect();
    for run in super::docker_objects::labelled_runs() {
        if only_run.is_some_and(|r| r != run) || known.contains(&run) {
            continue;
        }
        reaped.docker_objects.extend(super::docker_objects::remove_run(&run));
        if !reaped.runs.contains(&run) {
            reaped.runs.push(run);
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_harness_is_not_reaped_and_a_dead_one_is() {
        let me = std::process::id();
        let mut marker = RunMarker {
            run_id: "x".into(),
            harness_pid: me,
            harness_started: start_time(me).expect("own start time"),
            run_dir: PathBuf::new(),
            kept: false,
            processes: Vec::new(),
        };
        assert!(harness_alive(&marker));
        marker.harness_started += 1;
        assert!(!harness_alive(&marker), "a reused pid must not count as the harness");
    }

    #[test]
    fn own_state_is_readable() {
        let state = process_state(std::process::id());
        assert!(matches!(state, Some('R') | Some('S')), "{state:?}");
    }

    #[test]
    fn finds_and_kills_a_tagged_process() {
        let run = format!("test-reaper-{}", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(RUN_TAG, &run)
            .env(SERVICE_TAG, "sleeper")
            .spawn()
            .expect("spawn sleep");
        // Until the child has exec'd, /proc shows the environment it inherited,
        // without the tag: wait for the tag to show.
        let since = std::time::Instant::now();
        let found = loop {
            let found = tagged_processes(Some(&run), Some("sleeper"));
            if !found.is_empty() || since.elapsed() > std::time::Duration::from_secs(5) {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, child.id());
        let killed = kill_run(&run);
        assert_eq!(killed.len(), 1);
        let status = child.wait().expect("wait");
        assert!(!status.success());
        assert!(tagged_processes(Some(&run), None).is_empty());
    }
}
