//! `check --locks`: prove that S3 Object Lock covers what every retained snapshot needs, and
//! (with `extend`) the maintenance step that makes it so.
//!
//! A snapshot needs, for its retention window (the repository's `--lock-days` from its time, or
//! until a hold on it ends when that is later; while a hold has no end, `lock-days` from now):
//! its own object, every pack holding a blob it reaches, every index file listing one of those
//! packs, the config and every key slot. An object is *covered* when its lock runs at least
//! until the latest date any snapshot needing it needs it. The report lists, per snapshot,
//! every object whose lock ends sooner (or that has none).
//!
//! `extend` first locks every short object until that date plus `MARGIN_DAYS`, never
//! shortening a lock; run it on the maintenance host after `forget` and `prune`, and before a
//! lock could run out (daily is plenty: locks are written with the margin).
//!
//! Snapshots are listed before the index is read (as `prune` does), so every snapshot seen has
//! its packs in the index read.

use std::collections::{BTreeMap, BTreeSet};

use bulwark_repo::backend::object_key;
use bulwark_repo::holds::HoldRecord;
use bulwark_repo::id::IdSet;
use bulwark_repo::lock::LockKind;
use bulwark_repo::object_lock::{LockMode, MARGIN_DAYS};
use bulwark_repo::transfer::collect_blobs;
use bulwark_repo::{FileKind, Id, MasterIndex, Repository};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::Serialize;

use crate::error::{Error, Result};

/// An object whose lock ends before a snapshot's need.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ShortObject {
    /// Relative to the repository's root, e.g. `data/3f/3fa2…`.
    pub key: String,
    /// `None`: not locked at all.
    pub locked_until: Option<DateTime<Utc>>,
}

/// A retained snapshot some of whose objects are not locked long enough.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ShortSnapshot {
    pub id: String,
    pub short_id: String,
    pub time: DateTime<FixedOffset>,
    /// Its earliest possible forget date: what its objects must be locked until.
    pub needed_until: DateTime<Utc>,
    pub objects: Vec<ShortObject>,
}

#[derive(Serialize, Debug, Clone)]
pub struct LockReport {
    pub mode: LockMode,
    pub days: u32,
    pub snapshots: usize,
    /// Objects some snapshot needs, each counted once.
    pub objects: usize,
    /// Objects whose locks `extend` lengthened in this run.
    pub extended: usize,
    /// The least time by which a needed object's lock outlasts its need, in seconds (negative
    /// when one is short); `None` without objects.
    pub least_slack_s: Option<i64>,
    pub short: Vec<ShortSnapshot>,
    pub ok: bool,
}

/// What one object must be locked until, and which snapshots need it until when.
#[derive(Default)]
struct Need {
    until: Option<DateTime<Utc>>,
    snapshots: Vec<usize>,
}

impl Need {
    fn add(&mut self, snapshot: usize, until: DateTime<Utc>) {
        self.until = self.until.max(Some(until));
        self.snapshots.push(snapshot);
    }
}

/// Judge (and with `extend`, first repair) the coverage of every retained snapshot at `now`.
pub fn check_locks(repo: &Repository, now: DateTime<Utc>, extend: bool) -> Result<LockReport> {
    let lock = repo.settings().object_lock.ok_or_else(|| {
        Error::Invalid(
            "this repository has no object lock: it was not made with `init --object-lock`".into(),
        )
    })?;
    let client = repo.backend().object_lock().ok_or_else(|| {
        Error::Invalid(format!(
            "{} cannot lock objects: Object Lock needs an s3:// repository",
            repo.backend().location()
        ))
    })?;
    let _guard = repo.lock(LockKind::Shared)?;
    let (snapshots, bad) = repo.load_snapshots()?;
    if let Some(e) = bad.into_iter().next() {
        return Err(Error::Invalid(format!(
            "cannot prove lock coverage while a snapshot is unreadable ({e}); run `bulwark check`"
        )));
    }
    let holds = repo.holds()?;
    let window = Duration::days(lock.days.into());
    let needs_until: Vec<DateTime<Utc>> = snapshots
        .iter()
        .map(|(id, s)| need_until(id, s.time.with_timezone(&Utc), window, &holds, now))
        .collect();

    let mut index = MasterIndex::default();
    let mut index_files: Vec<(String, BTreeSet<Id>)> = Vec::new();
    for name in repo.list_index_files()? {
        let file = repo.read_index_file(&name)?;
        for p in &file.packs {
            index.add_pack(p);
        }
        index_files.push((name, file.packs.iter().map(|p| p.id).collect()));
    }
    index.finish();

    let mut needs: BTreeMap<String, Need> = BTreeMap::new();
    let shared: Vec<String> = std::iter::once(object_key(FileKind::Config, "config"))
        .chain(
            repo.backend()
                .list(FileKind::Key)?
                .into_iter()
                .map(|(name, _)| object_key(FileKind::Key, &name)),
        )
        .collect();
    for (i, ((id, snap), until)) in snapshots.iter().zip(&needs_until).enumerate() {
        let mut blobs = IdSet::default();
        collect_blobs(repo, &index, &snap.tree, &mut blobs)?;
        let packs: BTreeSet<Id> = blobs
            .iter()
            .filter_map(|b| index.lookup(b).map(|l| l.pack.id))
            .collect();
        let keys = shared
            .iter()
            .cloned()
            .chain(std::iter::once(object_key(
                FileKind::Snapshot,
                &id.to_hex(),
            )))
            .chain(
                packs
                    .iter()
                    .map(|p| object_key(FileKind::Pack, &p.to_hex())),
            )
            .chain(
                index_files
                    .iter()
                    .filter(|(_, listed)| !listed.is_disjoint(&packs))
                    .map(|(name, _)| object_key(FileKind::Index, name)),
            );
        for key in keys {
            needs.entry(key).or_default().add(i, *until);
        }
    }

    let mut extended = 0;
    let mut least_slack: Option<Duration> = None;
    let mut short: BTreeMap<usize, Vec<ShortObject>> = BTreeMap::new();
    for (key, need) in &needs {
        let Some(until) = need.until else { continue };
        let mut locked = client.retention(key)?.map(|r| r.until);
        if extend && locked.is_none_or(|l| l < until) {
            let to = until + Duration::days(MARGIN_DAYS.into());
            client.extend(key, lock.mode, to)?;
            locked = Some(to);
            extended += 1;
        }
        // An object without a lock is short by all of its need from now.
        let slack = locked.unwrap_or(now) - until;
        least_slack = Some(least_slack.map_or(slack, |l| l.min(slack)));
        for &i in &need.snapshots {
            if locked.is_none_or(|l| l < needs_until[i]) {
                short.entry(i).or_default().push(ShortObject {
                    key: key.clone(),
                    locked_until: locked,
                });
            }
        }
    }
    let short: Vec<ShortSnapshot> = short
        .into_iter()
        .map(|(i, objects)| ShortSnapshot {
            id: snapshots[i].0.to_hex(),
            short_id: snapshots[i].0.short(),
            time: snapshots[i].1.time,
            needed_until: needs_until[i],
            objects,
        })
        .collect();
    Ok(LockReport {
        mode: lock.mode,
        days: lock.days,
        snapshots: snapshots.len(),
        objects: needs.len(),
        extended,
        least_slack_s: least_slack.map(|s| s.num_seconds()),
        ok: short.is_empty(),
        short,
    })
}

/// A snapshot's earliest possible forget date: its window from its time, or the end of its
/// latest hold when later (a hold without end: the window from `now`, renewed by each run).
fn need_until(
    id: &Id,
    time: DateTime<Utc>,
    window: Duration,
    holds: &[(String, HoldRecord)],
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    holds
        .iter()
        .filter(|(_, h)| h.snapshot == *id && h.is_active(now))
        .map(|(_, h)| h.until.unwrap_or(now + window))
        .fold(time + window, DateTime::max)
}
