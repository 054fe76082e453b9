//! Remediation items: something found wrong with a dataset (a failed restore test, a missed
//! backup...) that someone has to put right. Opening and closing one are ledger events
//! (`remediation_opened`, `remediation_closed`), so the chain covers them; the backends also keep a
//! current-state table for quick queries, which `verify` checks against a replay of the events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::event::{Event, EventKind, NewEvent};
use crate::verify::{Problem, ProblemKind};

/// A remediation item as the events describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    /// The id of the `remediation_opened` event: the item's id.
    pub id: String,
    /// That event's sequence number.
    pub seq: u64,
    pub dataset: String,
    pub reason: String,
    /// The event that prompted it (a failed check, say), if any.
    pub event_id: Option<String>,
    /// When the opening event was recorded.
    #[serde(with = "crate::event::ts")]
    pub opened_at: DateTime<Utc>,
    pub closed: Option<Closure>,
}

impl Remediation {
    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }
}

/// How a remediation item was closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    /// The id of the `remediation_closed` event.
    pub id: String,
    pub seq: u64,
    #[serde(with = "crate::event::ts")]
    pub closed_at: DateTime<Utc>,
    /// The event that shows the problem fixed (a passing restore test, say), if any.
    pub closing_event_id: Option<String>,
    pub note: String,
}

/// What a remediation event does to the current state.
#[derive(Clone, Debug)]
pub(crate) enum Effect {
    Open(Remediation),
    Close { id: String, closure: Closure },
}

pub(crate) fn opening_event(dataset: &str, reason: &str, event_id: Option<&str>) -> NewEvent {
    NewEvent::new(
        EventKind::RemediationOpened,
        format!("remediation opened for {dataset}: {reason}"),
    )
    .dataset(dataset)
    .details(json!({ "reason": reason, "event_id": event_id }))
}

pub(crate) fn closing_event(
    item: &Remediation,
    closing_event_id: Option<&str>,
    note: &str,
) -> NewEvent {
    NewEvent::new(
        EventKind::RemediationClosed,
        format!("remediation closed for {}: {note}", item.dataset),
    )
    .dataset(item.dataset.clone())
    .details(json!({ "remediation": item.id, "closing_event_id": closing_event_id, "note": note }))
}

fn text(details: &Value, key: &str) -> Result<String, String> {
    details
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("details lack the string {key:?}"))
}

fn optional_text(details: &Value, key: &str) -> Result<Option<String>, String> {
    match details.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "details field {key:?} should be a string or null, not {other}"
        )),
    }
}

/// The effect of `event`, `None` for events that are not about remediation.
pub(crate) fn effect(event: &Event) -> Result<Option<Effect>, String> {
    match EventKind::parse(event.kind.as_str()) {
        EventKind::RemediationOpened => Ok(Some(Effect::Open(Remediation {
            id: event.id.clone(),
            seq: event.seq,
            dataset: event
                .dataset
                .clone()
                .ok_or("a remediation_opened event needs a dataset")?,
            reason: text(&event.details, "reason")?,
            event_id: optional_text(&event.details, "event_id")?,
            opened_at: event.recorded_at,
            closed: None,
        }))),
        EventKind::RemediationClosed => Ok(Some(Effect::Close {
            id: text(&event.details, "remediation")?,
            closure: Closure {
                id: event.id.clone(),
                seq: event.seq,
                closed_at: event.recorded_at,
                closing_event_id: optional_text(&event.details, "closing_event_id")?,
                note: text(&event.details, "note")?,
            },
        })),
        _ => Ok(None),
    }
}

/// Rebuilds the remediation state from the events, in order, noting events that make no sense
/// (closing an unknown or closed item).
#[derive(Default)]
pub(crate) struct Replay {
    pub items: BTreeMap<String, Remediation>,
}

impl Replay {
    pub fn feed(&mut self, event: &Event) -> Option<Problem> {
        let problem = |message: String| {
            Some(Problem::new(
                ProblemKind::RemediationMismatch,
                Some(event.seq),
                Some(event.id.clone()),
                message,
            ))
        };
        match effect(event) {
            Ok(None) => None,
            Err(e) => problem(format!("{} event is malformed: {e}", event.kind)),
            Ok(Some(Effect::Open(item))) => {
                self.items.insert(item.id.clone(), item);
                None
            }
            Ok(Some(Effect::Close { id, closure })) => match self.items.get_mut(&id) {
                None => problem(format!(
                    "closes remediation {id}, which no earlier event opened"
                )),
                Some(item) if item.closed.is_some() => {
                    problem(format!("closes remediation {id}, which was already closed"))
                }
                Some(item) => {
                    item.closed = Some(closure);
                    None
                }
            },
        }
    }
}
