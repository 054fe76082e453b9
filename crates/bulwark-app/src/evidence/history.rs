//! What the sections are built from: the ledger's events up to the end of the period (the period's
//! own, and the state before it that judging the period needs: the last backup, restore test or
//! drill before it starts), the remediation items, the policy file and, where the ledger cannot
//! say, the repositories.
//!
//! Times: an event belongs to the period when it *started* in `[from, to)`, as the ledger's own
//! filters count. A backup's recovery point is its event's start (the snapshot's time), and it
//! exists from the event's end.

use std::collections::BTreeMap;

use bulwark_ledger::{Event, EventFilter, EventKind, Remediation};
use bulwark_policy::config::Config;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::events::{BackupDetails, Details};
use crate::workspace::Workspace;

pub struct History<'a> {
    pub ws: &'a Workspace,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// When the report is made: what the repositories hold is compared only when `to` is now.
    pub now: DateTime<Utc>,
    /// Every event that started before `to`, in chain order.
    pub events: Vec<Event>,
    pub remediations: Vec<Remediation>,
    /// Snapshot id -> the backup event that made it.
    backups_by_snapshot: BTreeMap<String, usize>,
}

impl<'a> History<'a> {
    pub fn load(
        ws: &'a Workspace,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<History<'a>> {
        let (events, remediations) = {
            let ledger = ws.ledger();
            (
                ledger.events(&EventFilter::all().until(to))?,
                ledger.remediations(false)?,
            )
        };
        let mut backups_by_snapshot = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            if e.kind == EventKind::Backup
                && e.ok
                && let Some(id) = BackupDetails::of(e).ok().and_then(|d| d.snapshot_id)
            {
                backups_by_snapshot.insert(id, i);
            }
        }
        Ok(History {
            ws,
            from,
            to,
            now,
            events,
            remediations,
            backups_by_snapshot,
        })
    }

    /// The policy file as written (not the failover's effective configuration: the evidence is
    /// about the datasets and repositories the policy names).
    pub fn config(&self) -> &Config {
        &self.ws.policy().config
    }

    pub fn in_period(&self, e: &Event) -> bool {
        e.started >= self.from && e.started < self.to
    }

    /// Events of `kind` (for `dataset` when given), in chain order, before the period's end.
    pub fn of<'h>(
        &'h self,
        kind: EventKind,
        dataset: Option<&'h str>,
    ) -> impl Iterator<Item = &'h Event> + 'h {
        self.events.iter().filter(move |e| {
            e.kind == kind && dataset.is_none_or(|d| e.dataset.as_deref() == Some(d))
        })
    }

    /// The events of `kind` (and `dataset`) within the period.
    pub fn of_in_period<'h>(
        &'h self,
        kind: EventKind,
        dataset: Option<&'h str>,
    ) -> impl Iterator<Item = &'h Event> + 'h {
        self.of(kind, dataset).filter(|e| self.in_period(e))
    }

    /// The backup event that made snapshot `id`.
    pub fn backup_of(&self, snapshot_id: &str) -> Option<&Event> {
        self.backups_by_snapshot
            .get(snapshot_id)
            .map(|i| &self.events[*i])
    }

    pub fn event(&self, id: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.id == id)
    }
}
