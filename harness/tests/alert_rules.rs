//! The static half of the alert checks on the real rule files: every rule of
//! the reference stack reads as the standard's, and each rule-level mutant
//! under fixtures/stacks/mutants reads as different (or missing). The runs
//! in `conformance` prove the dynamic half (fires, resolves, silent when calm).

use chaosgate::check::alert_rules::{LoadedRule, RuleOutcome, read_rule};
use chaosgate::manifest;
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

/// The alerting rules of a stack's `rules.yml.j2` (its only template syntax
/// is the escaped `{{ '{{' }}` of annotations, which no expression uses).
fn rules_of(stack_dir: &Path) -> Vec<LoadedRule> {
    let text = std::fs::read_to_string(stack_dir.join("rules.yml.j2")).expect("rules.yml.j2");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("rules.yml.j2 is YAML");
    let mut rules = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let Some(name) = rule["alert"].as_str() else { continue };
            rules.push(LoadedRule {
                name: name.to_string(),
                expr: rule["expr"].as_str().expect("expr").to_string(),
                for_s: rule["for"].as_str().map(seconds).unwrap_or(0.0),
            });
        }
    }
    rules
}

fn seconds(d: &str) -> f64 {
    let (n, unit) = d.split_at(d.find(|c: char| c.is_alphabetic()).unwrap_or(d.len()));
    let n: f64 = n.parse().expect("a duration");
    n * match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => panic!("unit {other}"),
    }
}

/// (outcome, explanation) of the rule the stack declares for `id`; None: no such rule.
fn reading(stack: &Path, id: &str) -> Option<(RuleOutcome, String)> {
    let m = manifest::load(stack).unwrap_or_else(|e| panic!("{e}"));
    let mon = m.monitoring.as_ref().expect("[monitoring]");
    let alert = &mon.alerts.get(id).expect("declared").alert;
    let rule = rules_of(stack).into_iter().find(|r| &r.name == alert)?;
    let r = read_rule(id, &rule, mon.time_scale, 20.0);
    Some((r.outcome, r.explanation))
}

#[test]
fn every_reference_rule_reads_as_the_standard() {
    let stack = repo("fixtures/stacks/reference");
    for id in chaosgate::check::alert_fire::ALERT_IDS.iter().chain(&["AL-CERT"]) {
        let (outcome, why) = reading(&stack, id).unwrap_or_else(|| panic!("{id}: no rule"));
        assert!(matches!(outcome, RuleOutcome::Conforms), "{id}: {why}");
    }
}

#[test]
fn each_rule_mutant_reads_as_different_or_missing() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo("fixtures/stacks/mutants")).expect("mutants").flatten() {
        let dir = entry.path();
        if !dir.join("rules.yml.j2").is_file() {
            continue;
        }
        let m = manifest::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mutant = m.mutant.expect("an overlay");
        // Its rule reads as the standard's and fires in a calm run: proven in `conformance`.
        if mutant.name == "alert-rds-mem-always" {
            continue;
        }
        // A rule mutant may also break a requirement that includes its alert (CW-FLOOD, NX-502): proven in `conformance`.
        for id in mutant.breaks.iter().filter(|id| id.starts_with("AL-")) {
            match reading(&dir, id) {
                None => {}
                Some((RuleOutcome::Conforms, why)) => panic!("{}: {id} reads as the standard's: {why}", mutant.name),
                Some(_) => {}
            }
            seen += 1;
        }
    }
    assert!(seen >= 12, "only {seen} rule mutants");
}
