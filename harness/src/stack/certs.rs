//! Test certificates generated per run (never committed): a CA the harness
//! trusts and, signed by it, a valid server certificate, a renewed one, an
//! expired one, one that expires within 14 days and one for the wrong host.
//!
//! They are written to `<run_dir>/certs/<name>.crt|.key`. The server reads the
//! *active* pair (`active.crt|.key`), a copy of `valid` at start; a fault
//! copies another pair over it and reloads the server.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// The certificates every TLS stack gets, with their validity relative to now
/// (days before, days after) and whether they carry the declared host name.
pub const KINDS: &[(&str, i64, i64, bool)] = &[
    ("valid", 1, 90, true),
    ("renewed", 0, 365, true),
    ("expired", 60, -1, true),
    ("expiring", 1, 10, true),
    ("wrong-host", 1, 90, false),
];

/// Paths of one generated pair, as templates see them (`{{ certs.valid.cert }}`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: String,
    pub key: String,
}

/// The generated set of one run.
#[derive(Debug, Clone)]
pub struct CertSet {
    pub dir: PathBuf,
    pub host: String,
    /// Name -> paths; includes "ca" (no key written) and "active".
    pub paths: BTreeMap<String, CertPaths>,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate the test certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn write(path: &Path, text: &str) -> Result<(), CertError> {
    std::fs::write(path, text).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A private key: readable by its owner only (a TLS server reads it as the
/// user that starts it, before it drops privileges).
fn write_private(path: &Path, text: &str) -> Result<(), CertError> {
    write(path, text)?;
    super::render::make_private(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn path_string(p: &Path) -> String {
    p.display().to_string()
}

impl CertSet {
    /// Generate the CA and every kind for `host` into `<run_dir>/certs`.
    pub fn generate(run_dir: &Path, host: &str) -> Result<CertSet, CertError> {
        let dir = run_dir.join("certs");
        std::fs::create_dir_all(&dir).map_err(|source| CertError::Io { path: dir.clone(), source })?;
        let now = OffsetDateTime::now_utc();
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "chaosgate run CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = now - Duration::days(2);
        ca_params.not_after = now + Duration::days(400);
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let mut paths = BTreeMap::new();
        let ca_path = dir.join("ca.crt");
        write(&ca_path, &ca_cert.pem())?;
        paths.insert(
            "ca".to_string(),
            CertPaths {
                cert: path_string(&ca_path),
                key: String::new(),
            },
        );
        let issuer = Issuer::new(ca_params, ca_key);
        for (serial, (name, days_before, days_after, right_host)) in (1u64..).zip(KINDS) {
            let san = if *right_host {
                host.to_string()
            } else {
                format!("wrong-host.{host}.invalid")
            };
            let mut params = CertificateParams::new(vec![san.clone()])?;
            params.distinguished_name.push(DnType::CommonName, san);
            params.not_before = now - Duration::days(*days_before) - Duration::hours(1);
            params.not_after = now + Duration::days(*days_after);
            params.serial_number = Some(SerialNumber::from(0x1000 + serial));
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
            write(&cert_path, &cert.pem())?;
            write_private(&key_path, &key.serialize_pem())?;
            paths.insert(
                name.to_string(),
                CertPaths {
                    cert: path_string(&cert_path),
                    key: path_string(&key_path),
                },
            );
        }
        let set = CertSet {
            dir: dir.clone(),
            host: host.to_string(),
            paths,
        };
        set.activate("valid")?;
        let active = CertPaths {
            cert: path_string(&dir.join("active.crt")),
            key: path_string(&dir.join("active.key")),
        };
        let mut set = set;
        set.paths.insert("active".to_string(), active);
        Ok(set)
    }

    /// Make `name` the pair the server reads (it still has to reload).
    pub fn activate(&self, name: &str) -> Result<(), CertError> {
        activate_in(&self.dir, name)
    }

    pub fn ca_pem(&self) -> Result<Vec<u8>, CertError> {
        let path = self.dir.join("ca.crt");
        std::fs::read(&path).map_err(|source| CertError::Io { path, source })
    }
}

/// Copy `<dir>/<name>.crt|.key` over `<dir>/active.crt|.key` (each via a
/// rename, so the server never reads half a file).
pub fn activate_in(dir: &Path, name: &str) -> Result<(), CertError> {
    for ext in ["crt", "key"] {
        let from = dir.join(format!("{name}.{ext}"));
        let tmp = dir.join(format!(".active.{ext}.tmp"));
        let to = dir.join(format!("active.{ext}"));
        std::fs::copy(&from, &tmp).map_err(|source| CertError::Io {
            path: from.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &to).map_err(|source| CertError::Io { path: to.clone(), source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_every_kind_and_activates_the_valid_one() {
        let dir = std::env::temp_dir().join(format!("chaosgate-certs-{}-{}", std::process::id(), fastrand::u32(..)));
        let set = CertSet::generate(&dir, "localhost").expect("certs");
        for (name, ..) in KINDS {
            assert!(Path::new(&set.paths[*name].cert).is_file(), "{name}");
        }
        let active = std::fs::read(&set.paths["active"].cert).expect("active");
        assert_eq!(active, std::fs::read(&set.paths["valid"].cert).expect("valid"));
        set.activate("expired").expect("swap");
        let active = std::fs::read(&set.paths["active"].cert).expect("active");
        assert_eq!(active, std::fs::read(&set.paths["expired"].cert).expect("expired"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
