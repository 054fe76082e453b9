//! The policy file's continuity settings (§7–§9 of the BCP/DR policy): the business-day
//! `[calendar]` post-mortem deadlines count on, the `[incidents]` Bulwark opens itself and their
//! reminders, the `[review]` windows, and the `[status_page]` subscribers customer updates go
//! to. Parsed here and resolved into [`Continuity`]; `config` calls [`resolve`].
//!
//! Invariants enforced at parse time, with the line and column of the offending value:
//! - a time zone is an IANA name; holidays name a known country or are `YYYY-MM-DD` dates; a
//!   weekend leaves at least one business day;
//! - every role and channel named exists; a role's channels are notification channels;
//! - a status subscriber hears customer updates (`incident_update`) and nothing else, so no
//!   internal event can reach a customer through it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::calendar::{Calendar, Country, parse_weekday};
use crate::config::{ConfigError, Notification, NotifyEvent, Role};
use crate::duration::parse_duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalendar {
    time_zone: Option<Spanned<String>>,
    #[serde(default)]
    holidays: Vec<Spanned<String>>,
    weekend: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIncidents {
    owner: Option<Spanned<String>>,
    primary_unreachable_after: Option<Spanned<String>>,
    update_reminder_before: Option<Spanned<String>>,
    postmortem_for: Option<Spanned<Vec<u8>>>,
    postmortem_reminder_business_days: Option<u32>,
    severity: Option<Spanned<BTreeMap<String, Spanned<u8>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReview {
    after_sev1: Option<Spanned<String>>,
    after_change: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStatusPage {
    #[serde(default)]
    subscribers: Vec<Spanned<String>>,
}

/// What Bulwark opens an incident for by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A critical dataset's newest backup is older than the RPO.
    RpoBreached,
    /// The last disaster-recovery drill failed.
    DrillFailed,
    /// A primary repository could not be opened for longer than `primary_unreachable_after`.
    PrimaryUnreachable,
}

impl Cause {
    pub const ALL: [Cause; 3] = [
        Cause::RpoBreached,
        Cause::DrillFailed,
        Cause::PrimaryUnreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::RpoBreached => "rpo_breached",
            Cause::DrillFailed => "drill_failed",
            Cause::PrimaryUnreachable => "primary_unreachable",
        }
    }

    fn parse(s: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// How incidents are kept.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentPolicy {
    /// The role that owns the incidents Bulwark opens (default: the first critical role).
    pub owner: Option<String>,
    /// The SEV of each kind of incident Bulwark opens itself; a cause absent here opens none.
    pub severity: BTreeMap<Cause, u8>,
    pub primary_unreachable_after: Duration,
    /// The owner is reminded this long before a customer update falls due.
    pub update_reminder_before: Duration,
    /// The severities whose resolution needs a post-mortem.
    pub postmortem_for: Vec<u8>,
    /// The owner is reminded when this many business days (or fewer) are left for a post-mortem.
    pub postmortem_reminder_business_days: u32,
}

impl Default for IncidentPolicy {
    fn default() -> Self {
        IncidentPolicy {
            owner: None,
            severity: BTreeMap::from([
                (Cause::RpoBreached, 2),
                (Cause::DrillFailed, 3),
                (Cause::PrimaryUnreachable, 2),
            ]),
            primary_unreachable_after: Duration::from_secs(3600),
            update_reminder_before: Duration::from_secs(30 * 60),
            postmortem_for: vec![1, 2],
            postmortem_reminder_business_days: 2,
        }
    }
}

impl IncidentPolicy {
    /// Whether incidents of `sev` need customer updates at the policy's cadence (SEV-1, SEV-2).
    pub fn cadence_applies(sev: u8) -> bool {
        sev <= 2
    }

    pub fn needs_postmortem(&self, sev: u8) -> bool {
        self.postmortem_for.contains(&sev)
    }
}

/// When a plan review falls due besides yearly.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewPolicy {
    /// A review is due within this long after every SEV-1 resolves.
    pub after_sev1: Duration,
    /// ... and within this long after the topology changed.
    pub after_change: Duration,
}

impl Default for ReviewPolicy {
    fn default() -> Self {
        ReviewPolicy {
            after_sev1: Duration::from_secs(30 * 86_400),
            after_change: Duration::from_secs(30 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusPage {
    /// Channels that get every customer-facing update (and nothing else).
    pub subscribers: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Continuity {
    pub calendar: Calendar,
    pub incidents: IncidentPolicy,
    pub review: ReviewPolicy,
    pub status_page: StatusPage,
}

/// The sections as read, with their spans.
pub(crate) struct Sections<'a> {
    pub calendar: Option<&'a Spanned<RawCalendar>>,
    pub incidents: Option<&'a Spanned<RawIncidents>>,
    pub review: Option<&'a Spanned<RawReview>>,
    pub status_page: Option<&'a Spanned<RawStatusPage>>,
}

type Fail<'a> = &'a dyn Fn(usize, String) -> ConfigError;

fn duration(v: &Spanned<String>, key: &str, fail: Fail) -> Result<Duration, ConfigError> {
    parse_duration(v.get_ref()).map_err(|e| fail(v.span().start, format!("{key}: {e}")))
}

/// Resolve the sections against the roles and channels already read. `given_on` names the
/// channels whose `on` list the file wrote (the others hear every event by default).
pub(crate) fn resolve(
    s: Sections,
    roles: &BTreeMap<String, Role>,
    notifications: &mut BTreeMap<String, Notification>,
    given_on: &dyn Fn(&str) -> Option<usize>,
    role_at: &dyn Fn(&str) -> usize,
    fail: Fail,
) -> Result<Continuity, ConfigError> {
    let mut out = Continuity::default();
    if let Some(c) = s.calendar {
        out.calendar = calendar(c.get_ref(), fail)?;
    }
    if let Some(i) = s.incidents {
        let raw = i.get_ref();
        let p = &mut out.incidents;
        if let Some(o) = &raw.owner {
            if !roles.contains_key(o.get_ref()) {
                return Err(fail(
                    o.span().start,
                    format!("incidents.owner: no role named '{}'", o.get_ref()),
                ));
            }
            p.owner = Some(o.get_ref().clone());
        }
        if let Some(d) = &raw.primary_unreachable_after {
            p.primary_unreachable_after = duration(d, "incidents.primary_unreachable_after", fail)?;
        }
        if let Some(d) = &raw.update_reminder_before {
            p.update_reminder_before = duration(d, "incidents.update_reminder_before", fail)?;
        }
        if let Some(list) = &raw.postmortem_for {
            if let Some(bad) = list.get_ref().iter().find(|s| !(1..=4).contains(*s)) {
                return Err(fail(
                    list.span().start,
                    format!("incidents.postmortem_for: SEV-{bad} does not exist (1 to 4)"),
                ));
            }
            p.postmortem_for = list.get_ref().clone();
        }
        if let Some(n) = raw.postmortem_reminder_business_days {
            p.postmortem_reminder_business_days = n;
        }
        if let Some(table) = &raw.severity {
            for (cause, sev) in table.get_ref() {
                let Some(c) = Cause::parse(cause) else {
                    let known: Vec<_> = Cause::ALL.iter().map(|c| c.as_str()).collect();
                    return Err(fail(
                        sev.span().start,
                        format!(
                            "incidents.severity.{cause}: unknown cause (known: {})",
                            known.join(", ")
                        ),
                    ));
                };
                match *sev.get_ref() {
                    0 => {
                        p.severity.remove(&c);
                    }
                    n @ 1..=4 => {
                        p.severity.insert(c, n);
                    }
                    n => {
                        return Err(fail(
                            sev.span().start,
                            format!(
                                "incidents.severity.{cause}: SEV-{n} does not exist (1 to 4, or 0 for no incident)"
                            ),
                        ));
                    }
                }
            }
        }
    }
    if let Some(r) = s.review {
        let raw = r.get_ref();
        if let Some(d) = &raw.after_sev1 {
            out.review.after_sev1 = duration(d, "review.after_sev1", fail)?;
        }
        if let Some(d) = &raw.after_change {
            out.review.after_change = duration(d, "review.after_change", fail)?;
        }
    }
    for role in roles.values() {
        for name in role.channels.iter().chain(&role.alternate_channels) {
            if !notifications.contains_key(name) {
                return Err(fail(
                    role_at(&role.name),
                    format!(
                        "roles.{}: no notification channel named '{name}' (declare it under [notifications.{name}])",
                        role.name
                    ),
                ));
            }
        }
    }
    if let Some(sp) = s.status_page {
        for sub in &sp.get_ref().subscribers {
            let name = sub.get_ref();
            let Some(n) = notifications.get_mut(name) else {
                return Err(fail(
                    sub.span().start,
                    format!("status_page.subscribers: no notification channel named '{name}'"),
                ));
            };
            if let Some(at) = given_on(name)
                && n.on.iter().any(|e| *e != NotifyEvent::IncidentUpdate)
            {
                return Err(fail(
                    at,
                    format!(
                        "notifications.{name}.on: a status subscriber hears only customer updates (`on = [\"incident_update\"]`): internal events must not reach customers"
                    ),
                ));
            }
            n.on = vec![NotifyEvent::IncidentUpdate];
            out.status_page.subscribers.push(name.clone());
        }
    }
    Ok(out)
}

fn calendar(raw: &RawCalendar, fail: Fail) -> Result<Calendar, ConfigError> {
    let mut c = Calendar::default();
    if let Some(tz) = &raw.time_zone {
        c.time_zone = tz.get_ref().parse().map_err(|_| {
            fail(
                tz.span().start,
                format!(
                    "calendar.time_zone: '{}' is not an IANA time zone (e.g. \"Europe/London\", \"America/New_York\", \"UTC\")",
                    tz.get_ref()
                ),
            )
        })?;
    }
    for h in &raw.holidays {
        let text = h.get_ref();
        if let Some(country) = Country::parse(text) {
            if !c.countries.contains(&country) {
                c.countries.push(country);
            }
        } else if let Ok(d) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
            c.dates.insert(d, "holiday (policy file)".into());
        } else {
            let known: Vec<_> = Country::ALL.iter().map(|c| c.code()).collect();
            return Err(fail(
                h.span().start,
                format!(
                    "calendar.holidays: '{text}' is neither a date (YYYY-MM-DD) nor a known list ({})",
                    known.join(", ")
                ),
            ));
        }
    }
    if let Some(w) = &raw.weekend {
        let mut days = Vec::new();
        for d in w.get_ref() {
            let day = parse_weekday(d.get_ref()).ok_or_else(|| {
                fail(
                    d.span().start,
                    format!("calendar.weekend: '{}' is not a weekday", d.get_ref()),
                )
            })?;
            if !days.contains(&day) {
                days.push(day);
            }
        }
        if days.len() >= 7 {
            return Err(fail(
                w.span().start,
                "calendar.weekend: every day is weekend, so no business day would ever pass".into(),
            ));
        }
        c.weekend = days;
    }
    Ok(c)
}
