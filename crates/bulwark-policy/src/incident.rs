//! Incidents as commitments (§7): the customer-update cadence of SEV-1 and SEV-2 incidents and
//! the post-mortem deadline in business days, judged `met` / `at_risk` / `breached` like every
//! other commitment, and the reminders the daemon sends before and after each deadline.
//!
//! The cadence: while a SEV-1/2 incident is unresolved, a customer-facing update is due at most
//! `status_update_every` after the last one (after the opening when none was posted). Every due
//! instant that passed without an update is a missed update; a slot that was missed starts the
//! next one, so an incident silent for 5 hours at a 2-hour cadence missed 2 updates. Resolution
//! ends the cadence and starts the post-mortem clock ([`IncidentFact::postmortem_due`]).
//!
//! Judgement looks at open incidents now, and at what happened in the last [`LOOKBACK`]: a
//! missed update or a late post-mortem keeps the commitment breached for that long after it, so
//! it shows in `status` rather than only in the ledger.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::compliance::{Aspect, Verdict};
use crate::config::Config;
use crate::continuity::IncidentPolicy;
use crate::duration::human;

/// How long a missed update or a late post-mortem keeps its commitment breached.
pub const LOOKBACK: chrono::Duration = chrono::Duration::days(30);

/// Where an incident stands, as Statuspage names the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Investigating => "investigating",
            IncidentState::Identified => "identified",
            IncidentState::Monitoring => "monitoring",
            IncidentState::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<IncidentState> {
        [
            IncidentState::Investigating,
            IncidentState::Identified,
            IncidentState::Monitoring,
            IncidentState::Resolved,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// An incident as the judgement needs it.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentFact {
    pub id: String,
    pub sev: u8,
    pub title: String,
    /// The role that owns it.
    pub owner: Option<String>,
    pub opened: DateTime<Utc>,
    pub resolved: Option<DateTime<Utc>>,
    /// When each customer-facing update was posted (the opening's and resolution's messages
    /// included), oldest first.
    pub customer_updates: Vec<DateTime<Utc>>,
    /// When the post-mortem was submitted.
    pub postmortem: Option<DateTime<Utc>>,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn late(d: chrono::Duration) -> String {
    human(d.to_std().unwrap_or_default())
}

impl IncidentFact {
    /// Whether the customer-update cadence applies (SEV-1 and SEV-2).
    pub fn has_cadence(&self) -> bool {
        IncidentPolicy::cadence_applies(self.sev)
    }

    /// When the next customer update is due; `None` once resolved or without a cadence.
    pub fn next_update_due(&self, every: Duration) -> Option<DateTime<Utc>> {
        if self.resolved.is_some() || !self.has_cadence() {
            return None;
        }
        let last = self
            .customer_updates
            .iter()
            .copied()
            .filter(|t| *t >= self.opened)
            .max()
            .unwrap_or(self.opened);
        Some(last + chrono(every))
    }

    /// The due instants that passed without a customer update, up to the resolution (or `now`).
    pub fn missed_updates(&self, every: Duration, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        if !self.has_cadence() || every.is_zero() {
            return out;
        }
        let every = chrono(every);
        let end = self.resolved.unwrap_or(now).min(now);
        let mut points: Vec<DateTime<Utc>> = self
            .customer_updates
            .iter()
            .copied()
            .filter(|t| *t > self.opened && *t <= end)
            .collect();
        points.sort();
        points.push(end);
        let mut anchor = self.opened;
        for p in points {
            let mut due = anchor + every;
            while due < p {
                out.push(due);
                due += every;
            }
            anchor = p;
        }
        out
    }

    /// The post-mortem deadline: `postmortem_within_business_days` business days after the
    /// resolution, on the policy file's calendar. `None` while unresolved or when its SEV needs
    /// none.
    pub fn postmortem_due(&self, config: &Config) -> Option<DateTime<Utc>> {
        let resolved = self.resolved?;
        if !config.continuity.incidents.needs_postmortem(self.sev) {
            return None;
        }
        Some(
            config
                .continuity
                .calendar
                .deadline(resolved, config.targets.postmortem_within_business_days),
        )
    }
}

/// What a reminder is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderKind {
    /// A customer update falls due soon: to the owner.
    UpdateDue,
    /// A customer update is overdue: to the owner's alternates.
    UpdateOverdue,
    /// A post-mortem's deadline is near: to the owner.
    PostmortemDue,
    /// A post-mortem is overdue: to the owner's alternates.
    PostmortemOverdue,
}

impl ReminderKind {
    /// Whether it goes past the owner to the alternates.
    pub fn escalates(self) -> bool {
        matches!(
            self,
            ReminderKind::UpdateOverdue | ReminderKind::PostmortemOverdue
        )
    }
}

/// A deadline someone should hear about. `due` names the episode: one reminder per deadline.
#[derive(Debug, Clone, Serialize)]
pub struct Reminder {
    pub incident: String,
    pub kind: ReminderKind,
    pub due: DateTime<Utc>,
    pub owner: Option<String>,
    pub message: String,
}

/// The reminders deadlines call for at `now`.
pub fn reminders(config: &Config, incidents: &[IncidentFact], now: DateTime<Utc>) -> Vec<Reminder> {
    let p = &config.continuity.incidents;
    let every = config.targets.status_update_every;
    let cal = &config.continuity.calendar;
    let mut out = Vec::new();
    for i in incidents {
        let mut push = |kind, due, message: String| {
            out.push(Reminder {
                incident: i.id.clone(),
                kind,
                due,
                owner: i.owner.clone(),
                message,
            })
        };
        if let Some(due) = i.next_update_due(every) {
            if now >= due {
                push(
                    ReminderKind::UpdateOverdue,
                    due,
                    format!(
                        "{} (SEV-{}) {}: the customer update due {} is {} overdue",
                        i.id,
                        i.sev,
                        i.title,
                        utc(due),
                        late(now - due)
                    ),
                );
            } else if due - now <= chrono(p.update_reminder_before) {
                push(
                    ReminderKind::UpdateDue,
                    due,
                    format!(
                        "{} (SEV-{}) {}: the next customer update is due by {} (in {})",
                        i.id,
                        i.sev,
                        i.title,
                        utc(due),
                        late(due - now)
                    ),
                );
            }
        }
        if i.postmortem.is_none()
            && let Some(due) = i.postmortem_due(config)
        {
            let left = cal.business_days_left(now, due);
            if now >= due {
                push(
                    ReminderKind::PostmortemOverdue,
                    due,
                    format!(
                        "{} (SEV-{}) {}: the post-mortem was due {} and has not been submitted",
                        i.id,
                        i.sev,
                        i.title,
                        utc(due)
                    ),
                );
            } else if left <= p.postmortem_reminder_business_days {
                push(
                    ReminderKind::PostmortemDue,
                    due,
                    format!(
                        "{} (SEV-{}) {}: the post-mortem is due by {} ({left} business days left)",
                        i.id,
                        i.sev,
                        i.title,
                        utc(due)
                    ),
                );
            }
        }
    }
    out
}

fn aspect(
    name: &'static str,
    verdict: Verdict,
    target: String,
    actual: String,
    reason: String,
) -> Aspect {
    Aspect {
        name,
        verdict,
        target,
        actual,
        reason,
    }
}

/// The customer-update cadence (`incident_updates`).
pub fn evaluate_updates(config: &Config, incidents: &[IncidentFact], now: DateTime<Utc>) -> Aspect {
    let every = config.targets.status_update_every;
    let target = format!("SEV-1/2: a customer update at least every {}", human(every));
    let open: Vec<&IncidentFact> = incidents
        .iter()
        .filter(|i| i.resolved.is_none() && i.has_cadence())
        .collect();
    let missed: Vec<(&IncidentFact, Vec<DateTime<Utc>>)> = incidents
        .iter()
        .map(|i| {
            let m: Vec<_> = i
                .missed_updates(every, now)
                .into_iter()
                .filter(|t| *t >= now - LOOKBACK)
                .collect();
            (i, m)
        })
        .filter(|(_, m)| !m.is_empty())
        .collect();
    let missed_count: usize = missed.iter().map(|(_, m)| m.len()).sum();
    let actual = format!(
        "{} open SEV-1/2, {missed_count} updates missed in {}d",
        open.len(),
        LOOKBACK.num_days()
    );
    let mut dues: Vec<(&IncidentFact, DateTime<Utc>)> = open
        .iter()
        .filter_map(|i| i.next_update_due(every).map(|d| (*i, d)))
        .collect();
    dues.sort_by_key(|(_, d)| *d);
    if let Some((i, due)) = dues.first()
        && now >= *due
    {
        return aspect(
            "incident_updates",
            Verdict::Breached,
            target,
            actual,
            format!(
                "{} (SEV-{}): the customer update due {} is {} overdue",
                i.id,
                i.sev,
                utc(*due),
                late(now - *due)
            ),
        );
    }
    if let Some((i, m)) = missed.first() {
        return aspect(
            "incident_updates",
            Verdict::Breached,
            target,
            actual,
            format!(
                "{} (SEV-{}) missed {} customer updates, the first due {}",
                i.id,
                i.sev,
                m.len(),
                utc(m[0])
            ),
        );
    }
    let soon = chrono(config.continuity.incidents.update_reminder_before);
    match dues.first() {
        Some((i, due)) if *due - now <= soon => aspect(
            "incident_updates",
            Verdict::AtRisk,
            target,
            actual,
            format!(
                "{} (SEV-{}): the next customer update is due {} (in {})",
                i.id,
                i.sev,
                utc(*due),
                late(*due - now)
            ),
        ),
        Some((i, due)) => aspect(
            "incident_updates",
            Verdict::Met,
            target,
            actual,
            format!("{}: next customer update due {}", i.id, utc(*due)),
        ),
        None => aspect(
            "incident_updates",
            Verdict::Met,
            target,
            actual,
            "no SEV-1/2 incident is open, and none missed an update".into(),
        ),
    }
}

/// Post-mortems within the business days after resolution (`postmortem`).
pub fn evaluate_postmortems(
    config: &Config,
    incidents: &[IncidentFact],
    now: DateTime<Utc>,
) -> Aspect {
    let days = config.targets.postmortem_within_business_days;
    let cal = &config.continuity.calendar;
    let sevs: Vec<String> = config
        .continuity
        .incidents
        .postmortem_for
        .iter()
        .map(|s| format!("SEV-{s}"))
        .collect();
    let target = format!(
        "{} post-mortem within {days} business days ({})",
        sevs.join("/"),
        cal.time_zone.name()
    );
    let mut overdue = Vec::new();
    let mut late_ones = Vec::new();
    let mut pending = Vec::new();
    for i in incidents {
        let Some(due) = i.postmortem_due(config) else {
            continue;
        };
        match i.postmortem {
            None if now >= due => overdue.push((i, due)),
            None => pending.push((i, due)),
            Some(at) if at > due && due >= now - LOOKBACK => late_ones.push((i, due, at)),
            Some(_) => {}
        }
    }
    pending.sort_by_key(|(_, d)| *d);
    let actual = format!(
        "{} pending, {} overdue, {} late in {}d",
        pending.len(),
        overdue.len(),
        late_ones.len(),
        LOOKBACK.num_days()
    );
    if let Some((i, due)) = overdue.first() {
        return aspect(
            "postmortem",
            Verdict::Breached,
            target,
            actual,
            format!(
                "{} (SEV-{}): the post-mortem was due {} and has not been submitted",
                i.id,
                i.sev,
                utc(*due)
            ),
        );
    }
    if let Some((i, due, at)) = late_ones.first() {
        return aspect(
            "postmortem",
            Verdict::Breached,
            target,
            actual,
            format!(
                "{} (SEV-{}): the post-mortem came {} after its deadline of {}",
                i.id,
                i.sev,
                late(*at - *due),
                utc(*due)
            ),
        );
    }
    match pending.first() {
        Some((i, due)) => {
            let left = cal.business_days_left(now, *due);
            let verdict = if left
                <= config
                    .continuity
                    .incidents
                    .postmortem_reminder_business_days
            {
                Verdict::AtRisk
            } else {
                Verdict::Met
            };
            aspect(
                "postmortem",
                verdict,
                target,
                actual,
                format!(
                    "{}: the post-mortem is due {} ({left} business days left)",
                    i.id,
                    utc(*due)
                ),
            )
        }
        None => aspect(
            "postmortem",
            Verdict::Met,
            target,
            actual,
            "every post-mortem due was submitted in time".into(),
        ),
    }
}
