//! §10 the evidence itself: the live ledger's chain verified and compared with its copies in the
//! repositories when the pack was made, where the pack's events sit in the chain, and every
//! policy file recorded in force during the period.

use bulwark_ledger::EventKind;

use super::super::history::History;
use super::super::model::{EventRef, Finding, Mapping, Section, Subject, Table};
use super::super::{Module, at};
use crate::error::Result;
use crate::events::{ConfigChangeDetails, Details};
use crate::status::{describe, ledger_status};

pub struct Integrity;

impl Module for Integrity {
    fn id(&self) -> &'static str {
        "evidence_integrity"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let mut s = Section::new(
            self.id(),
            "The evidence: ledger chain and policy files",
            "§10: BCP/DR evidence on request. Every figure of this report is a hash-chained ledger event; the pack's events.jsonl holds them with the chain proof.",
            "the ledger verifies and agrees with its copies in the repositories",
            Mapping::new(&["§10"], &["A1.2", "A1.3"], &["A.8.13"]),
        );
        let st = ledger_status(h.ws)?;
        let mut copies = Table::new(
            "The ledger's copies in the repositories",
            &["repository", "agreement"],
        );
        for c in &st.copies {
            copies.row(vec![c.repository.clone(), describe(c)], None, Vec::new());
        }
        s.subject(Subject {
            name: "ledger".into(),
            verdict: Finding::from(st.verdict),
            target: s.target.clone(),
            measured: format!(
                "{} events, head {}",
                st.head.seq,
                &st.head.id[..16.min(st.head.id.len())]
            ),
            reason: st.reason.clone(),
            events: Vec::new(),
        });
        let mut policies = Table::new("Policy files recorded in force", &["since", "path", "hash"]);
        let changes: Vec<_> = h.of(EventKind::ConfigChange, None).collect();
        // The one in force when the period began, then every change during it.
        let before = changes.iter().rev().find(|e| e.started < h.from);
        for e in before
            .into_iter()
            .chain(changes.iter().filter(|e| h.in_period(e)))
        {
            let d = ConfigChangeDetails::of(e).unwrap_or_default();
            policies.row(
                vec![at(e.started), d.path, d.hash],
                None,
                vec![EventRef::from(*e)],
            );
        }
        s.measured = format!(
            "ledger {}; {} policy files in force during the period",
            Finding::from(st.verdict).word(),
            policies.rows.len()
        );
        s.tables.push(copies);
        s.tables.push(policies);
        s.judge_by_subjects();
        Ok(s)
    }
}
