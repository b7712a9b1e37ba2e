//! The `chaosgate` binary: parse arguments, call the library, map exit codes.

use chaosgate::check::verdict::RunStatus;
use chaosgate::cli::{Cli, Command, ImagesAction};
use chaosgate::run::{RunOptions, run};
use chaosgate::{doctor, interrupt, report, requirements, scenario, stack::reaper};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// A mistake on the command line: neither a verdict nor "could not run".
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
        // --help, --version
        Err(e) => e.exit(),
    };
    if !matches!(cli.command, Command::Run { .. }) {
        // `chaosgate list | head`: end quietly when the reader goes away, as
        // Unix tools do. A run keeps ignoring SIGPIPE: it must stop its stack.
        // SAFETY: set once at start, before any thread exists.
        let _ = unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    }
    chaosgate::logging::init();
    match cli.command {
        Command::Run {
            scenarios,
            stack,
            out,
            seed,
            keep,
            quiet,
            backend,
            profile,
        } => {
            let scenarios = if scenarios.is_empty() {
                vec![PathBuf::from("scenarios")]
            } else {
                scenarios
            };
            let opts = RunOptions {
                stack,
                scenarios,
                out,
                seed,
                keep,
                progress: !quiet,
                backend,
                profile,
            };
            run_command(opts)
        }
        Command::List {
            scenarios,
            requirements: reqs,
        } => list(scenarios, reqs),
        Command::Validate { scenarios, stack } => {
            let opts = RunOptions {
                stack,
                scenarios: if scenarios.is_empty() {
                    vec![PathBuf::from("scenarios")]
                } else {
                    scenarios
                },
                out: PathBuf::from("reports"),
                seed: None,
                keep: false,
                progress: false,
                backend: Default::default(),
                profile: Default::default(),
            };
            match chaosgate::validate::validate(&opts) {
                Ok(v) => {
                    print!("{}", v.render());
                    if v.errors.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(RunStatus::CouldNotRun.code())
                    }
                }
                Err(e) => input_error(&e),
            }
        }
        Command::Images {
            action: ImagesAction::Build { force },
        } => match chaosgate::images::build(force, &|line| eprintln!("chaosgate: {line}")) {
            Ok(built) => {
                println!("{} ({})", built.image, if built.rebuilt { "built" } else { "up to date" });
                ExitCode::SUCCESS
            }
            Err(e) => input_error(&e),
        },
        Command::Doctor { stack, backend } => match chaosgate::manifest::load(&stack) {
            Ok(m) => {
                let findings = match backend {
                    chaosgate::stack::BackendKind::Process => doctor::diagnose(&m),
                    chaosgate::stack::BackendKind::Docker => doctor::diagnose_docker(&m),
                };
                print!("{}", doctor::render(&findings));
                if findings.iter().all(|f| f.ok) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(RunStatus::CouldNotRun.code())
                }
            }
            Err(e) => input_error(&e),
        },
        Command::Compare { a, b } => {
            use report::compare::{load_run, render, run_name};
            match (load_run(&a), load_run(&b)) {
                (Ok(ra), Ok(rb)) => {
                    print!("{}", render(&ra, &run_name(&a), &rb, &run_name(&b)));
                    ExitCode::SUCCESS
                }
                (Err(e), _) | (_, Err(e)) => input_error(&e),
            }
        }
        Command::Clean { run } => {
            if let Some(id) = run.as_deref()
                && !reaper::run_known(id)
                && !chaosgate::stack::docker_objects::labelled_runs().iter().any(|r| r == id)
            {
                return input_error(&format!(
                    "no run `{id}` in {} (it ended, was cleaned already, or belongs to another state folder)",
                    reaper::markers_dir().display()
                ));
            }
            let reaped = reaper::reap_orphans(true, run.as_deref());
            for p in &reaped.processes {
                println!("killed {} {} (run {}, service {})", p.pid, p.command, p.run, p.service);
            }
            for o in &reaped.docker_objects {
                println!("removed {o}");
            }
            println!(
                "cleaned {} run(s), {} process(es), {} Docker object(s)",
                reaped.runs.len(),
                reaped.processes.len(),
                reaped.docker_objects.len()
            );
            ExitCode::SUCCESS
        }
    }
}

fn input_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(RunStatus::CouldNotRun.code())
}

fn run_command(opts: RunOptions) -> ExitCode {
    if let Err(e) = interrupt::install() {
        eprintln!("warning: cannot install the interrupt handler: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return input_error(&e),
    };
    let result = runtime.block_on(run(&opts));
    let report = match result {
        Ok(r) => r,
        Err(e) => return input_error(&e),
    };
    let dir = opts.out.join(&report.run_id);
    let written = report::write_all(&report, &dir);
    println!("{}", report::render_console_width(&report, terminal_width()));
    match written {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            println!("services' logs in {}", dir.display());
        }
        Err(e) => eprintln!("error: {e}"),
    }
    if interrupt::is_interrupted() {
        return ExitCode::from(130);
    }
    ExitCode::from(report.status().code())
}

fn list(paths: Vec<PathBuf>, reqs: bool) -> ExitCode {
    if reqs {
        for (id, title) in requirements::ALL {
            let mark = if chaosgate::check::is_implemented(id) { "checked" } else { "-" };
            println!("{id:<15} {mark:<8} {title}");
        }
        return ExitCode::SUCCESS;
    }
    let paths = if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths
    };
    for p in paths {
        let loaded = if p.is_dir() {
            scenario::load_dir(&p)
        } else {
            scenario::load(&p).map(|s| vec![s])
        };
        match loaded {
            Ok(list) => {
                for s in list {
                    let mut what = s.covers.clone();
                    what.extend(s.findings.iter().map(|f| format!("finding:{f}")));
                    println!("{:<24} {:<40} {}", s.name, what.join(" "), s.file.display());
                }
            }
            Err(e) => return input_error(&e),
        }
    }
    ExitCode::SUCCESS
}

/// The terminal's width when stdout is one (else `COLUMNS`, else the
/// default), so the table does not wrap in a narrow window.
fn terminal_width() -> usize {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        let mut size = nix::libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize into the struct it is given.
        let ok = unsafe { nix::libc::ioctl(nix::libc::STDOUT_FILENO, nix::libc::TIOCGWINSZ, &mut size) } == 0;
        if ok && size.ws_col >= 60 {
            return usize::from(size.ws_col).min(200);
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c >= 60)
        .map_or(report::DEFAULT_WIDTH, |c| c.min(200))
}
