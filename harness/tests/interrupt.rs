//! Nothing is left running after Ctrl-C, and a SIGKILLed harness's leftovers
//! are reaped by `chaosgate clean`. Drives the real binary.

use chaosgate::stack::reaper::tagged_processes;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

/// Start a run of the SIGTERM scenario and wait until its stack is healthy;
/// returns the child, its run id, and the rest of its stderr.
fn start_run(state_dir: &std::path::Path) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    start_run_with(state_dir, None, "fixtures/stacks/reference")
}

/// As `start_run`; with `inherited`, the harness starts holding that file
/// open on descriptor 7, not close-on-exec, as a shell redirect leaves it.
fn start_run_with(
    state_dir: &std::path::Path,
    inherited: Option<&std::path::Path>,
    stack: &str,
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut command = match inherited {
        Some(file) => {
            let mut c = Command::new("bash");
            c.arg("-c")
                .arg("exec 7>>\"$0\"; exec \"$@\"")
                .arg(file)
                .arg(env!("CARGO_BIN_EXE_chaosgate"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_chaosgate")),
    };
    let mut child = command
        .arg("run")
        .arg(repo("scenarios/sigterm-drain.toml"))
        .arg("--stack")
        .arg(repo(stack))
        .arg("--out")
        .arg(repo("target/interrupt-runs"))
        .env("CHAOSGATE_STATE_DIR", state_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chaosgate");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut run_id = None;
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(180))
            .unwrap_or_else(|_| panic!("no healthy stack; stderr so far: {seen:#?}"));
        if let Some(dir) = line.split("starting the stack in ").nth(1) {
            // .../<run-id>/<scenario>
            run_id = PathBuf::from(dir)
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned());
        }
        let healthy = line.contains("stack healthy after");
        seen.push(line);
        if healthy {
            break;
        }
    }
    (child, run_id.expect("run id in the progress lines"), rx)
}

fn wait(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "chaosgate did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_stops_the_stack_and_says_so() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let state = tempdir("ctrlc");
    let (mut child, run_id, lines) = start_run(&state);
    let ports = listening_ports_of(&run_id);
    assert!(!ports.is_empty(), "the stack should listen somewhere");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    let status = wait(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(130), "Ctrl-C exits with 130");
    let said: Vec<String> = lines.try_iter().collect();
    assert!(
        said.iter()
            .any(|l| l.contains("0 process(es) and 0 listening port(s) of this run left")),
        "{said:#?}"
    );
    assert!(tagged_processes(Some(&run_id), None).is_empty(), "processes left behind");
    for port in ports {
        assert!(!chaosgate::observe::sockets::listening_on(port), "port {port} still listening");
    }
    assert!(
        std::fs::read_dir(&state).map(|d| d.count()).unwrap_or(0) == 0,
        "the run marker is removed"
    );
}

#[test]
fn a_killed_harness_is_reaped_by_clean() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let state = tempdir("sigkill");
    let (mut child, run_id, _) = start_run(&state);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL");
    wait(&mut child, Duration::from_secs(10));
    let orphans = tagged_processes(Some(&run_id), None);
    assert!(
        !orphans.is_empty(),
        "SIGKILL leaves the stack behind (that is what the marker is for)"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chaosgate"))
        .arg("clean")
        .env("CHAOSGATE_STATE_DIR", &state)
        .output()
        .expect("clean");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cleaned 1 run(s)"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tagged_processes(Some(&run_id), None).is_empty() {
        assert!(
            Instant::now() < deadline,
            "orphans survived clean: {:?}",
            tagged_processes(Some(&run_id), None)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn listening_ports_of(run_id: &str) -> Vec<u16> {
    let pids: Vec<u32> = tagged_processes(Some(run_id), None).iter().map(|p| p.pid).collect();
    let inodes: std::collections::HashSet<u64> = pids.iter().flat_map(|p| chaosgate::observe::sockets::socket_inodes(*p)).collect();
    chaosgate::observe::sockets::all_tcp()
        .into_iter()
        .filter(|e| e.state == chaosgate::observe::sockets::TCP_LISTEN && inodes.contains(&e.inode))
        .map(|e| e.local.port())
        .collect()
}

/// Where each descriptor of `pid` points.
fn descriptors_of(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.flatten().filter_map(|e| std::fs::read_link(e.path()).ok()).collect())
        .unwrap_or_default()
}

#[test]
fn services_inherit_no_descriptor_of_the_harness() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let state = tempdir("descriptors");
    let held = state.join("held-by-the-harness");
    std::fs::write(&held, b"").expect("file");
    let (mut child, run_id, _) = start_run_with(&state, Some(&held), "fixtures/stacks/reference");
    let held = std::fs::canonicalize(&held).expect("canonical");
    // The harness did inherit it: there was something to leak.
    let harness_holds = descriptors_of(child.id()).contains(&held);
    let services = tagged_processes(Some(&run_id), None);
    let leaked: Vec<String> = services
        .iter()
        .filter(|p| descriptors_of(p.pid).contains(&held))
        .map(|p| format!("{} (pid {}, {})", p.service, p.pid, p.command))
        .collect();
    // Stop the stack before any assertion can fail.
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    let status = wait(&mut child, Duration::from_secs(60));
    assert!(harness_holds, "the harness should hold {}", held.display());
    assert!(!services.is_empty(), "the run's services should be running");
    assert!(
        leaked.is_empty(),
        "inherited the harness's descriptor on {}: {leaked:#?}",
        held.display()
    );
    assert_eq!(status.code(), Some(130));
}

/// A service's child that calls setsid and clears its environment carries no
/// tag and leads no group of the service's: the harness, its subreaper, still
/// finds it through its ancestry and kills it with the stack.
#[test]
fn ctrl_c_kills_a_child_that_left_its_session() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let state = tempdir("escaped");
    let (mut child, run_id, lines) = start_run_with(&state, None, "fixtures/stacks/mutants/child-escapes-session");
    let services: Vec<u32> = tagged_processes(Some(&run_id), None).iter().map(|p| p.pid).collect();
    let table = chaosgate::stack::reaper::all_kin();
    let escaped: Vec<chaosgate::stack::reaper::Kin> = chaosgate::stack::reaper::descendants(&table, &services)
        .into_iter()
        .filter(|k| chaosgate::stack::reaper::command_line(k.pid) == "sleep 600")
        .collect();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    let status = wait(&mut child, Duration::from_secs(60));
    assert_eq!(escaped.len(), 1, "the mutant's app starts one escaping child: {escaped:?}");
    let escaped = escaped[0];
    assert_ne!(
        escaped.sid,
        chaosgate::stack::reaper::kin(services[0]).map_or(0, |k| k.sid),
        "it left the session"
    );
    assert!(
        chaosgate::stack::reaper::kin(escaped.pid).is_none_or(|k| k.started != escaped.started),
        "the escaped child outlived the run: {:?}",
        chaosgate::stack::reaper::kin(escaped.pid)
    );
    let said: Vec<String> = lines.try_iter().collect();
    assert!(
        said.iter()
            .any(|l| l.contains("killed") && l.contains("0 process(es) and 0 listening port(s) of this run left")),
        "{said:#?}"
    );
    assert_eq!(status.code(), Some(130));
}

fn tempdir(name: &str) -> PathBuf {
    let dir = repo("target/interrupt-state").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("state dir");
    dir
}
