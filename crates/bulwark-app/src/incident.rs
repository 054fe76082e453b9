//! Incidents (§7) kept in the ledger: opened, updated and resolved by people (`bulwark incident`)
//! or by Bulwark itself when a commitment breaks ([`reconcile`]), each step one `incident`
//! event whose [`IncidentDetails`] name the incident and what happened to it.
//!
//! Protocol and invariants:
//! - An incident is the fold of its events in ledger order; every step carries the instant it
//!   happened (`at`, the event's `started`), which may be earlier than when it was recorded (a
//!   back-dated import). Steps are kept in `at` order; nothing happens before the opening.
//! - Ids are `INC-1`, `INC-2`... in the order incidents were opened in the ledger.
//! - An update is customer-facing unless it is an internal note. Customer-facing updates (and
//!   only they) count for the update cadence, reach the status page and go to the
//!   `[status_page]` subscribers (`incident_update` notices); internal notes never leave the
//!   ledger and the operators' own views.
//! - Owners are roles of the policy file, never people: who the person is follows the role.
//! - A resolved incident takes no more updates; its post-mortem clock starts at the resolution
//!   (see `bulwark_policy::incident`), and [`crate::postmortem`] records the post-mortem.
//! - An automatic incident names its cause and subject (a dataset, `drill`, a repository); at
//!   most one is open per cause and subject, and it resolves itself when the commitment is met
//!   again.

use std::collections::{BTreeMap, BTreeSet};

use bulwark_ledger::{Event, EventFilter, EventKind};
use bulwark_policy::commitments::roles_aspect;
use bulwark_policy::compliance::{Aspect, Verdict};
use bulwark_policy::config::{NotifyEvent, Tier};
use bulwark_policy::continuity::Cause;
use bulwark_policy::incident::{
    IncidentFact, IncidentState, Reminder, ReminderKind, evaluate_postmortems, evaluate_updates,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::Details;
use crate::notify::{self, Delivery, Notice};
use crate::status::StatusReport;
use crate::workspace::Workspace;

/// What one `incident` event did.
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    Open,
    Update,
    Resolve,
    /// The post-mortem was submitted.
    Postmortem,
    /// A customer update fell due and none came (recorded by the daemon, once per slot).
    MissedUpdate,
}

/// Where a post-mortem is: a link, or a file stored content-addressed beside the ledger.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct PostmortemRef {
    pub url: Option<String>,
    /// The stored copy's path (see [`crate::postmortem`]).
    pub stored: Option<String>,
    /// The submitted file's name.
    pub file_name: Option<String>,
    /// BLAKE3 (hex) of the file.
    pub blake3: Option<String>,
    pub bytes: u64,
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct IncidentDetails {
    /// `INC-n`.
    pub id: String,
    pub action: Action,
    pub title: Option<String>,
    pub sev: Option<u8>,
    /// The owning role.
    pub owner: Option<String>,
    pub state: Option<IncidentState>,
    pub message: Option<String>,
    /// An internal note: never shown to customers.
    pub internal: bool,
    /// When the next milestone (the fix, the next update) is expected, as told to customers.
    pub eta: Option<DateTime<Utc>>,
    pub cause: Option<Cause>,
    pub subject: Option<String>,
    /// For a missed update: the slot that passed.
    pub due: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<PostmortemRef>,
}

impl Details for IncidentDetails {
    const KIND: EventKind = EventKind::Incident;
}

/// One step of an incident's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Update {
    pub at: DateTime<Utc>,
    pub seq: u64,
    pub action: Action,
    pub state: IncidentState,
    pub message: Option<String>,
    pub internal: bool,
    pub eta: Option<DateTime<Utc>>,
}

impl Update {
    /// Whether customers see it: a message that is not an internal note.
    pub fn is_customer_facing(&self) -> bool {
        !self.internal
            && self.message.is_some()
            && matches!(self.action, Action::Open | Action::Update | Action::Resolve)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Postmortem {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub reference: PostmortemRef,
}

#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: String,
    pub title: String,
    pub sev: u8,
    pub owner: String,
    pub state: IncidentState,
    pub opened: DateTime<Utc>,
    pub resolved: Option<DateTime<Utc>>,
    pub eta: Option<DateTime<Utc>>,
    pub cause: Option<Cause>,
    pub subject: Option<String>,
    /// Every step, internal notes included, in `at` order.
    pub timeline: Vec<Update>,
    pub postmortem: Option<Postmortem>,
    /// The customer-update slots recorded as missed.
    pub missed_updates: Vec<DateTime<Utc>>,
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.resolved.is_none()
    }

    /// What customers may see: the customer-facing steps only.
    pub fn customer_updates(&self) -> impl Iterator<Item = &Update> {
        self.timeline.iter().filter(|u| u.is_customer_facing())
    }

    /// The incident as the policy's judgement needs it.
    pub fn fact(&self) -> IncidentFact {
        IncidentFact {
            id: self.id.clone(),
            sev: self.sev,
            title: self.title.clone(),
            owner: Some(self.owner.clone()),
            opened: self.opened,
            resolved: self.resolved,
            customer_updates: self.customer_updates().map(|u| u.at).collect(),
            postmortem: self.postmortem.as_ref().map(|p| p.at),
        }
    }
}

/// The incidents the ledger holds, oldest first.
pub fn incidents(ws: &Workspace) -> Result<Vec<Incident>> {
    let events = ws
        .ledger()
        .events(&EventFilter::all().kind(EventKind::Incident))?;
    fold(&events)
}

/// The incidents `events` (`incident` events, oldest first) describe.
pub fn fold(events: &[Event]) -> Result<Vec<Incident>> {
    let mut out: Vec<Incident> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for e in events {
        let d = IncidentDetails::of(e)?;
        let at = e.started;
        if d.action == Action::Open {
            index.insert(d.id.clone(), out.len());
            let state = d.state.unwrap_or(IncidentState::Investigating);
            out.push(Incident {
                id: d.id.clone(),
                title: d.title.clone().unwrap_or_default(),
                sev: d.sev.unwrap_or(3),
                owner: d.owner.clone().unwrap_or_default(),
                state,
                opened: at,
                resolved: None,
                eta: d.eta,
                cause: d.cause,
                subject: d.subject.clone(),
                timeline: vec![Update {
                    at,
                    seq: e.seq,
                    action: Action::Open,
                    state,
                    message: d.message.clone(),
                    internal: d.internal,
                    eta: d.eta,
                }],
                postmortem: None,
                missed_updates: Vec::new(),
            });
            continue;
        }
        // A step for an incident this ledger never opened is evidence of nothing: skip it.
        let Some(i) = index.get(&d.id).map(|i| &mut out[*i]) else {
            continue;
        };
        match d.action {
            Action::Open => unreachable!("handled above"),
            Action::Update | Action::Resolve => {
                let state = if d.action == Action::Resolve {
                    IncidentState::Resolved
                } else {
                    d.state.unwrap_or(i.state)
                };
                if let Some(sev) = d.sev {
                    i.sev = sev;
                }
                if let Some(owner) = &d.owner {
                    i.owner = owner.clone();
                }
                if d.eta.is_some() {
                    i.eta = d.eta;
                }
                i.timeline.push(Update {
                    at,
                    seq: e.seq,
                    action: d.action,
                    state,
                    message: d.message.clone(),
                    internal: d.internal,
                    eta: d.eta,
                });
                i.timeline.sort_by_key(|u| (u.at, u.seq));
                i.state = i.timeline.last().map_or(state, |u| u.state);
                if d.action == Action::Resolve {
                    i.resolved = Some(at);
                    i.eta = None;
                }
            }
            Action::Postmortem => {
                i.postmortem = Some(Postmortem {
                    at,
                    reference: d.postmortem.clone().unwrap_or_default(),
                });
            }
            Action::MissedUpdate => i.missed_updates.extend(d.due),
        }
    }
    Ok(out)
}

/// The incident named `id` (`INC-3`, or just `3`).
pub fn find(ws: &Workspace, id: &str) -> Result<Incident> {
    let want = normalize(id);
    incidents(ws)?
        .into_iter()
        .find(|i| i.id == want)
        .ok_or_else(|| {
            Error::request(
                format!("no incident {want} in the ledger"),
                "see `bulwark incident list` for the incidents",
            )
        })
}

fn normalize(id: &str) -> String {
    let id = id.trim();
    if id.chars().all(|c| c.is_ascii_digit()) {
        format!("INC-{id}")
    } else {
        id.to_ascii_uppercase()
    }
}

/// The owner of an automatic incident in a policy file without roles.
pub const UNASSIGNED: &str = "unassigned";

/// What to open.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub title: String,
    pub sev: u8,
    /// The owning role; the policy's incident owner (or its first critical role) when `None`.
    pub owner: Option<String>,
    pub state: IncidentState,
    /// The first customer-facing message (or internal note).
    pub message: Option<String>,
    pub internal: bool,
    pub eta: Option<DateTime<Utc>>,
    pub cause: Option<Cause>,
    pub subject: Option<String>,
    pub at: DateTime<Utc>,
}

/// What an incident step recorded and who was told.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub incident: Incident,
    pub deliveries: Vec<Delivery>,
}

/// The role that owns incidents nobody assigned.
pub fn default_owner(ws: &Workspace) -> Option<String> {
    let c = ws.config();
    c.continuity.incidents.owner.clone().or_else(|| {
        c.roles
            .values()
            .find(|r| r.critical)
            .or_else(|| c.roles.values().next())
            .map(|r| r.name.clone())
    })
}

fn check_owner(ws: &Workspace, owner: Option<&str>) -> Result<String> {
    match owner {
        Some(o) if ws.config().roles.contains_key(o) => Ok(o.to_string()),
        Some(o) => Err(Error::request(
            format!("no role named '{o}' in the policy file: an incident is owned by a role"),
            "see `bulwark roles` for the roles",
        )),
        None => default_owner(ws).ok_or_else(|| {
            Error::request(
                "the policy file declares no role to own the incident".into(),
                "declare one under [roles.NAME] (or pass --owner ROLE)",
            )
        }),
    }
}

fn check_sev(sev: u8) -> Result<()> {
    if (1..=4).contains(&sev) {
        Ok(())
    } else {
        Err(Error::request(
            format!("SEV-{sev} does not exist"),
            "severities are 1 (critical) to 4 (minor)",
        ))
    }
}

fn check_message(m: &Option<String>) -> Result<()> {
    match m {
        Some(m) if m.trim().is_empty() => Err(Error::request(
            "the message is empty".into(),
            "say what is known, what is being done and when the next update comes",
        )),
        _ => Ok(()),
    }
}

fn record(ws: &Workspace, d: &IncidentDetails, at: DateTime<Utc>, summary: String) -> Result<()> {
    let mut e = d.event(summary).config_hash(ws.config_hash()).timed(at, at);
    if let Some(s) = d
        .subject
        .as_ref()
        .filter(|_| d.cause == Some(Cause::RpoBreached))
    {
        e = e.dataset(s.clone());
    }
    ws.ledger().append(e)?;
    Ok(())
}

pub fn open(ws: &Workspace, req: &OpenRequest) -> Result<Outcome> {
    let owner = check_owner(ws, req.owner.as_deref())?;
    open_owned(ws, req, owner)
}

fn open_owned(ws: &Workspace, req: &OpenRequest, owner: String) -> Result<Outcome> {
    check_sev(req.sev)?;
    check_message(&req.message)?;
    if req.title.trim().is_empty() {
        return Err(Error::request(
            "the incident has no title".into(),
            "give it one line customers understand, e.g. \"Backups of app-db are delayed\"",
        ));
    }
    if req.state == IncidentState::Resolved {
        return Err(Error::request(
            "an incident cannot be opened resolved".into(),
            "open it, then `bulwark incident resolve`",
        ));
    }
    let id = format!("INC-{}", incidents(ws)?.len() + 1);
    let d = IncidentDetails {
        id: id.clone(),
        action: Action::Open,
        title: Some(req.title.trim().to_string()),
        sev: Some(req.sev),
        owner: Some(owner.clone()),
        state: Some(req.state),
        message: req.message.clone(),
        internal: req.internal,
        eta: req.eta,
        cause: req.cause,
        subject: req.subject.clone(),
        ..Default::default()
    };
    record(
        ws,
        &d,
        req.at,
        format!(
            "{id} opened (SEV-{}, {owner}): {}",
            req.sev,
            req.title.trim()
        ),
    )?;
    let incident = find(ws, &id)?;
    let mut deliveries = tell(
        ws,
        NotifyEvent::IncidentOpened,
        &incident,
        "opened",
        format!(
            "{id} (SEV-{}) opened, owned by {owner}: {}",
            req.sev, incident.title
        ),
    )?;
    if let Some(u) = incident.timeline.first().filter(|u| u.is_customer_facing()) {
        deliveries.extend(customer_notice(ws, &incident, u)?);
    }
    Ok(Outcome {
        incident,
        deliveries,
    })
}

/// What to add to an open incident.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    pub id: String,
    pub state: Option<IncidentState>,
    pub message: String,
    pub internal: bool,
    pub eta: Option<DateTime<Utc>>,
    pub sev: Option<u8>,
    pub owner: Option<String>,
    pub at: DateTime<Utc>,
}

fn open_incident(ws: &Workspace, id: &str, at: DateTime<Utc>) -> Result<Incident> {
    let i = find(ws, id)?;
    if let Some(r) = i.resolved {
        return Err(Error::request(
            format!(
                "{} was resolved at {}: it takes no more updates",
                i.id,
                r.format("%Y-%m-%d %H:%M UTC")
            ),
            "open a new incident if the problem is back",
        ));
    }
    if at < i.opened {
        return Err(Error::request(
            format!(
                "{} was opened at {}: nothing can happen to it before",
                i.id,
                i.opened.format("%Y-%m-%d %H:%M UTC")
            ),
            "check --at",
        ));
    }
    Ok(i)
}

pub fn update(ws: &Workspace, req: &UpdateRequest) -> Result<Outcome> {
    let i = open_incident(ws, &req.id, req.at)?;
    check_message(&Some(req.message.clone()))?;
    if let Some(s) = req.sev {
        check_sev(s)?;
    }
    let owner = match &req.owner {
        Some(o) => Some(check_owner(ws, Some(o))?),
        None => None,
    };
    if req.state == Some(IncidentState::Resolved) {
        return Err(Error::request(
            "an update does not resolve an incident".into(),
            "use `bulwark incident resolve`",
        ));
    }
    let d = IncidentDetails {
        id: i.id.clone(),
        action: Action::Update,
        state: req.state,
        message: Some(req.message.clone()),
        internal: req.internal,
        eta: req.eta,
        sev: req.sev,
        owner,
        ..Default::default()
    };
    let kind = if req.internal {
        "internal note"
    } else {
        "customer update"
    };
    record(ws, &d, req.at, format!("{}: {kind}", i.id))?;
    let incident = find(ws, &i.id)?;
    let mut deliveries = Vec::new();
    if !req.internal
        && let Some(u) = incident
            .timeline
            .iter()
            .rev()
            .find(|u| u.at == req.at && u.action == Action::Update)
    {
        deliveries = customer_notice(ws, &incident, u)?;
    }
    Ok(Outcome {
        incident,
        deliveries,
    })
}

pub fn resolve(
    ws: &Workspace,
    id: &str,
    message: Option<String>,
    at: DateTime<Utc>,
) -> Result<Outcome> {
    let i = open_incident(ws, id, at)?;
    check_message(&message)?;
    let d = IncidentDetails {
        id: i.id.clone(),
        action: Action::Resolve,
        state: Some(IncidentState::Resolved),
        message,
        cause: i.cause,
        subject: i.subject.clone(),
        ..Default::default()
    };
    record(ws, &d, at, format!("{} resolved", i.id))?;
    let incident = find(ws, &i.id)?;
    let mut deliveries = tell(
        ws,
        NotifyEvent::IncidentResolved,
        &incident,
        "resolved",
        format!(
            "{} (SEV-{}) resolved: {}",
            incident.id, incident.sev, incident.title
        ),
    )?;
    if let Some(u) = incident
        .timeline
        .last()
        .filter(|u| u.action == Action::Resolve && u.is_customer_facing())
    {
        deliveries.extend(customer_notice(ws, &incident, u)?);
    }
    Ok(Outcome {
        incident,
        deliveries,
    })
}

/// Record that the customer update due at `due` did not come. Once per slot.
pub fn record_missed_update(ws: &Workspace, id: &str, due: DateTime<Utc>) -> Result<bool> {
    let i = find(ws, id)?;
    if i.missed_updates.contains(&due) {
        return Ok(false);
    }
    let d = IncidentDetails {
        id: i.id.clone(),
        action: Action::MissedUpdate,
        due: Some(due),
        ..Default::default()
    };
    let summary = format!(
        "{}: the customer update due {} did not come",
        i.id,
        due.format("%Y-%m-%d %H:%M UTC")
    );
    ws.ledger().append(
        d.event(summary)
            .config_hash(ws.config_hash())
            .timed(due, due)
            .ok(false),
    )?;
    Ok(true)
}

/// A notice to the channels that hear `event` (the operators'), about one step of `i`.
fn tell(
    ws: &Workspace,
    event: NotifyEvent,
    i: &Incident,
    step: &str,
    message: String,
) -> Result<Vec<Delivery>> {
    let mut n = Notice::new(event, format!("{}/{step}", i.id), message);
    n.at = i.timeline.last().map_or(i.opened, |u| u.at);
    if let Some(s) = &i.subject {
        n = n.dataset(s.clone());
    }
    notify::send(ws, &n)
}

/// A customer-facing step, to the status subscribers (and every channel that hears
/// `incident_update`). The text is what customers read: the title, the state, the message, the
/// ETA; never an internal note, never the owner.
fn customer_notice(ws: &Workspace, i: &Incident, u: &Update) -> Result<Vec<Delivery>> {
    let mut text = format!(
        "{}: {} [{}] {}",
        i.title,
        u.at.format("%Y-%m-%d %H:%M UTC"),
        u.state.as_str(),
        u.message.as_deref().unwrap_or_default()
    );
    if let Some(eta) = u.eta {
        text.push_str(&format!(" (ETA {})", eta.format("%Y-%m-%d %H:%M UTC")));
    }
    let mut n = Notice::new(
        NotifyEvent::IncidentUpdate,
        format!("{}/{}", i.id, u.seq),
        text,
    );
    n.at = u.at;
    notify::send(ws, &n)
}

/// What breaks the commitments automatic incidents watch, as judged at one instant.
#[derive(Debug, Clone, Default)]
pub struct Breaks {
    /// Critical datasets whose recovery point is breached.
    pub past_rpo: BTreeSet<String>,
    /// The last drill failed.
    pub drill_failed: bool,
    /// Primary repositories that could not be read.
    pub unreachable: BTreeSet<String>,
}

impl Breaks {
    /// From a status report (the daemon judges one anyway).
    pub fn of(ws: &Workspace, report: &StatusReport) -> Breaks {
        let config = ws.config();
        Breaks {
            past_rpo: report
                .datasets
                .iter()
                .filter(|(name, d)| {
                    config
                        .datasets
                        .get(*name)
                        .is_some_and(|d| d.tier == Tier::Critical)
                        && d.status
                            .aspects
                            .iter()
                            .any(|a| a.name == "rpo" && a.verdict == Verdict::Breached)
                })
                .map(|(name, _)| name.clone())
                .collect(),
            drill_failed: report
                .platform
                .facts
                .last_drill
                .as_ref()
                .is_some_and(|d| !d.passed),
            unreachable: unreachable_primaries(ws),
        }
    }

    /// Measured afresh: the critical datasets' recovery points and the last drill only, not the
    /// whole status (no ledger verification).
    pub fn measure(ws: &Workspace, now: DateTime<Utc>) -> Result<Breaks> {
        let config = ws.config();
        let mut times = BTreeMap::new();
        let mut unreachable = BTreeSet::new();
        for d in config
            .datasets
            .values()
            .filter(|d| d.tier == Tier::Critical)
        {
            if times.contains_key(&d.repository) || unreachable.contains(&d.repository) {
                continue;
            }
            match ws.repository(&d.repository).and_then(|r| {
                crate::status::dataset_times(&r).map_err(|e| Error::repository(&d.repository, e))
            }) {
                Ok(t) => {
                    times.insert(d.repository.clone(), t);
                }
                Err(_) => {
                    unreachable.insert(d.repository.clone());
                }
            }
        }
        let mut past_rpo = BTreeSet::new();
        for d in config
            .datasets
            .values()
            .filter(|d| d.tier == Tier::Critical)
        {
            let facts = crate::status::facts(config, d, &times, ws.ledger().as_ref())?;
            let st = bulwark_policy::compliance::evaluate(config, d, &facts, now);
            if st
                .aspects
                .iter()
                .any(|a| a.name == "rpo" && a.verdict == Verdict::Breached)
            {
                past_rpo.insert(d.name.clone());
            }
        }
        let (last_drill, _) = crate::drill::drill_facts(ws)?;
        unreachable.extend(unreachable_primaries(ws));
        Ok(Breaks {
            past_rpo,
            drill_failed: last_drill.is_some_and(|d| !d.passed),
            unreachable,
        })
    }
}

fn unreachable_primaries(ws: &Workspace) -> BTreeSet<String> {
    ws.config()
        .repositories
        .values()
        .filter(|r| r.replica_of.is_none())
        .filter(|r| ws.repository(&r.name).is_err())
        .map(|r| r.name.clone())
        .collect()
}

/// Open and resolve the automatic incidents `breaks` call for at `now`: a critical dataset past
/// its RPO, a failed drill, a primary repository unreachable for longer than
/// `incidents.primary_unreachable_after` (since the last event that reached it). Returns what it
/// opened or resolved.
pub fn reconcile(ws: &Workspace, breaks: &Breaks, now: DateTime<Utc>) -> Result<Vec<Outcome>> {
    let config = ws.config();
    let policy = &config.continuity.incidents;
    let mut breaking: BTreeMap<(Cause, String), String> = BTreeMap::new();
    for name in &breaks.past_rpo {
        breaking.insert(
            (Cause::RpoBreached, name.clone()),
            format!("Backups of {name} are older than the recovery point objective"),
        );
    }
    if breaks.drill_failed {
        breaking.insert(
            (Cause::DrillFailed, "drill".into()),
            "The disaster-recovery drill failed".into(),
        );
    }
    let after = chrono::Duration::from_std(policy.primary_unreachable_after)
        .unwrap_or(chrono::Duration::MAX);
    for name in &breaks.unreachable {
        let reached = ws
            .ledger()
            .events(
                &EventFilter::all()
                    .repository(name.clone())
                    .ok(true)
                    .newest_first()
                    .limit(1),
            )?
            .first()
            .map(|e| e.finished);
        // Never reached: nothing says since when, and `run` reports it as a failure anyway.
        if let Some(since) = reached
            && now - since >= after
        {
            breaking.insert(
                (Cause::PrimaryUnreachable, name.clone()),
                format!("Repository {name} cannot be reached"),
            );
        }
    }
    let open: Vec<Incident> = incidents(ws)?
        .into_iter()
        .filter(|i| i.is_open() && i.cause.is_some())
        .collect();
    let mut out = Vec::new();
    for i in &open {
        let key = (
            i.cause.expect("filtered"),
            i.subject.clone().unwrap_or_default(),
        );
        if !breaking.contains_key(&key) {
            out.push(resolve(
                ws,
                &i.id,
                Some("The commitment is met again; Bulwark closed this incident.".into()),
                now.max(i.opened),
            )?);
        }
    }
    for ((cause, subject), title) in breaking {
        let Some(sev) = policy.severity.get(&cause) else {
            continue;
        };
        if open
            .iter()
            .any(|i| i.cause == Some(cause) && i.subject.as_deref() == Some(subject.as_str()))
        {
            continue;
        }
        out.push(open_automatic(ws, cause, subject, title, *sev, now)?);
    }
    Ok(out)
}

fn open_automatic(
    ws: &Workspace,
    cause: Cause,
    subject: String,
    title: String,
    sev: u8,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    // Bulwark opens the incident even when no role could own it: a breach must not go unrecorded.
    let owner = default_owner(ws).unwrap_or_else(|| UNASSIGNED.to_string());
    open_owned(
        ws,
        &OpenRequest {
            title,
            sev,
            owner: None,
            state: IncidentState::Investigating,
            message: Some(
                "We are investigating. Bulwark opened this incident automatically.".into(),
            ),
            internal: false,
            eta: None,
            cause: Some(cause),
            subject: Some(subject),
            at: now,
        },
        owner,
    )
}

/// The continuity commitments as `status` judges them: the customer-update cadence, the
/// post-mortems, the roles and the plan review.
pub fn aspects(ws: &Workspace, now: DateTime<Utc>) -> Result<Vec<Aspect>> {
    let config = ws.config();
    let facts: Vec<IncidentFact> = incidents(ws)?.iter().map(Incident::fact).collect();
    Ok(vec![
        evaluate_updates(config, &facts, now),
        evaluate_postmortems(config, &facts, now),
        roles_aspect(config),
        crate::review::aspect(ws, now)?,
    ])
}

/// After a run: judge the commitments at `now` and open or resolve the automatic incidents.
/// Only the causes the policy gives a SEV are looked at, so a policy without automatic
/// incidents costs nothing here.
pub fn after_run(ws: &Workspace, now: DateTime<Utc>) -> Vec<String> {
    if ws.config().continuity.incidents.severity.is_empty() {
        return Vec::new();
    }
    let changed = Breaks::measure(ws, now).and_then(|b| reconcile(ws, &b, now));
    // The run is done and recorded: a failure to judge incidents is told, not fatal.
    let changed = match changed {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("automatic incidents were not updated: {e}");
            return vec![format!("automatic incidents were not updated: {e}")];
        }
    };
    changed
        .into_iter()
        .map(|o| {
            let i = o.incident;
            match i.resolved {
                Some(_) => format!("{} resolved: {}", i.id, i.title),
                None => format!("{} opened (SEV-{}, {}): {}", i.id, i.sev, i.owner, i.title),
            }
        })
        .collect()
}

/// What [`remind`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reminded {
    /// Each reminder judged due, with the channels it went to (`[]`: the role has none).
    pub reminders: Vec<(Reminder, Vec<String>)>,
    pub deliveries: Vec<Delivery>,
    /// Customer-update slots newly recorded as missed, per incident.
    pub missed: Vec<(String, DateTime<Utc>)>,
}

/// The daemon's duty at `now`: remind each open or unreviewed incident's owner before an update
/// or post-mortem is due, escalate to the alternates once it is overdue, and record every
/// customer-update slot that passed without one. A reminder's key is its incident, kind and
/// deadline, so each goes out once per episode however often this runs.
pub fn remind(ws: &Workspace, now: DateTime<Utc>) -> Result<Reminded> {
    let config = ws.config();
    let all = incidents(ws)?;
    let facts: Vec<IncidentFact> = all.iter().map(Incident::fact).collect();
    let mut out = Reminded::default();
    for (i, f) in all.iter().zip(&facts) {
        for due in f.missed_updates(config.targets.status_update_every, now) {
            if !i.missed_updates.contains(&due) && record_missed_update(ws, &i.id, due)? {
                out.missed.push((i.id.clone(), due));
            }
        }
    }
    for r in bulwark_policy::incident::reminders(config, &facts, now) {
        let channels = r
            .owner
            .as_ref()
            .and_then(|o| config.roles.get(o))
            .map(|role| crate::roles::reminder_channels(role, r.kind.escalates()).to_vec())
            .unwrap_or_default();
        let event = match r.kind {
            ReminderKind::UpdateDue => NotifyEvent::UpdateDue,
            ReminderKind::UpdateOverdue => NotifyEvent::UpdateOverdue,
            ReminderKind::PostmortemDue => NotifyEvent::PostmortemDue,
            ReminderKind::PostmortemOverdue => NotifyEvent::PostmortemOverdue,
        };
        if !channels.is_empty() {
            let mut n = Notice::new(
                event,
                format!("{}/{}", r.incident, r.due.to_rfc3339()),
                format!("bulwark: {}", r.message),
            );
            n.at = now;
            out.deliveries
                .extend(notify::Notifier::default().send_to(ws, &n, &channels)?);
        }
        out.reminders.push((r, channels));
    }
    Ok(out)
}

/// How long a resolved incident stays on the public status page.
pub const RESOLVED_SHOWN: chrono::Duration = chrono::Duration::days(7);

/// One customer-facing update.
#[derive(Debug, Clone, Serialize)]
pub struct PublicUpdate {
    pub at: DateTime<Utc>,
    pub state: IncidentState,
    pub message: String,
    pub eta: Option<DateTime<Utc>>,
}

/// An incident as customers see it: its customer-facing updates only (never an internal note,
/// the owner or the cause), and the status-page components its subject touches.
#[derive(Debug, Clone, Serialize)]
pub struct PublicIncident {
    pub id: String,
    pub title: String,
    pub state: IncidentState,
    /// `[components.NAME]` whose datasets include the incident's subject.
    pub components: Vec<String>,
    pub opened: DateTime<Utc>,
    pub resolved: Option<DateTime<Utc>>,
    pub eta: Option<DateTime<Utc>>,
    /// Newest first.
    pub updates: Vec<PublicUpdate>,
}

impl PublicIncident {
    pub fn of(config: &bulwark_policy::config::Config, i: &Incident) -> PublicIncident {
        let mut updates: Vec<PublicUpdate> = i
            .customer_updates()
            .map(|u| PublicUpdate {
                at: u.at,
                state: u.state,
                message: u.message.clone().unwrap_or_default(),
                eta: u.eta,
            })
            .collect();
        updates.reverse();
        PublicIncident {
            id: i.id.clone(),
            title: i.title.clone(),
            state: i.state,
            components: config
                .components
                .values()
                .filter(|c| i.subject.as_ref().is_some_and(|s| c.datasets.contains(s)))
                .map(|c| c.name.clone())
                .collect(),
            opened: i.opened,
            resolved: i.resolved,
            eta: i.eta,
            updates,
        }
    }
}

/// What customers see at `now`: open incidents (newest first), then those resolved within
/// `resolved_shown`.
pub fn public(
    config: &bulwark_policy::config::Config,
    all: &[Incident],
    now: DateTime<Utc>,
    resolved_shown: chrono::Duration,
) -> Vec<PublicIncident> {
    let mut v: Vec<PublicIncident> = all
        .iter()
        .filter(|i| i.opened <= now)
        .filter(|i| i.resolved.is_none_or(|r| now - r <= resolved_shown))
        .map(|i| PublicIncident::of(config, i))
        .collect();
    v.sort_by_key(|i| (i.resolved.is_some(), std::cmp::Reverse(i.opened)));
    v
}
