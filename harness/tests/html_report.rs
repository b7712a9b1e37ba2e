//! The HTML report, opened for real in headless Chromium: the browser's DOM
//! has one row per verdict, charts with data and the fault windows; a
//! screenshot is not blank; and the page references nothing on the network.
//!
//! Needs the Debian package `chromium` (`apt-get install -y chromium`); the
//! tests fail, rather than skip, without it.

use chaosgate::check::verdict::{Outcome, Verdict};
use chaosgate::history::{
    CleanupObservation, ExitInfo, FaultDetail, FaultRecord, History, ProbeKind, ProbeSample, RequestRecord, ServiceEvent, ServiceEventKind,
    TransportError,
};
use chaosgate::report::model::{RUN_SCHEMA_VERSION, RunReport, ScenarioResult, StackInfo};
use chaosgate::report::{render_html, write_all};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const CHROMIUM_DEADLINE: Duration = Duration::from_secs(60);
const MS: u64 = 1_000;

// ---------------------------------------------------------------------------
// A realistic run: SIGTERM to the app with 16 slow requests in flight, the
// app gone for a moment (nginx answers 502), restarted; then a config
// scenario that switches the served version.

fn report() -> RunReport {
    RunReport {
        schema_version: RUN_SCHEMA_VERSION,
        run_id: "20260101-120000-beef".to_string(),
        harness_version: "0.1.0".to_string(),
        stack: StackInfo {
            name: "reference".to_string(),
            manifest: "fixtures/stacks/reference/stack.toml".to_string(),
            breaks: vec!["GS-DRAIN".to_string()],
            backend: "process".to_string(),
        },
        seed: 339_787,
        started_unix_ms: 1_767_268_800_000,
        duration_ms: 9_100,
        scenarios: vec![sigterm_drain(), config_reload()],
        reproduce: "chaosgate run scenarios/sigterm-drain.toml scenarios/config.toml --stack fixtures/stacks/reference --seed 339787"
            .to_string(),
        interrupted: false,
    }
}

fn expected_rows() -> Vec<(String, String)> {
    [
        ("HC-READY", "pass"),
        ("GS-SIGTERM", "pass"),
        ("GS-DRAIN", "fail"),
        ("GS-CLEANUP", "inconclusive"),
        ("CF-ENV", "pass"),
        ("CF-HOT", "skipped"),
    ]
    .iter()
    .map(|(r, o)| (r.to_string(), o.to_string()))
    .collect()
}

fn request(start_ms: u64, end_ms: u64, status: u16, version: u16) -> RequestRecord {
    RequestRecord {
        start: start_ms * MS,
        end: end_ms * MS,
        status,
        route: 0,
        version,
        error: TransportError::None,
        bytes: if status == 200 { 32 } else { 150 },
    }
}

fn event(at_ms: u64, service: &str, kind: ServiceEventKind) -> ServiceEvent {
    ServiceEvent {
        at: at_ms * MS,
        service: service.to_string(),
        kind,
    }
}

fn startup(events: &mut Vec<ServiceEvent>) {
    for (i, service) in ["redis", "app", "nginx"].into_iter().enumerate() {
        let at = 5 + 40 * i as u64;
        events.push(event(at, service, ServiceEventKind::Started { pid: 1_000 + i as u32 }));
        events.push(event(at + 20, service, ServiceEventKind::Ready { after_ms: 20 }));
    }
}

fn sigterm_drain() -> ScenarioResult {
    let mut requests = Vec::new();
    // 16 users, each looping on a 1.5 s request.
    for user in 0..16u64 {
        let mut t = 600 + user * 5;
        while t < 3_800 {
            let (end, status) = match t {
                // In flight at the signal (900 ms): 3 of them are reset.
                _ if t < 900 && user < 3 => (2_100, 0),
                _ if t < 900 => (t + 1_500, 200),
                // The app is gone between its exit and the restart: 502 fast.
                2_100..2_300 => (t + 2, 502),
                _ => (t + 1_500, 200),
            };
            let mut r = request(t, end, status, if status == 200 { 1 } else { 0 });
            if status == 0 {
                r.error = TransportError::Reset;
            }
            requests.push(r);
            t = end + 1;
        }
    }
    requests.sort_by_key(|r| r.start);
    let mut events = Vec::new();
    startup(&mut events);
    events.push(event(
        900,
        "app",
        ServiceEventKind::Signalled {
            pid: 1_001,
            signal: "SIGTERM".to_string(),
        },
    ));
    let exit = ExitInfo {
        code: Some(0),
        signal: None,
    };
    events.push(event(2_100, "app", ServiceEventKind::Exited { pid: 1_001, exit }));
    events.push(event(2_290, "app", ServiceEventKind::Started { pid: 1_100 }));
    events.push(event(2_308, "app", ServiceEventKind::Ready { after_ms: 18 }));
    for (at, service) in [(3_816, "nginx"), (3_820, "app"), (3_922, "redis")] {
        events.push(event(at, service, ServiceEventKind::Exited { pid: 1, exit }));
    }
    let probes = (0..70)
        .map(|i| {
            let at = 100 + 50 * i;
            let ready = !(900..2_308).contains(&at);
            ProbeSample {
                at: at * MS,
                service: "app".to_string(),
                probe: ProbeKind::Ready,
                status: if ready { 200 } else { 0 },
                error: if ready { TransportError::None } else { TransportError::Refused },
                latency_us: 800,
                body: None,
            }
        })
        .collect();
    let fault = FaultRecord {
        index: 0,
        label: "SIGTERM to app".to_string(),
        service: "app".to_string(),
        injected_at: 900 * MS,
        healed_at: Some(2_308 * MS),
        provokes: Vec::new(),
        landed: true,
        proof: "SIGTERM delivered to pid 1001 with 16 load requests in flight; exit observed 1200 ms later: exit status 0".to_string(),
        detail: FaultDetail::Signal {
            signal: "SIGTERM".to_string(),
            pid: 1_001,
            in_flight: 16,
            exited_at: Some(2_100 * MS),
            exit: Some(exit),
            grace_ms: 5_000,
            killed_after_grace: false,
            cleanup: Some(CleanupObservation::default()),
            declared_stop: true,
        },
    };
    let verdicts = vec![
        Verdict::new(
            "HC-READY",
            Outcome::Pass,
            "not ready +1 ms after SIGTERM (refused)",
            "not ready within 500 ms of SIGTERM",
        )
        .with_evidence("28 readiness probes between SIGTERM and the restart")
        .with_reading("not ready within 500 ms of SIGTERM"),
        Verdict::new(
            "GS-SIGTERM",
            Outcome::Pass,
            "exited by itself 1200 ms after SIGTERM with status 0",
            "exits within the 5.0 s grace",
        )
        .with_reading("grace period as the stack declares it (the standard's reading: 30 s)"),
        Verdict::new(
            "GS-DRAIN",
            Outcome::Fail,
            "SIGTERM with 16 requests in flight: 3 of 16 reset <connection reset by peer>",
            "every request in flight at SIGTERM completes with 2xx",
        )
        .with_evidence("request started 0.600 s: reset at 2.100 s")
        .with_evidence("request started 0.605 s: reset at 2.100 s")
        .with_evidence("request started 0.610 s: reset at 2.100 s")
        .with_reading("in flight = started at least 100 ms before the signal and not finished at it"),
        Verdict::new(
            "GS-CLEANUP",
            Outcome::Inconclusive,
            "Redis could not be asked for CLIENT LIST",
            "its Redis connections gone",
        )
        .with_evidence("redis: connection refused")
        .with_reading("the service's connections are those of its processes' sockets to Redis (from /proc)"),
    ];
    ScenarioResult {
        logs: Default::default(),
        worker: None,
        name: "sigterm-drain".to_string(),
        file: "scenarios/sigterm-drain.toml".to_string(),
        description: "SIGTERM to the app with at least 8 slow requests in flight".to_string(),
        duration_ms: 3_976,
        healthy_after_ms: Some(117),
        verdicts,
        error: None,
        history: History {
            requests,
            versions: vec![String::new(), "v1".to_string()],
            routes: vec!["GET /api/slow?ms=1500".to_string()],
            probes,
            events,
            faults: vec![fault],
            findings: Vec::new(),
            load_window: Some((133 * MS, 3_810 * MS)),
            ..History::default()
        },
    }
}

fn config_reload() -> ScenarioResult {
    // Fast requests every 20 ms for 5 s; the restart at 2 s switches v1 to v2.
    let requests: Vec<_> = (0..250u64)
        .map(|i| {
            let t = 100 + 20 * i;
            let version = if t < 2_000 { 1 } else { 2 };
            request(t, t + 5 + i % 7, 200, version)
        })
        .collect();
    let mut events = Vec::new();
    startup(&mut events);
    let exit = ExitInfo {
        code: Some(0),
        signal: None,
    };
    events.push(event(1_990, "app", ServiceEventKind::Exited { pid: 1_001, exit }));
    events.push(event(1_995, "app", ServiceEventKind::Started { pid: 1_200 }));
    events.push(event(2_010, "app", ServiceEventKind::Ready { after_ms: 15 }));
    let fault = FaultRecord {
        index: 0,
        label: "restart app with APP_VERSION=v2".to_string(),
        service: "app".to_string(),
        injected_at: 1_985 * MS,
        healed_at: Some(2_010 * MS),
        provokes: Vec::new(),
        landed: true,
        proof: "v2 served 10 ms after ready".to_string(),
        detail: FaultDetail::EnvRestart {
            variable: "APP_VERSION".to_string(),
            value: "v2".to_string(),
            ready_at: Some(2_010 * MS),
            observed: vec!["v2".to_string()],
        },
    };
    ScenarioResult {
        logs: Default::default(),
        worker: None,
        name: "config".to_string(),
        file: "scenarios/config.toml".to_string(),
        description: "configuration from the environment".to_string(),
        duration_ms: 5_100,
        healthy_after_ms: Some(95),
        verdicts: vec![
            Verdict::new("CF-ENV", Outcome::Pass, "v2 served after the restart", "the new value is served"),
            Verdict::new(
                "CF-HOT",
                Outcome::Skipped,
                "the stack declares no reloadable setting",
                "in effect within 3 s",
            ),
        ],
        error: None,
        history: History {
            requests,
            versions: vec![String::new(), "v1".to_string(), "v2".to_string()],
            routes: vec!["GET /api/version".to_string()],
            probes: Vec::new(),
            events,
            faults: vec![fault],
            findings: Vec::new(),
            load_window: Some((100 * MS, 5_100 * MS)),
            ..History::default()
        },
    }
}

// ---------------------------------------------------------------------------
// Chromium, with a deadline, in its own process group so that none of its
// helper processes outlives the test.

fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("chromium is not installed; these tests open the report in it. Install it with: apt-get install -y chromium")
        })
}

struct Browser {
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium with a fresh profile under `dir` and `args`, and
/// kills its whole process group when it is done or past the deadline.
fn run_chromium(dir: &Path, name: &str, args: &[String]) -> Browser {
    let profile = dir.join(format!("profile-{name}"));
    let _ = fs::remove_dir_all(&profile);
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("starts chromium");
    let group = Pid::from_raw(child.id() as i32);
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits for chromium") {
            break Some(status);
        }
        if started.elapsed() > CHROMIUM_DEADLINE {
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    // Helpers (zygote, GPU, network service) may linger: end the group either way.
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
    let browser = Browser {
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    match status {
        None => panic!(
            "chromium {name} did not finish within {CHROMIUM_DEADLINE:?}; stderr:\n{}",
            browser.stderr
        ),
        Some(s) if !s.success() => panic!("chromium {name} failed ({s}); stderr:\n{}", browser.stderr),
        Some(_) => browser,
    }
}

/// A fresh directory under target/tmp with the report written into it.
fn written_report(name: &str) -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("html-report-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let paths = write_all(&report(), &dir).expect("writes the reports");
    let index = paths
        .into_iter()
        .find(|p| p.ends_with("index.html"))
        .expect("write_all writes index.html");
    (dir, index)
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().expect("absolute path").display())
}

// ---------------------------------------------------------------------------
// Reading the DOM Chromium serialized (attributes in source order, "-quoted).

/// The opening tags named `name`, e.g. every `<tr ...>`.
fn tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&open) {
        let tag = &rest[at..];
        let end = tag.find('>').map_or(tag.len(), |e| e + 1);
        out.push(&tag[..end]);
        rest = &tag[end..];
    }
    out
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    Some(&tag[start..start + tag[start..].find('"')?])
}

/// Each `<svg>` element of a chart: its opening tag and its whole text.
fn charts(dom: &str) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find("<svg ") {
        let svg = &rest[at..];
        let end = svg.find("</svg>").expect("svg is closed") + "</svg>".len();
        let open = &svg[..svg.find('>').expect("tag end")];
        if let Some(name) = attr(open, "data-chart") {
            out.push((name.to_string(), &svg[..end]));
        }
        rest = &svg[end..];
    }
    out
}

#[test]
fn chromium_dom_has_every_verdict_chart_and_fault_window() {
    let (dir, index) = written_report("dom");
    let browser = run_chromium(&dir, "dom", &["--dump-dom".to_string(), file_url(&index)]);
    let dom = browser.stdout;
    assert!(dom.contains("</html>"), "no DOM dumped; stderr:\n{}", browser.stderr);

    // One row per verdict, in order, with its outcome.
    let rows: Vec<(String, String)> = tags(&dom, "tr")
        .into_iter()
        .filter_map(|tag| Some((attr(tag, "data-requirement")?.to_string(), attr(tag, "data-outcome")?.to_string())))
        .collect();
    assert_eq!(rows, expected_rows());

    // Charts: three per scenario, plus the version share where the version changed.
    let charts = charts(&dom);
    let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "throughput",
            "latency",
            "in-flight",
            "throughput",
            "latency",
            "in-flight",
            "versions"
        ]
    );
    for (name, svg) in &charts {
        let open = &svg[..svg.find('>').expect("tag end")];
        let points: usize = attr(open, "data-points").and_then(|p| p.parse().ok()).expect("data-points");
        assert!(points > 0, "{name}: no data points");
        // Real drawn data: a polyline or polygon with coordinates.
        let drawn = tags(svg, "polyline")
            .into_iter()
            .chain(tags(svg, "polygon"))
            .filter(|t| attr(t, "points").is_some_and(|p| p.contains(',')));
        assert!(drawn.count() > 1, "{name}: nothing drawn");
        // The fault window, shaded in its own colour.
        let fill = attr(open, "data-fault-fill").expect("data-fault-fill");
        let shaded = tags(svg, "rect").into_iter().filter(|t| attr(t, "fill") == Some(fill)).count();
        assert_eq!(shaded, 1, "{name}: fault window not shaded");
    }
    // The event labels of the top chart.
    assert!(charts[0].1.contains("app: SIGTERM"), "no SIGTERM marker");

    let windows: Vec<&str> = tags(&dom, "li")
        .into_iter()
        .filter(|t| attr(t, "class") == Some("fault-window"))
        .collect();
    assert_eq!(windows.len(), 2, "one fault window per fault");
    assert_eq!(attr(windows[0], "data-landed"), Some("true"));

    // Reproduce blocks for the fail and the inconclusive verdict, and the summary's.
    assert_eq!(
        dom.matches("<pre class=\"cmd\"><code>chaosgate run scenarios/sigterm-drain.toml")
            .count(),
        3
    );
    assert!(dom.contains("no findings detected"));
    assert!(dom.contains("a mutant: breaks GS-DRAIN on purpose"));
    assert!(dom.contains("3 of 16 reset &lt;connection reset by peer&gt;"));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn chromium_screenshot_is_not_blank() {
    let (dir, index) = written_report("screenshot");
    let png_path = dir.join("report.png");
    run_chromium(
        &dir,
        "screenshot",
        &[
            format!("--screenshot={}", png_path.display()),
            "--window-size=1280,2000".to_string(),
            file_url(&index),
        ],
    );
    let file = fs::File::open(&png_path).expect("chromium wrote the screenshot");
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let frame = reader.next_frame(&mut pixels).expect("decodes");
    assert_eq!((frame.width, frame.height), (1280, 2000));
    let channels = match frame.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected colour type {other:?}"),
    };
    let rgb: Vec<[u8; 3]> = pixels[..frame.buffer_size()].chunks(channels).map(|p| [p[0], p[1], p[2]]).collect();
    let distinct: HashSet<[u8; 3]> = rgb.iter().copied().collect();
    let non_white = rgb.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(distinct.len() > 200, "only {} distinct colours", distinct.len());
    assert!(non_white * 10 > rgb.len(), "only {non_white} of {} pixels are not white", rgb.len());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_page_references_nothing_on_the_network() {
    let html = render_html(&report()).expect("renders");
    for name in ["script", "link", "img", "iframe", "object", "embed", "image", "use"] {
        for tag in tags(&html, name) {
            for key in ["src", "href", "xlink:href", "data"] {
                if let Some(url) = attr(tag, key) {
                    let url = url.to_ascii_lowercase();
                    assert!(!url.starts_with("http") && !url.starts_with("//"), "external resource: {tag}");
                }
            }
        }
    }
    let lower = html.to_ascii_lowercase();
    for needle in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "url(",
        "@import",
        "<link",
        "<script src",
    ] {
        assert!(!lower.contains(needle), "the page loads something: {needle}");
    }
    // The only http(s) text in the page is the SVG namespace, which is a name, not a fetch.
    let urls: HashSet<&str> = html
        .match_indices("http")
        .map(|(at, _)| &html[at..at + html[at..].find('"').unwrap_or(0)])
        .collect();
    assert_eq!(urls, HashSet::from(["http://www.w3.org/2000/svg"]), "unexpected URLs");
}
