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

/// The kinship fields of /proc/PID/stat: parent, group, session, start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kin {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    pub started: u64,
    pub zombie: bool,
}

pub fn kin(pid: u32) -> Option<Kin> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]: ppid 4, pgrp 5, session 6, starttime 22.
    Some(Kin {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        sid: fields.get(3)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
        zombie: matches!(fields.first(), Some(&"Z") | Some(&"X")),
    })
}

/// Every process on the machine with its kinship, read once.
pub fn all_kin() -> Vec<Kin> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter_map(kin)
        .collect()
}

/// Live descendants of `roots` (not the roots themselves), however they
/// renamed themselves, whichever group or session they moved to.
pub fn descendants(table: &[Kin], roots: &[u32]) -> Vec<Kin> {
    let mut found: Vec<Kin> = Vec::new();
    let mut frontier: Vec<u32> = roots.to_vec();
    while let Some(parent) = frontier.pop() {
        for k in table.iter().filter(|k| k.ppid == parent && k.pid != parent) {
            if !found.iter().any(|f| f.pid == k.pid) && !roots.contains(&k.pid) {
                found.push(*k);
                frontier.push(k.pid);
            }
        }
    }
    found.retain(|k| !k.zombie);
    found
}

/// Make the harness the reaper of its services' orphans: a process that
/// double-forks, calls setsid and clears its environment is re-parented to
/// the harness instead of init, so it stays findable (and killable).
pub fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            eprintln!(
                "chaosgate: cannot become the subreaper of the services ({e}): a service's child that leaves its session may go unseen"
            );
        }
    });
}

/// Whether a child of the harness is an orphan it inherited as subreaper
/// rather than a process it started: the harness starts its helpers in its
/// own session and its services as group leaders (`leaders`), so a child in
/// another session, or in a service's group without leading it, came from a
/// service.
fn is_adopted(k: &Kin, my_sid: u32, leaders: &[u32]) -> bool {
    k.ppid == std::process::id() && !leaders.contains(&k.pid) && (k.sid != my_sid || leaders.contains(&k.pgid))
}

/// Orphans of services that the harness inherited as their subreaper, with
/// everything they started.
pub fn adopted_orphans(table: &[Kin], leaders: &[u32]) -> Vec<Kin> {
    let me = std::process::id();
    let Some(my_sid) = table.iter().find(|k| k.pid == me).map(|k| k.sid) else {
        return Vec::new();
    };
    let adopted: Vec<Kin> = table.iter().filter(|k| is_adopted(k, my_sid, leaders)).copied().collect();
    let roots: Vec<u32> = adopted.iter().map(|k| k.pid).collect();
    let mut all: Vec<Kin> = adopted.into_iter().filter(|k| !k.zombie).collect();
    all.extend(descendants(table, &roots));
    all
}

/// Collect the exit status of adopted orphans that died: they are the
/// harness's children now, and nothing else waits for them. Only those pids:
/// a wait on any child would steal the exit status of a service tokio awaits.
pub fn reap_adopted_zombies(leaders: &[u32]) {
    let me = std::process::id();
    let table = all_kin();
    let Some(my_sid) = table.iter().find(|k| k.pid == me).map(|k| k.sid) else {
        return;
    };
    for k in table.iter().filter(|k| k.zombie && is_adopted(k, my_sid, leaders)) {
        let _ = nix::sys::wait::waitpid(Pid::from_raw(k.pid as i32), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    }
}

/// SIGKILL every process of a run: those carrying its tag, and every member
/// of the process groups its services led. Both, because some programs (nginx)
/// overwrite their environment to set their process title, hiding the tag.
pub fn kill_run(run: &str) -> Vec<TaggedProcess> {
    let mut victims = tagged_processes(Some(run), None);
    let leaders = read_marker(run).map(|m| m.processes).unwrap_or_default();
    // Runs of one harness are one at a time: what it adopted is this run's.
    let leader_pids: Vec<u32> = leaders.iter().filter(|l| !l.escaped).map(|l| l.pid).collect();
    for k in adopted_orphans(&all_kin(), &leader_pids) {
        if !victims.iter().any(|v| v.pid == k.pid) {
            victims.push(TaggedProcess {
                pid: k.pid,
                run: run.to_string(),
                service: "(left its service's session)".to_string(),
                command: command_line(k.pid),
            });
        }
    }
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

/// The service processes the harness started for a run (group leaders).
pub fn run_leaders(run: &str) -> Vec<u32> {
    read_marker(run)
        .map(|m| m.processes.iter().filter(|l| !l.escaped).map(|l| l.pid).collect())
        .unwrap_or_default()
}

/// What of a run still lives: tagged processes and the orphans its services
/// left with the harness.
pub fn run_leftovers(run: &str) -> Vec<TaggedProcess> {
    let mut left = tagged_processes(Some(run), None);
    for k in adopted_orphans(&all_kin(), &run_leaders(run)) {
        if !left.iter().any(|p| p.pid == k.pid) {
            left.push(TaggedProcess {
                pid: k.pid,
                run: run.to_string(),
                service: String::new(),
                command: command_line(k.pid),
            });
        }
    }
    left
}

/// After a sweep's SIGKILLs: wait (up to `deadline`) for the orphans the
/// harness adopted to die, and collect their exit status so none stays a zombie.
pub async fn await_and_reap(run: &str, deadline: std::time::Duration) {
    let leaders = run_leaders(run);
    let until = std::time::Instant::now() + deadline;
    loop {
        reap_adopted_zombies(&leaders);
        if adopted_orphans(&all_kin(), &leaders).is_empty() || std::time::Instant::now() >= until {
            // One more pass: what died since the first is a zombie now.
            reap_adopted_zombies(&leaders);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A service's main process, which leads its own process group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub service: String,
    pub pid: u32,
    pub started: u64,
    /// A descendant of the service that left its group (not a process the
    /// harness started): named so `clean` finds it, never taken for a leader.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub escaped: bool,
}

static MARKER_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Add a started service to its run's marker, if the run has one.
pub fn record_leader(run: &str, service: &str, pid: u32) {
    record(run, service, pid, false);
}

/// Add a service's descendant that left the service's group to the marker.
pub fn record_escapee(run: &str, service: &str, pid: u32) {
    record(run, service, pid, true);
}

fn record(run: &str, service: &str, pid: u32, escaped: bool) {
    let _guard = MARKER_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(mut marker) = read_marker(run) {
        marker.processes.push(LeaderRecord {
            service: service.to_string(),
            pid,
            started: start_time(pid).unwrap_or(0),
            escaped,
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
