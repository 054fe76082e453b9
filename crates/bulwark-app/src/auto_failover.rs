//! Automatic failover (`auto_failover = true` on a primary; policy §5, a vendor outage).
//!
//! A backup finds its repository *unavailable* when opening or writing it fails with a backend
//! error, or finds no repository where the policy file says. Each such backup is a failed
//! `backup` event with `unavailable` set. When the newest `auto_failover_after` backup events of
//! a primary are all unavailable ones (a success, or a failure of another kind, ends the streak),
//! the run fails over to the first of its replicas that opens, exactly as `bulwark failover`
//! would, tells whoever hears `failed_over`, and backs the dataset up into the replica at once.
//! Failback stays a human decision: it copies back and verifies before switching.

use bulwark_ledger::{EventFilter, EventKind};

use crate::error::{Error, FailureKind, Result};
use crate::events::{BackupDetails, Details};
use crate::failover::Failover;
use crate::workspace::Workspace;

/// Whether a failure means the repository could not be used at all.
pub fn unavailable(kind: FailureKind) -> bool {
    matches!(kind, FailureKind::Backend | FailureKind::NoRepository)
}

/// The backups in a row, newest first, that found `repository` unavailable.
pub fn streak(ws: &Workspace, repository: &str, longest: u32) -> Result<u32> {
    let events = ws.ledger().events(
        &EventFilter::all()
            .kind(EventKind::Backup)
            .repository(repository)
            .newest_first()
            .limit(longest as usize),
    )?;
    let mut n = 0;
    for e in events {
        if e.ok || !BackupDetails::of(&e)?.unavailable {
            break;
        }
        n += 1;
    }
    Ok(n)
}

/// Fail `primary` over when its policy asks for it and its streak is long enough: the failover
/// in force, or `None` when it is not (yet) due.
pub fn consider(ws: &Workspace, primary: &str) -> Result<Option<Failover>> {
    let Some(after) = ws
        .policy()
        .config
        .repositories
        .get(primary)
        .and_then(|r| r.auto_failover_after)
    else {
        return Ok(None);
    };
    if ws.failovers().iter().any(|f| f.primary == primary) || streak(ws, primary, after)? < after {
        return Ok(None);
    }
    let mut tried = Vec::new();
    for r in ws.policy().config.replicas_of(primary) {
        match ws.repository(&r.name) {
            Ok(_) => {
                let reason =
                    format!("automatic: {after} backups in a row found '{primary}' unavailable");
                return crate::failover::failover(ws, &r.name, &reason).map(Some);
            }
            Err(e) => tried.push(format!("{}: {e}", r.name)),
        }
    }
    Err(Error::Invalid(format!(
        "'{primary}' is unavailable and no replica opens to fail over to ({})",
        tried.join("; ")
    )))
}
