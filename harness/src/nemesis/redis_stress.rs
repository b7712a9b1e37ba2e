//! Faults that make the Redis alerts' conditions hold, through Redis's own
//! protocol and files, on any Redis the manifest declares access to: memory
//! filled towards maxmemory with the harness's own keys (`chaosgate:fill:*`,
//! deleted after), many idle client connections, one slow script, and RDB
//! saves that fail (the dump file's name taken by a folder, so the rename
//! that ends a save fails). Each observation is read back from `INFO`, so a
//! check never takes the fault on trust.

use super::Nemesis;
use crate::history::{FaultDetail, FaultRecord};
use crate::observe::redis_state::{self, RedisTarget, parse_info};
use redis::aio::MultiplexedConnection;
use std::path::PathBuf;
use std::time::Duration;

/// Fill to this share of maxmemory: above the standard's 80 %, short of the limit.
const FILL_SHARE: f64 = 0.9;
const FILL_VALUE_BYTES: usize = 1 << 20;

fn detail(what: &str, measured: String) -> FaultDetail {
    FaultDetail::RedisStress {
        what: what.to_string(),
        measured,
    }
}

async fn info(c: &mut MultiplexedConnection, section: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let text: String = redis::cmd("INFO").arg(section).query_async(c).await.map_err(|e| e.to_string())?;
    Ok(parse_info(&text))
}

fn num(map: &std::collections::BTreeMap<String, String>, key: &str) -> u64 {
    map.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The Redis to stress and a connection to it, or the record saying why not.
async fn target(n: &Nemesis<'_>, index: usize, label: &str, what: &str) -> Result<(RedisTarget, MultiplexedConnection), FaultRecord> {
    let Some(t) = redis_state::targets(n.manifest, n.plan).into_iter().next() else {
        let why = "no service declares Redis access (`redis = { port, password }`)".to_string();
        return Err(n.not_landed(index, label.to_string(), "redis", why, detail(what, String::new())));
    };
    match redis_state::connect_as_client(&t).await {
        Ok(c) => Ok((t, c)),
        Err(e) => {
            let why = format!("cannot connect to {} at {}: {e}", t.service, t.addr);
            Err(n.not_landed(index, label.to_string(), &t.service, why, detail(what, String::new())))
        }
    }
}

/// `(landed, proof)`: whether the condition was shown to hold, and what shows it.
fn record(
    n: &Nemesis<'_>,
    index: usize,
    label: String,
    service: &str,
    injected_at: u64,
    what: &str,
    (landed, proof): (bool, String),
) -> FaultRecord {
    FaultRecord {
        index,
        label,
        service: service.to_string(),
        injected_at,
        healed_at: Some(n.now()),
        provokes: Vec::new(),
        landed,
        detail: detail(what, proof.clone()),
        proof,
    }
}

pub async fn fill(n: &Nemesis<'_>, index: usize, hold: Duration) -> FaultRecord {
    let label = format!(
        "Redis filled to {:.0} % of maxmemory for {:.0} s",
        FILL_SHARE * 100.0,
        hold.as_secs_f64()
    );
    let (t, mut c) = match target(n, index, &label, "fill").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mem = match info(&mut c, "memory").await {
        Ok(m) => m,
        Err(e) => return n.not_landed(index, label, &t.service, format!("INFO memory: {e}"), detail("fill", String::new())),
    };
    let max = num(&mem, "maxmemory");
    if max == 0 {
        let why = "Redis has no maxmemory (0: unlimited): there is no share to fill towards".to_string();
        return n.not_landed(index, label, &t.service, why, detail("fill", String::new()));
    }
    let injected_at = n.now();
    let value = vec![b'x'; FILL_VALUE_BYTES];
    let prefix = format!("chaosgate:fill:{}", n.seed);
    let mut written = 0u64;
    let mut used = num(&mem, "used_memory");
    let mut error = None;
    while (used as f64) < FILL_SHARE * max as f64 && written < 100_000 {
        let r: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("{prefix}:{written}"))
            .arg(&value[..])
            .query_async(&mut c)
            .await;
        if let Err(e) = r {
            error = Some(e.to_string());
            break;
        }
        written += 1;
        if written.is_multiple_of(4) {
            used = info(&mut c, "memory").await.map(|m| num(&m, "used_memory")).unwrap_or(used);
        }
    }
    let peak = info(&mut c, "memory").await.map(|m| num(&m, "used_memory")).unwrap_or(used);
    tokio::time::sleep(hold).await;
    for i in 0..written {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(format!("{prefix}:{i}")).query_async(&mut c).await;
    }
    let after = info(&mut c, "memory").await.map(|m| num(&m, "used_memory")).unwrap_or(0);
    let share = peak as f64 / max as f64;
    let proof = format!(
        "{written} keys of 1 MiB: used_memory {:.0} MiB of maxmemory {:.0} MiB ({:.0} %), {:.0} MiB after they were deleted{}",
        peak as f64 / 1048576.0,
        max as f64 / 1048576.0,
        share * 100.0,
        after as f64 / 1048576.0,
        error.map(|e| format!("; a write failed: {e}")).unwrap_or_default()
    );
    record(n, index, label, &t.service, injected_at, "fill", (share > 0.8, proof))
}

pub async fn connections(n: &Nemesis<'_>, index: usize, count: u32, hold: Duration) -> FaultRecord {
    let label = format!("{count} idle connections to Redis for {:.0} s", hold.as_secs_f64());
    let (t, mut c) = match target(n, index, &label, "connections").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let injected_at = n.now();
    let mut held = Vec::with_capacity(count as usize);
    let mut refused = None;
    for _ in 0..count {
        match tokio::net::TcpStream::connect(t.addr).await {
            Ok(s) => held.push(s),
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    // Redis counts a connection once its event loop has accepted it.
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(info(&mut c, "clients").await.map(|m| num(&m, "connected_clients")).unwrap_or(0));
        if peak >= u64::from(count) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(hold).await;
    let opened = held.len();
    drop(held);
    let proof = format!(
        "{opened} connections opened; Redis counted {peak} connected clients{}",
        refused.map(|e| format!("; then refused: {e}")).unwrap_or_default()
    );
    record(n, index, label, &t.service, injected_at, "connections", (peak > 1000, proof))
}

/// A script that returns once Redis's own clock has moved `ms` on: the
/// server is busy the whole time, as with a slow command.
const BUSY_SCRIPT: &str = "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] \
    while true do local n = redis.call('TIME') if n[1] * 1000000 + n[2] - s >= tonumber(ARGV[1]) * 1000 then return 1 end end";

pub async fn slow(n: &Nemesis<'_>, index: usize, ms: u64) -> FaultRecord {
    let label = format!("one Redis command busy for {ms} ms");
    let (t, mut c) = match target(n, index, &label, "slow").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let injected_at = n.now();
    let started = std::time::Instant::now();
    let r: redis::RedisResult<i64> = redis::cmd("EVAL").arg(BUSY_SCRIPT).arg(0).arg(ms).query_async(&mut c).await;
    let took = started.elapsed().as_millis();
    let slowlog: redis::RedisResult<redis::Value> = redis::cmd("SLOWLOG").arg("GET").arg(1).query_async(&mut c).await;
    let logged_us = slowlog.ok().and_then(|v| match v {
        redis::Value::Array(entries) => entries.into_iter().next().and_then(|e| match e {
            redis::Value::Array(fields) => fields.get(2).and_then(|d| redis::from_redis_value::<u64>(d.clone()).ok()),
            _ => None,
        }),
        _ => None,
    });
    let threshold: Option<u64> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("slowlog-log-slower-than")
        .query_async::<Vec<String>>(&mut c)
        .await
        .ok()
        .and_then(|v| v.get(1).and_then(|t| t.parse().ok()));
    if let Some(us) = threshold {
        n.recorder.finding(crate::history::Finding {
            id: "F11-SLOWLOG-MICROSECONDS".into(),
            title: "Redis's slow log threshold is in microseconds and counts execution only".into(),
            evidence: format!(
                "slowlog-log-slower-than = {us} ({} ms; the standard's 100 ms is 100000); a {ms} ms script was {}",
                us / 1000,
                match logged_us {
                    Some(l) => format!(
                        "logged as {} ms of execution (time waiting on the network is never in it)",
                        l / 1000
                    ),
                    None => "not logged".into(),
                }
            ),
        });
    }
    let landed = r.is_ok() && took as u64 >= ms;
    let proof = match &r {
        Ok(_) => format!(
            "EVAL answered after {took} ms; the slow log's newest entry took {}",
            logged_us
                .map(|u| format!("{} ms", u / 1000))
                .unwrap_or_else(|| "nothing (not logged)".into())
        ),
        Err(e) => format!("EVAL failed after {took} ms: {e}"),
    };
    record(n, index, label, &t.service, injected_at, "slow", (landed, proof))
}

async fn bgsave_status(c: &mut MultiplexedConnection) -> Option<String> {
    let _: redis::RedisResult<String> = redis::cmd("BGSAVE").query_async(c).await;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let p = info(c, "persistence").await.ok()?;
        if p.get("rdb_bgsave_in_progress").map(String::as_str) == Some("0") {
            return p.get("rdb_last_bgsave_status").cloned();
        }
    }
    None
}

pub async fn save_fail(n: &Nemesis<'_>, index: usize, hold: Duration) -> FaultRecord {
    let label = format!("Redis's RDB saves failing for {:.0} s", hold.as_secs_f64());
    let (t, mut c) = match target(n, index, &label, "save-fail").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let get = |name: &'static str| redis::cmd("CONFIG").arg("GET").arg(name).clone();
    let dir: redis::RedisResult<Vec<String>> = get("dir").query_async(&mut c).await;
    let file: redis::RedisResult<Vec<String>> = get("dbfilename").query_async(&mut c).await;
    let (Some(dir), Some(file)) = (dir.ok().and_then(|v| v.get(1).cloned()), file.ok().and_then(|v| v.get(1).cloned())) else {
        let why = "CONFIG GET dir / dbfilename gave no answer".to_string();
        return n.not_landed(index, label, &t.service, why, detail("save-fail", String::new()));
    };
    let dump = PathBuf::from(&dir).join(&file);
    if !PathBuf::from(&dir).is_dir() {
        let why = format!("Redis's data folder {dir} is not visible from the harness");
        return n.not_landed(index, label, &t.service, why, detail("save-fail", String::new()));
    }
    let aside = dump.with_extension("chaosgate-aside");
    let had_dump = dump.is_file();
    let injected_at = n.now();
    let blocked = (|| -> std::io::Result<()> {
        if had_dump {
            std::fs::rename(&dump, &aside)?;
        }
        std::fs::create_dir(&dump)?;
        std::fs::write(dump.join("keep"), b"chaosgate: a save cannot replace a folder")
    })();
    let failed = match &blocked {
        Ok(()) => bgsave_status(&mut c).await,
        Err(_) => None,
    };
    tokio::time::sleep(hold).await;
    let _ = std::fs::remove_dir_all(&dump);
    if had_dump {
        let _ = std::fs::rename(&aside, &dump);
    }
    let healed = bgsave_status(&mut c).await;
    let landed = failed.as_deref() == Some("err");
    let proof = match blocked {
        Err(e) => format!("could not put a folder at {}: {e}", dump.display()),
        Ok(()) => format!(
            "BGSAVE with a folder at {}: rdb_last_bgsave_status {}; after it was removed: {}",
            dump.display(),
            failed.as_deref().unwrap_or("unknown"),
            healed.as_deref().unwrap_or("unknown")
        ),
    };
    record(n, index, label, &t.service, injected_at, "save-fail", (landed, proof))
}
