//! The ledger's copies in the repositories: the evidence travels with the data, and the copies
//! anchor the live ledger so that rewriting it in place does not go unseen.
//!
//! Writing: after a run that did work, the ledger's JSONL export (every event's hashed text,
//! verbatim) is backed up into each repository the run used, as dataset [`LEDGER_DATASET`], file
//! [`LEDGER_FILE`], beside the policy file in force ([`POLICY_FILE`], its bytes as read), copied
//! to that repository's replicas, and old copies are forgotten by their own rules
//! ([`retention`]). A `ledger_copy` event records the head each copy holds. So any one
//! repository holds what recovery from nothing needs besides a credential: the plan and its
//! evidence (see [`crate::recover`]). Secrets the policy file names (password and key files) are
//! never stored.
//!
//! Checking ([`check`]): the newest copy in each repository must verify on its own, and every
//! event it holds must be in the live ledger at the same seq with the same id; the first seq
//! where they differ is named. Whoever can write the ledger database can drop its append-only
//! triggers, rewrite its tail and recompute every hash and the head record, and the chain alone
//! will still verify; the copies sit encrypted in repositories they cannot rewrite without the
//! repository key, so the rewrite shows as a divergence.

use std::collections::BTreeMap;
use std::io::Read;

use bulwark_ledger::{Anchor, EventFilter, Ledger, verify_jsonl};
use bulwark_ops::Progress;
use bulwark_ops::backup::{BackupOptions, BackupSource, backup};
use bulwark_ops::database::{SnapshotFileReader, snapshot_file};
use bulwark_ops::forget::{ForgetOptions, forget};
use bulwark_policy::GroupBy;
use bulwark_policy::retention::KeepRules;
use bulwark_repo::lock::LockKind;
use bulwark_repo::{Id, Repository};
use bulwark_source::Patterns;
use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// The dataset under which the ledger's copies are stored in each repository.
pub const LEDGER_DATASET: &str = "bulwark-ledger";
/// The file holding the export inside a copy's snapshot.
pub const LEDGER_FILE: &str = "ledger.jsonl";
/// The policy file beside it.
pub const POLICY_FILE: &str = "bulwark.toml";

/// How many ledger copies a repository keeps: each holds the whole ledger, so the newest alone
/// restores it; older ones are kept as anchors, a few recent, then one a day for a month and one
/// a month for a year.
pub fn retention() -> KeepRules {
    KeepRules {
        last: Some(3),
        daily: Some(30),
        monthly: Some(12),
        ..Default::default()
    }
}

/// Back the ledger export and the policy file up into `repo`; returns the snapshot's id.
pub fn store(
    repo: &Repository,
    jsonl: Vec<u8>,
    policy: Vec<u8>,
    progress: &dyn Progress,
) -> bulwark_ops::Result<Id> {
    let report = backup(
        repo,
        BackupOptions {
            source: BackupSource::Streams(vec![
                (
                    LEDGER_FILE.into(),
                    Box::new(std::io::Cursor::new(jsonl)) as Box<dyn Read + Send>,
                ),
                (POLICY_FILE.into(), Box::new(std::io::Cursor::new(policy))),
            ]),
            excludes: Patterns::default(),
            tags: vec!["ledger".into()],
            host: None,
            time: None,
            parent: None,
            dataset: Some(LEDGER_DATASET.into()),
            meta: BTreeMap::new(),
            ..Default::default()
        },
        progress,
    )?;
    Ok(report.snapshot_id)
}

/// Forget the copies in `repo` that [`retention`] does not keep.
pub fn apply_retention(repo: &Repository, now: DateTime<Utc>) -> bulwark_ops::Result<usize> {
    let r = forget(
        repo,
        &ForgetOptions {
            rules: retention(),
            group_by: GroupBy {
                host: false,
                paths: false,
                tags: false,
                dataset: true,
            },
            dataset: Some(LEDGER_DATASET.into()),
            explicit: Vec::new(),
            dry_run: false,
            now,
            // `now` may be an injected clock: the store's times are moved onto it.
            clock_check: Some(bulwark_ops::clock_check::ClockCheck {
                clock_offset: now - Utc::now(),
                ..Default::default()
            }),
        },
    )?;
    Ok(r.removed.len())
}

/// The newest copy in a repository: its snapshot, the export's bytes and the policy file's.
pub struct StoredCopy {
    pub snapshot_id: Id,
    pub time: DateTime<FixedOffset>,
    pub jsonl: Vec<u8>,
    /// `None` in copies made before policy files were stored with the ledger.
    pub policy: Option<Vec<u8>>,
}

pub fn newest(repo: &Repository) -> bulwark_ops::Result<Option<StoredCopy>> {
    let (id, snap) =
        match repo.find_snapshot("latest", |s| s.dataset.as_deref() == Some(LEDGER_DATASET)) {
            Ok(found) => found,
            Err(bulwark_repo::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let read = |name: &str| -> bulwark_ops::Result<Option<Vec<u8>>> {
        let node = match snapshot_file(repo, &index, &snap, name) {
            Ok(node) => node,
            Err(bulwark_ops::Error::Repo(bulwark_repo::Error::NotFound { .. })) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::with_capacity(node.size.min(1 << 30) as usize);
        SnapshotFileReader::new(repo, &index, &node)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                bulwark_ops::Error::corrupt(format!("ledger copy {} ({name})", id.short()), e)
            })?;
        Ok(Some(bytes))
    };
    let Some(jsonl) = read(LEDGER_FILE)? else {
        return Err(bulwark_repo::Error::NotFound {
            what: format!("file '{LEDGER_FILE}' in ledger copy {}", id.short()),
        }
        .into());
    };
    let policy = read(POLICY_FILE)?;
    Ok(Some(StoredCopy {
        snapshot_id: id,
        time: snap.time,
        jsonl,
        policy,
    }))
}

/// How a copy and the live ledger relate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Agreement {
    /// Every event of the copy is in the live ledger, unchanged.
    Matches,
    /// The live ledger holds a different event at `seq` than the copy: it was rewritten.
    Diverged {
        seq: u64,
        live_id: String,
        copy_id: String,
    },
    /// The live ledger ends before the copy does: events were removed.
    Truncated { live_head: u64, copy_head: u64 },
    /// The copy itself does not verify.
    CopyInvalid { reason: String },
}

/// Compare the live ledger with a copy's export.
pub fn compare(ledger: &dyn Ledger, jsonl: &[u8]) -> Result<(Anchor, Agreement)> {
    let report = verify_jsonl(jsonl);
    let copy_head = report.head.clone();
    if !report.is_ok() {
        return Ok((
            copy_head,
            Agreement::CopyInvalid {
                reason: report.to_string(),
            },
        ));
    }
    let copy = bulwark_ledger::parse_jsonl(jsonl)?;
    let mut live = Vec::new();
    const BATCH: usize = 10_000;
    let mut after = 0;
    for chunk in copy.chunks(BATCH) {
        live.clear();
        live.extend(ledger.events(&EventFilter::all().after_seq(after).limit(BATCH))?);
        for (i, c) in chunk.iter().enumerate() {
            match live.get(i) {
                Some(l) if l.seq == c.seq && l.id == c.id => {}
                Some(l) if l.seq == c.seq => {
                    return Ok((
                        copy_head,
                        Agreement::Diverged {
                            seq: c.seq,
                            live_id: l.id.clone(),
                            copy_id: c.id.clone(),
                        },
                    ));
                }
                Some(l) => {
                    // A gap or renumbering in the live ledger: the copy's event is not where it was.
                    return Ok((
                        copy_head,
                        Agreement::Diverged {
                            seq: c.seq,
                            live_id: format!("(seq {} is {})", l.seq, l.id),
                            copy_id: c.id.clone(),
                        },
                    ));
                }
                None => {
                    let live_head = ledger.head()?.seq;
                    return Ok((
                        copy_head,
                        Agreement::Truncated {
                            live_head,
                            copy_head: copy.last().map_or(0, |e| e.seq),
                        },
                    ));
                }
            }
        }
        after = chunk.last().map_or(after, |e| e.seq);
    }
    Ok((copy_head, Agreement::Matches))
}

/// The check of one repository's newest copy.
#[derive(Debug, Clone, Serialize)]
pub struct CopyCheck {
    pub repository: String,
    pub snapshot_id: Option<String>,
    pub snapshot_time: Option<DateTime<FixedOffset>>,
    /// The last event the copy holds.
    pub head: Option<Anchor>,
    /// `None` when the repository holds no copy or could not be read (see `error`).
    pub agreement: Option<Agreement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CopyCheck {
    /// Whether this copy shows the live ledger was altered.
    pub fn shows_tampering(&self) -> bool {
        matches!(
            self.agreement,
            Some(
                Agreement::Diverged { .. }
                    | Agreement::Truncated { .. }
                    | Agreement::CopyInvalid { .. }
            )
        )
    }
}

/// Check the newest copy in every repository of the policy file.
pub fn check(ws: &Workspace) -> Vec<CopyCheck> {
    let mut out = Vec::new();
    for name in ws.config().repositories.keys() {
        let mut c = CopyCheck {
            repository: name.clone(),
            snapshot_id: None,
            snapshot_time: None,
            head: None,
            agreement: None,
            error: None,
        };
        let found = ws
            .repository(name)
            .and_then(|repo| newest(&repo).map_err(|e| Error::repository(name, e)));
        match found {
            Err(e) => c.error = Some(e.to_string()),
            Ok(None) => {}
            Ok(Some(copy)) => {
                c.snapshot_id = Some(copy.snapshot_id.to_hex());
                c.snapshot_time = Some(copy.time);
                match compare(ws.ledger().as_ref(), &copy.jsonl) {
                    Ok((head, agreement)) => {
                        c.head = Some(head);
                        c.agreement = Some(agreement);
                    }
                    Err(e) => c.error = Some(e.to_string()),
                }
            }
        }
        out.push(c);
    }
    out
}

/// What [`restore`] brought back.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub repository: String,
    pub snapshot_id: String,
    pub events_added: u64,
    pub head: Anchor,
}

/// Bring a lost ledger back from the longest copy in the repositories: its events must verify
/// and continue what the live ledger holds (normally nothing).
pub fn restore(ws: &Workspace) -> Result<Restored> {
    let mut best: Option<(String, StoredCopy, u64)> = None;
    let mut errors = Vec::new();
    for name in ws.config().repositories.keys() {
        match ws
            .repository(name)
            .and_then(|repo| newest(&repo).map_err(|e| Error::repository(name, e)))
        {
            Ok(Some(copy)) => {
                let seq = verify_jsonl(&copy.jsonl).head.seq;
                if best.as_ref().is_none_or(|(_, _, s)| seq > *s) {
                    best = Some((name.clone(), copy, seq));
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    let Some((repository, copy, _)) = best else {
        return Err(Error::Invalid(format!(
            "no repository holds a copy of the ledger{}",
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", errors.join("; "))
            }
        )));
    };
    let mut ledger = ws.ledger();
    let events_added = ledger.import_jsonl(&copy.jsonl)?;
    Ok(Restored {
        repository,
        snapshot_id: copy.snapshot_id.to_hex(),
        events_added,
        head: ledger.head()?,
    })
}

/// A run never starts an empty ledger where a repository holds a copy of a longer one: that
/// ledger was lost, and its copy must be restored first (`bulwark ledger restore`).
pub fn refuse_lost_ledger(ws: &Workspace) -> Result<()> {
    if ws.ledger().head()?.seq > 0 {
        return Ok(());
    }
    for name in ws.config().repositories.keys() {
        let Ok(repo) = ws.repository(name) else {
            continue;
        };
        if let Ok(Some(copy)) = newest(&repo) {
            let events = verify_jsonl(&copy.jsonl).head.seq;
            if events > 0 {
                return Err(Error::LedgerLost {
                    location: ws.ledger_location().display(),
                    repository: name.clone(),
                    events,
                });
            }
        }
    }
    Ok(())
}
