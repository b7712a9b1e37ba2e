use chaosgate::{manifest, scenario};
use std::path::Path;

const BAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bad");

#[test]
fn dump() {
    let mut names: Vec<_> = std::fs::read_dir(format!("{BAD}/scenarios")).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        match scenario::load(&p) { Ok(_) => println!("OK?? {}", p.display()), Err(e) => println!("{e}\n") }
    }
    let mut names: Vec<_> = std::fs::read_dir(format!("{BAD}/manifests")).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        match manifest::load(Path::new(&p)) { Ok(_) => println!("OK?? {}", p.display()), Err(e) => println!("{e}\n") }
    }
}
