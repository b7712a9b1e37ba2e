//! What users read when their input is wrong, and a guard that the inputs
//! shipped with the repository are right.
//!
//! Every bad file under `tests/fixtures/bad/` must be rejected with
//! `file:line:column: field `...`: message`, the message saying what was
//! expected. The whole list of messages is snapshotted (paths relative to the
//! crate, so the snapshot is the same on every machine).

use chaosgate::input_error::{InputError, InputErrors};
use chaosgate::{check, manifest, requirements, scenario};
use rstest::rstest;
use std::path::{Path, PathBuf};

const CRATE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/");
const BAD_SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bad/scenarios");
const BAD_MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bad/manifests");
const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios");
const STACKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/stacks");
const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/stacks/reference");

fn bad_scenario(name: &str) -> PathBuf {
    Path::new(BAD_SCENARIOS).join(name)
}

fn bad_manifest(name: &str) -> PathBuf {
    Path::new(BAD_MANIFESTS).join(name).join("stack.toml")
}

fn scenario_errors(path: &Path) -> InputErrors {
    match scenario::load(path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e,
    }
}

fn manifest_errors(path: &Path) -> InputErrors {
    match manifest::load(path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e,
    }
}

/// The one error of a bad file is at `line:col`, names `field` (none when
/// empty) and says `needle`; its Display starts with `path:line:col: `.
#[track_caller]
fn assert_one_error(errors: &InputErrors, path: &Path, line: usize, col: usize, field: &str, needle: &str) {
    let [e]: &[InputError; 1] = errors
        .0
        .as_slice()
        .try_into()
        .unwrap_or_else(|_| panic!("expected one error, got:\n{errors}"));
    let shown = e.to_string();
    let prefix = format!("{}:{line}:{col}: ", path.display());
    assert!(shown.starts_with(&prefix), "{shown:?} does not start with {prefix:?}");
    assert_eq!(e.file, path);
    assert_eq!((e.line, e.column), (line, col), "{shown}");
    assert_eq!(e.field, field, "{shown}");
    if !field.is_empty() {
        assert!(shown.contains(&format!("field `{field}`: ")), "{shown}");
    }
    assert!(shown.contains(needle), "{shown:?} does not say {needle:?}");
}

/// Every file of a directory of bad inputs, rejected, as the user reads it.
fn messages(dir: &str, mut paths: Vec<PathBuf>, load: fn(&Path) -> InputErrors) -> String {
    paths.sort();
    assert!(!paths.is_empty(), "no bad inputs under {dir}");
    paths
        .iter()
        .map(|p| load(p).to_string().replace(CRATE_DIR, ""))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn files_in(dir: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .collect()
}

// ---- scenarios -------------------------------------------------------------

#[rstest]
#[case::unknown_field(
    "unknown-field.toml",
    7,
    1,
    "usres",
    "unknown field `usres`, expected one of `target`, `port`, `users`"
)]
#[case::wrong_type("wrong-type.toml", 7, 9, "load.users", "invalid type: string \"four\", expected usize")]
#[case::missing_field("missing-field.toml", 6, 1, "max_duration_s", "missing field `max_duration_s`")]
#[case::unknown_requirement(
    "unknown-requirement.toml",
    6,
    5,
    "scenario.covers",
    "unknown requirement ID `HC-READDY`; `chaosgate list --requirements` shows them"
)]
#[case::signal_without_signal("signal-without-signal.toml", 13, 1, "fault[0].signal", "required for action = \"signal\"")]
#[case::bad_signal_name(
    "bad-signal-name.toml",
    21,
    10,
    "fault[1].signal",
    "expected a signal name (TERM, KILL, HUP, STOP, CONT, INT, QUIT), got `TERMINATE`"
)]
#[case::unknown_endpoint(
    "unknown-endpoint.toml",
    11,
    12,
    "load.request[0].endpoint",
    "expected one of read, slow, write, read-record, enqueue, live, error, cpu, memory, proxy-health, got `export`"
)]
#[case::weird_defect("weird-defect.toml", 16, 10, "fault[0].defect", "expected \"missing\" or \"malformed\"")]
#[case::field_of_another_action(
    "field-of-another-action.toml",
    17,
    11,
    "fault[0].task_ms",
    "action = \"signal\" does not take `task_ms` (its fields: signal;"
)]
#[case::unknown_flood_order(
    "unknown-flood-order.toml",
    16,
    9,
    "fault[0].order",
    "unknown variant `high-first`, expected `mixed` or `low-first`"
)]
#[case::unknown_action(
    "unknown-action.toml",
    14,
    10,
    "fault[0].action",
    "unknown variant `explode`, expected one of `signal`, `outage`, `pause`, `bad-config`, `env-change`, `reload-config`"
)]
#[case::syntax_error("syntax-error.toml", 3, 15, "scenario.name", "invalid basic string")]
fn bad_scenario_is_located(#[case] file: &str, #[case] line: usize, #[case] col: usize, #[case] field: &str, #[case] needle: &str) {
    let path = bad_scenario(file);
    assert_one_error(&scenario_errors(&path), &path, line, col, field, needle);
}

#[test]
fn checks_after_parsing_report_every_problem_at_once() {
    let errors = scenario_errors(&bad_scenario("zero-users.toml"));
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["load.users", "load.request[0].path"], "{errors}");
    assert!(errors.0[0].message.contains("expected at least 1 user"), "{errors}");
    assert!(
        errors.0[1].message.contains("expected a path starting with '/', got `api/slow`"),
        "{errors}"
    );
}

#[test]
fn scenario_error_messages() {
    let text = messages(BAD_SCENARIOS, files_in(BAD_SCENARIOS), scenario_errors);
    insta::assert_snapshot!("scenario_errors", text);
}

// ---- manifests -------------------------------------------------------------

#[rstest]
#[case::unknown_field_in_a_service(
    "unknown-service-field",
    13,
    1,
    "comand",
    "unknown field `comand`, expected one of `role`, `command`"
)]
#[case::depends_on_a_missing_service(
    "depends-on-missing",
    15,
    24,
    "services.app.depends_on",
    "no service named `postgres` (services: app, redis)"
)]
#[case::ready_port_not_in_ports(
    "ready-port-unknown",
    16,
    9,
    "services.app.ready",
    "port `web` is not in this service's `ports` (http)"
)]
#[case::incomplete_ready_check(
    "ready-incomplete",
    9,
    9,
    "services.app.ready",
    r#"expected { http = "/path", port = "<port name>" }, { tcp = "<port name>" } or { log = "<regex>" }"#
)]
#[case::ready_log_pattern_is_no_regex("ready-bad-regex", 8, 9, "services.worker.ready", "expected a regular expression in `log`")]
#[case::file_escapes_the_run_folder(
    "file-escapes",
    12,
    40,
    "services.redis.files.../../../../escaped.conf",
    "expected a file name inside the service's folder, got `../../../../escaped.conf`"
)]
#[case::unknown_endpoint_role(
    "unknown-endpoint-role",
    7,
    1,
    "endpoints.export",
    "expected an endpoint role (read, slow, write, read-record, enqueue, live, error, cpu, memory, proxy-health), got `export`"
)]
#[case::missing_template(
    "missing-template",
    9,
    102,
    "services.redis.files.extra.conf",
    "template `extra.conf.j2` not found next to the manifest"
)]
#[case::dependency_cycle(
    "dependency-cycle",
    16,
    15,
    "services.app.depends_on",
    "dependency cycle among services: app -> redis"
)]
#[case::syntax_error("syntax-error", 5, 14, "", "unclosed table, expected `]`")]
#[case::overlay_names_a_service_the_base_lacks(
    "overlay-unknown-service",
    8,
    11,
    "services.scheduler",
    "the base manifest has no service named `scheduler` (it has: alertmanager, blackbox, redis, redis-exporter, worker, app, app2, nginx, mtail, prometheus)"
)]
#[case::overlay_extends_a_missing_file(
    "overlay-missing-base",
    2,
    11,
    "extends",
    "expected the path of a base stack.toml, relative to this file; "
)]
fn bad_manifest_is_located(#[case] dir: &str, #[case] line: usize, #[case] col: usize, #[case] field: &str, #[case] needle: &str) {
    let path = bad_manifest(dir);
    assert_one_error(&manifest_errors(&path), &path, line, col, field, needle);
}

#[test]
fn a_missing_base_is_named_by_the_path_tried() {
    let errors = manifest_errors(&bad_manifest("overlay-missing-base"));
    assert!(
        errors
            .to_string()
            .ends_with("overlay-missing-base/../no-such-stack/stack.toml does not exist"),
        "{errors}"
    );
}

#[test]
fn an_unknown_id_in_mutant_breaks_is_rejected() {
    let path = bad_manifest("overlay-unknown-breaks");
    let errors = manifest_errors(&path);
    let [e] = errors.0.as_slice() else {
        panic!("expected one error, got:\n{errors}")
    };
    assert_eq!(e.file, path);
    assert_eq!(e.field, "mutant.breaks");
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("{}:", path.display())), "{shown}");
    assert!(e.message.contains("unknown requirement ID `GS-DRIAN`"), "{errors}");
}

#[test]
fn manifest_error_messages() {
    let dirs = files_in(BAD_MANIFESTS).into_iter().map(|d| d.join("stack.toml")).collect();
    let text = messages(BAD_MANIFESTS, dirs, manifest_errors);
    insta::assert_snapshot!("manifest_errors", text);
}

// ---- once known gaps --------------------------------------------------------

/// serde's type errors carry no field name: the key is read from the line
/// the error points at, under its table header.
#[rstest]
#[case::wrong_type("wrong-type.toml", "users")]
#[case::unknown_variant("unknown-action.toml", "action")]
fn type_errors_name_the_field(#[case] file: &str, #[case] field: &str) {
    let errors = scenario_errors(&bad_scenario(file));
    assert!(errors.0[0].field.ends_with(field), "{errors}");
}

/// Errors found after parsing point at the value they are about, not at 1:1.
#[test]
fn checks_after_parsing_point_at_the_offending_line() {
    let errors = scenario_errors(&bad_scenario("zero-users.toml"));
    let lines: Vec<usize> = errors.0.iter().map(|e| e.line).collect();
    assert_eq!(lines, [7, 11], "{errors}");
    let errors = manifest_errors(&bad_manifest("overlay-unknown-breaks"));
    assert_eq!(errors.0[0].line, 6, "{errors}");
}

/// An incomplete ready check names the field and the forms it may take, not
/// "data did not match any variant of untagged enum ReadyCheck".
#[test]
fn an_incomplete_ready_check_says_what_is_expected() {
    let errors = manifest_errors(&bad_manifest("ready-incomplete"));
    let shown = errors.to_string();
    assert!(
        shown.contains("ready") && shown.contains("tcp") && shown.contains("port"),
        "{shown}"
    );
}

// ---- the shipped inputs ----------------------------------------------------

#[test]
fn every_shipped_scenario_loads() {
    let scenarios = scenario::load_dir(Path::new(SCENARIOS)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        scenarios.len(),
        files_in(SCENARIOS)
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .count()
    );
    for s in &scenarios {
        assert!(
            !s.covers.is_empty() || !s.findings.is_empty(),
            "{} covers nothing and measures no finding",
            s.file.display()
        );
        for id in &s.covers {
            assert!(check::is_implemented(id), "{} covers {id}, which has no checker", s.file.display());
        }
    }
}

fn stack_manifests(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            stack_manifests(&path, found);
        } else if path.file_name().is_some_and(|n| n == "stack.toml") {
            found.push(path);
        }
    }
}

#[test]
fn every_shipped_stack_manifest_loads() {
    let mut found = Vec::new();
    stack_manifests(Path::new(STACKS), &mut found);
    assert!(found.len() >= 2, "found only {found:?}");
    for path in found {
        if let Err(e) = manifest::load(&path) {
            panic!("{e}");
        }
    }
}

#[test]
fn the_reference_stack_lists_services_in_dependency_order() {
    let m = manifest::load(Path::new(REFERENCE)).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = m.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "alertmanager",
            "blackbox",
            "redis",
            "redis-exporter",
            "worker",
            "app",
            "app2",
            "nginx",
            "mtail",
            "prometheus"
        ]
    );
    for (i, s) in m.services.iter().enumerate() {
        for dep in &s.depends_on {
            assert!(names[..i].contains(&dep.as_str()), "{} starts before its dependency {dep}", s.name);
        }
    }
    assert!(m.mutant.is_none());
}

fn mutant_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = files_in(&format!("{STACKS}/mutants")).into_iter().filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

#[test]
fn every_mutant_breaks_known_requirements() {
    let dirs = mutant_dirs();
    assert!(!dirs.is_empty());
    for dir in dirs {
        let m = manifest::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mutant = m.mutant.as_ref().unwrap_or_else(|| panic!("{} is not an overlay", dir.display()));
        assert_eq!(
            Some(mutant.name.as_str()),
            dir.file_name().and_then(|n| n.to_str()),
            "mutant name vs directory"
        );
        assert!(
            !mutant.breaks.is_empty() || !mutant.reveals.is_empty(),
            "{} breaks nothing and reveals no finding",
            dir.display()
        );
        for id in &mutant.breaks {
            assert!(requirements::is_known(id), "{}: unknown {id}", dir.display());
            assert!(
                check::is_implemented(id),
                "{}: breaks {id}, which has no checker to notice",
                dir.display()
            );
        }
        assert_eq!(m.file, dir.join("stack.toml"));
        // An overlay keeps the services of the stack it extends, in its order.
        let text = std::fs::read_to_string(dir.join("stack.toml")).expect("overlay");
        let overlay: toml::Table = toml::from_str(&text).expect("overlay parses");
        let base_file = dir.join(overlay["extends"].as_str().expect("extends"));
        let base = manifest::load(&base_file).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = m.services.iter().map(|s| s.name.as_str()).collect();
        let base_names: Vec<&str> = base.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, base_names, "{}", dir.display());
        assert!(names.len() >= 5, "{}: {names:?}", dir.display());
    }
}

/// Each checker can be proven to fail on a real stack: some mutant breaks it.
#[test]
fn every_checker_has_a_mutant_that_breaks_it() {
    let broken: Vec<String> = mutant_dirs()
        .into_iter()
        .flat_map(|d| {
            manifest::load(&d)
                .unwrap_or_else(|e| panic!("{e}"))
                .mutant
                .map(|m| m.breaks)
                .unwrap_or_default()
        })
        .collect();
    for (id, _) in check::CHECKS {
        assert!(broken.iter().any(|b| b == id), "no mutant breaks {id}");
    }
}

// ---- hostile numbers and overlays (issue 13) -------------------------------

/// A scenario that is valid but for one line, written to a folder of its own.
fn scenario_with(dir: &Path, name: &str, load_extra: &str, fault_extra: &str) -> PathBuf {
    let text = format!(
        "[scenario]\nname = \"{name}\"\ncovers = [\"GS-DRAIN\"]\n\n[load]\ntarget = \"entry\"\nusers = 4\nmax_duration_s = 10\n{load_extra}\n\
         [[load.request]]\nendpoint = \"read\"\n\n[[fault]]\naction = \"signal\"\ntarget = \"app\"\nsignal = \"TERM\"\n{fault_extra}\n"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write scenario");
    path
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chaosgate-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Numbers that once crashed a run (a Duration from 1e308 seconds, an
/// allocation for 9e18 users, probe tasks at interval 0, negative rates)
/// are located errors now, before anything starts.
#[rstest]
#[case::huge_users("users", "", "", "load.users")]
#[case::huge_tail("tail", "tail_s = 1e308", "", "load.tail_s")]
#[case::negative_warmup("warmup", "warmup_s = -1.0", "", "load.warmup_s")]
#[case::zero_rate("rate", "rate_per_s = 0", "", "load.rate_per_s")]
#[case::endless_down("down", "", "down_s = 1e300", "fault[0].down_s")]
#[case::negative_duration("duration", "", "duration_s = -1.0", "fault[0].duration_s")]
#[case::negative_rate("frate", "", "rate_per_s = -5.0", "fault[0].rate_per_s")]
#[case::zero_count("count", "", "count = 0", "fault[0].count")]
#[case::endless_after("after", "", "after_s = 1e300", "fault[0].after_s")]
fn hostile_numbers_are_located_errors(#[case] name: &str, #[case] load_extra: &str, #[case] fault_extra: &str, #[case] field: &str) {
    let dir = fresh_dir(name);
    let path = if name == "users" {
        let p = scenario_with(&dir, name, "", fault_extra);
        let text = std::fs::read_to_string(&p)
            .expect("read")
            .replace("users = 4", "users = 9223372036854775807");
        std::fs::write(&p, text).expect("write");
        p
    } else {
        scenario_with(&dir, name, load_extra, fault_extra)
    };
    let errors = scenario_errors(&path);
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.field == field && e.line > 0 && e.message.starts_with("expected")),
        "{field} not located:\n{errors}"
    );
}

#[test]
fn a_probe_interval_of_zero_is_refused() {
    let dir = fresh_dir("interval");
    let path = scenario_with(&dir, "interval", "", "");
    let text = std::fs::read_to_string(&path).expect("read") + "\n[probes]\ntarget = \"app\"\ninterval_ms = 0\n";
    std::fs::write(&path, text).expect("write");
    let errors = scenario_errors(&path);
    assert!(errors.0.iter().any(|e| e.field == "probes.interval_ms"), "{errors}");
}

/// A manifest that extends itself, or two that extend each other, once
/// overflowed the stack; an overlay of an overlay is refused before it is read.
#[test]
fn overlays_that_extend_overlays_are_refused_not_followed() {
    let dir = fresh_dir("extends");
    let overlay = "[mutant]\nname = \"m\"\nbreaks = []\ndescription = \"d\"\n";
    std::fs::create_dir_all(dir.join("a")).expect("dir");
    std::fs::create_dir_all(dir.join("b")).expect("dir");
    std::fs::write(dir.join("self.toml"), format!("extends = \"self.toml\"\n{overlay}")).expect("write");
    std::fs::write(dir.join("a/stack.toml"), format!("extends = \"../b/stack.toml\"\n{overlay}")).expect("write");
    std::fs::write(dir.join("b/stack.toml"), format!("extends = \"../a/stack.toml\"\n{overlay}")).expect("write");
    for path in [dir.join("self.toml"), dir.join("a/stack.toml")] {
        let errors = manifest_errors(&path);
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.field == "extends" && e.message.contains("not another overlay")),
            "{errors}"
        );
    }
}

#[test]
fn an_unbounded_secret_length_is_refused() {
    let dir = fresh_dir("secret");
    let path = dir.join("stack.toml");
    std::fs::write(
        &path,
        "[stack]\nname = \"s\"\n\n[secrets]\nredis_password = 9223372036854775807\n\n\
         [services.app]\nrole = \"app\"\ncommand = [\"true\"]\nports = [\"http\"]\nready = { tcp = \"http\" }\n",
    )
    .expect("write");
    let errors = manifest_errors(&path);
    let e = errors
        .0
        .iter()
        .find(|e| e.field == "secrets.redis_password")
        .unwrap_or_else(|| panic!("{errors}"));
    assert_eq!(e.line, 5, "{e}");
}

fn run_options(scenarios: Vec<PathBuf>) -> chaosgate::run::RunOptions {
    chaosgate::run::RunOptions {
        stack: PathBuf::from(REFERENCE),
        scenarios,
        out: std::env::temp_dir(),
        seed: None,
        keep: false,
        progress: false,
        backend: Default::default(),
        profile: Default::default(),
    }
}

/// Two scenarios with one name would share one report folder; a scenario
/// that covers nothing and measures nothing proves nothing.
#[test]
fn same_name_scenarios_and_empty_covers_are_refused() {
    let dir = fresh_dir("names");
    let a = scenario_with(&dir, "twin", "", "");
    let b = dir.join("twin-again.toml");
    std::fs::write(&b, std::fs::read_to_string(&a).expect("read")).expect("write");
    let empty = dir.join("empty.toml");
    let text = std::fs::read_to_string(&a)
        .expect("read")
        .replace("name = \"twin\"", "name = \"empty\"")
        .replace("covers = [\"GS-DRAIN\"]", "covers = []");
    std::fs::write(&empty, text).expect("write");
    let errors = chaosgate::run::load_inputs(&run_options(vec![a, b.clone(), empty.clone()])).expect_err("refused");
    let shown = errors.to_string();
    assert!(
        errors.0.iter().any(|e| e.file == b && e.message.contains("is also the name of")),
        "{shown}"
    );
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.file == empty && e.message.contains("at least one requirement")),
        "{shown}"
    );
}
