//! Roles (§8): who holds each role of the policy file, who covers for them, how they are reached,
//! which open incidents they own, and whether the policy's role checks pass. The owner's channels
//! hear reminders before a deadline; the alternates' channels hear them once it has passed (the
//! escalation target).

use bulwark_policy::commitments::{Finding, role_findings};
use bulwark_policy::config::Role;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::incident::incidents;
use crate::workspace::Workspace;

#[derive(Debug, Clone, Serialize)]
pub struct RoleView {
    pub name: String,
    pub critical: bool,
    pub owner: String,
    pub alternates: Vec<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub on_call: Option<String>,
    /// Channels that reach the owner.
    pub channels: Vec<String>,
    /// Channels that reach the alternates: where an overdue reminder escalates to.
    pub escalation: Vec<String>,
    /// Open incidents this role owns.
    pub open_incidents: Vec<String>,
    /// Whether the incidents nobody assigned go to this role.
    pub default_incident_owner: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RolesReport {
    pub roles: Vec<RoleView>,
    /// The role checks of `policy check`, failed ones first.
    pub findings: Vec<Finding>,
    pub ok: bool,
}

/// The channels a reminder goes to: the owner's before the deadline, the alternates' after it
/// (falling back to the owner's when no alternate channel is declared, so nobody goes unasked).
pub fn reminder_channels(role: &Role, escalate: bool) -> &[String] {
    if escalate && !role.alternate_channels.is_empty() {
        &role.alternate_channels
    } else {
        &role.channels
    }
}

/// The roles, with the incidents each owns at `now` (opened by then, not resolved by then).
pub fn report(ws: &Workspace, now: DateTime<Utc>) -> Result<RolesReport> {
    let config = ws.config();
    let open = incidents(ws)?;
    let default_owner = crate::incident::default_owner(ws);
    let roles = config
        .roles
        .values()
        .map(|r| RoleView {
            name: r.name.clone(),
            critical: r.critical,
            owner: r.owner.clone(),
            alternates: r.alternates.clone(),
            email: r.email.clone(),
            phone: r.phone.clone(),
            on_call: r.on_call.clone(),
            channels: r.channels.clone(),
            escalation: reminder_channels(r, true).to_vec(),
            open_incidents: open
                .iter()
                .filter(|i| i.owner == r.name && i.opened <= now)
                .filter(|i| i.resolved.is_none_or(|t| t > now))
                .map(|i| i.id.clone())
                .collect(),
            default_incident_owner: default_owner.as_deref() == Some(r.name.as_str()),
        })
        .collect();
    let mut findings = role_findings(config);
    findings.sort_by_key(|f| f.ok);
    let ok = findings.iter().all(|f| f.ok);
    Ok(RolesReport {
        roles,
        findings,
        ok,
    })
}

/// The roles as one `role_change` event records them: every role's line of the topology
/// (`role NAME critical=.. owner=.. alternates=..`), and what changed since the previous record.
#[derive(serde::Deserialize, Serialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct RoleChangeDetails {
    pub roles: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl crate::events::Details for RoleChangeDetails {
    const KIND: bulwark_ledger::EventKind = bulwark_ledger::EventKind::RoleChange;
}

/// Record the roles when they differ from the last recorded ones (the first run records them
/// all): who holds a role and who covers is evidence, like the policy file's hash. Returns
/// whether an event was written.
pub fn record_changes(ws: &Workspace, now: DateTime<Utc>) -> Result<bool> {
    use crate::events::Details;
    let current: Vec<String> = crate::review::topology(ws)
        .lines
        .into_iter()
        .filter(|l| l.starts_with("role "))
        .collect();
    let last = ws
        .ledger()
        .last(&bulwark_ledger::EventKind::RoleChange, None, true)?;
    let before = match &last {
        Some(e) => RoleChangeDetails::of(e)?.roles,
        None => Vec::new(),
    };
    if before == current {
        return Ok(false);
    }
    let d = bulwark_policy::review::diff(&before, &current);
    let details = RoleChangeDetails {
        roles: current,
        added: d.added,
        removed: d.removed,
    };
    let summary = if last.is_none() {
        format!("{} roles recorded", details.roles.len())
    } else {
        format!(
            "roles changed: {} added, {} removed",
            details.added.len(),
            details.removed.len()
        )
    };
    ws.ledger().append(
        details
            .event(summary)
            .config_hash(ws.config_hash())
            .timed(now, now),
    )?;
    Ok(true)
}
