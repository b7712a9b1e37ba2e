//! `load.tls`: HTTPS load to the stack's declared TLS endpoint. A scenario
//! whose HTTPS load cannot reach it (another port, another service) is
//! refused before anything starts, at the line of `tls = true`; a stack
//! without TLS fails the requirements instead.

use chaosgate::run::{RunOptions, load_inputs};
use std::path::PathBuf;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

fn options(stack: &str, scenario: &str) -> RunOptions {
    RunOptions {
        stack: repo(stack),
        scenarios: vec![repo(scenario)],
        out: std::env::temp_dir(),
        seed: None,
        keep: false,
        progress: false,
        backend: Default::default(),
        profile: Default::default(),
    }
}

/// Line of the first `tls = true` in the file.
fn tls_line(scenario: &str) -> usize {
    let text = std::fs::read_to_string(repo(scenario)).expect("scenario");
    text.lines().position(|l| l.trim() == "tls = true").expect("tls = true") + 1
}

/// A stack without TLS lacks what the standard requires: the scenario is
/// accepted, TLS-EXPIRY fails saying so, nothing is started.
#[test]
fn https_load_on_a_stack_without_tls_fails_its_requirements() {
    let scenario = "scenarios/tls-renew.toml";
    let opts = options("harness/tests/fixtures/no-tls", scenario);
    let (manifest, scenarios) = load_inputs(&opts).unwrap_or_else(|e| panic!("accepted: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let out = std::env::temp_dir().join(format!("chaosgate-no-tls-{}", std::process::id()));
    let (result, kept) = runtime.block_on(chaosgate::run::run_scenario(
        &manifest,
        &scenarios[0],
        &out,
        "no-tls",
        1,
        false,
        false,
        Default::default(),
    ));
    assert!(!kept && result.error.is_none(), "{result:?}");
    assert!(!result.verdicts.is_empty());
    for v in &result.verdicts {
        // The certificate requirement fails; the reload could not be tried.
        let expected = if v.requirement == "TLS-EXPIRY" {
            chaosgate::check::verdict::Outcome::Fail
        } else {
            chaosgate::check::verdict::Outcome::Inconclusive
        };
        assert_eq!(v.outcome, expected, "{v:?}");
        assert!(
            v.measured.contains("lacks TLS") && v.measured.contains("declare [tls]"),
            "{}",
            v.measured
        );
    }
    assert!(result.history.requests.is_empty(), "nothing ran");
}

#[test]
fn https_load_to_another_port_is_refused() {
    let scenario = "harness/tests/fixtures/tls/tls-with-port.toml";
    let errors = load_inputs(&options("fixtures/stacks/reference", scenario)).expect_err("refused");
    let [e] = errors.0.as_slice() else {
        panic!("one error expected:\n{errors}")
    };
    assert_eq!((e.line, e.field.as_str()), (tls_line(scenario), "load.tls"), "{e}");
    assert!(e.message.contains("goes to the [tls] port `https` of `nginx`"), "{e}");
}

#[test]
fn https_load_on_the_reference_is_accepted() {
    for scenario in ["scenarios/tls-renew.toml", "scenarios/reload-keepalive.toml"] {
        let (_, scenarios) = load_inputs(&options("fixtures/stacks/reference", scenario)).unwrap_or_else(|e| panic!("{e}"));
        assert!(scenarios[0].load.tls, "{scenario}");
    }
}
