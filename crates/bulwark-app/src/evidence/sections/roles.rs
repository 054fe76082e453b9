//! §8 business continuity: every critical operational role of the policy file, its owner and
//! designated alternates. Judged: a critical role has an alternate who is not its owner.

use super::super::Module;
use super::super::history::History;
use super::super::model::{Finding, Mapping, Section, Subject, Table};
use crate::error::Result;

pub struct Roles;

impl Module for Roles {
    fn id(&self) -> &'static str {
        "roles"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let config = h.config();
        let mut s = Section::new(
            self.id(),
            "Roles and alternates",
            "§8: a designated alternate is identified for every critical operational role; service continuity does not depend on any single individual.",
            "every critical role has an alternate other than its owner",
            Mapping::new(&["§8"], &["A1.3"], &["A.5.29", "A.5.30"]),
        );
        let mut table = Table::new(
            "Roles in the policy file in force",
            &["role", "critical", "owner", "alternates"],
        );
        for r in config.roles.values() {
            let covered = r.alternates.iter().any(|a| a != &r.owner);
            let verdict = match (r.critical, covered) {
                (false, _) => Finding::Informational,
                (true, true) => Finding::Met,
                (true, false) => Finding::Breached,
            };
            table.row(
                vec![
                    r.name.clone(),
                    if r.critical { "yes" } else { "no" }.into(),
                    r.owner.clone(),
                    r.alternates.join(", "),
                ],
                Some(verdict),
                Vec::new(),
            );
            s.subject(Subject {
                name: r.name.clone(),
                verdict,
                target: "an alternate other than the owner".into(),
                measured: format!(
                    "owner {}, alternates [{}]",
                    r.owner,
                    r.alternates.join(", ")
                ),
                reason: if covered {
                    format!("{} covers for {}", r.alternates.join(" or "), r.owner)
                } else {
                    format!("only {} holds it", r.owner)
                },
                events: Vec::new(),
            });
        }
        s.measured = format!(
            "{} roles in policy file {}",
            config.roles.len(),
            &h.ws.config_hash()[..12]
        );
        s.tables.push(table);
        s.judge_by_subjects();
        if config.roles.is_empty() {
            s.verdict = Finding::Breached;
            s.reason = "the policy file names no critical role".into();
        }
        Ok(s)
    }
}
