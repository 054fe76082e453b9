//! The append logic both backends share, written against a transaction that holds the ledger's
//! write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: the head row, SELECT ... FOR UPDATE).

use chrono::Utc;

use crate::error::{Error, Result};
use crate::event::{Event, NewEvent, parse_time};
use crate::remediation::{self, Closure, Effect, Remediation};
use crate::verify::{Anchor, Columns, verify_jsonl};

/// An event ready to store: the event, its hashed text and its columns.
pub(crate) struct Prepared {
    pub event: Event,
    pub canonical: String,
    pub columns: Columns,
}

impl Prepared {
    pub fn new(event: Event, canonical: String) -> Prepared {
        let columns = Columns::of(&event);
        Prepared {
            event,
            canonical,
            columns,
        }
    }
}

/// One write transaction of a backend.
pub(crate) trait Store {
    /// The head record, locked until the transaction ends. `None` when it is missing.
    fn lock_head(&mut self) -> Result<Option<Anchor>>;
    /// The stored event with the highest seq (its seq column and id).
    fn last_row(&mut self) -> Result<Option<Anchor>>;
    /// The id of the event stored at `seq`.
    fn id_at(&mut self, seq: u64) -> Result<Option<String>>;
    fn event_exists(&mut self, id: &str) -> Result<bool>;
    fn insert(&mut self, p: &Prepared) -> Result<()>;
    fn set_head(&mut self, head: &Anchor) -> Result<()>;
    fn remediation(&mut self, id: &str) -> Result<Option<Remediation>>;
    fn open_item(&mut self, item: &Remediation) -> Result<()>;
    fn close_item(&mut self, id: &str, closure: &Closure) -> Result<()>;
}

/// The head, after checking that it agrees with the stored events.
///
/// Stored events beyond the head, or a different last id, mean the ledger was altered outside
/// Bulwark: appending is refused. Fewer stored events than the head says (the newest were
/// removed) does not stop appends: they continue after the head, so the gap stays visible.
fn checked_head(store: &mut dyn Store) -> Result<Anchor> {
    let head = store
        .lock_head()?
        .ok_or_else(|| Error::Damaged("the head record is missing".into()))?;
    let last = store.last_row()?.unwrap_or_else(Anchor::empty);
    if last.seq > head.seq {
        return Err(Error::Damaged(format!(
            "events are stored up to seq {} but the head record says {}",
            last.seq, head.seq
        )));
    }
    if last.seq == head.seq && last.id != head.id {
        return Err(Error::Damaged(format!(
            "the last event (seq {}) is not the one the head record names",
            last.seq
        )));
    }
    Ok(head)
}

fn store_event(store: &mut dyn Store, p: &Prepared) -> Result<()> {
    store.insert(p)?;
    match remediation::effect(&p.event).map_err(Error::Invalid)? {
        None => {}
        Some(Effect::Open(item)) => store.open_item(&item)?,
        Some(Effect::Close { id, closure }) => store.close_item(&id, &closure)?,
    }
    store.set_head(&Anchor {
        seq: p.event.seq,
        id: p.event.id.clone(),
    })
}

/// Appends after `head` (from [`checked_head`], which took the lock), without the kind check
/// (remediation events come through here too).
fn append_any(store: &mut dyn Store, head: Anchor, new: NewEvent, host: &str) -> Result<Event> {
    let (event, canonical) = Event::seal(new, head.seq + 1, head.id, Utc::now(), host.to_string());
    store_event(store, &Prepared::new(event.clone(), canonical))?;
    Ok(event)
}

pub(crate) fn append(store: &mut dyn Store, new: NewEvent, host: &str) -> Result<Event> {
    if new.kind.is_remediation() {
        return Err(Error::Invalid(format!(
            "{} events are recorded with open_remediation / close_remediation",
            new.kind
        )));
    }
    let head = checked_head(store)?;
    append_any(store, head, new, host)
}

fn check_event(store: &mut dyn Store, id: Option<&str>) -> Result<()> {
    match id {
        Some(id) if !store.event_exists(id)? => Err(Error::EventNotFound(id.to_string())),
        _ => Ok(()),
    }
}

pub(crate) fn open_remediation(
    store: &mut dyn Store,
    host: &str,
    dataset: &str,
    reason: &str,
    event_id: Option<&str>,
) -> Result<Remediation> {
    if dataset.is_empty() {
        return Err(Error::Invalid("a remediation item needs a dataset".into()));
    }
    let head = checked_head(store)?;
    check_event(store, event_id)?;
    let event = append_any(
        store,
        head,
        remediation::opening_event(dataset, reason, event_id),
        host,
    )?;
    match remediation::effect(&event) {
        Ok(Some(Effect::Open(item))) => Ok(item),
        _ => unreachable!("an opening event opens an item"),
    }
}

pub(crate) fn close_remediation(
    store: &mut dyn Store,
    host: &str,
    id: &str,
    closing_event_id: Option<&str>,
    note: &str,
) -> Result<Remediation> {
    // Lock first: two hosts closing the same item must see each other's close.
    let head = checked_head(store)?;
    let mut item = store
        .remediation(id)?
        .ok_or_else(|| Error::RemediationNotFound(id.to_string()))?;
    if !item.is_open() {
        return Err(Error::RemediationClosed(id.to_string()));
    }
    check_event(store, closing_event_id)?;
    let event = append_any(
        store,
        head,
        remediation::closing_event(&item, closing_event_id, note),
        host,
    )?;
    match remediation::effect(&event) {
        Ok(Some(Effect::Close { closure, .. })) => item.closed = Some(closure),
        _ => unreachable!("a closing event closes an item"),
    }
    Ok(item)
}

/// Adds the events of a verified JSONL copy that the ledger lacks. The ledger must be empty or a
/// prefix of the copy; a copy that is a prefix of the ledger adds nothing.
pub(crate) fn import(store: &mut dyn Store, bytes: &[u8]) -> Result<u64> {
    let report = verify_jsonl(bytes);
    if !report.is_ok() {
        return Err(Error::CopyInvalid(Box::new(report)));
    }
    let events = crate::verify::parse_jsonl_texts(bytes)?;
    let head = checked_head(store)?;
    let copy_len = events.len() as u64;
    if copy_len <= head.seq {
        let Some((last, _)) = events.last() else {
            return Ok(0);
        };
        return if store.id_at(last.seq)?.as_deref() == Some(last.id.as_str()) {
            Ok(0)
        } else {
            Err(Error::Diverged(format!(
                "the copy's last event (seq {}) is not the ledger's",
                last.seq
            )))
        };
    }
    if head.seq > 0 && events[head.seq as usize - 1].0.id != head.id {
        return Err(Error::Diverged(format!(
            "the copy's event at seq {} is not the ledger's last event",
            head.seq
        )));
    }
    for (event, text) in &events[head.seq as usize..] {
        store_event(store, &Prepared::new(event.clone(), text.clone()))?;
    }
    Ok(copy_len - head.seq)
}

/// A remediation table row as stored.
pub(crate) struct ItemRow {
    pub id: String,
    pub seq: i64,
    pub dataset: String,
    pub reason: String,
    pub event_id: Option<String>,
    pub opened_at: String,
    pub closed_by: Option<String>,
    pub closed_seq: Option<i64>,
    pub closed_at: Option<String>,
    pub closing_event_id: Option<String>,
    pub note: Option<String>,
}

impl ItemRow {
    pub fn of(item: &Remediation) -> ItemRow {
        let c = item.closed.as_ref();
        ItemRow {
            id: item.id.clone(),
            seq: item.seq as i64,
            dataset: item.dataset.clone(),
            reason: item.reason.clone(),
            event_id: item.event_id.clone(),
            opened_at: crate::event::format_time(&item.opened_at),
            closed_by: c.map(|c| c.id.clone()),
            closed_seq: c.map(|c| c.seq as i64),
            closed_at: c.map(|c| crate::event::format_time(&c.closed_at)),
            closing_event_id: c.and_then(|c| c.closing_event_id.clone()),
            note: c.map(|c| c.note.clone()),
        }
    }

    pub fn into_item(self) -> Result<Remediation> {
        let bad = |what: &str| Error::Malformed(format!("remediation item {}: {what}", self.id));
        let closed = match &self.closed_by {
            None => None,
            Some(by) => Some(Closure {
                id: by.clone(),
                seq: self
                    .closed_seq
                    .and_then(|s| u64::try_from(s).ok())
                    .ok_or_else(|| bad("closed without a closing seq"))?,
                closed_at: parse_time(
                    self.closed_at
                        .as_deref()
                        .ok_or_else(|| bad("closed without a time"))?,
                )?,
                closing_event_id: self.closing_event_id.clone(),
                note: self
                    .note
                    .clone()
                    .ok_or_else(|| bad("closed without a note"))?,
            }),
        };
        Ok(Remediation {
            seq: u64::try_from(self.seq).map_err(|_| bad("negative seq"))?,
            opened_at: parse_time(&self.opened_at)?,
            id: self.id,
            dataset: self.dataset,
            reason: self.reason,
            event_id: self.event_id,
            closed,
        })
    }
}
