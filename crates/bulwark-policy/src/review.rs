//! Plan reviews (§9): due a year after the last one, within `review.after_sev1` after every SEV-1
//! resolves, and within `review.after_change` after a material change of the platform.
//!
//! A material change is measured, not declared: the [`Topology`] of the policy file (its
//! repositories and their regions and replicas, its datasets and their tiers and repositories,
//! its roles and who holds them) is a list of lines whose BLAKE3 is the fingerprint. Every run
//! records the fingerprint, every review records the topology it reviewed; the platform changed
//! when the fingerprint in force differs from the reviewed one, and [`diff`] says how.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::compliance::{Aspect, Verdict};
use crate::config::Config;
use crate::duration::human;

/// How long before the yearly review falls due it is judged at risk.
pub const REVIEW_NOTICE: chrono::Duration = chrono::Duration::days(30);

/// What a plan review looks at, one fact per line, sorted: a line added or removed is a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    pub lines: Vec<String>,
}

impl Topology {
    pub fn of(config: &Config) -> Topology {
        let mut lines = BTreeSet::new();
        for r in config.repositories.values() {
            lines.insert(format!(
                "repository {} region={} replica_of={}",
                r.name,
                r.region.as_deref().unwrap_or("-"),
                r.replica_of.as_deref().unwrap_or("-")
            ));
        }
        for d in config.datasets.values() {
            lines.insert(format!(
                "dataset {} tier={} repository={}",
                d.name,
                format!("{:?}", d.tier).to_lowercase(),
                d.repository
            ));
        }
        for r in config.roles.values() {
            let mut alternates = r.alternates.clone();
            alternates.sort();
            lines.insert(format!(
                "role {} critical={} owner={} alternates={}",
                r.name,
                r.critical,
                r.owner,
                alternates.join(",")
            ));
        }
        Topology {
            lines: lines.into_iter().collect(),
        }
    }

    /// BLAKE3 (hex) of the lines, each ending in a newline.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.lines)
    }
}

pub fn fingerprint(lines: &[String]) -> String {
    let mut h = blake3::Hasher::new();
    for l in lines {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

/// What changed from one topology to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopologyDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl TopologyDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

pub fn diff(old: &[String], new: &[String]) -> TopologyDiff {
    let (o, n): (BTreeSet<_>, BTreeSet<_>) = (old.iter().collect(), new.iter().collect());
    TopologyDiff {
        added: n.difference(&o).map(|s| s.to_string()).collect(),
        removed: o.difference(&n).map(|s| s.to_string()).collect(),
    }
}

/// What the review judgement needs to know.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReviewFacts {
    /// When the last review was recorded.
    pub last: Option<DateTime<Utc>>,
    /// The fingerprint of the topology it reviewed.
    pub last_fingerprint: Option<String>,
    /// The fingerprint in force now.
    pub current_fingerprint: String,
    /// When a topology other than the reviewed one was first recorded by a run since.
    pub changed_at: Option<DateTime<Utc>>,
    /// SEV-1 incidents resolved since the last review (all of them when there was none).
    pub sev1_resolved: Vec<(String, DateTime<Utc>)>,
    /// When the plan began to be kept (the ledger's first event): without a review on record,
    /// the first is due a review period after it. `None`: due at once.
    pub adopted: Option<DateTime<Utc>>,
}

/// One reason a review is due, and by when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewTrigger {
    /// `yearly`, `sev1` or `change`.
    pub kind: &'static str,
    pub due: DateTime<Utc>,
    pub reason: String,
}

fn chrono(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Every reason a review is due, earliest deadline first. The yearly one is always there.
pub fn triggers(config: &Config, f: &ReviewFacts, now: DateTime<Utc>) -> Vec<ReviewTrigger> {
    let p = &config.continuity.review;
    let mut out = vec![match (f.last, f.adopted) {
        (None, None) => ReviewTrigger {
            kind: "yearly",
            due: now,
            reason: "no plan review on record".into(),
        },
        (None, Some(adopted)) => ReviewTrigger {
            kind: "yearly",
            due: adopted + chrono(config.targets.review_every),
            reason: format!(
                "no plan review on record since the ledger began ({})",
                day(adopted)
            ),
        },
        (Some(last), _) => ReviewTrigger {
            kind: "yearly",
            due: last + chrono(config.targets.review_every),
            reason: format!("a year after the last review ({})", day(last)),
        },
    }];
    for (id, resolved) in &f.sev1_resolved {
        out.push(ReviewTrigger {
            kind: "sev1",
            due: *resolved + chrono(p.after_sev1),
            reason: format!("{id} (SEV-1) resolved {}", day(*resolved)),
        });
    }
    if f.last_fingerprint.as_deref() != Some(f.current_fingerprint.as_str()) && f.last.is_some() {
        let since = f.changed_at.unwrap_or(now);
        out.push(ReviewTrigger {
            kind: "change",
            due: since + chrono(p.after_change),
            reason: format!(
                "the topology changed since the last review (first seen {}; see `bulwark review diff`)",
                day(since)
            ),
        });
    }
    out.sort_by_key(|t| t.due);
    out
}

/// The plan review commitment (`review`).
pub fn evaluate_review(config: &Config, f: &ReviewFacts, now: DateTime<Utc>) -> Aspect {
    let p = &config.continuity.review;
    let target = format!(
        "every {}, within {} of a SEV-1, within {} of a change",
        human(config.targets.review_every),
        human(p.after_sev1),
        human(p.after_change)
    );
    let actual = match f.last {
        Some(t) => format!("last review {}", day(t)),
        None => "none".into(),
    };
    let all = triggers(config, f, now);
    let first = &all[0];
    let (verdict, reason) = if f.last.is_none() && f.adopted.is_none() {
        (Verdict::Breached, first.reason.clone())
    } else if now >= first.due {
        (
            Verdict::Breached,
            format!("a review was due {}: {}", day(first.due), first.reason),
        )
    } else if first.kind != "yearly" || first.due - now <= REVIEW_NOTICE {
        (
            Verdict::AtRisk,
            format!("a review is due by {}: {}", day(first.due), first.reason),
        )
    } else {
        (Verdict::Met, format!("next review due {}", day(first.due)))
    };
    Aspect {
        name: "review",
        verdict,
        target,
        actual,
        reason,
    }
}
