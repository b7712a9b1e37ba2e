//! `chaosgate images build`: the stack's container images, made on a machine
//! that reaches no image registry.
//!
//! A Debian root file system comes from debootstrap and the Debian mirror
//! the machine's own apt configuration names (read at build time, never
//! written into the repository), is scrubbed of that configuration and of
//! apt's lists, and is imported as an image. The tag carries a hash of the
//! recipe, so an unchanged recipe is never rebuilt; the stable tag that
//! manifests name (`chaosgate/stack:bookworm`) points at the newest build.
//! The stack's own binaries (refstack) are not baked in: the Docker backend
//! mounts the manifest's `[stack] path` folders read-only, so a rebuilt
//! binary needs no new image.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

pub const STACK_IMAGE: &str = "chaosgate/stack";
pub const STACK_TAG: &str = "bookworm";
const SUITE: &str = "bookworm";
/// What the reference stack's services run: nginx, Redis, Prometheus and its
/// blackbox, Redis exporters, mtail and Alertmanager, as Debian packages them.
const PACKAGES: &[&str] = &[
    "ca-certificates",
    "nginx-light",
    "redis-server",
    "prometheus",
    "prometheus-blackbox-exporter",
    "prometheus-redis-exporter",
    "mtail",
    "prometheus-alertmanager",
];
/// Left out of the image: the build machine's mirror and apt's view of it,
/// debootstrap's log, and what no service reads.
const SCRUBBED: &[&str] = &[
    "etc/apt/sources.list",
    "etc/apt/sources.list.d",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/log/bootstrap.log",
    "var/log/apt",
    "var/log/dpkg.log",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
];
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what} is needed to build images; install it with: {fix}")]
    Missing { what: String, fix: String },
    #[error("no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list; set CHAOSGATE_DEBIAN_MIRROR=<url>")]
    NoMirror,
    #[error("`{step}` failed ({status}); last lines:\n{tail}")]
    Step { step: String, status: String, tail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What a build did.
#[derive(Debug)]
pub struct Built {
    pub image: String,
    pub rebuilt: bool,
    pub seconds: f64,
}

/// The recipe's identity: packages, suite, scrub list and this format's version.
pub fn recipe_hash() -> String {
    let recipe = format!("v1|{SUITE}|minbase|{}|{}|{IMAGE_PATH}", PACKAGES.join(","), SCRUBBED.join(","));
    // FNV-1a: stable across Rust versions (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in recipe.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")[..12].to_string()
}

/// The tag manifests name.
pub fn stack_image() -> String {
    format!("{STACK_IMAGE}:{STACK_TAG}")
}

/// Whether an image is on the engine.
pub fn image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Build the stack image unless one of this recipe is already there.
pub fn build(force: bool, say: &dyn Fn(&str)) -> Result<Built, ImageError> {
    let started = Instant::now();
    let hashed = format!("{STACK_IMAGE}:{}", recipe_hash());
    require(
        "docker",
        "see https://docs.docker.com/engine/install/debian/ (or apt-get install -y docker.io)",
    )?;
    if !force && image_exists(&hashed) {
        step("docker", &["tag", &hashed, &stack_image()])?;
        say(&format!("{hashed} is up to date (recipe unchanged); tagged {}", stack_image()));
        return Ok(Built {
            image: hashed,
            rebuilt: false,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    require("debootstrap", "apt-get install -y debootstrap")?;
    if !nix::unistd::Uid::effective().is_root() {
        return Err(ImageError::Missing {
            what: "root (debootstrap installs packages into a folder as root)".into(),
            fix: "sudo chaosgate images build".into(),
        });
    }
    let mirror = debian_mirror()?;
    let root = scratch_dir()?;
    let _cleanup = RemoveOnDrop(root.clone());
    say(&format!(
        "debootstrap {SUITE} (minbase + {}) from the mirror in this machine's apt sources ...",
        PACKAGES.join(", ")
    ));
    let include = format!("--include={}", PACKAGES.join(","));
    let root_arg = root.display().to_string();
    step("debootstrap", &["--variant=minbase", &include, SUITE, &root_arg, &mirror])?;
    say(&format!(
        "  root file system ready after {:.0} s; scrubbing apt sources and lists",
        started.elapsed().as_secs_f64()
    ));
    for rel in SCRUBBED {
        let p = root.join(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else if p.exists() {
            std::fs::remove_file(&p)?;
        }
    }
    say(&format!("docker import -> {hashed}"));
    let label = format!("LABEL io.chaosgate.recipe={}", recipe_hash());
    let env = format!("ENV PATH={IMAGE_PATH}");
    let tar = Command::new("tar")
        .args(["-C", &root_arg, "-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let import = Command::new("docker")
        .args(["import", "--change", &env, "--change", &label, "-", &hashed])
        .stdin(tar.stdout.ok_or_else(|| std::io::Error::other("tar gave no output"))?)
        .stdout(Stdio::null())
        .output()?;
    if !import.status.success() {
        return Err(ImageError::Step {
            step: "docker import".into(),
            status: import.status.to_string(),
            tail: String::from_utf8_lossy(&import.stderr).into_owned(),
        });
    }
    step("docker", &["tag", &hashed, &stack_image()])?;
    say(&format!(
        "{hashed} built in {:.0} s; tagged {}",
        started.elapsed().as_secs_f64(),
        stack_image()
    ));
    Ok(Built {
        image: hashed,
        rebuilt: true,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The Debian mirror of this machine's apt configuration (deb822 or one-line form).
pub fn debian_mirror() -> Result<String, ImageError> {
    if let Ok(m) = std::env::var("CHAOSGATE_DEBIAN_MIRROR")
        && !m.is_empty()
    {
        return Ok(m);
    }
    let mut texts = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            if let Ok(t) = std::fs::read_to_string(&f) {
                texts.push(t);
            }
        }
    }
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    texts.iter().find_map(|t| mirror_in(t)).ok_or(ImageError::NoMirror)
}

/// The first mirror serving the suite itself (not -security, not -updates).
fn mirror_in(text: &str) -> Option<String> {
    // deb822 stanzas
    for stanza in text.split("\n\n") {
        let field = |name: &str| stanza.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
        if let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:"))
            && suites.split_whitespace().any(|s| s == SUITE)
        {
            return uris.split_whitespace().next().map(str::to_string);
        }
    }
    // one-line form: deb [opts] URI SUITE COMPONENTS
    text.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("deb ")?;
        let words: Vec<&str> = rest.split_whitespace().filter(|w| !w.starts_with('[')).collect();
        (words.get(1) == Some(&SUITE)).then(|| words[0].to_string())
    })
}

fn require(program: &str, fix: &str) -> Result<(), ImageError> {
    let path = std::env::var("PATH").unwrap_or_default();
    if crate::stack::process::find_on_path(program, &path).is_some() {
        Ok(())
    } else {
        Err(ImageError::Missing {
            what: format!("`{program}`"),
            fix: fix.into(),
        })
    }
}

fn step(program: &str, args: &[&str]) -> Result<(), ImageError> {
    let out = Command::new(program).args(args).stdin(Stdio::null()).output()?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    Err(ImageError::Step {
        step: format!("{program} {}", args.first().copied().unwrap_or_default()),
        status: out.status.to_string(),
        tail: lines[lines.len().saturating_sub(15)..].join("\n"),
    })
}

fn scratch_dir() -> Result<PathBuf, ImageError> {
    let base = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let dir = base.join(format!("chaosgate-image-{}-{}", std::process::id(), fastrand::u32(..)));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_mirror_from_deb822_and_one_line_sources() {
        let deb822 = "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n\
                      Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(mirror_in(deb822).as_deref(), Some("http://mirror.example/debian"));
        let classic = "# comment\ndeb [arch=amd64] http://m.example/debian bookworm main\n";
        assert_eq!(mirror_in(classic).as_deref(), Some("http://m.example/debian"));
        assert_eq!(mirror_in("deb http://m.example/debian trixie main\n"), None);
    }

    #[test]
    fn the_recipe_hash_is_stable() {
        assert_eq!(recipe_hash(), recipe_hash());
        assert_eq!(recipe_hash().len(), 12);
    }
}
