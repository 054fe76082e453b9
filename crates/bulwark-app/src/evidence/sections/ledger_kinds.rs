//! What the ledger holds of kinds no section judges yet (incidents and their updates, plan
//! reviews: §7, §9), listed as recorded. A section that comes to judge a kind claims it through
//! [`Module::kinds`], and it leaves this list.

use super::super::history::History;
use super::super::model::{EventRef, Finding, Mapping, Section, Subject, Table};
use super::super::{Module, at};
use crate::error::Result;

/// The kinds listed here unless a section claims them.
pub const KINDS: [&str; 2] = ["incident", "review"];

pub struct LedgerKinds {
    /// The kinds other sections claim.
    pub claimed: Vec<&'static str>,
}

/// The details of an event on one line, cut to a readable length.
fn compact(v: &serde_json::Value) -> String {
    let text = bulwark_ledger::canonical_json(v);
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

impl Module for LedgerKinds {
    fn id(&self) -> &'static str {
        "incidents_and_reviews"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let kinds: Vec<&str> = KINDS
            .iter()
            .copied()
            .filter(|k| !self.claimed.contains(k))
            .collect();
        let mut s = Section::new(
            self.id(),
            "Incidents and plan reviews",
            "§7: SEV-1/SEV-2 status updates at least every two hours; post-mortems within ten business days. §9: the plan is reviewed annually, after every SEV-1 and after material change.",
            "as recorded in the ledger",
            Mapping::new(
                &["§5", "§7", "§9"],
                &["A1.2", "A1.3"],
                &["A.5.29", "A.5.30"],
            ),
        );
        let mut table = Table::new(
            "Events of the period",
            &["started", "kind", "dataset", "ok", "summary", "details"],
        );
        let mut cited = Vec::new();
        for e in h
            .events
            .iter()
            .filter(|e| h.in_period(e) && kinds.contains(&e.kind.as_str()))
        {
            cited.push(EventRef::from(e));
            table.row(
                vec![
                    at(e.started),
                    e.kind.to_string(),
                    e.dataset.clone().unwrap_or_default(),
                    if e.ok { "yes" } else { "no" }.into(),
                    e.summary.clone(),
                    compact(&e.details),
                ],
                None,
                vec![EventRef::from(e)],
            );
        }
        s.measured = format!(
            "{} events of kinds {} in the period",
            table.rows.len(),
            kinds.join(", ")
        );
        s.subject(Subject {
            name: "ledger".into(),
            verdict: Finding::Informational,
            target: s.target.clone(),
            measured: s.measured.clone(),
            reason: "reported as recorded; not judged by this version".into(),
            events: cited,
        });
        s.tables.push(table);
        s.judge_by_subjects();
        Ok(s)
    }
}
