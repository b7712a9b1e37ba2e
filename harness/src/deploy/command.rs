//! Runs one of the stack's deployment commands: its own process group, the
//! stack's PATH, the run tag (so a crash of the harness still reaps it), and
//! its output appended to `deploy/commands.log` in the run folder.

use crate::stack::reaper::{RUN_TAG, SERVICE_TAG};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The service name deployment commands carry in the run tag.
pub const COMMAND_TAG: &str = "deploy-command";

pub struct Started {
    pub child: tokio::process::Child,
    pub log: PathBuf,
    /// Where this command's output starts in the log.
    pub log_from: u64,
}

pub struct CommandSpec<'a> {
    pub argv: &'a [String],
    pub dir: &'a Path,
    pub path_var: &'a str,
    pub env: &'a BTreeMap<String, String>,
    pub run_id: &'a str,
}

pub fn spawn(spec: &CommandSpec<'_>) -> std::io::Result<Started> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(std::io::Error::other("the command is empty"));
    };
    std::fs::create_dir_all(spec.dir)?;
    let log = spec.dir.join("commands.log");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
    writeln!(
        file,
        "--- chaosgate: {} ---",
        shlex::try_join(spec.argv.iter().map(String::as_str)).unwrap_or_default()
    )?;
    let log_from = file.metadata()?.len();
    let program = match crate::stack::process::find_on_path(program, spec.path_var) {
        Some(p) if !program.contains('/') => p,
        _ => PathBuf::from(program),
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(spec.dir)
        .env_clear()
        .env("PATH", spec.path_var)
        .envs(
            ["HOME", "LANG", "TZ", "USER", "TMPDIR"]
                .iter()
                .filter_map(|v| std::env::var(v).ok().map(|x| (*v, x))),
        )
        .envs(spec.env)
        .env(RUN_TAG, spec.run_id)
        .env(SERVICE_TAG, COMMAND_TAG)
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn()?;
    Ok(Started { child, log, log_from })
}

/// The command's output so far, its last `max` bytes.
pub fn output_since(log: &Path, from: u64, max: usize) -> String {
    let bytes = std::fs::read(log).unwrap_or_default();
    let from = (from as usize).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[from..]).into_owned();
    if text.len() <= max {
        return text;
    }
    let cut = text.ceil_char_boundary(text.len() - max);
    format!("[...]{}", &text[cut..])
}
