//! `load.tls`: HTTPS load to the stack's declared TLS endpoint. A scenario
//! asking for it on a stack that cannot serve it is refused before anything
//! starts, at the line of `tls = true`.

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
    }
}

/// Line of the first `tls = true` in the file.
fn tls_line(scenario: &str) -> usize {
    let text = std::fs::read_to_string(repo(scenario)).expect("scenario");
    text.lines().position(|l| l.trim() == "tls = true").expect("tls = true") + 1
}

#[test]
fn https_load_on_a_stack_without_tls_is_refused_at_the_field() {
    let scenario = "scenarios/tls-renew.toml";
    let errors = load_inputs(&options("harness/tests/fixtures/no-tls", scenario)).expect_err("refused");
    let [e] = errors.0.as_slice() else {
        panic!("one error expected:\n{errors}")
    };
    assert_eq!(e.file, repo(scenario));
    // At the value, as every error about a value is.
    assert_eq!((e.line, e.column, e.field.as_str()), (tls_line(scenario), 7, "load.tls"), "{e}");
    let shown = e.to_string();
    assert!(
        shown.contains(&format!("tls-renew.toml:{}:7: field `load.tls`: ", e.line)),
        "{shown}"
    );
    assert!(shown.contains("declares no [tls] section"), "{shown}");
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
