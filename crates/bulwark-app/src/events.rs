//! The details of each kind of ledger event, one type per kind, used both to write an event and
//! to read it back: nothing reads an event's details by string keys.
//!
//! Details are JSON inside the hashed event, so they are part of the evidence: fields are only
//! ever added (with a default), never renamed or removed, and every type reads the events older
//! versions wrote (missing fields take their defaults). A failed step records `error`.

use std::collections::BTreeMap;

use bulwark_ledger::{Event, EventKind, NewEvent};
use bulwark_ops::copy::CopyReport;
use bulwark_ops::prune::PruneReport;
use bulwark_ops::restore_test::RestoreTestReport;
use bulwark_repo::Summary;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The details of one kind of event.
pub trait Details: Serialize + DeserializeOwned {
    const KIND: EventKind;

    /// The details of `event`, which must be of this kind.
    fn of(event: &Event) -> Result<Self> {
        if event.kind != Self::KIND {
            return Err(Error::Invalid(format!(
                "event {} is a {} event, not {}",
                event.seq,
                event.kind,
                Self::KIND
            )));
        }
        serde_json::from_value(event.details.clone()).map_err(|e| {
            Error::Ledger(bulwark_ledger::Error::Malformed(format!(
                "the details of {} event {}: {e}",
                event.kind, event.seq
            )))
        })
    }

    /// A new event of this kind carrying these details.
    fn event(&self, summary: impl Into<String>) -> NewEvent {
        NewEvent::new(Self::KIND, summary)
            .details(serde_json::to_value(self).expect("event details serialise"))
    }
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct BackupDetails {
    pub snapshot_id: Option<String>,
    pub parent: Option<String>,
    pub summary: Option<Summary>,
    pub unreadable: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The cipher the snapshot is sealed with (absent in events of older versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// The key slot the repository was opened with for the backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_slot: Option<String>,
    /// The backup failed because its repository could not be used at all (a backend error, or
    /// no repository there): what an automatic failover counts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unavailable: bool,
    /// The snapshot was found in the repository with no event of the backup that made it (a
    /// run stopped between saving the snapshot and recording it, or a backup made outside
    /// `run`), and is recorded by the run that found it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub found: bool,
}

impl Details for BackupDetails {
    const KIND: EventKind = EventKind::Backup;
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct CopyDetails {
    #[serde(flatten)]
    pub report: CopyReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Details for CopyDetails {
    const KIND: EventKind = EventKind::Copy;
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct ForgetDetails {
    pub kept: usize,
    pub removed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Details for ForgetDetails {
    const KIND: EventKind = EventKind::Forget;
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct PruneDetails {
    #[serde(flatten)]
    pub report: PruneReport,
    /// Why it ran now.
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Details for PruneDetails {
    const KIND: EventKind = EventKind::Prune;
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct RestoreTestDetails {
    #[serde(flatten)]
    pub report: RestoreTestReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Details for RestoreTestDetails {
    const KIND: EventKind = EventKind::RestoreTest;
}

impl RestoreTestDetails {
    /// The measured restore time, or the event's own duration for events that lack it.
    pub fn duration_s(&self, event: &Event) -> f64 {
        if self.report.duration_s > 0.0 {
            self.report.duration_s
        } else {
            (event.finished - event.started).num_milliseconds() as f64 / 1000.0
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct DrillDetails {
    #[serde(flatten)]
    pub report: crate::drill::DrillReport,
}

impl Details for DrillDetails {
    const KIND: EventKind = EventKind::Drill;
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct ConfigChangeDetails {
    pub path: String,
    pub hash: String,
}

impl Details for ConfigChangeDetails {
    const KIND: EventKind = EventKind::ConfigChange;
}

/// One piece of work a run found due, and why.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct DueWork {
    pub dataset: Option<String>,
    pub repository: Option<String>,
    /// `backup`, `restore_test` or `prune`.
    pub work: String,
    pub reason: String,
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct RunDetails {
    /// `due`, `all` or the datasets named.
    pub selection: String,
    pub due: Vec<DueWork>,
    pub steps: usize,
    pub failed_steps: usize,
    /// When the next piece of work falls due (for `--due` runs).
    pub next_due: Option<DateTime<Utc>>,
    /// Who ran it: for a daemon, its node and the lease (with its fencing token) it held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
    /// The plan it ran under: topology fingerprint and the policy file's git commit.
    #[serde(flatten)]
    pub provenance: crate::review::RunProvenance,
}

impl Details for RunDetails {
    const KIND: EventKind = EventKind::Run;
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct LedgerCopyDetails {
    pub snapshot_id: Option<String>,
    /// The last event the copy holds.
    pub head_seq: u64,
    pub head_id: String,
    /// Replicas the copy went to, and any that failed.
    pub replicas: Vec<String>,
    pub failed_replicas: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Details for LedgerCopyDetails {
    const KIND: EventKind = EventKind::LedgerCopy;
}

/// One notice offered to one channel: every try and how it ended. Never a header's value, a
/// URL's path or a password: a webhook is named by its scheme, host and port.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct NotificationDetails {
    /// The channel's name in the policy file.
    pub channel: String,
    /// `command`, `webhook` or `email`.
    pub channel_kind: String,
    /// What the notice is about (`backup_failed`, `rpo_at_risk`...).
    pub event: String,
    /// The notice's key: a channel that has had it delivered is not sent it again.
    pub key: String,
    /// The stable id a webhook's body carries (BLAKE3 of the key).
    pub id: String,
    /// Where it went: a program, `https://host:port`, `smtp://host:port` and the recipients.
    pub target: String,
    pub attempts: u32,
    pub tries: Vec<NotificationTry>,
    pub ok: bool,
    /// The last HTTP status a webhook answered.
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Details for NotificationDetails {
    const KIND: EventKind = EventKind::Notification;
}

/// One try at delivering a notice.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct NotificationTry {
    pub at: Option<DateTime<Utc>>,
    pub duration_s: f64,
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(kind: EventKind, details: serde_json::Value) -> Event {
        let now = Utc::now();
        Event {
            seq: 7,
            id: "x".into(),
            prev_hash: "y".into(),
            recorded_at: now,
            host: "h".into(),
            kind,
            dataset: None,
            repository: None,
            config_hash: None,
            started: now,
            finished: now,
            ok: true,
            summary: String::new(),
            details,
        }
    }

    #[test]
    fn details_written_by_earlier_versions_still_read() {
        // The shape `run` wrote for a file dataset's restore test before typed details.
        let old = event(
            EventKind::RestoreTest,
            json!({ "passed": true, "snapshot_id": "ab", "duration_s": 1.5,
                    "checks": [{ "name": "integrity", "passed": true, "detail": "ok" }] }),
        );
        let d = RestoreTestDetails::of(&old).unwrap();
        assert!(d.report.passed);
        assert_eq!(d.report.checks.len(), 1);
        assert_eq!(d.duration_s(&old), 1.5);
        let failed = event(EventKind::Backup, json!({ "error": "disk full" }));
        assert_eq!(
            BackupDetails::of(&failed).unwrap().error.as_deref(),
            Some("disk full")
        );
        // A details type refuses another kind's event.
        assert!(BackupDetails::of(&old).is_err());
        // Written and read back, a value is unchanged.
        let copy = CopyDetails {
            report: CopyReport {
                mode: "verbatim".into(),
                packs_copied: 3,
                ..Default::default()
            },
            error: None,
        };
        let written = copy.event("copied");
        let back = CopyDetails::of(&event(EventKind::Copy, written.details)).unwrap();
        assert_eq!(back, copy);
    }
}

/// A replication audit of one `[replication.NAME]` pair.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct ReplicationAuditDetails {
    pub pair: String,
    pub source: String,
    pub replica: String,
    /// What status judges; absent when the listings could not be made.
    pub fact: Option<bulwark_policy::replication::AuditFact>,
    pub missing: u64,
    pub differing: u64,
    pub extra: u64,
    pub size_only: u64,
    /// The oldest unreplicated keys (at most 20).
    pub unreplicated: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Details for ReplicationAuditDetails {
    const KIND: EventKind = EventKind::ReplicationAudit;
}

/// `check --locks --extend-locks` after a prune of an Object Lock repository: what retained
/// snapshots need stays locked until each one's earliest forget date.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct LockCheckDetails {
    pub snapshots: usize,
    pub objects: usize,
    /// Objects whose locks were lengthened.
    pub extended: usize,
    pub least_slack_s: Option<i64>,
    /// Short ids of snapshots still short after extending.
    pub short: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Details for LockCheckDetails {
    const KIND: EventKind = EventKind::Check;
}
