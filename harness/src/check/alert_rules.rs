//! Section 5's alert rules read statically: the PromQL expression a stack
//! declares for a requirement is parsed, its comparisons with a constant are
//! collected, and each is read in the standard's terms (threshold, direction,
//! unit), as is the rule's `for:`. Pure: no Prometheus is asked. It never
//! guesses: what it cannot read is `Unreadable`, not a pass or a fail.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, MatrixSelector, VectorSelector};

/// A rule as the stack's Prometheus reports it.
pub struct LoadedRule {
    pub name: String,
    pub expr: String,
    pub for_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOutcome {
    Conforms,
    Differs,
    /// Not PromQL, no comparison with a number, or an unknown ID.
    Unreadable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleReading {
    pub id: String,
    pub alert: String,
    pub expr: String,
    pub for_s: f64,
    pub outcome: RuleOutcome,
    /// The comparison judged, measured side first, e.g. "> 0.05".
    pub comparison: Option<String>,
    /// The threshold in the standard's terms: % for ratios, s (P95), ms (Redis
    /// command time), minutes of real time (task run time), days (certificate).
    pub threshold: Option<f64>,
    /// A sentence a user reads: what was found and what was expected.
    pub explanation: String,
}

#[derive(Clone, Copy)]
enum Kind {
    /// A fraction (0.05 = 5 %).
    Ratio(f64),
    /// `seconds` as the standard says it in `unit` (`unit_s` seconds each);
    /// `scaled`: times the stack's time scale (AL-TASK-TIME); `p95`: the
    /// measured side must be a 95th percentile.
    Duration {
        seconds: f64,
        unit: &'static str,
        unit_s: f64,
        scaled: bool,
        p95: bool,
    },
    Count(f64),
    /// At least this many days' warning (the standard gives no threshold, finding 13).
    CertDays(f64),
    /// No threshold: any readable expression watches it.
    Watch,
    Selects429,
    Persist,
}

use Kind::*;

/// Section 5: (ID, condition, what the measured side is, what is asked).
#[rustfmt::skip]
const STANDARD: &[(&str, &str, &str, Kind)] = &[
    ("AL-ERR", "error rate > 5 %", "error rate", Ratio(0.05)),
    ("AL-P95", "P95 response time > 2 s", "P95 response time",
        Duration { seconds: 2.0, unit: "s", unit_s: 1.0, scaled: false, p95: true }),
    ("AL-CPU", "CPU > 80 %", "CPU", Ratio(0.8)),
    ("AL-MEM", "memory > 80 %", "memory", Ratio(0.8)),
    ("AL-TASK-TIME", "task run time > 30 minutes", "task run time",
        Duration { seconds: 1800.0, unit: "minutes", unit_s: 60.0, scaled: true, p95: false }),
    ("AL-TASK-FAIL", "task failure rate > 10 %", "task failure rate", Ratio(0.1)),
    ("AL-QUEUE", "queue length > 100", "queue length", Count(100.0)),
    ("AL-WORKER", "worker down", "worker", Watch),
    ("AL-NGX-5XX", "nginx 5xx rate > 1 %", "nginx 5xx rate", Ratio(0.01)),
    ("AL-NGX-429", "rate-limit rejections (429) counted and visible", "rejections", Selects429),
    ("AL-RDS-MEM", "Redis memory > 80 % of maxmemory", "Redis memory (of maxmemory)", Ratio(0.8)),
    ("AL-RDS-CONN", "Redis connections > 1000", "Redis connections", Count(1000.0)),
    ("AL-RDS-SLOW", "Redis command time > 100 ms", "Redis command time",
        Duration { seconds: 0.1, unit: "ms", unit_s: 0.001, scaled: false, p95: false }),
    ("AL-RDS-PERSIST", "a failing AOF write or RDB save is reported", "persistence", Persist),
    ("AL-CERT", "served certificate expiring in < 14 days", "certificate validity left", CertDays(14.0)),
];

/// The standard's condition for an ID, as a sentence ("error rate > 5 %").
pub fn standard_condition(id: &str) -> Option<&'static str> {
    STANDARD.iter().find(|s| s.0 == id).map(|s| s.1)
}

/// Read `rule` as the alert for requirement `id`. `time_scale`: the stack's
/// declared time scale (1.0 = real time), for AL-TASK-TIME; `max_for_s`: the
/// longest `for:` that still lets the alert fire within the harness's deadline.
pub fn read_rule(id: &str, rule: &LoadedRule, time_scale: f64, max_for_s: f64) -> RuleReading {
    let mut reading = RuleReading {
        id: id.to_string(),
        alert: rule.name.clone(),
        expr: rule.expr.clone(),
        for_s: rule.for_s,
        outcome: RuleOutcome::Unreadable,
        comparison: None,
        threshold: None,
        explanation: String::new(),
    };
    let Some(&(_, condition, subject, kind)) = STANDARD.iter().find(|s| s.0 == id) else {
        reading.explanation = format!("{id} is not an alert of section 5: no standard to read `{}` against", rule.name);
        return reading;
    };
    let ast = match parser::parse(&rule.expr) {
        Ok(ast) => ast,
        Err(e) => {
            reading.explanation = format!("the expression does not parse as PromQL: {}", e.trim());
            return reading;
        }
    };
    let scale = if time_scale.is_finite() && time_scale > 0.0 {
        time_scale
    } else {
        1.0
    };
    let found = judge(&ast, condition, subject, kind, scale);
    reading.outcome = found.outcome;
    reading.comparison = found.comparison;
    reading.threshold = found.threshold;
    reading.explanation = found.text;
    // A `for:` longer than the deadline fails whatever the expression says;
    // an unreadable expression stays unreadable (no verdict on a guess).
    if reading.outcome != RuleOutcome::Unreadable && rule.for_s > max_for_s {
        reading.outcome = RuleOutcome::Differs;
        reading.explanation = format!(
            "for: {}: the alert cannot fire within the deadline, which leaves room for a `for:` of at most {} s; the expression: {}",
            fmt_duration(rule.for_s),
            num(max_for_s),
            reading.explanation
        );
    }
    reading
}

/// One comparison read, or the reading of the whole expression.
struct Finding {
    outcome: RuleOutcome,
    comparison: Option<String>,
    threshold: Option<f64>,
    text: String,
    /// What was found, without what was expected (for a list of comparisons).
    short: String,
}

/// A comparison with a constant, normalised to `measured op value`.
struct Cmp<'a> {
    op: &'static str,
    measured: &'a Expr,
    value: f64,
}

impl Cmp<'_> {
    fn shown(&self) -> String {
        format!("{} {}", self.op, num(self.value))
    }
}

fn judge(ast: &Expr, condition: &str, subject: &str, kind: Kind, scale: f64) -> Finding {
    let mut cmps = Vec::new();
    collect(ast, &mut cmps);
    let first = cmps.first().map(Cmp::shown);
    let found = |outcome, text: String| Finding {
        outcome,
        comparison: first.clone(),
        threshold: None,
        short: text.clone(),
        text,
    };
    let sels = selectors(ast);
    match kind {
        Watch => {
            let watched: Vec<String> = sels.iter().map(|s| format!("`{s}`")).collect();
            let watched = if watched.is_empty() {
                format!("`{ast}`")
            } else {
                watched.join(", ")
            };
            return found(
                RuleOutcome::Conforms,
                format!("watches {watched}; the standard gives no threshold for {condition}, so a readable rule conforms"),
            );
        }
        Selects429 => {
            let hit = sels.iter().flat_map(|s| matchers(s)).find(|m| selects_429(m));
            return match hit {
                Some(m) => found(RuleOutcome::Conforms, format!("counts 429 responses (`{m}`): {condition}")),
                None => found(
                    RuleOutcome::Differs,
                    format!("does not select 429 responses (no label matcher matches \"429\"); the standard asks for {condition}"),
                ),
            };
        }
        Persist => {
            let names: Vec<&str> = sels.iter().filter_map(|s| metric_name(s)).collect();
            let find = |tag: &str| names.iter().find(|n| n.to_lowercase().contains(tag)).map(|n| format!("`{n}`"));
            let (outcome, text) = match (find("rdb"), find("aof")) {
                (Some(r), Some(a)) => (RuleOutcome::Conforms, format!("watches RDB saves ({r}) and AOF writes ({a})")),
                (Some(r), None) => (
                    RuleOutcome::Differs,
                    format!("watches RDB saves only ({r}): a failing AOF write goes unreported"),
                ),
                (None, Some(a)) => (
                    RuleOutcome::Differs,
                    format!("watches AOF writes only ({a}): a failing RDB save goes unreported"),
                ),
                (None, None) => (
                    RuleOutcome::Differs,
                    format!("watches neither RDB saves nor AOF writes ({})", names.join(", ")),
                ),
            };
            return found(outcome, format!("{text}; the standard asks that {condition}"));
        }
        _ => {}
    }
    if cmps.is_empty() {
        return found(
            RuleOutcome::Unreadable,
            "no comparison with a number: cannot say which threshold it uses".into(),
        );
    }
    let findings: Vec<Finding> = cmps.iter().map(|c| judge_cmp(c, condition, subject, kind, scale)).collect();
    if let Some(ok) = findings.iter().position(|f| f.outcome == RuleOutcome::Conforms) {
        return findings.into_iter().nth(ok).expect("found above");
    }
    let text = if findings.len() == 1 {
        findings[0].text.clone()
    } else {
        let each: Vec<&str> = findings.iter().map(|f| f.short.as_str()).collect();
        format!(
            "none of its {} comparisons is the standard's {condition}: {}",
            findings.len(),
            each.join("; ")
        )
    };
    let first = findings.into_iter().next().expect("not empty");
    Finding { text, ..first }
}

/// One comparison in the standard's terms.
fn judge_cmp(c: &Cmp<'_>, condition: &str, subject: &str, kind: Kind, scale: f64) -> Finding {
    let shown = c.shown();
    let cert = matches!(kind, CertDays(_));
    let mut notes = Vec::new();
    // `k` turns the written number into the standard's unit (read = value * k);
    // `expected` is the standard's number in that unit.
    let (k, expected, unit) = match kind {
        Ratio(frac) => {
            // Only a multiplication is a unit change: `x / 268435456` makes the ratio.
            let (_, m) = peel(c.measured, false);
            (100.0 / m, frac * 100.0, "%")
        }
        Count(n) => (1.0, n, ""),
        Duration {
            seconds,
            unit,
            unit_s: per_unit,
            scaled,
            p95,
        } => {
            if p95 && let Err(why) = is_p95(c.measured) {
                let short = format!("`{shown}` on {why}");
                let text = format!("{short}: the standard's alert is for {condition}");
                return Finding {
                    outcome: RuleOutcome::Differs,
                    comparison: Some(shown),
                    threshold: None,
                    text,
                    short,
                };
            }
            let (inner, m) = peel(c.measured, true);
            let (unit_s, note) = time_unit(inner);
            notes.extend(note);
            let at = if scaled { scale } else { 1.0 };
            if scaled && scale != 1.0 {
                notes.push(format!("time scale {}: {} s", num(scale), num(seconds * scale)));
            }
            (unit_s / (m * at * per_unit), seconds / per_unit, unit)
        }
        CertDays(days) => {
            let (_, m) = peel(c.measured, true);
            (1.0 / (m * 86400.0), days, "days")
        }
        Watch | Selects429 | Persist => unreachable!("judged without a threshold"),
    };
    // Rounded to 12 digits: 3.6 / 0.002 / 60 is 30, not 30.000000000000004.
    let read = format!("{:.11e}", c.value * k).parse::<f64>().unwrap_or(c.value * k);
    let (want_op, boundary_op) = if cert { ("<", "<=") } else { (">", ">=") };
    let sep = if unit.is_empty() { "" } else { " " };
    let reads = format!("`{shown}` reads as {subject} {} {}{sep}{unit}", c.op, num(read));
    let finding = |outcome, short: String, text: String| Finding {
        outcome,
        comparison: Some(shown.clone()),
        threshold: Some(read),
        text,
        short,
    };
    if c.op != want_op && c.op != boundary_op {
        let short = format!("{reads} (the comparison is `{}`)", c.op);
        let text = format!(
            "{reads}: the comparison is `{}` where the standard's alert is for {condition}",
            c.op
        );
        return finding(RuleOutcome::Differs, short, text);
    }
    // An earlier certificate warning still warns; every other number is the standard's or not.
    if !(close(read, expected) || (cert && read > expected)) {
        if matches!(kind, Ratio(_)) && close(c.value, expected) {
            notes.insert(
                0,
                format!("{} is the percentage, but the ratio is not multiplied by 100", num(c.value)),
            );
        }
        let asks = if cert {
            format!("a warning at least {} days ahead ({condition})", num(expected))
        } else {
            condition.to_string()
        };
        let tail = notes.iter().map(|n| format!("; {n}")).collect::<String>();
        let text = format!(
            "{reads}; the standard asks for {asks}, i.e. `{want_op} {}` here{tail}",
            num(expected / k)
        );
        return finding(RuleOutcome::Differs, format!("{reads}{tail}"), text);
    }
    if c.op == boundary_op {
        notes.push(format!("`{boundary_op}` rather than `{want_op}`: differs only at the boundary"));
    }
    if cert && !close(read, expected) {
        notes.push(format!(
            "earlier than {} days: the standard gives no threshold (finding 13) and an earlier warning still warns",
            num(expected)
        ));
    }
    let tail = notes.iter().map(|n| format!("; {n}")).collect::<String>();
    finding(
        RuleOutcome::Conforms,
        reads.clone(),
        format!("{reads}, as the standard asks ({condition}){tail}"),
    )
}

fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// The comparisons with a constant, through parentheses and `and`/`or`/`unless`.
fn collect<'a>(e: &'a Expr, out: &mut Vec<Cmp<'a>>) {
    let Expr::Binary(b) = unparen(e) else { return };
    if b.op.is_set_operator() {
        collect(&b.lhs, out);
        collect(&b.rhs, out);
    } else if b.op.is_comparison_operator() {
        let op = b.op.to_string();
        let (op, flipped) = match op.as_str() {
            ">" => (">", "<"),
            ">=" => (">=", "<="),
            "<" => ("<", ">"),
            "<=" => ("<=", ">="),
            "==" => ("==", "=="),
            _ => ("!=", "!="),
        };
        match (constant(&b.lhs), constant(&b.rhs)) {
            (None, Some(value)) => out.push(Cmp {
                op,
                measured: &b.lhs,
                value,
            }),
            // `5 < x` is `x > 5`.
            (Some(value), None) => out.push(Cmp {
                op: flipped,
                measured: &b.rhs,
                value,
            }),
            _ => {}
        }
    }
}

/// The value of a constant number expression (literals, + - * / ^, parens, unary minus).
fn constant(e: &Expr) -> Option<f64> {
    let v = match e {
        Expr::NumberLiteral(n) => n.val,
        Expr::Paren(p) => constant(&p.expr)?,
        Expr::Unary(u) => -constant(&u.expr)?,
        Expr::Binary(b) => {
            let (l, r) = (constant(&b.lhs)?, constant(&b.rhs)?);
            match b.op.to_string().as_str() {
                "+" => l + r,
                "-" => l - r,
                "*" => l * r,
                "/" => l / r,
                "^" => l.powf(r),
                _ => return None,
            }
        }
        _ => return None,
    };
    v.is_finite().then_some(v)
}

/// `x * c`, `c * x` (and, when `divide`, `x / c`) at the top: x and the
/// factor the measured side carries (positive factors only: a negative one
/// would turn the comparison around).
fn peel(e: &Expr, divide: bool) -> (&Expr, f64) {
    let (mut e, mut m) = (unparen(e), 1.0);
    while let Expr::Binary(b) = e {
        let (inner, f): (&Expr, f64) = match (b.op.to_string().as_str(), constant(&b.lhs), constant(&b.rhs)) {
            ("*", None, Some(c)) => (&b.lhs, c),
            ("*", Some(c), None) => (&b.rhs, c),
            ("/", None, Some(c)) if divide => (&b.lhs, 1.0 / c),
            _ => break,
        };
        if !(f.is_finite() && f > 0.0) {
            break;
        }
        m *= f;
        e = unparen(inner);
    }
    (e, m)
}

/// What a rule's expression measures over: every range window (`[5m]`, a
/// subquery's range) and every metric it reads; `None` if it does not parse.
pub fn windows_and_metrics(expr: &str) -> Option<(Vec<std::time::Duration>, Vec<String>)> {
    let e = parser::parse(expr).ok()?;
    let mut windows = Vec::new();
    walk(&e, &mut |n| match n {
        Expr::MatrixSelector(m) => windows.push(m.range),
        Expr::Subquery(q) => windows.push(q.range),
        _ => {}
    });
    windows.sort();
    windows.dedup();
    let mut metrics: Vec<String> = selectors(&e).into_iter().filter_map(metric_name).map(str::to_string).collect();
    metrics.sort();
    metrics.dedup();
    Some((windows, metrics))
}

/// Visit every node of an expression, parents first.
fn walk<'a>(e: &'a Expr, f: &mut impl FnMut(&'a Expr)) {
    f(e);
    match e {
        Expr::Aggregate(a) => {
            walk(&a.expr, f);
            if let Some(p) = &a.param {
                walk(p, f);
            }
        }
        Expr::Unary(u) => walk(&u.expr, f),
        Expr::Binary(b) => {
            walk(&b.lhs, f);
            walk(&b.rhs, f);
        }
        Expr::Paren(p) => walk(&p.expr, f),
        Expr::Subquery(s) => walk(&s.expr, f),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, f)),
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) | Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Every selector in an expression.
fn selectors(e: &Expr) -> Vec<&VectorSelector> {
    let mut out = Vec::new();
    walk(e, &mut |n| match n {
        Expr::VectorSelector(v) => out.push(v),
        Expr::MatrixSelector(m) => out.push(&m.vs),
        _ => {}
    });
    out
}

fn matchers(s: &VectorSelector) -> impl Iterator<Item = &Matcher> {
    s.matchers.matchers.iter().chain(s.matchers.or_matchers.iter().flatten())
}

fn metric_name(s: &VectorSelector) -> Option<&str> {
    s.name.as_deref().or_else(|| {
        matchers(s)
            .find(|m| m.name == "__name__" && m.op == MatchOp::Equal)
            .map(|m| m.value.as_str())
    })
}

fn selects_429(m: &Matcher) -> bool {
    match &m.op {
        MatchOp::Equal => m.value == "429",
        MatchOp::Re(r) => r.is_match("429"),
        MatchOp::NotEqual | MatchOp::NotRe(_) => false,
    }
}

/// Ok when the measured side is a 95th percentile: `histogram_quantile(0.95,
/// …)` or a summary's `quantile="0.95"` series; else what it measures.
fn is_p95(e: &Expr) -> Result<(), String> {
    let mut qs = Vec::new();
    walk(e, &mut |n| match n {
        Expr::Call(c) if c.func.name == "histogram_quantile" => qs.extend(c.args.args.first().and_then(|a| constant(a))),
        Expr::VectorSelector(VectorSelector { matchers: ms, .. })
        | Expr::MatrixSelector(MatrixSelector {
            vs: VectorSelector { matchers: ms, .. },
            ..
        }) => {
            let q = ms.matchers.iter().find(|m| m.name == "quantile" && m.op == MatchOp::Equal);
            qs.extend(q.and_then(|m| m.value.parse::<f64>().ok()));
        }
        _ => {}
    });
    if qs.iter().any(|q| close(*q, 0.95)) {
        return Ok(());
    }
    match qs.first() {
        Some(q) if close(*q, 0.99) => Err("P99, not P95 (the standard says P95; Flagger's default is P99)".into()),
        Some(q) => Err(format!("P{}, not P95", num(q * 100.0))),
        None => Err("no 95th percentile (neither `histogram_quantile(0.95, …)` nor a `quantile=\"0.95\"` series)".into()),
    }
}

/// Seconds per unit of the measured side, from its metric names' suffix
/// (Prometheus's naming convention), and a note when none says.
fn time_unit(e: &Expr) -> (f64, Option<String>) {
    for name in selectors(e).into_iter().filter_map(metric_name) {
        let base = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        let has = |suffixes: &[&str]| suffixes.iter().any(|s| base.ends_with(s));
        if has(&["_seconds"]) {
            return (1.0, None);
        } else if has(&["_milliseconds", "_ms"]) {
            return (1e-3, None);
        } else if has(&["_microseconds", "_usec", "_us"]) {
            return (1e-6, None);
        }
    }
    (1.0, Some("no unit in its metric names: read as seconds".into()))
}

/// Equal within a relative 1e-9 (thresholds are written as products).
fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// A number as a user writes it (no float noise such as 3.6000000000000005).
fn num(v: f64) -> String {
    let s = format!("{:.9}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Seconds as Prometheus writes a duration: 3600 -> "1h", 90 -> "1m30s".
fn fmt_duration(s: f64) -> String {
    if s.fract() != 0.0 || s < 1.0 {
        return format!("{}s", num(s));
    }
    let mut left = s as u64;
    let mut out = String::new();
    for (unit, len) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if left >= len {
            out.push_str(&format!("{}{unit}", left / len));
            left %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use RuleOutcome::*;

    /// Read `expr` for `id` (deadline room: 20 s), assert the outcome and that
    /// the explanation says `says`.
    fn expect_at(id: &str, expr: &str, for_s: f64, scale: f64, want: RuleOutcome, says: &str) -> RuleReading {
        let rule = LoadedRule {
            name: "Alert".into(),
            expr: expr.into(),
            for_s,
        };
        let r = read_rule(id, &rule, scale, 20.0);
        assert_eq!(r.outcome, want, "{id}: `{expr}`: {}", r.explanation);
        assert!(r.explanation.contains(says), "{id}: `{expr}`: {:?} lacks {says:?}", r.explanation);
        r
    }

    /// `expect_at` with `for: 1s`, in real time.
    fn expect(id: &str, expr: &str, want: RuleOutcome, says: &str) -> RuleReading {
        expect_at(id, expr, 1.0, 1.0, want, says)
    }

    #[test]
    #[rustfmt::skip]
    fn conforming_form_of_each_id_conforms() {
        let cases = [
            ("AL-ERR", r#"sum(rate(http_requests_total{status=~"5.."}[30s])) / sum(rate(http_requests_total[30s])) > 0.05"#, Some(5.0)),
            ("AL-P95", "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[30s]))) > 2", Some(2.0)),
            ("AL-CPU", "rate(process_cpu_seconds_total[10s]) > 0.8", Some(80.0)),
            ("AL-MEM", "max by (instance) (process_resident_memory_bytes) / (256 * 1024 * 1024) > 0.8", Some(80.0)),
            ("AL-TASK-FAIL", r#"sum(rate(flower_events_total{type="task-failed"}[5s])) / sum(rate(flower_events_total[5s])) > 0.1"#, Some(10.0)),
            ("AL-QUEUE", r#"sum(redis_key_size{key=~"celery.*"}) > 100"#, Some(100.0)),
            ("AL-WORKER", r#"up{job="worker"} == 0"#, None),
            ("AL-NGX-5XX", r#"sum(rate(nginx_http_requests_total{status=~"5.."}[5s])) / sum(rate(nginx_http_requests_total[5s])) > 0.01"#, Some(1.0)),
            ("AL-NGX-429", r#"sum(increase(nginx_http_requests_total{status="429"}[5s])) > 0"#, None),
            ("AL-RDS-MEM", "redis_memory_used_bytes / redis_memory_max_bytes > 0.8 and redis_memory_max_bytes > 0", Some(80.0)),
            ("AL-RDS-CONN", "redis_connected_clients > 1000", Some(1000.0)),
            ("AL-RDS-SLOW", "increase(redis_slowlog_last_id[1m]) > 0 and redis_slowlog_last_slow_execution_duration_seconds > 0.1", Some(100.0)),
            ("AL-RDS-PERSIST", "redis_rdb_last_bgsave_status == 0 or redis_aof_last_write_status == 0", None),
            ("AL-CERT", "probe_ssl_earliest_cert_expiry - time() < 14 * 86400", Some(14.0)),
        ];
        for (id, expr, threshold) in cases {
            let r = expect(id, expr, Conforms, "");
            assert_eq!(r.threshold, threshold, "{id}: {}", r.explanation);
            assert!(standard_condition(id).is_some(), "{id} has a condition");
        }
    }

    #[test]
    fn task_time_is_scaled_by_the_stacks_time_scale() {
        let expr = "max(celery_worker_oldest_active_task_age_seconds) > 1800 * 0.002";
        let r = expect_at("AL-TASK-TIME", expr, 0.0, 0.002, Conforms, "30 minutes");
        assert_eq!(r.threshold, Some(30.0), "in minutes of real time");
        expect("AL-TASK-TIME", expr, Differs, "`> 1800` here");
    }

    #[test]
    fn percent_on_a_multiplied_ratio_and_reversed_sides_conform() {
        let pct = r#"100 * (sum(rate(http_requests_total{status=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))) > 5"#;
        expect("AL-ERR", pct, Conforms, "5 %");
        let r = expect("AL-RDS-CONN", "1000 < redis_connected_clients", Conforms, "");
        assert_eq!(r.comparison.as_deref(), Some("> 1000"));
    }

    #[test]
    fn summary_quantile_and_milliseconds_are_read() {
        let expr = r#"http_request_duration_milliseconds{quantile="0.95"} > 2000"#;
        let r = expect("AL-P95", expr, Conforms, "> 2 s");
        assert_eq!(r.threshold, Some(2.0));
    }

    #[test]
    fn greater_or_equal_conforms_with_a_note() {
        expect("AL-RDS-CONN", "redis_connected_clients >= 1000", Conforms, "only at the boundary");
    }

    #[test]
    fn cert_in_days_with_an_earlier_warning_conforms() {
        let r = expect(
            "AL-CERT",
            "(probe_ssl_earliest_cert_expiry - time()) / 86400 < 30",
            Conforms,
            "finding 13",
        );
        assert_eq!(r.threshold, Some(30.0));
        expect(
            "AL-CERT",
            "(probe_ssl_earliest_cert_expiry - time()) / 86400 < 7",
            Differs,
            "14 days ahead",
        );
    }

    #[test]
    fn error_rate_of_ten_percent_differs() {
        let expr = r#"sum(rate(http_requests_total{status=~"5.."}[30s])) / sum(rate(http_requests_total[30s])) > 0.10"#;
        let r = expect("AL-ERR", expr, Differs, "error rate > 10 %; the standard asks for error rate > 5 %");
        assert_eq!(r.comparison.as_deref(), Some("> 0.1"));
    }

    #[test]
    fn p99_differs() {
        let expr = "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[30s]))) > 2";
        expect(
            "AL-P95",
            expr,
            Differs,
            "P99, not P95 (the standard says P95; Flagger's default is P99)",
        );
    }

    #[test]
    fn percent_threshold_on_an_unmultiplied_ratio_differs() {
        let expr = r#"sum(rate(http_requests_total{status=~"5.."}[30s])) / sum(rate(http_requests_total[30s])) > 5"#;
        expect("AL-ERR", expr, Differs, "reads as error rate > 500 %");
    }

    #[test]
    fn for_longer_than_the_deadline_allows_differs() {
        let says = "for: 1h: the alert cannot fire within the deadline";
        expect_at("AL-RDS-CONN", "redis_connected_clients > 1000", 3600.0, 1.0, Differs, says);
    }

    #[test]
    fn unparseable_expression_is_unreadable() {
        expect(
            "AL-ERR",
            "sum(rate(http_requests_total[30s]) > ",
            Unreadable,
            "does not parse as PromQL",
        );
    }

    #[test]
    fn no_comparison_with_a_number_or_unknown_id_is_unreadable() {
        let says = "no comparison with a number: cannot say which threshold it uses";
        expect("AL-QUEUE", "redis_key_size > redis_key_size_limit", Unreadable, says);
        expect("AL-NOPE", "up == 0", Unreadable, "not an alert of section 5");
        assert_eq!(standard_condition("AL-NOPE"), None);
    }

    #[test]
    fn less_than_direction_differs() {
        expect("AL-RDS-CONN", "redis_connected_clients < 1000", Differs, "the comparison is `<`");
    }

    #[test]
    fn rdb_only_differs() {
        expect(
            "AL-RDS-PERSIST",
            "redis_rdb_last_bgsave_status == 0",
            Differs,
            "a failing AOF write goes unreported",
        );
    }

    #[test]
    fn rejections_without_429_differ() {
        let expr = r#"sum(rate(nginx_http_requests_total{status=~"5.."}[5s])) > 0"#;
        expect("AL-NGX-429", expr, Differs, "does not select 429 responses");
    }
}
