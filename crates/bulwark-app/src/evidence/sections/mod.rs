//! The report's sections, in the order they appear. Each is one module implementing
//! [`Module`]: adding a section is adding a module and a line to [`modules`].

mod backups;
mod drills;
mod encryption;
mod failovers;
mod integrity;
mod ledger_kinds;
mod object_lock;
mod offsite;
mod remediation;
mod restore_tests;
mod retention;
mod roles;
mod summary;

pub use ledger_kinds::KINDS as UNJUDGED_KINDS;
pub use summary::{LatestRestoreTest, TestSummary, latest as latest_restore_tests};

use super::Module;

/// Every section, front first. The last lists the ledger's events of kinds no other section
/// claims.
pub fn modules() -> Vec<Box<dyn Module>> {
    let mut judged: Vec<Box<dyn Module>> = vec![
        Box::new(summary::Summary),
        Box::new(backups::Backups),
        Box::new(restore_tests::RestoreTests),
        Box::new(retention::Retention),
        Box::new(encryption::Encryption),
        Box::new(offsite::Offsite),
        Box::new(object_lock::ObjectLock),
        Box::new(drills::Drills),
        Box::new(failovers::Failovers),
        Box::new(remediation::Remediation),
        Box::new(roles::Roles),
    ];
    let claimed = judged.iter().flat_map(|m| m.kinds()).collect();
    judged.push(Box::new(ledger_kinds::LedgerKinds { claimed }));
    judged.push(Box::new(integrity::Integrity));
    judged
}
