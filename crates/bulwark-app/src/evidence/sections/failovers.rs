//! §5 failure modes: every failover of the period (a primary's backups sent to a replica while its
//! region is down) and the failback that ended it, with who did it, why, how long it lasted, and
//! what failback copied back and verified before switching.

use bulwark_ledger::{Event, EventKind};

use super::super::history::History;
use super::super::model::{EventRef, Finding, Mapping, Section, Subject, Table};
use super::super::{Module, at, seconds};
use crate::error::Result;
use crate::events::Details;
use crate::failover::{FailbackDetails, FailoverDetails};

pub struct Failovers;

/// A failover, and the failback that ended it (if any).
type Episode<'h> = (
    &'h Event,
    FailoverDetails,
    Option<(&'h Event, FailbackDetails)>,
);

impl Module for Failovers {
    fn id(&self) -> &'static str {
        "failovers"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let mut s = Section::new(
            self.id(),
            "Failovers and failbacks",
            "§5: region degradation: manual failover to a secondary region within the stated RTO; catastrophic loss: restoration from off-site backups.",
            "every failover ended by a failback that verified the primary first",
            Mapping::new(&["§5"], &["A1.2", "A1.3"], &["A.5.29", "A.5.30"]),
        );
        let mut table = Table::new(
            "Failovers",
            &[
                "primary", "to", "since", "until", "lasted", "by", "reason", "failback",
            ],
        );
        let mut events: Vec<&Event> = h
            .of(EventKind::Failover, None)
            .chain(h.of(EventKind::Failback, None))
            .filter(|e| e.ok)
            .collect();
        events.sort_by_key(|e| e.seq);
        // Each failover, with the failback that ended it (if any), in chain order.
        let mut open: Vec<(&Event, FailoverDetails)> = Vec::new();
        let mut episodes: Vec<Episode> = Vec::new();
        for e in events {
            if e.kind == EventKind::Failover {
                if let Ok(d) = FailoverDetails::of(e) {
                    open.push((e, d));
                }
            } else if let Ok(b) = FailbackDetails::of(e)
                && let Some(i) = open.iter().position(|(_, d)| d.primary == b.primary)
            {
                let (f, d) = open.remove(i);
                episodes.push((f, d, Some((e, b))));
            }
        }
        episodes.extend(open.into_iter().map(|(f, d)| (f, d, None)));
        let mut in_force_at_end = 0;
        let mut cited = Vec::new();
        for (f, d, back) in episodes {
            let ended = back.as_ref().map(|(e, _)| e.finished);
            if ended.is_some_and(|t| t < h.from) || f.started >= h.to {
                continue;
            }
            if back.is_none() {
                in_force_at_end += 1;
            }
            let mut refs = vec![EventRef::from(f)];
            refs.extend(back.as_ref().map(|(e, _)| EventRef::from(*e)));
            cited.extend(refs.clone());
            table.row(
                vec![
                    d.primary.clone(),
                    d.to.clone(),
                    at(f.finished),
                    ended.map_or("in force".into(), at),
                    seconds((ended.unwrap_or(h.to) - f.finished).num_seconds() as f64),
                    d.by.clone(),
                    d.reason.clone(),
                    back.as_ref().map_or("-".into(), |(_, b)| {
                        format!(
                            "{} snapshots copied back, {} packs of the primary read and verified",
                            b.snapshots_copied.len(),
                            b.packs_checked
                        )
                    }),
                ],
                Some(if back.is_some() {
                    Finding::Met
                } else {
                    Finding::AtRisk
                }),
                refs,
            );
        }
        let count = table.rows.len();
        let (verdict, reason) = if count == 0 {
            (
                Finding::Informational,
                "no failover in the period".to_string(),
            )
        } else if in_force_at_end > 0 {
            (
                Finding::AtRisk,
                format!("{in_force_at_end} failovers still in force at the period's end"),
            )
        } else {
            (
                Finding::Met,
                format!("{count} failovers, each ended by a verified failback"),
            )
        };
        s.subject(Subject {
            name: "failovers".into(),
            verdict,
            target: s.target.clone(),
            measured: format!("{count} failovers in the period"),
            reason,
            events: cited,
        });
        s.measured = s.subjects[0].measured.clone();
        s.tables.push(table);
        s.judge_by_subjects();
        Ok(s)
    }
}
