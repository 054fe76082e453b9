//! Bulwark's evidence ledger: an append-only, hash-chained record of every backup, copy, check,
//! forget/prune, restore test, configuration change, drill and remediation item.
//!
//! # Storage
//!
//! SQLite by default ([`SqliteLedger`], one file); PostgreSQL when several hosts share one
//! ledger ([`PgLedger`]). Both sit behind [`Ledger`]; where a policy file's ledger lives is the
//! application layer's business.
//!
//! # The chain
//!
//! Event `n` carries `prev_hash` = id of event `n - 1` ([`GENESIS`] for the first), and its id is
//! the BLAKE3 hash of its canonical text (see [`event`]), which includes `seq` and `prev_hash`.
//! The canonical text is stored verbatim (`canonical` column); the other columns duplicate it for
//! queries. A head record (`ledger_head`: last seq and id) is updated in the same transaction as
//! every append. Appends serialize: SQLite `BEGIN IMMEDIATE`, PostgreSQL `SELECT ... FOR UPDATE`
//! on the head row.
//!
//! # What [`Ledger::verify`] detects, and where it says it is
//!
//! - an event whose content was changed (`canonical` text edited): [`ProblemKind::HashMismatch`]
//!   at that seq;
//! - a queryable column changed (`summary`, `ok`, `details`...): [`ProblemKind::ColumnMismatch`]
//!   naming the columns;
//! - an event changed *and* its id recomputed: [`ProblemKind::BrokenLink`] at the next seq;
//! - events removed from the middle or the start: [`ProblemKind::SequenceGap`] naming the missing
//!   seqs, plus a broken link;
//! - events reordered or renumbered: [`ProblemKind::SequenceOrder`] and broken links;
//! - the newest events removed: [`ProblemKind::HeadMismatch`] (the head record still names the
//!   removed last event);
//! - the remediation table edited: [`ProblemKind::RemediationMismatch`].
//!
//! # Limits (honestly)
//!
//! The chain uses no secret. Whoever can write the database can rewrite any suffix of the chain,
//! recompute every hash and update the head record, and `verify` alone will find nothing. What
//! catches that is an anchor kept out of their reach: the [`Anchor`] (seq and id) of a point in
//! the chain, taken from [`Ledger::head`] or from the [`VerifyReport::head`] of a JSONL copy
//! stored in a backup repository, and checked with [`Ledger::verify_anchors`]. Likewise removing
//! the newest events together with the head record's update cannot be seen without an anchor.
//! A standalone JSONL copy cut after a whole line is a valid shorter copy (a cut inside a line is
//! detected). The append-only triggers only stop mistakes, not someone who drops them.

pub mod event;
pub mod filter;
pub mod remediation;
pub mod verify;

mod core;
mod error;
mod pg;
mod sqlite;

use chrono::{DateTime, Utc};

pub use error::{Error, Result};
pub use event::{Event, EventKind, GENESIS, NewEvent, canonical_json, hash_hex};
pub use filter::EventFilter;
pub use pg::PgLedger;
pub use remediation::{Closure, Remediation};
pub use sqlite::SqliteLedger;
pub use verify::{Anchor, Problem, ProblemKind, VerifyReport, parse_jsonl, verify_jsonl};

/// Bumped when the tables change incompatibly.
pub(crate) const SCHEMA_VERSION: &str = "1";

/// The evidence ledger, whichever database holds it.
pub trait Ledger: Send {
    /// Records `event` at the end of the chain and returns it as recorded. Refuses
    /// `remediation_*` kinds (use [`Ledger::open_remediation`] / [`Ledger::close_remediation`])
    /// and a ledger whose head record disagrees with its events ([`Error::Damaged`]).
    fn append(&mut self, event: NewEvent) -> Result<Event>;

    /// The events `filter` selects. Events are read from their hashed text; the filter applies
    /// to the queryable columns (which `verify` checks against that text).
    fn events(&self, filter: &EventFilter) -> Result<Vec<Event>>;

    /// The event with id `id`.
    fn get(&self, id: &str) -> Result<Option<Event>>;

    /// The head record: the last event's seq and id ([`Anchor::empty`] for an empty ledger).
    fn head(&self) -> Result<Anchor>;

    /// Checks the whole ledger (see the crate documentation for what is detected).
    fn verify(&self) -> Result<VerifyReport>;

    /// Opens a remediation item for `dataset`, optionally citing the event that prompted it.
    fn open_remediation(
        &mut self,
        dataset: &str,
        reason: &str,
        event_id: Option<&str>,
    ) -> Result<Remediation>;

    /// Closes the open remediation item `id` (the id of its opening event), optionally citing
    /// the event that shows it fixed.
    fn close_remediation(
        &mut self,
        id: &str,
        closing_event_id: Option<&str>,
        note: &str,
    ) -> Result<Remediation>;

    /// Remediation items, oldest first.
    fn remediations(&self, open_only: bool) -> Result<Vec<Remediation>>;

    /// Every event, in seq order, one line each: `{"event":TEXT,"id":"ID"}` where TEXT is the
    /// stored canonical text (the hashed form) verbatim, so each line is itself canonical JSON.
    /// Exactly as stored: a damaged ledger exports a copy that fails [`verify_jsonl`].
    fn export_jsonl(&self) -> Result<Vec<u8>>;

    /// Adds the events of a JSONL copy that this ledger lacks (restoring a lost ledger from a
    /// copy kept in a repository). The copy must verify and continue this ledger's chain.
    /// Returns how many events were added.
    fn import_jsonl(&mut self, bytes: &[u8]) -> Result<u64>;

    /// Where the ledger is (a path, or a URL without its password).
    fn location(&self) -> String;

    /// The most recent (highest seq) event of `kind`, for `dataset` if given, only successful
    /// ones if `ok_only`.
    fn last(
        &self,
        kind: &EventKind,
        dataset: Option<&str>,
        ok_only: bool,
    ) -> Result<Option<Event>> {
        let mut filter = EventFilter::all()
            .kind(kind.clone())
            .newest_first()
            .limit(1);
        filter.dataset = dataset.map(str::to_string);
        if ok_only {
            filter.ok = Some(true);
        }
        Ok(self.events(&filter)?.pop())
    }

    /// Every event of `dataset` that started at or after `since`, oldest first.
    fn since(&self, dataset: &str, since: DateTime<Utc>) -> Result<Vec<Event>> {
        self.events(&EventFilter::all().dataset(dataset).since(since))
    }

    /// [`Ledger::verify`], then checks that each anchor (taken earlier and kept elsewhere) is
    /// still in the chain: a rewritten or truncated ledger fails here even if it is
    /// self-consistent.
    fn verify_anchors(&self, anchors: &[Anchor]) -> Result<VerifyReport> {
        let mut report = self.verify()?;
        for anchor in anchors.iter().filter(|a| a.seq > 0) {
            let found = self
                .events(&EventFilter::all().after_seq(anchor.seq - 1).limit(1))?
                .pop();
            let message = match found {
                Some(e) if e.seq == anchor.seq && e.id == anchor.id => continue,
                Some(e) if e.seq == anchor.seq => format!(
                    "the event at seq {} is {}, not the anchored {}: the ledger was rewritten",
                    anchor.seq, e.id, anchor.id
                ),
                _ => format!(
                    "there is no event at seq {} (anchored as {}): the ledger was truncated or renumbered",
                    anchor.seq, anchor.id
                ),
            };
            report.push(Problem::new(
                ProblemKind::AnchorMismatch,
                Some(anchor.seq),
                Some(anchor.id.clone()),
                message,
            ));
        }
        Ok(report)
    }
}

/// How to open a ledger.
#[derive(Clone, Debug)]
pub struct Options {
    /// The host name recorded in appended events.
    pub host: String,
}

impl Options {
    pub fn new(host: impl Into<String>) -> Options {
        Options { host: host.into() }
    }
}

/// Whether `target` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// The hash recorded as an event's `config_hash`: BLAKE3 (hex) of the configuration file's bytes.
pub fn config_hash(config_bytes: &[u8]) -> String {
    hash_hex(config_bytes)
}

/// Writes one export line for a stored row: its stored text verbatim, wrapped with its stored id.
pub(crate) fn export_line(out: &mut Vec<u8>, id: &str, canonical: &str) -> Result<()> {
    out.extend_from_slice(event::export_line_of(id, canonical).as_bytes());
    out.push(b'\n');
    Ok(())
}

/// Finishes a backend's verification with its head record and remediation table.
pub(crate) fn finish_verify(
    verifier: verify::Verifier,
    head: Option<Anchor>,
    items: Result<Vec<Remediation>>,
) -> VerifyReport {
    match items {
        Ok(items) => verifier.finish(Some(head), Some(items)),
        Err(e) => {
            let mut report = verifier.finish(Some(head), None);
            report.push(Problem::new(
                ProblemKind::RemediationMismatch,
                None,
                None,
                format!("the remediation table cannot be read: {e}"),
            ));
            report
        }
    }
}
