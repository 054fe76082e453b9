//! §2 backup encryption: the cipher and the key slot of every backup of the period, from its
//! ledger event (events of versions that did not record them say so: the repository format has
//! one cipher), and the key slots each repository holds now.

use bulwark_ledger::EventKind;

use super::super::history::History;
use super::super::model::{EventRef, Finding, Mapping, Section, Subject, Table};
use super::super::{Module, at};
use crate::error::Result;
use crate::events::{BackupDetails, Details};

pub struct Encryption;

/// What AES-256 at rest requires of a cipher's name.
fn is_aes_256(cipher: &str) -> bool {
    cipher.starts_with("AES-256")
}

impl Module for Encryption {
    fn id(&self) -> &'static str {
        "encryption"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let mut s = Section::new(
            self.id(),
            "Encryption of every backup",
            "§2: backup encryption AES-256 at rest, for all backup artifacts.",
            "every backup sealed with AES-256",
            Mapping::new(&["§2"], &["A1.2"], &["A.8.13"]),
        );
        let mut table = Table::new(
            "Cipher and key slot of every backup",
            &[
                "started",
                "dataset",
                "repository",
                "snapshot",
                "cipher",
                "key slot",
            ],
        );
        let mut weak = Vec::new();
        let mut unrecorded = 0;
        for e in h.of_in_period(EventKind::Backup, None).filter(|e| e.ok) {
            let d = BackupDetails::of(e).unwrap_or_default();
            let cipher = match &d.cipher {
                Some(c) => c.clone(),
                None => {
                    unrecorded += 1;
                    format!(
                        "{} (the format's only cipher; not recorded by this event)",
                        bulwark_repo::crypto::CIPHER
                    )
                }
            };
            let ok = is_aes_256(&cipher);
            if !ok {
                weak.push(EventRef::from(e));
            }
            table.row(
                vec![
                    at(e.started),
                    e.dataset.clone().unwrap_or_default(),
                    e.repository.clone().unwrap_or_default(),
                    d.snapshot_id
                        .as_deref()
                        .unwrap_or("-")
                        .chars()
                        .take(12)
                        .collect(),
                    cipher,
                    d.key_slot
                        .as_deref()
                        .map_or("not recorded".into(), |k| k.chars().take(12).collect()),
                ],
                Some(if ok { Finding::Met } else { Finding::Breached }),
                vec![EventRef::from(e)],
            );
        }
        let backups = table.rows.len();
        s.measured = format!(
            "{backups} backups; {} not AES-256; {unrecorded} from events that did not record the cipher",
            weak.len()
        );
        let mut slots = Table::new(
            "Key slots each repository holds now",
            &["repository", "slot", "kind", "created", "host"],
        );
        for name in h.config().repositories.keys() {
            match h
                .ws
                .repository(name)
                .and_then(|r| r.list_keys().map_err(|e| crate::Error::repository(name, e)))
            {
                Ok(keys) => {
                    for (id, slot) in keys {
                        slots.row(
                            vec![
                                name.clone(),
                                id.chars().take(12).collect(),
                                format!("{:?}", slot.kind).to_lowercase(),
                                at(slot.created),
                                slot.host,
                            ],
                            None,
                            Vec::new(),
                        );
                    }
                }
                Err(e) => slots.row(
                    vec![
                        name.clone(),
                        "-".into(),
                        format!("not read: {e}"),
                        "-".into(),
                        "-".into(),
                    ],
                    None,
                    Vec::new(),
                ),
            }
        }
        s.subject(Subject {
            name: "backups".into(),
            verdict: if weak.is_empty() {
                Finding::Met
            } else {
                Finding::Breached
            },
            target: "AES-256".into(),
            measured: s.measured.clone(),
            reason: if weak.is_empty() {
                format!("all {backups} backups of the period are sealed with AES-256-GCM")
            } else {
                format!("{} backups are not sealed with AES-256", weak.len())
            },
            events: weak,
        });
        s.tables.push(table);
        s.tables.push(slots);
        s.judge_by_subjects();
        Ok(s)
    }
}
