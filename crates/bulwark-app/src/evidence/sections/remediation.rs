//! §4 remediation: every remediation item open during the period (a failed restore test or drill
//! opens one; the passing re-test closes it), when it was opened and closed by the events that
//! prompted and closed it, and how long it stayed open.

use chrono::{DateTime, Utc};

use super::super::history::History;
use super::super::model::{EventRef, Finding, Mapping, Section, Subject, Table};
use super::super::{Module, at, seconds};
use crate::error::Result;

pub struct Remediation;

impl Module for Remediation {
    fn id(&self) -> &'static str {
        "remediation"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let mut s = Section::new(
            self.id(),
            "Remediation of failures",
            "§4: failures trigger remediation tickets and re-testing.",
            "every failure remediated: its item closed by a passing re-test",
            Mapping::new(&["§4"], &["A1.3"], &["A.8.13", "A.5.29"]),
        );
        let mut table = Table::new(
            "Remediation items",
            &["opened", "subject", "reason", "closed", "open for", "note"],
        );
        let mut still_open = Vec::new();
        let mut cited = Vec::new();
        for r in &h.remediations {
            // The prompting and closing events carry the run's clock; the items' own records
            // carry the moment they were written.
            let prompt = r.event_id.as_deref().and_then(|id| h.event(id));
            let opened: DateTime<Utc> = prompt.map_or(r.opened_at, |e| e.finished);
            let closing = r.closed.as_ref().map(|c| {
                let by = c.closing_event_id.as_deref().and_then(|id| h.event(id));
                (by.map_or(c.closed_at, |e| e.finished), by, c)
            });
            let closed_at = closing.as_ref().map(|(t, _, _)| *t).filter(|t| *t < h.to);
            if opened >= h.to || closed_at.is_some_and(|t| t < h.from) {
                continue;
            }
            let mut refs = vec![EventRef {
                seq: r.seq,
                id: r.id.clone(),
            }];
            refs.extend(prompt.map(EventRef::from));
            if let Some((_, by, c)) = &closing
                && closed_at.is_some()
            {
                refs.push(EventRef {
                    seq: c.seq,
                    id: c.id.clone(),
                });
                refs.extend(by.map(EventRef::from));
            }
            if closed_at.is_none() {
                still_open.push(r.dataset.clone());
            }
            cited.extend(refs.clone());
            table.row(
                vec![
                    at(opened),
                    r.dataset.clone(),
                    r.reason.clone(),
                    closed_at.map_or("open".into(), at),
                    seconds((closed_at.unwrap_or(h.to) - opened).num_seconds().max(0) as f64),
                    closing
                        .as_ref()
                        .filter(|_| closed_at.is_some())
                        .map_or(String::new(), |(_, _, c)| c.note.clone()),
                ],
                Some(if closed_at.is_some() {
                    Finding::Met
                } else {
                    Finding::AtRisk
                }),
                refs,
            );
        }
        let count = table.rows.len();
        let (verdict, reason) = if !still_open.is_empty() {
            (
                Finding::AtRisk,
                format!(
                    "{} items still open at the period's end ({})",
                    still_open.len(),
                    still_open.join(", ")
                ),
            )
        } else if count == 0 {
            (Finding::Met, "no failure needed remediation".to_string())
        } else {
            (
                Finding::Met,
                format!("{count} items, every one closed by a passing re-test or drill"),
            )
        };
        s.subject(Subject {
            name: "remediation".into(),
            verdict,
            target: s.target.clone(),
            measured: format!("{count} items open during the period"),
            reason,
            events: cited,
        });
        s.measured = s.subjects[0].measured.clone();
        s.tables.push(table);
        s.judge_by_subjects();
        Ok(s)
    }
}
