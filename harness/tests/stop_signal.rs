//! A service's declared graceful-stop signal (`stop_signal` in the manifest):
//! how it is validated, how a scenario asks for it (`signal = "stop_signal"`),
//! and how the GS-* checks judge the service it was sent to (nginx's QUIT),
//! not only a SIGTERM to the app.

use chaosgate::check::CheckInput;
use chaosgate::check::judge;
use chaosgate::check::verdict::{Outcome, Verdict};
use chaosgate::history::{ExitInfo, FaultDetail, FaultRecord, History, Micros, RequestRecord, TransportError};
use chaosgate::input_error::InputErrors;
use chaosgate::scenario::Settings;
use chaosgate::{manifest, scenario};
use nix::sys::signal::Signal;
use rstest::rstest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn repo(path: &str) -> PathBuf {
    Path::new(ROOT).join(path)
}

/// A scratch directory of its own for each test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chaosgate-stop-signal-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn manifest_errors(path: &Path) -> InputErrors {
    match manifest::load(path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e,
    }
}

/// The one error is at `line`, names `field` and says `needle`.
#[track_caller]
fn assert_one_error(errors: &InputErrors, line: usize, field: &str, needle: &str) {
    assert_eq!(errors.0.len(), 1, "expected one error, got:\n{errors}");
    let e = &errors.0[0];
    let shown = e.to_string();
    assert_eq!(e.line, line, "{shown}");
    assert_eq!(e.field, field, "{shown}");
    assert!(shown.contains(&format!("field `{field}`: ")), "{shown}");
    assert!(shown.contains(needle), "{shown:?} does not say {needle:?}");
}

const BASE: &str = r#"[stack]
name = "tiny"

[services.web]
role = "entry"
command = ["nginx"]
ports = ["http"]
ready = { tcp = "http" }
stop_signal = "@SIGNAL@"
"#;

#[rstest]
#[case::unknown(
    "QUTI",
    "expected a signal name such as \"TERM\" or \"QUIT\" (the service's graceful stop), got `QUTI`"
)]
#[case::kill("KILL", "SIGKILL cannot be caught, so it is no graceful stop")]
#[case::stop("SIGSTOP", "SIGSTOP cannot be caught")]
fn a_bad_stop_signal_is_located(#[case] signal: &str, #[case] needle: &str) {
    let dir = scratch(&format!("base-{signal}"));
    let file = dir.join("stack.toml");
    std::fs::write(&file, BASE.replace("@SIGNAL@", signal)).expect("write");
    let errors = manifest_errors(&file);
    assert_one_error(&errors, 9, "services.web.stop_signal", needle);
    assert!(errors.to_string().starts_with(&format!("{}:9:15: ", file.display())), "{errors}");
}

#[rstest]
#[case::named("QUIT", Signal::SIGQUIT)]
#[case::with_prefix("SIGINT", Signal::SIGINT)]
#[case::lower_case("term", Signal::SIGTERM)]
fn a_stop_signal_is_read_leniently(#[case] signal: &str, #[case] expected: Signal) {
    let dir = scratch(&format!("ok-{signal}"));
    let file = dir.join("stack.toml");
    std::fs::write(&file, BASE.replace("@SIGNAL@", signal)).expect("write");
    let m = manifest::load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.service("web").map(|s| s.stop_signal), Some(expected));
}

#[test]
fn without_a_stop_signal_it_is_term() {
    let dir = scratch("default");
    let file = dir.join("stack.toml");
    std::fs::write(&file, BASE.replace("stop_signal = \"@SIGNAL@\"\n", "")).expect("write");
    let m = manifest::load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.service("web").map(|s| s.stop_signal), Some(Signal::SIGTERM));
}

#[test]
fn an_overlay_may_replace_the_stop_signal_and_is_validated_the_same_way() {
    let dir = scratch("overlay");
    let file = dir.join("stack.toml");
    let base = repo("fixtures/stacks/reference/stack.toml");
    std::fs::write(
        &file,
        format!(
            "extends = {:?}\n\n[services.nginx]\nstop_signal = \"KILL\"\n",
            base.display().to_string()
        ),
    )
    .expect("write");
    assert_one_error(&manifest_errors(&file), 4, "services.nginx.stop_signal", "SIGKILL cannot be caught");
}

#[test]
fn the_reference_nginx_stops_with_quit_and_the_fast_stop_mutant_with_term() {
    let reference = manifest::load(&repo("fixtures/stacks/reference")).unwrap_or_else(|e| panic!("{e}"));
    let stop = |m: &manifest::Manifest, s: &str| m.service(s).map(|s| s.stop_signal);
    assert_eq!(stop(&reference, "nginx"), Some(Signal::SIGQUIT));
    assert_eq!(stop(&reference, "app"), Some(Signal::SIGTERM));
    let mutant = manifest::load(&repo("fixtures/stacks/mutants/nginx-fast-stop")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stop(&mutant, "nginx"), Some(Signal::SIGTERM));
    assert_eq!(mutant.mutant.map(|m| m.breaks), Some(vec!["GS-DRAIN".to_string()]));
}

#[test]
fn a_fault_may_ask_for_the_declared_stop_signal() {
    let s = scenario::load(&repo("scenarios/nginx-stop.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.faults[0].target, "entry");
    assert_eq!(s.faults[0].signal.as_deref(), Some(scenario::STOP_SIGNAL));
    assert!(s.covers.iter().any(|c| c == "GS-DRAIN"));
}

// ---- the GS-* checks on a signal to a service that is not the app ----------

const T0: u64 = 10_000;

fn ms(t: u64) -> Micros {
    t * 1000
}

fn stop_fault(service: &str, signal: &str, declared_stop: bool, exit: ExitInfo) -> FaultRecord {
    FaultRecord {
        index: 0,
        label: format!("{signal} to {service}"),
        service: service.into(),
        injected_at: ms(T0),
        healed_at: Some(ms(T0 + 2_000)),
        provokes: Vec::new(),
        landed: true,
        proof: format!("{signal} delivered to pid 4242"),
        detail: FaultDetail::Signal {
            signal: signal.into(),
            pid: 4242,
            in_flight: 12,
            exited_at: Some(ms(T0 + 1_000)),
            exit: Some(exit),
            grace_ms: 5_000,
            killed_after_grace: false,
            cleanup: None,
            declared_stop,
        },
    }
}

/// `ok` requests in flight at T0 that complete, and `reset` that are cut.
fn history(fault: FaultRecord, ok: u64, reset: u64) -> History {
    let req = |i: u64, status: u16, error: TransportError, end: u64| RequestRecord {
        start: ms(T0 - 1_000 + i * 10),
        end: ms(end),
        status,
        route: 0,
        version: 0,
        error,
        bytes: if status == 0 { 0 } else { 512 },
    };
    let mut requests: Vec<RequestRecord> = (0..ok).map(|i| req(i, 200, TransportError::None, T0 + 900)).collect();
    requests.extend((ok..ok + reset).map(|i| req(i, 0, TransportError::Reset, T0 + 10)));
    History {
        faults: vec![fault],
        requests,
        versions: vec![String::new()],
        routes: vec!["GET /api/slow?ms=1500".into()],
        ..History::default()
    }
}

fn check(id: &str, h: &History) -> Verdict {
    let settings = Settings::default();
    judge(
        id,
        &CheckInput {
            history: h,
            settings: &settings,
            probed_service: "app",
            dependency_services: vec!["redis".into()],
            roles: BTreeMap::new(),
        },
    )
}

const STATUS_0: ExitInfo = ExitInfo {
    code: Some(0),
    signal: None,
};

#[test]
fn the_declared_stop_of_nginx_is_judged_and_named() {
    let h = history(stop_fault("nginx", "SIGQUIT", true, STATUS_0), 12, 0);
    let drain = check("GS-DRAIN", &h);
    assert_eq!(drain.outcome, Outcome::Pass, "{drain:#?}");
    assert!(
        drain.measured.starts_with("SIGQUIT with 12 requests in flight: 12 of 12 completed"),
        "{}",
        drain.measured
    );
    assert!(
        drain.evidence.iter().any(|e| e.contains(
            "SIGQUIT to nginx (its declared stop signal): in flight at the signal 12 (the load's count when it was sent: 12); judged 12, completed with 2xx 12, failed 0"
        )),
        "{:?}",
        drain.evidence
    );
    let exit = check("GS-SIGTERM", &h);
    assert_eq!(exit.outcome, Outcome::Pass, "{exit:#?}");
    assert_eq!(exit.measured, "exited by itself 1000 ms after SIGQUIT with status 0");
    assert!(exit.expected.contains("(or 131 / SIGQUIT after draining)"), "{}", exit.expected);
}

#[test]
fn a_fast_stop_that_cuts_requests_fails_with_the_counts() {
    let h = history(stop_fault("nginx", "SIGTERM", true, STATUS_0), 4, 12);
    let drain = check("GS-DRAIN", &h);
    assert_eq!(drain.outcome, Outcome::Fail, "{drain:#?}");
    assert_eq!(drain.measured, "SIGTERM with 16 requests in flight: 12 of 16 failed (12 × reset)");
    assert!(
        drain
            .evidence
            .iter()
            .any(|e| e.contains("completed with 2xx 4, failed 12 (reset 12, 5xx 0, truncated 0, other 0)")),
        "{:?}",
        drain.evidence
    );
}

#[rstest]
#[case::death_by_the_signal_sent(ExitInfo { code: None, signal: Some(3) }, Outcome::Pass, "death by SIGQUIT (131), counted clean")]
#[case::status_131(ExitInfo { code: Some(131), signal: None }, Outcome::Pass, "death by SIGQUIT (131), counted clean")]
#[case::death_by_another_signal(ExitInfo { code: None, signal: Some(15) }, Outcome::Fail, "killed by signal 15")]
fn death_by_the_declared_signal_counts_clean(#[case] exit: ExitInfo, #[case] outcome: Outcome, #[case] needle: &str) {
    let v = check("GS-SIGTERM", &history(stop_fault("nginx", "SIGQUIT", true, exit), 12, 0));
    assert_eq!(v.outcome, outcome, "{v:#?}");
    assert!(v.measured.contains(needle), "{}", v.measured);
}

#[test]
fn a_signal_that_is_not_the_declared_stop_is_not_judged() {
    // QUIT to a service that does not declare it, and SIGTERM to a service other than the probed one.
    for fault in [
        stop_fault("redis", "SIGQUIT", false, STATUS_0),
        stop_fault("nginx", "SIGTERM", false, STATUS_0),
    ] {
        let v = check("GS-DRAIN", &history(fault, 12, 0));
        assert_eq!(v.outcome, Outcome::Inconclusive, "{v:#?}");
        assert!(v.measured.contains("nor any service's declared stop signal"), "{}", v.measured);
    }
}
