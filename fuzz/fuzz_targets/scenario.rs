//! Any bytes as a scenario file, read and checked against the reference
//! stack as `chaosgate validate` does: a located error or a scenario, never
//! a panic, an abort or an allocation failure.
#![no_main]

use chaosgate::run::{RunOptions, load_inputs, resolve_endpoints};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let file = dir.join("scenario.toml");
    std::fs::write(&file, data).expect("scratch file");
    let opts = RunOptions {
        stack: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/stacks/reference")),
        scenarios: vec![file],
        out: dir.join("out"),
        seed: None,
        keep: false,
        progress: false,
        backend: Default::default(),
        profile: chaosgate::scenario::Profile::Certify,
    };
    if let Ok((manifest, scenarios)) = load_inputs(&opts) {
        for s in &scenarios {
            let _ = resolve_endpoints(&manifest, &s.load);
        }
    }
});

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chaosgate-fuzz-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}
