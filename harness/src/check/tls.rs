//! TLS-EXPIRY: the harness reads the served certificate's dates over TLS; an
//! expired or soon-expiring one is reported with its days left (what AL-CERT
//! needs), and after renewing the files and reloading, the new certificate
//! is served with no failed request.

use super::verdict::{Outcome, Verdict};
use super::{CheckInput, ms};
use crate::history::{FaultDetail, ServedCert};

/// AL-CERT's reading of "soon": fewer than 14 days left.
pub const WARN_DAYS: f64 = 14.0;

fn show(c: &ServedCert) -> String {
    let state = if c.days_left < 0.0 {
        "EXPIRED"
    } else if c.days_left < WARN_DAYS {
        "expiring (< 14 days: alert)"
    } else {
        "valid"
    };
    format!(
        "serial {} not-before {} not-after {} ({:.1} days left, {state}; host matches: {}; issued by the run CA: {}; chain of {})",
        c.serial, c.not_before, c.not_after, c.days_left, c.host_matches, c.issued_by_ca, c.chain_len
    )
}

pub fn tls_expiry(input: &CheckInput<'_>) -> Verdict {
    const ID: &str = "TLS-EXPIRY";
    let expected = "the served certificate's dates are read over TLS (expired or < 14 days reported); after renewal + reload the new certificate is served with no failed request";
    let h = input.history;
    let mut evidence = Vec::new();
    let mut expired_seen = false;
    let mut renewals = Vec::new();
    let mut not_landed = Vec::new();
    for f in &h.faults {
        let FaultDetail::CertReload {
            certificate,
            via,
            before,
            after,
            served_at,
            https,
            ..
        } = &f.detail
        else {
            continue;
        };
        if !f.landed {
            not_landed.push(format!("`{certificate}`: {}", f.proof));
            continue;
        }
        let Some(after) = after else { continue };
        evidence.push(format!(
            "after `{certificate}` ({via}): {}; a client verifying against the run CA: {} ok, {} failed{}",
            show(after),
            https.ok,
            https.failed,
            https.first_error.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default()
        ));
        if after.days_left < 0.0 {
            expired_seen = true;
        }
        let was_bad = before.as_ref().is_some_and(|b| b.days_left < WARN_DAYS);
        if was_bad && after.days_left >= WARN_DAYS {
            let end = served_at.unwrap_or(f.injected_at) + 1_000_000;
            let reqs: Vec<_> = h.requests_between(f.injected_at, end).collect();
            // Load requests and the verifying HTTPS client's requests across the renewal.
            let failed = reqs.iter().filter(|r| !r.ok()).count() + https.failed as usize;
            renewals.push((
                certificate.clone(),
                before.clone(),
                after.clone(),
                reqs.len() + (https.ok + https.failed) as usize,
                failed,
                served_at.map(|s| ms(s - f.injected_at)),
            ));
        }
    }
    if !not_landed.is_empty() && renewals.is_empty() {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            format!("certificate swap not proven: {}", not_landed.join("; ")),
            expected,
        );
    }
    let Some((cert, before, after, total, failed, took)) = renewals.first().cloned() else {
        return Verdict::new(
            ID,
            Outcome::Inconclusive,
            "no renewal of an expired or expiring certificate landed (none ran, or it did not land)",
            expected,
        );
    };
    let before_days = before.as_ref().map(|b| format!("{:.1}", b.days_left)).unwrap_or_default();
    let measured = format!(
        "renewal to `{cert}` served after {} ms: not-after {} ({:.1} days left, was {before_days}); {failed} of {total} requests failed across it",
        took.unwrap_or(0),
        after.not_after,
        after.days_left
    );
    let mut problems = Vec::new();
    // A scenario that swaps in no expired certificate (tls-renew: renewal
    // under HTTPS load, every certificate valid) judges the renewal only and
    // says so; where one was swapped in, it must be read back as expired.
    let expired_swapped = h.faults.iter().any(|f| {
        matches!(&f.detail, FaultDetail::CertReload { certificate, .. }
            if crate::stack::certs::KINDS.iter().any(|(name, _, days_after, _)| name == certificate && *days_after < 0))
    });
    let measured = if expired_swapped {
        measured
    } else {
        format!("{measured} (renewal only: no expired certificate swapped in here; tls-expiry judges detection)")
    };
    if expired_swapped && !expired_seen {
        problems.push("no expired certificate was read back as expired".to_string());
    }
    if failed > 0 {
        problems.push(format!("{failed} requests failed across the renewal"));
    }
    if !after.host_matches || !after.issued_by_ca {
        problems.push("the renewed certificate does not match the host or the CA".into());
    }
    // Self-test: a client that verifies must refuse a certificate for another
    // host, or its zero failures across the renewal prove nothing.
    let mut self_test = Vec::new();
    let mut untrusted_client = None;
    for f in h.faults.iter().filter(|f| f.landed) {
        let FaultDetail::CertReload {
            certificate,
            after: Some(after),
            https,
            ..
        } = &f.detail
        else {
            continue;
        };
        if after.host_matches {
            continue;
        }
        if https.failed > 0 {
            self_test.push(format!(
                "self-test: `{certificate}` ({}) refused by the verifying client: {} failed, {} ok (before the swap){}",
                after.subject,
                https.failed,
                https.ok,
                https.first_error.as_ref().map(|e| format!("; first: {e}")).unwrap_or_default()
            ));
        } else {
            untrusted_client = Some(format!(
                "the verifying client accepted `{certificate}`, a certificate for another host ({}), {} times: its results prove nothing",
                after.subject, https.ok
            ));
        }
    }
    let outcome = if !problems.is_empty() {
        Outcome::Fail
    } else if total < 10 || untrusted_client.is_some() {
        Outcome::Inconclusive
    } else {
        Outcome::Pass
    };
    let measured = match (&untrusted_client, problems.is_empty()) {
        (_, false) => format!("{}: {measured}", problems.join("; ")),
        (Some(why), true) => format!("self-test failed: {why}; {measured}"),
        (None, true) => measured,
    };
    let mut v = Verdict::new(ID, outcome, measured, expected)
        .with_reading("expiring = fewer than 14 days left (the standard gives no threshold; finding 13)");
    for e in evidence.into_iter().chain(self_test) {
        v = v.with_evidence(e);
    }
    v
}
