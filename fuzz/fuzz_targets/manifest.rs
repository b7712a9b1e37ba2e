//! Any bytes as a stack manifest beside the reference stack's templates,
//! read, validated and rendered into a scratch folder as `chaosgate
//! validate` does: a located error or a plan, never a panic or an abort.
//! The manifest may extend the reference, so overlays are fuzzed too.
#![no_main]

use chaosgate::stack::render::{Placement, StackPlan};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let (stack_dir, out) = scratch();
    let file = stack_dir.join("stack.toml");
    std::fs::write(&file, data).expect("scratch manifest");
    if let Ok(manifest) = chaosgate::manifest::load(&file) {
        let placement = if manifest.stack.compose.is_some() {
            Placement::Containers
        } else {
            Placement::LocalProcesses
        };
        let _ = StackPlan::render_for(&manifest, &out, 7, placement);
        let _ = std::fs::remove_dir_all(&out);
    }
});

/// A stack folder beside the reference's (so `extends = "../reference/stack.toml"`
/// and its templates resolve), and a run folder to render into.
fn scratch() -> (PathBuf, PathBuf) {
    let stacks = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fuzz-stacks"));
    let stack_dir = stacks.join(format!("stack-{}", std::process::id()));
    std::fs::create_dir_all(&stack_dir).expect("scratch stack folder");
    // The reference's templates, reachable as in a stack folder of its own.
    let reference = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/stacks/reference"));
    for entry in std::fs::read_dir(&reference).expect("reference stack").flatten() {
        let link = stack_dir.join(entry.file_name());
        if entry.file_name() != "stack.toml" && !link.exists() {
            let _ = std::os::unix::fs::symlink(entry.path(), link);
        }
    }
    let run = stack_dir.join("run");
    (stack_dir, run)
}
