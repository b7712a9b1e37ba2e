//! Command-line arguments (parsed without I/O; validated by the library).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub const EXIT_CODES: &str = "\
Exit status:
  0  every verdict pass or skipped
  1  at least one requirement failed
  2  inconclusive verdicts and no failure (the harness could not prove something)
  3  the harness could not run (bad scenario or manifest, missing prerequisite, stack never came up)
  64 the command line is wrong (unknown option, missing argument)
  130 interrupted (Ctrl-C or SIGTERM); the stack is stopped first";

#[derive(Debug, Parser)]
#[command(name = "chaosgate", version, about = "Chaos and conformance harness: proves or disproves that a stack meets the Deployment and Operations Standard", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum ImagesAction {
    /// Build chaosgate/stack:bookworm (Debian with nginx, Redis, Prometheus, blackbox exporter)
    /// with debootstrap from this machine's Debian mirror; skipped when the recipe is unchanged.
    Build {
        /// Rebuild even when an image of this recipe exists.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the stack, drive load, inject faults and judge each requirement.
    Run {
        /// Scenario files or directories (default: scenarios/).
        scenarios: Vec<PathBuf>,
        /// The stack manifest, or the directory holding stack.toml.
        #[arg(long, default_value = "fixtures/stacks/reference")]
        stack: PathBuf,
        /// Where reports go: DIR/<run-id>/.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Seed for the load mix and derived values; printed on every run to reproduce it.
        #[arg(long)]
        seed: Option<u64>,
        /// Leave the stack of the last scenario running afterwards (stop it with `chaosgate clean`).
        #[arg(long)]
        keep: bool,
        /// No progress lines, only the verdict table.
        #[arg(long, short)]
        quiet: bool,
        /// Where the services run: local processes, or containers on a Docker engine
        /// (images from `chaosgate images build`; the manifest names them).
        #[arg(long, value_enum, default_value = "process")]
        backend: crate::stack::BackendKind,
        /// Which scenarios: `certify` runs all of them; `pr` those marked `profiles = ["pr"]`
        /// (no long dwell: the pull-request gate).
        #[arg(long, value_enum, default_value = "certify")]
        profile: crate::scenario::Profile,
    },
    /// Check the manifest, its templates and the scenarios against it without starting anything.
    Validate {
        /// Scenario files or directories (default: scenarios/).
        scenarios: Vec<PathBuf>,
        /// The stack manifest, or the directory holding stack.toml.
        #[arg(long, default_value = "fixtures/stacks/reference")]
        stack: PathBuf,
    },
    /// List scenarios and the requirement IDs each covers.
    List {
        /// Scenario files or directories (default: scenarios/).
        scenarios: Vec<PathBuf>,
        /// List the standard's requirement IDs instead, marking those with a checker.
        #[arg(long)]
        requirements: bool,
    },
    /// Check the prerequisites of a stack and print the exact fix for each one missing.
    Doctor {
        #[arg(long, default_value = "fixtures/stacks/reference")]
        stack: PathBuf,
        /// Check what this backend needs.
        #[arg(long, value_enum, default_value = "process")]
        backend: crate::stack::BackendKind,
    },
    /// Container images for the Docker backend, built with no registry.
    Images {
        #[command(subcommand)]
        action: ImagesAction,
    },
    /// Set two runs side by side: verdicts and task-worker behaviour that differ, per scenario.
    Compare {
        /// A run directory (reports/<run-id>) or its run.json.
        a: PathBuf,
        /// The other run.
        b: PathBuf,
    },
    /// Stop what earlier runs left running (killed runs, and runs kept with --keep).
    Clean {
        /// Only this run.
        #[arg(long)]
        run: Option<String>,
    },
}
