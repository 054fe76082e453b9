//! Replication audits of the policy file's `[replication.NAME]` pairs: compare each bucket with
//! its replica ([`bulwark_ops::bucket_audit`]), record the outcome in the ledger (one
//! `replication_audit` event per pair, failed when something is not replicated), and give
//! `status` the newest audit of each pair to judge.
//!
//! Credentials for both buckets come from the environment (the AWS variables or the shared
//! credentials file), as for S3 repositories; the URLs never carry them.

use std::collections::BTreeMap;
use std::time::Instant;

use bulwark_ledger::{EventFilter, EventKind};
use bulwark_ops::bucket_audit::{self, BucketAudit};
use bulwark_policy::replication::{AuditFact, Replication, audit_due};
use bulwark_repo::StoreBackend;
use chrono::{DateTime, Utc};

use crate::Workspace;
use crate::error::{Error, Result};
use crate::events::{Details, ReplicationAuditDetails};

/// One pair's audit, or why it could not be made.
#[derive(Debug, serde::Serialize)]
pub struct PairOutcome {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<BucketAudit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Compare two buckets that no policy file names (nothing is recorded).
pub fn audit_buckets(source: &str, replica: &str, now: DateTime<Utc>) -> Result<BucketAudit> {
    let open = |url: &str| StoreBackend::bucket(url).map_err(|e| Error::Job(e.into()));
    bucket_audit::audit(&open(source)?, &open(replica)?, now).map_err(Error::Job)
}

/// Audit the named pairs (all when `names` is empty; only those due when `due_only`) and record
/// each in the ledger. A pair that cannot be listed is recorded as a failed audit too.
pub fn audit_pairs(
    ws: &Workspace,
    names: &[String],
    due_only: bool,
    now: DateTime<Utc>,
) -> Result<Vec<PairOutcome>> {
    let pairs = &ws.config().replication;
    for n in names {
        if !pairs.contains_key(n) {
            return Err(Error::Invalid(format!(
                "no [replication.{n}] in {}",
                ws.policy().path.display()
            )));
        }
    }
    let last = if due_only {
        last_audits(ws)?
    } else {
        BTreeMap::new()
    };
    let mut out = Vec::new();
    for pair in pairs.values() {
        if !names.is_empty() && !names.contains(&pair.name) {
            continue;
        }
        if due_only && !audit_due(pair, last.get(&pair.name).map(|a| a.time), now) {
            continue;
        }
        let started = Instant::now();
        let outcome = match audit_buckets(&pair.source, &pair.replica, now) {
            Ok(a) => PairOutcome {
                name: pair.name.clone(),
                audit: Some(a),
                error: None,
            },
            Err(e) => PairOutcome {
                name: pair.name.clone(),
                audit: None,
                error: Some(e.to_string()),
            },
        };
        record(ws, pair, &outcome, now, started.elapsed())?;
        out.push(outcome);
    }
    Ok(out)
}

fn record(
    ws: &Workspace,
    pair: &Replication,
    o: &PairOutcome,
    now: DateTime<Utc>,
    took: std::time::Duration,
) -> Result<()> {
    let (summary, ok) = match (&o.audit, &o.error) {
        (Some(a), _) if a.in_sync() => (
            format!(
                "replication {}: all {} objects in {}",
                pair.name, a.source_objects, pair.replica
            ),
            true,
        ),
        (Some(a), _) => (
            format!(
                "replication {}: {} missing and {} differing of {} objects in {}",
                pair.name, a.missing, a.differing, a.source_objects, pair.replica
            ),
            false,
        ),
        (None, e) => (
            format!(
                "replication {}: not audited: {}",
                pair.name,
                e.as_deref().unwrap_or("unknown error")
            ),
            false,
        ),
    };
    let details = ReplicationAuditDetails {
        pair: pair.name.clone(),
        source: pair.source.clone(),
        replica: pair.replica.clone(),
        fact: o.audit.as_ref().map(fact),
        missing: o.audit.as_ref().map_or(0, |a| a.missing),
        differing: o.audit.as_ref().map_or(0, |a| a.differing),
        extra: o.audit.as_ref().map_or(0, |a| a.extra),
        size_only: o.audit.as_ref().map_or(0, |a| a.size_only),
        unreplicated: o
            .audit
            .as_ref()
            .map(|a| {
                a.unreplicated
                    .iter()
                    .take(20)
                    .map(|u| u.key.clone())
                    .collect()
            })
            .unwrap_or_default(),
        error: o.error.clone(),
    };
    ws.ledger().append(
        details
            .event(summary)
            .config_hash(ws.config_hash())
            .timed(
                now,
                now + chrono::Duration::from_std(took).unwrap_or_default(),
            )
            .ok(ok),
    )?;
    Ok(())
}

fn fact(a: &BucketAudit) -> AuditFact {
    AuditFact {
        time: a.at,
        source_objects: a.source_objects,
        unreplicated: a.missing + a.differing,
        oldest_unreplicated: a.oldest_unreplicated,
    }
}

/// The newest completed audit of each pair, by name (a failed listing is not an audit). One
/// read of the ledger for every pair: `status` asks on every refresh.
pub fn last_audits(ws: &Workspace) -> Result<BTreeMap<String, AuditFact>> {
    let events = ws.ledger().events(
        &EventFilter::all()
            .kind(EventKind::ReplicationAudit)
            .newest_first(),
    )?;
    let mut out = BTreeMap::new();
    for e in events {
        let d = ReplicationAuditDetails::of(&e)?;
        if let Some(f) = d.fact {
            out.entry(d.pair).or_insert(f);
        }
    }
    Ok(out)
}
