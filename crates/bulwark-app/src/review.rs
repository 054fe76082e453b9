//! Plan reviews (§9) kept in the ledger: each `review` event records who reviewed, what they
//! concluded, and the [`Topology`] they reviewed (its lines and fingerprint) with the policy
//! file's git commit. Every run records the topology fingerprint and commit in force too
//! ([`RunProvenance`], in the run's `run` event), which is how a material change is dated:
//! the first run after the last review whose fingerprint differs from the reviewed one.
//!
//! The git commit is read from the repository files themselves (`HEAD`, the ref it names, or
//! `packed-refs`), never by running `git`: no child process, no environment, no hooks. A policy
//! file outside a git work tree has no commit, and that is not an error.

use std::path::{Path, PathBuf};

use bulwark_ledger::{EventFilter, EventKind};
use bulwark_policy::compliance::Aspect;
use bulwark_policy::review::{ReviewFacts, ReviewTrigger, Topology, TopologyDiff, diff};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::{Details, RunDetails};
use crate::workspace::Workspace;

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct ReviewDetails {
    /// Who reviewed (people, free text).
    pub by: String,
    pub notes: Option<String>,
    /// The topology reviewed, one fact per line.
    pub topology: Vec<String>,
    pub fingerprint: String,
    /// The policy file's git commit, when it sits in a git work tree.
    pub policy_commit: Option<String>,
    /// What the review was due for (`yearly`, `sev1`, `change`), when it was due.
    pub triggers: Vec<String>,
}

impl Details for ReviewDetails {
    const KIND: EventKind = EventKind::Review;
}

/// What every run records about the plan it ran under.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct RunProvenance {
    pub topology_fingerprint: Option<String>,
    pub policy_commit: Option<String>,
}

/// The topology of the policy file (not of failovers in force: a failover is not a change of
/// plan).
pub fn topology(ws: &Workspace) -> Topology {
    Topology::of(&ws.policy().config)
}

pub fn provenance(ws: &Workspace) -> RunProvenance {
    RunProvenance {
        topology_fingerprint: Some(topology(ws).fingerprint()),
        policy_commit: git_commit(ws.path()),
    }
}

/// The commit checked out in the git work tree holding `file`, if any.
pub fn git_commit(file: &Path) -> Option<String> {
    let start = std::fs::canonicalize(file).ok()?;
    let mut dir = start.parent()?;
    let git_dir = loop {
        let dot = dir.join(".git");
        if dot.is_dir() {
            break dot;
        }
        if dot.is_file() {
            // A linked work tree or a submodule: `gitdir: PATH`.
            let text = std::fs::read_to_string(&dot).ok()?;
            let p = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
            break if p.is_absolute() { p } else { dir.join(p) };
        }
        dir = dir.parent()?;
    };
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref:").map(str::trim) else {
        return is_hash(head).then(|| head.to_string());
    };
    // Refs live in the common directory for linked work trees.
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .ok()
        .map(|c| git_dir.join(c.trim()))
        .unwrap_or_else(|| git_dir.clone());
    for d in [&git_dir, &common] {
        if let Ok(h) = std::fs::read_to_string(d.join(reference)) {
            let h = h.trim();
            if is_hash(h) {
                return Some(h.to_string());
            }
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (hash, name) = l.split_once(' ')?;
        (name.trim() == reference && is_hash(hash)).then(|| hash.to_string())
    })
}

fn is_hash(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// A review as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub seq: u64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub details: ReviewDetails,
}

pub fn reviews(ws: &Workspace) -> Result<Vec<Review>> {
    let events = ws
        .ledger()
        .events(&EventFilter::all().kind(EventKind::Review))?;
    let mut out = events
        .iter()
        .map(|e| {
            Ok(Review {
                seq: e.seq,
                at: e.started,
                details: ReviewDetails::of(e)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by_key(|r| (r.at, r.seq));
    Ok(out)
}

/// The facts the review judgement needs, from the ledger.
pub fn facts(ws: &Workspace) -> Result<ReviewFacts> {
    let all = reviews(ws)?;
    let last = all.last();
    let current = topology(ws).fingerprint();
    let adopted = ws
        .ledger()
        .events(&EventFilter::all().limit(1))?
        .first()
        .map(|e| e.started);
    let mut changed_at = None;
    if let Some(l) = last
        && l.details.fingerprint != current
    {
        let runs = ws
            .ledger()
            .events(&EventFilter::all().kind(EventKind::Run).since(l.at))?;
        changed_at = runs.iter().find_map(|e| {
            let fp = RunDetails::of(e).ok()?.provenance.topology_fingerprint?;
            (fp != l.details.fingerprint).then_some(e.started)
        });
    }
    let sev1_resolved = crate::incident::incidents(ws)?
        .into_iter()
        .filter(|i| i.sev == 1)
        .filter_map(|i| Some((i.id.clone(), i.resolved?)))
        .filter(|(_, r)| last.is_none_or(|l| *r > l.at))
        .collect();
    Ok(ReviewFacts {
        last: last.map(|l| l.at),
        last_fingerprint: last.map(|l| l.details.fingerprint.clone()),
        current_fingerprint: current,
        changed_at,
        sev1_resolved,
        adopted,
    })
}

pub fn aspect(ws: &Workspace, now: DateTime<Utc>) -> Result<Aspect> {
    Ok(bulwark_policy::review::evaluate_review(
        ws.config(),
        &facts(ws)?,
        now,
    ))
}

/// Why a review is due, earliest first.
pub fn due(ws: &Workspace, now: DateTime<Utc>) -> Result<Vec<ReviewTrigger>> {
    Ok(bulwark_policy::review::triggers(
        ws.config(),
        &facts(ws)?,
        now,
    ))
}

/// Record a review of the plan in force at `at`.
pub fn record(
    ws: &Workspace,
    by: &str,
    notes: Option<String>,
    at: DateTime<Utc>,
) -> Result<Review> {
    if by.trim().is_empty() {
        return Err(Error::request(
            "a review names who reviewed".into(),
            "pass --by \"NAMES\"",
        ));
    }
    if let Some(last) = reviews(ws)?.last()
        && at < last.at
    {
        return Err(Error::request(
            format!(
                "the last review was recorded at {}: a review cannot come before it",
                last.at.format("%Y-%m-%d %H:%M UTC")
            ),
            "check --at",
        ));
    }
    let t = topology(ws);
    let triggers = due(ws, at)?
        .into_iter()
        .filter(|tr| tr.kind != "yearly" || tr.due <= at)
        .map(|tr| format!("{}: {}", tr.kind, tr.reason))
        .collect();
    let d = ReviewDetails {
        by: by.trim().to_string(),
        notes,
        fingerprint: t.fingerprint(),
        topology: t.lines,
        policy_commit: git_commit(ws.path()),
        triggers,
    };
    let e = ws.ledger().append(
        d.event(format!("plan reviewed by {}", d.by))
            .config_hash(ws.config_hash())
            .timed(at, at),
    )?;
    Ok(Review {
        seq: e.seq,
        at,
        details: d,
    })
}

/// What changed in the topology in force since the last review recorded at or before `at`
/// (everything, when there was none).
#[derive(Debug, Clone, Serialize)]
pub struct Changes {
    pub since: Option<DateTime<Utc>>,
    pub reviewed_fingerprint: Option<String>,
    pub current_fingerprint: String,
    #[serde(flatten)]
    pub diff: TopologyDiff,
}

pub fn changes(ws: &Workspace, at: DateTime<Utc>) -> Result<Changes> {
    let last = reviews(ws)?.into_iter().rfind(|r| r.at <= at);
    let now = topology(ws);
    let old = last
        .as_ref()
        .map(|r| r.details.topology.clone())
        .unwrap_or_default();
    Ok(Changes {
        since: last.as_ref().map(|r| r.at),
        reviewed_fingerprint: last.map(|r| r.details.fingerprint),
        current_fingerprint: now.fingerprint(),
        diff: diff(&old, &now.lines),
    })
}

/// Tell the channels that hear `review_due` when a review falls due within
/// [`REVIEW_NOTICE`](bulwark_policy::review::REVIEW_NOTICE) (or is late): once per trigger and
/// deadline.
pub fn remind(ws: &Workspace, now: DateTime<Utc>) -> Result<Vec<crate::notify::Delivery>> {
    let Some(first) = due(ws, now)?.into_iter().next() else {
        return Ok(Vec::new());
    };
    if first.due - now > bulwark_policy::review::REVIEW_NOTICE {
        return Ok(Vec::new());
    }
    let when = if now >= first.due {
        "was due"
    } else {
        "is due"
    };
    let mut n = crate::notify::Notice::new(
        bulwark_policy::config::NotifyEvent::ReviewDue,
        format!("review/{}/{}", first.kind, first.due.to_rfc3339()),
        format!(
            "bulwark: a plan review {when} by {}: {}",
            first.due.format("%Y-%m-%d"),
            first.reason
        ),
    );
    n.at = now;
    crate::notify::send(ws, &n)
}
