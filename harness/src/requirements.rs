//! The standard's requirement IDs (see the spec), the names of checks in every report.

/// (ID, one-line requirement) for every requirement of the standard.
pub const ALL: &[(&str, &str)] = &[
    ("HC-READY", "/health/ready says whether the service can take traffic"),
    (
        "HC-LIVE",
        "/health/live says whether the process is alive, independent of dependencies",
    ),
    (
        "HC-AGG",
        "/health gives the combined status, non-2xx when a hard dependency is down",
    ),
    (
        "GS-SIGTERM",
        "SIGTERM is handled gracefully: not ready, stop accepting, exit within the grace period",
    ),
    ("GS-DRAIN", "requests in flight when SIGTERM arrives complete"),
    ("GS-CLEANUP", "connections, listeners and child processes are released on exit"),
    ("GS-WORKER", "a worker told to stop finishes or hands back its current task"),
    ("CF-ENV", "configuration comes from environment variables"),
    ("CF-VALIDATE", "configuration is validated at startup"),
    ("CF-HOT", "declared settings can be changed without restarting the service"),
    ("BG-ZERO", "blue-green switch fails no request"),
    ("BG-SHIFT", "traffic moves to the new version step by step"),
    ("BG-BACK", "a bad switch can be undone quickly"),
    ("CN-SMALL", "a canary first gets a small share of traffic"),
    ("CN-WATCH", "the canary's health is monitored"),
    ("CN-WIDEN", "a healthy canary is widened step by step"),
    ("CN-ABORT", "a bad canary is taken out of traffic"),
    ("RB-ONE", "one-click rollback to the previous version"),
    ("RB-KEEP5", "the last 5 versions are kept"),
    ("RB-DATA", "data stays compatible across versions"),
    ("AL-ERR", "alert: application error rate > 5 %"),
    ("AL-P95", "alert: P95 response time > 2 s"),
    ("AL-CPU", "alert: CPU > 80 %"),
    ("AL-MEM", "alert: memory > 80 %"),
    ("AL-TASK-TIME", "alert: task run time > 30 minutes"),
    ("AL-TASK-FAIL", "alert: task failure rate > 10 %"),
    ("AL-QUEUE", "alert: queue length > 100"),
    ("AL-WORKER", "alert: worker down"),
    ("AL-NGX-5XX", "alert: nginx 5xx rate > 1 %"),
    ("AL-NGX-429", "nginx 429s counted and visible"),
    ("AL-RDS-MEM", "alert: Redis memory > 80 % of maxmemory"),
    ("AL-RDS-CONN", "alert: Redis connections > 1000"),
    ("AL-RDS-SLOW", "alert: Redis command time > 100 ms"),
    ("AL-RDS-PERSIST", "alert: failing AOF write or RDB save"),
    ("AL-CERT", "an expired or soon-expiring certificate raises an alert"),
    ("NX-RATE", "requests beyond the configured rate get 429"),
    ("NX-502", "a dead backend shows up as 502"),
    ("NX-FAILOVER", "one of two upstreams down: requests keep succeeding"),
    ("NX-KEEPALIVE", "nginx reuses upstream connections"),
    ("NX-GZIP", "gzip for text, CSS, JSON, JS above 1000 bytes"),
    ("NX-CACHE", "proxy cache for 200 responses, 5 minutes"),
    ("NX-RELOAD", "nginx -s reload drops no traffic"),
    ("TLS-EXPIRY", "expired certificates are detected and replaced"),
    ("RD-AOF", "AOF on, appendfsync everysec, acknowledged writes survive"),
    ("RD-RDB", "RDB snapshots on"),
    ("RD-MAXMEM", "maxmemory set with an eviction policy"),
    ("RD-AUTH", "Redis requires a password"),
    ("RD-RECOVER", "services survive a Redis outage"),
    ("CW-CONC", "worker concurrency set by CELERY_WORKER_CONCURRENCY"),
    ("CW-PRIO", "tasks start in priority order"),
    ("CW-FLOOD", "a flooded queue is worked off"),
    ("CW-RECONNECT", "a worker that lost Redis reconnects"),
];

pub fn is_known(id: &str) -> bool {
    ALL.iter().any(|(known, _)| *known == id)
}

pub fn title(id: &str) -> &'static str {
    ALL.iter().find(|(known, _)| *known == id).map(|(_, t)| *t).unwrap_or("")
}
