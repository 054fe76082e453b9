//! Failover and failback (policy §5, region degradation and vendor outage).
//!
//! `failover` makes one of a primary's replicas take its writes: a replica shares the primary's
//! master key and chunking, so it can. It is a ledger event, and the state is the ledger's: a
//! failover is in force from its event until a `failback` of the same primary. While it is, the
//! workspace's effective configuration ([`apply`]) backs the primary's datasets up into the
//! replica, makes the primary's other replicas that replica's (so off-site copies continue where
//! another region exists), and leaves the primary alone.
//!
//! `failback` copies every snapshot made during the failover back to the primary (verbatim:
//! the same packs and snapshot objects), checks that the primary now holds every snapshot the
//! replica holds and reads back every pack it has, and only then records the `failback` that
//! switches writes back. A failback that cannot finish switches nothing.

use bulwark_ledger::{EventFilter, EventKind, Ledger};
use bulwark_ops::check::{ReadData, check};
use bulwark_ops::copy::copy;
use bulwark_ops::replica::status as replica_status;
use bulwark_policy::config::Config;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::Details;
use crate::workspace::Workspace;

/// A failover in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failover {
    /// The repository whose datasets failed over.
    pub primary: String,
    /// Where their backups go now.
    pub active: String,
    pub since: DateTime<Utc>,
    pub by: String,
    pub reason: String,
    /// The `failover` event.
    pub event: String,
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct FailoverDetails {
    pub primary: String,
    pub to: String,
    pub by: String,
    pub reason: String,
}

impl Details for FailoverDetails {
    const KIND: EventKind = EventKind::Failover;
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct FailbackDetails {
    pub primary: String,
    pub from: String,
    pub by: String,
    /// Snapshots made during the failover, now in the primary too.
    pub snapshots_copied: Vec<String>,
    pub packs_copied: u64,
    pub bytes_copied: u64,
    /// Packs of the primary read back and verified before switching.
    pub packs_checked: usize,
}

impl Details for FailbackDetails {
    const KIND: EventKind = EventKind::Failback;
}

/// The failovers in force, from the ledger.
pub fn in_force(ledger: &dyn Ledger) -> Result<Vec<Failover>> {
    let mut state: std::collections::BTreeMap<String, Failover> = Default::default();
    let mut events = ledger.events(&EventFilter::all().kind(EventKind::Failover))?;
    events.extend(ledger.events(&EventFilter::all().kind(EventKind::Failback))?);
    events.sort_by_key(|e| e.seq);
    for e in events.into_iter().filter(|e| e.ok) {
        match e.kind {
            EventKind::Failover => {
                let d = FailoverDetails::of(&e)?;
                state.insert(
                    d.primary.clone(),
                    Failover {
                        primary: d.primary,
                        active: d.to,
                        since: e.finished,
                        by: d.by,
                        reason: d.reason,
                        event: e.id,
                    },
                );
            }
            _ => {
                let d = FailbackDetails::of(&e)?;
                state.remove(&d.primary);
            }
        }
    }
    Ok(state.into_values().collect())
}

/// The configuration in force while `failovers` are.
pub fn apply(config: &Config, failovers: &[Failover]) -> Config {
    let mut c = config.clone();
    for f in failovers {
        for d in c
            .datasets
            .values_mut()
            .filter(|d| d.repository == f.primary)
        {
            d.repository = f.active.clone();
        }
        for r in c.repositories.values_mut() {
            if r.name == f.active {
                r.replica_of = None;
            } else if r.replica_of.as_deref() == Some(&f.primary) {
                r.replica_of = Some(f.active.clone());
            }
        }
    }
    c
}

fn who() -> String {
    format!(
        "{}@{}",
        bulwark_repo::user_name(),
        bulwark_repo::host_name()
    )
}

/// Make `to`, a replica, take its primary's writes. The replica must open with its credentials.
pub fn failover(ws: &Workspace, to: &str, reason: &str) -> Result<Failover> {
    let declared = &ws.policy().config;
    let r = declared
        .repositories
        .get(to)
        .ok_or_else(|| Error::Invalid(format!("no repository '{to}' in the policy file")))?;
    let primary = r.replica_of.clone().ok_or_else(|| {
        Error::Invalid(format!(
            "repository '{to}' is not a replica: fail over to one that names `replica_of`"
        ))
    })?;
    if let Some(f) = ws.failovers().iter().find(|f| f.primary == primary) {
        return Err(Error::Invalid(format!(
            "'{primary}' has failed over to '{}' already (since {}); run `bulwark failback` first",
            f.active,
            f.since.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    ws.repository(to)?;
    let details = FailoverDetails {
        primary: primary.clone(),
        to: to.to_string(),
        by: who(),
        reason: reason.to_string(),
    };
    let e = ws.ledger().append(
        details
            .event(format!(
                "failover: backups of '{primary}' go to '{to}' ({reason})"
            ))
            .repository(to)
            .config_hash(ws.config_hash()),
    )?;
    Ok(Failover {
        primary,
        active: to.to_string(),
        since: e.finished,
        by: details.by,
        reason: details.reason,
        event: e.id,
    })
}

/// Copy back what was made during the failover of `primary` (the only one, when `None`),
/// verify it, and switch writes back.
pub fn failback(ws: &Workspace, primary: Option<&str>) -> Result<FailbackDetails> {
    let f = match primary {
        Some(p) => ws.failovers().iter().find(|f| f.primary == p),
        None if ws.failovers().len() == 1 => ws.failovers().first(),
        None if ws.failovers().is_empty() => None,
        None => {
            return Err(Error::Invalid(
                "several failovers are in force: name the primary to fail back".into(),
            ));
        }
    }
    .ok_or_else(|| Error::Invalid("no failover is in force".into()))?
    .clone();
    let home = ws.repository(&f.primary)?;
    let active = ws.repository(&f.active)?;
    let copied = copy(&active, &home, &[], &bulwark_ops::Silent)
        .map_err(|e| Error::repository(&f.primary, e))?;
    let st = replica_status(&home, &active).map_err(|e| Error::repository(&f.primary, e))?;
    if !st.missing_on_primary.is_empty() {
        return Err(Error::Invalid(format!(
            "'{}' still lacks {} snapshots of '{}': not failing back",
            f.primary,
            st.missing_on_primary.len(),
            f.active
        )));
    }
    let checked = check(&home, ReadData::All, &bulwark_ops::Silent)
        .map_err(|e| Error::repository(&f.primary, e))?;
    if !checked.ok {
        return Err(Error::Invalid(format!(
            "'{}' does not check clean after the copy ({}): not failing back",
            f.primary,
            checked.errors.first().cloned().unwrap_or_default()
        )));
    }
    let details = FailbackDetails {
        primary: f.primary.clone(),
        from: f.active.clone(),
        by: who(),
        snapshots_copied: copied.snapshots_copied.clone(),
        packs_copied: copied.packs_copied,
        bytes_copied: copied.bytes_copied,
        packs_checked: checked.packs_read,
    };
    ws.ledger().append(
        details
            .event(format!(
                "failback: backups of '{}' go to it again; {} snapshots copied back from '{}'",
                f.primary,
                copied.snapshots_copied.len(),
                f.active
            ))
            .repository(&f.primary)
            .config_hash(ws.config_hash()),
    )?;
    Ok(details)
}
