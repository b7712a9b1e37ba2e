//! A hand-made run for the reporters' tests: two scenarios, all four
//! outcomes, evidence with characters that need escaping, and a scenario
//! that could not run.

use crate::check::verdict::{Outcome, Verdict};
use crate::history::{
    ExitInfo, FaultDetail, FaultRecord, Finding, History, ProbeKind, ProbeSample, RequestRecord, ServiceEvent, ServiceEventKind,
    TransportError,
};
use crate::report::model::{RUN_SCHEMA_VERSION, RunReport, ScenarioResult, StackInfo};

/// A small run covering every outcome; shared by the reporters' tests.
pub(crate) fn sample_report() -> RunReport {
    RunReport {
        schema_version: RUN_SCHEMA_VERSION,
        run_id: "20250101T120000Z-7f3a".to_string(),
        harness_version: "0.1.0".to_string(),
        stack: StackInfo {
            name: "refstack".to_string(),
            manifest: "stacks/refstack.toml".to_string(),
            breaks: Vec::new(),
            backend: "process".to_string(),
        },
        seed: 42,
        started_unix_ms: 1_735_732_800_000,
        duration_ms: 47_250,
        scenarios: vec![graceful_shutdown(), redis_outage()],
        reproduce: "chaosgate run --stack stacks/refstack.toml --seed 42".to_string(),
        interrupted: false,
    }
}

fn graceful_shutdown() -> ScenarioResult {
    let drain = Verdict::new(
        "GS-DRAIN",
        Outcome::Pass,
        "12 of 12 in-flight requests completed with 2xx",
        "every request in flight at SIGTERM completes with 2xx",
    )
    .with_evidence("fault #0 SIGTERM to app landed: pid 4242 exited with status 0 after 180 ms");
    let mut exit = Verdict::new(
        "GS-EXIT",
        Outcome::Fail,
        "exit took 31.2 s; process answered \"503 <draining>\" & kept the Redis connection",
        "exit within the declared grace of 30 s, releasing every connection",
    );
    for line in [
        "pid 4242 received SIGTERM at 10.000 s",
        "log: <error> \"redis\" & 'cache' ]]> still open",
        "redis client 127.0.0.1:51234 still connected at 41.2 s",
        "listening socket 0.0.0.0:8080 still open at 41.2 s",
        "surviving process: 4250 worker",
        "harness sent SIGKILL at 40.000 s (grace 30 s)",
        "exit: killed by signal 9 (SIGKILL)",
    ] {
        exit = exit.with_evidence(line);
    }
    let ready = Verdict::new(
        "HC-READY",
        Outcome::Inconclusive,
        "no readiness sample between SIGTERM and exit",
        "/ready answers non-2xx within 500 ms of SIGTERM",
    )
    .with_evidence("probe ready: last sample at 9.950 s, next after exit at 41.300 s")
    .with_reading("\"within 500 ms\" read as: the first probe after SIGTERM, at most 500 ms later");
    let reload = Verdict::new(
        "CFG-RELOAD",
        Outcome::Skipped,
        "stack declares no reloadable settings",
        "a reloadable setting takes effect without restart",
    );
    ScenarioResult {
        logs: Default::default(),
        worker: None,
        name: "graceful-shutdown".to_string(),
        file: "scenarios/graceful-shutdown.toml".to_string(),
        description: "SIGTERM under load: drain, then exit cleanly".to_string(),
        duration_ms: 41_500,
        healthy_after_ms: Some(1_250),
        verdicts: vec![drain, exit, ready, reload],
        error: None,
        history: shutdown_history(),
    }
}

fn shutdown_history() -> History {
    let request = |start, end, status, error| RequestRecord {
        start,
        end,
        status,
        route: 0,
        version: 1,
        error,
        bytes: 512,
    };
    History {
        requests: vec![
            request(9_800_000, 10_150_000, 200, TransportError::None),
            request(9_900_000, 10_060_000, 200, TransportError::None),
            request(10_050_000, 10_051_000, 0, TransportError::Refused),
        ],
        versions: vec![String::new(), "1.4.2".to_string()],
        routes: vec!["GET /items".to_string()],
        route_expect: vec![vec![]],
        probes: vec![ProbeSample {
            at: 9_950_000,
            service: "app".to_string(),
            probe: ProbeKind::Ready,
            status: 200,
            error: TransportError::None,
            latency_us: 850,
            body: None,
        }],
        events: vec![
            ServiceEvent {
                at: 120_000,
                service: "app".to_string(),
                kind: ServiceEventKind::Started { pid: 4242 },
            },
            ServiceEvent {
                at: 40_000_000,
                service: "app".to_string(),
                kind: ServiceEventKind::Exited {
                    pid: 4242,
                    exit: ExitInfo {
                        code: None,
                        signal: Some(9),
                    },
                },
            },
        ],
        faults: vec![FaultRecord {
            index: 0,
            label: "SIGTERM to app".to_string(),
            service: "app".to_string(),
            injected_at: 10_000_000,
            healed_at: None,
            provokes: Vec::new(),
            landed: true,
            proof: "pid 4242 exited after the signal".to_string(),
            detail: FaultDetail::Signal {
                signal: "SIGTERM".to_string(),
                pid: 4242,
                in_flight: 12,
                exited_at: Some(40_000_000),
                exit: Some(ExitInfo {
                    code: None,
                    signal: Some(9),
                }),
                grace_ms: 30_000,
                killed_after_grace: true,
                cleanup: None,
                declared_stop: true,
            },
        }],
        findings: vec![Finding {
            id: "F-GRACE".to_string(),
            title: "grace period longer than the orchestrator's".to_string(),
            evidence: "declared 30 s; standard allows 25 s".to_string(),
        }],
        load_window: Some((1_500_000, 40_500_000)),
        redis: Default::default(),
        monitoring: Default::default(),
        connections: Default::default(),
        baseline: None,
        missing: Vec::new(),
    }
}

fn redis_outage() -> ScenarioResult {
    ScenarioResult {
        logs: Default::default(),
        worker: None,
        name: "redis-outage".to_string(),
        file: "scenarios/redis-outage.toml".to_string(),
        description: "Redis killed and restarted under load".to_string(),
        duration_ms: 5_750,
        healthy_after_ms: None,
        verdicts: Vec::new(),
        error: Some("stack never became healthy: app not ready after 5 s (last /ready: 503)".to_string()),
        history: History::default(),
    }
}
