//! Readiness is data (`ready = { http | tcp | log }`) evaluated by this one
//! routine, whatever backend runs the service: the backend supplies the
//! address of a port and the file its output goes to.

use crate::manifest::ReadyCheck;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Where to look: the service's ports and its output since it was started.
pub struct ReadyProbe<'a> {
    pub addr: &'a (dyn Fn(&str) -> Option<SocketAddr> + Sync),
    pub log: &'a Path,
    /// Byte offset in `log` where this start's output begins.
    pub log_from: u64,
}

/// Whether the check holds now.
pub async fn is_ready(check: &ReadyCheck, probe: &ReadyProbe<'_>) -> bool {
    match check {
        ReadyCheck::Tcp { tcp } => match (probe.addr)(tcp) {
            Some(addr) => tcp_accepts_and_holds(addr).await,
            None => false,
        },
        ReadyCheck::Http { http, port } => match (probe.addr)(port) {
            Some(addr) => http_get_status(addr, http, Duration::from_millis(1000))
                .await
                .is_some_and(|s| (200..300).contains(&s)),
            None => false,
        },
        ReadyCheck::Log { pattern } => log_matches(probe.log, probe.log_from, pattern),
    }
}

/// Wait until a just-started service passes its ready check, with a
/// deadline; an exit before that is an error with the log's last lines.
/// The one loop of every backend: they differ only in how an exit is seen.
pub async fn wait_until_ready(
    svc: &super::render::ServicePlan,
    deadline: std::time::Duration,
    log_from: u64,
    exited: &(dyn Fn() -> Option<crate::history::ExitInfo> + Sync),
    recorder: &crate::history::Recorder,
) -> Result<std::time::Duration, super::StackError> {
    use super::StackError;
    use super::process::tail_of_file;
    let started = std::time::Instant::now();
    let addr = |port: &str| svc.addr(port);
    let probe = ReadyProbe {
        addr: &addr,
        log: &svc.log,
        log_from,
    };
    loop {
        if let Some(exit) = exited() {
            return Err(StackError::ExitedEarly {
                service: svc.name.clone(),
                exit: exit.describe(),
                log: svc.log.clone(),
                tail: tail_of_file(&svc.log, 15),
            });
        }
        if is_ready(&svc.ready, &probe).await {
            let took = started.elapsed();
            recorder.event(
                &svc.name,
                crate::history::ServiceEventKind::Ready {
                    after_ms: took.as_millis() as u64,
                },
            );
            return Ok(took);
        }
        if started.elapsed() >= deadline {
            return Err(StackError::NotReady {
                service: svc.name.clone(),
                waited: deadline,
                check: svc.ready.describe(),
                log: svc.log.clone(),
                tail: tail_of_file(&svc.log, 15),
            });
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// A connection that is accepted and then held open.
///
/// An accepted connection alone proves nothing in front of a container:
/// docker-proxy accepts on the published port before the service inside
/// listens, then closes the connection when it cannot reach it. A service
/// that is up keeps the connection open (or greets), so a connection that
/// reads end-of-file or a reset at once is "not yet".
async fn tcp_accepts_and_holds(addr: SocketAddr) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr)).await else {
        return false;
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut byte)).await {
        Err(_) => true,
        Ok(Ok(n)) => n > 0,
        Ok(Err(_)) => false,
    }
}

/// Whether a line written to `log` after `from` matches `pattern`.
pub fn log_matches(log: &Path, from: u64, pattern: &regex::Regex) -> bool {
    let Ok(mut file) = std::fs::File::open(log) else {
        return false;
    };
    if file.seek(SeekFrom::Start(from)).is_err() {
        return false;
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return false;
    }
    String::from_utf8_lossy(&bytes).lines().any(|line| pattern.is_match(line))
}

/// A minimal HTTP/1.1 GET over a fresh connection; returns the status code.
/// Readiness must not depend on connection pools or proxies.
pub async fn http_get_status(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let read = stream.read(&mut buf[n..]).await.ok()?;
            if read == 0 {
                break;
            }
            n += read;
        }
        let line = std::str::from_utf8(&buf[..n]).ok()?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(timeout, fut).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_counts_only_after_this_start() {
        let dir = std::env::temp_dir().join(format!("chaosgate-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("worker.log");
        std::fs::write(&log, "celery@old ready.\n--- chaosgate: starting worker ---\n").unwrap();
        let from = std::fs::metadata(&log).unwrap().len();
        let pattern = regex::Regex::new(r"@\S+ ready\.").unwrap();
        assert!(log_matches(&log, 0, &pattern));
        assert!(!log_matches(&log, from, &pattern), "the previous start's line must not count");
        std::fs::write(
            &log,
            "celery@old ready.\n--- chaosgate: starting worker ---\n[INFO] celery@vm ready.\n",
        )
        .unwrap();
        assert!(log_matches(&log, from, &pattern));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
