//! Chain verification, shared by both backends and by standalone JSONL copies.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{
    Event, GENESIS, canonical_json, event_from_hashed, format_time, hash_hex, split_export_line,
};
use crate::remediation::{Remediation, Replay};

/// At most this many problems are listed; the rest are only counted.
const MAX_PROBLEMS: usize = 1000;

/// A point in the chain: the `seq`-th event has id `id`. `seq` 0 with [`GENESIS`] is the empty
/// ledger. Keep anchors somewhere else (a repository, a ticket, a log) and check them with
/// [`crate::Ledger::verify_anchors`]: that is what catches a rewritten or truncated ledger.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: u64,
    pub id: String,
}

impl Anchor {
    pub fn empty() -> Anchor {
        Anchor {
            seq: 0,
            id: GENESIS.to_string(),
        }
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.id)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The stored id is not the hash of the stored event: the event was altered.
    HashMismatch,
    /// The stored event cannot be read at all.
    Malformed,
    /// The stored event text is not in canonical form (it was rewritten by hand).
    NotCanonical,
    /// Sequence numbers are missing: events were removed.
    SequenceGap,
    /// An event sits at a sequence number other than the one it was hashed with, or the
    /// sequence goes backwards: events were reordered or renumbered.
    SequenceOrder,
    /// An event's `prev_hash` is not the id of the event before it.
    BrokenLink,
    /// A queryable column disagrees with the hashed event (the row was edited in place).
    ColumnMismatch,
    /// The head record (event count and last id, updated with every append) disagrees with the
    /// chain: typically the newest events were removed.
    HeadMismatch,
    /// The remediation state disagrees with the remediation events, or those events make no sense.
    RemediationMismatch,
    /// An anchor taken earlier is no longer in the chain.
    AnchorMismatch,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ProblemKind::HashMismatch => "hash mismatch",
            ProblemKind::Malformed => "malformed event",
            ProblemKind::NotCanonical => "non-canonical event text",
            ProblemKind::SequenceGap => "gap in sequence",
            ProblemKind::SequenceOrder => "sequence out of order",
            ProblemKind::BrokenLink => "broken link",
            ProblemKind::ColumnMismatch => "column mismatch",
            ProblemKind::HeadMismatch => "head mismatch",
            ProblemKind::RemediationMismatch => "remediation mismatch",
            ProblemKind::AnchorMismatch => "anchor mismatch",
        };
        f.write_str(s)
    }
}

/// One thing wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The sequence number concerned (for a gap: the first missing one).
    pub seq: Option<u64>,
    /// The stored id of the event concerned.
    pub id: Option<String>,
    /// For a JSONL copy: the 1-based line.
    pub line: Option<u64>,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(
        kind: ProblemKind,
        seq: Option<u64>,
        id: Option<String>,
        message: String,
    ) -> Problem {
        Problem {
            kind,
            seq,
            id,
            line: None,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, " at seq {seq}")?;
        }
        if let Some(id) = &self.id {
            write!(f, " (event {})", short(id))?;
        }
        write!(f, ": {}", self.message)
    }
}

fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// How many events were examined.
    pub events: u64,
    /// The last event examined (`seq` 0 and [`GENESIS`] for an empty ledger).
    pub head: Anchor,
    /// What is wrong, in chain order, then head and remediation findings.
    pub problems: Vec<Problem>,
    /// Problems found beyond the listed ones.
    pub omitted: u64,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.omitted == 0
    }

    pub fn first(&self) -> Option<&Problem> {
        self.problems.first()
    }

    /// Whether some problem of `kind` was found.
    pub fn has(&self, kind: ProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }

    pub(crate) fn push(&mut self, p: Problem) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        } else {
            self.omitted += 1;
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return write!(
                f,
                "ledger verified: {} events, head {}",
                self.events, self.head
            );
        }
        write!(
            f,
            "ledger verification FAILED: {} problem(s) in {} events",
            self.problems.len() as u64 + self.omitted,
            self.events
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        if self.omitted > 0 {
            write!(f, "\n  ... and {} more", self.omitted)?;
        }
        Ok(())
    }
}

/// The queryable columns of a stored row, compared with the hashed event.
#[derive(Clone, Debug)]
pub(crate) struct Columns {
    pub prev_hash: String,
    pub kind: String,
    pub dataset: Option<String>,
    pub repository: Option<String>,
    pub config_hash: Option<String>,
    pub host: String,
    pub recorded_at: String,
    pub started: String,
    pub finished: String,
    /// `None`: a value that is no boolean.
    pub ok: Option<bool>,
    pub summary: String,
    pub details: String,
}

impl Columns {
    pub fn of(e: &Event) -> Columns {
        Columns {
            prev_hash: e.prev_hash.clone(),
            kind: e.kind.as_str().to_string(),
            dataset: e.dataset.clone(),
            repository: e.repository.clone(),
            config_hash: e.config_hash.clone(),
            host: e.host.clone(),
            recorded_at: format_time(&e.recorded_at),
            started: format_time(&e.started),
            finished: format_time(&e.finished),
            ok: Some(e.ok),
            summary: e.summary.clone(),
            details: canonical_json(&e.details),
        }
    }

    fn differences(&self, expected: &Columns) -> Vec<&'static str> {
        let mut d = Vec::new();
        let mut cmp = |name, same: bool| {
            if !same {
                d.push(name)
            }
        };
        cmp("prev_hash", self.prev_hash == expected.prev_hash);
        cmp("kind", self.kind == expected.kind);
        cmp("dataset", self.dataset == expected.dataset);
        cmp("repository", self.repository == expected.repository);
        cmp("config_hash", self.config_hash == expected.config_hash);
        cmp("host", self.host == expected.host);
        cmp("recorded_at", self.recorded_at == expected.recorded_at);
        cmp("started", self.started == expected.started);
        cmp("finished", self.finished == expected.finished);
        cmp("ok", self.ok == expected.ok);
        cmp("summary", self.summary == expected.summary);
        cmp("details", self.details == expected.details);
        d
    }
}

/// A stored row, as read from a backend (or a JSONL line, without columns).
pub(crate) struct RawRow {
    /// The seq column (for JSONL: the seq in the event).
    pub seq: i64,
    pub id: String,
    pub canonical: String,
    pub columns: Option<Columns>,
    pub line: Option<u64>,
}

/// Walks the rows in stored order (by seq column), collecting problems.
pub(crate) struct Verifier {
    report: VerifyReport,
    /// The last row seen: seq column and stored id.
    last: Option<(i64, String)>,
    /// The highest seq column seen (so one misplaced row does not make every later one a gap).
    max_seq: i64,
    replay: Replay,
}

impl Verifier {
    pub fn new() -> Verifier {
        Verifier {
            report: VerifyReport {
                events: 0,
                head: Anchor::empty(),
                problems: Vec::new(),
                omitted: 0,
            },
            last: None,
            max_seq: 0,
            replay: Replay::default(),
        }
    }

    fn problem(
        &mut self,
        kind: ProblemKind,
        seq: Option<u64>,
        id: Option<&str>,
        line: Option<u64>,
        message: String,
    ) {
        self.report.push(Problem {
            kind,
            seq,
            id: id.map(str::to_string),
            line,
            message,
        });
    }

    /// A problem found outside the rows (an unreadable line of a copy).
    pub fn note(&mut self, p: Problem) {
        self.report.push(p);
    }

    pub fn push(&mut self, row: RawRow) {
        self.report.events += 1;
        let seq = u64::try_from(row.seq).ok();
        let id = Some(row.id.as_str());
        let line = row.line;

        // Sequence numbers: 1, 2, 3... (in i128: a copy may hold seq i64::MAX).
        let expected = i128::from(self.max_seq) + 1;
        let this = i128::from(row.seq);
        if this > expected {
            let missing = if this - expected == 1 {
                format!("seq {expected} is missing")
            } else {
                format!(
                    "seqs {expected}..={} ({} events) are missing",
                    this - 1,
                    this - expected
                )
            };
            self.problem(
                ProblemKind::SequenceGap,
                u64::try_from(expected).ok(),
                id,
                line,
                format!("{missing}: the next event present is seq {}", row.seq),
            );
        } else if this < expected {
            self.problem(
                ProblemKind::SequenceOrder,
                seq,
                id,
                line,
                format!(
                    "seq {} comes after seq {}: events were reordered",
                    row.seq,
                    expected - 1
                ),
            );
        }

        // The id is the hash of the stored text.
        let computed = hash_hex(row.canonical.as_bytes());
        if computed != row.id {
            self.problem(
                ProblemKind::HashMismatch,
                seq,
                id,
                line,
                format!(
                    "the stored event hashes to {computed}, not to its id: its content was altered"
                ),
            );
        }

        let event = match event_from_hashed(&row.canonical, &row.id) {
            Ok(e) => Some(e),
            Err(e) => {
                self.problem(ProblemKind::Malformed, seq, id, line, e.to_string());
                None
            }
        };
        if let Some(event) = &event {
            if event.hashed_text() != row.canonical {
                self.problem(
                    ProblemKind::NotCanonical,
                    seq,
                    id,
                    line,
                    "the stored event text is not in canonical form".into(),
                );
            }
            if Some(event.seq) != seq {
                self.problem(
                    ProblemKind::SequenceOrder,
                    seq,
                    id,
                    line,
                    format!(
                        "the event stored at seq {} was recorded as seq {}: events were reordered or renumbered",
                        row.seq, event.seq
                    ),
                );
            }
            // The link to the previous row (the first row of a ledger links to GENESIS; after
            // leading rows were removed there is nothing to link to, and the gap says so).
            let prev = match &self.last {
                Some((s, prev_id)) => Some((format!("seq {s}"), prev_id.clone())),
                None if row.seq == 1 => {
                    Some(("the start of the ledger".to_string(), GENESIS.to_string()))
                }
                None => None,
            };
            if let Some((what, prev_id)) = prev
                && event.prev_hash != prev_id
            {
                self.problem(
                    ProblemKind::BrokenLink,
                    seq,
                    id,
                    line,
                    format!(
                        "prev_hash is {} but the event before it ({what}) has id {}",
                        short(&event.prev_hash),
                        short(&prev_id)
                    ),
                );
            }
            if let Some(cols) = &row.columns {
                let diff = cols.differences(&Columns::of(event));
                if !diff.is_empty() {
                    self.problem(
                        ProblemKind::ColumnMismatch,
                        seq,
                        id,
                        line,
                        format!(
                            "column(s) {} differ from the hashed event: the row was edited",
                            diff.join(", ")
                        ),
                    );
                }
            }
            if let Some(p) = self.replay.feed(event) {
                let p = Problem { line, ..p };
                self.report.push(p);
            }
        }

        self.last = Some((row.seq, row.id.clone()));
        self.max_seq = self.max_seq.max(row.seq);
        self.report.head = Anchor {
            seq: seq.unwrap_or(0),
            id: row.id,
        };
    }

    /// Checks the head record and the remediation table (both absent for a JSONL copy).
    pub fn finish(
        mut self,
        head: Option<Option<Anchor>>,
        table: Option<Vec<Remediation>>,
    ) -> VerifyReport {
        if let Some(head) = head {
            let chain = self.report.head.clone();
            match head {
                None => self.problem(
                    ProblemKind::HeadMismatch,
                    None,
                    None,
                    None,
                    "the head record is missing".into(),
                ),
                Some(h) if h != chain => {
                    let message = if h.seq > chain.seq {
                        format!(
                            "the head record says the ledger ends at seq {} (id {}), but the last event present is seq {}: \
                             the newest events were removed (or the head record was altered)",
                            h.seq,
                            short(&h.id),
                            chain.seq
                        )
                    } else {
                        format!(
                            "the head record says the ledger ends at seq {} (id {}), but the last event present is seq {} (id {})",
                            h.seq,
                            short(&h.id),
                            chain.seq,
                            short(&chain.id)
                        )
                    };
                    self.problem(
                        ProblemKind::HeadMismatch,
                        Some(h.seq),
                        Some(&h.id),
                        None,
                        message,
                    );
                }
                Some(_) => {}
            }
        }
        if let Some(table) = table {
            let mut stored: BTreeMap<String, Remediation> =
                table.into_iter().map(|r| (r.id.clone(), r)).collect();
            let replayed = std::mem::take(&mut self.replay.items);
            for (id, expected) in replayed {
                match stored.remove(&id) {
                    None => self.problem(
                        ProblemKind::RemediationMismatch,
                        Some(expected.seq),
                        Some(&id),
                        None,
                        "remediation item is missing from the remediation table".into(),
                    ),
                    Some(actual) if actual != expected => {
                        let state = |r: &Remediation| if r.is_open() { "open" } else { "closed" };
                        self.problem(
                            ProblemKind::RemediationMismatch,
                            Some(expected.seq),
                            Some(&id),
                            None,
                            format!(
                                "the remediation table (item {}) disagrees with the events (item {})",
                                state(&actual),
                                state(&expected)
                            ),
                        )
                    }
                    Some(_) => {}
                }
            }
            for (id, extra) in stored {
                self.problem(
                    ProblemKind::RemediationMismatch,
                    Some(extra.seq),
                    Some(&id),
                    None,
                    "the remediation table holds an item no event opened".into(),
                );
            }
        }
        self.report
    }
}

/// Verifies a JSONL copy made by [`crate::Ledger::export_jsonl`], standalone: hashes (over the
/// exact stored text each line wraps), sequence, links and remediation events. A copy cut after a
/// whole line cannot be told from a shorter ledger: compare [`VerifyReport::head`] with an anchor
/// kept elsewhere.
pub fn verify_jsonl(bytes: &[u8]) -> VerifyReport {
    let mut verifier = Verifier::new();
    if bytes.is_empty() {
        return verifier.finish(None, None);
    }
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let cut = lines.last().is_some_and(|l| !l.is_empty());
    if !cut {
        lines.pop();
    }
    let count = lines.len();
    for (i, raw) in lines.into_iter().enumerate() {
        let line = Some(i as u64 + 1);
        if cut && i + 1 == count {
            verifier.note(Problem {
                kind: ProblemKind::Malformed,
                seq: None,
                id: None,
                line,
                message: "the last line has no newline: the copy was cut short".into(),
            });
        }
        let row = std::str::from_utf8(raw)
            .map_err(|_| crate::Error::Malformed("not UTF-8".into()))
            .and_then(split_export_line)
            .and_then(|(text, id)| {
                let seq = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| v.get("seq").and_then(Value::as_i64))
                    .ok_or_else(|| {
                        crate::Error::Malformed(format!("event {id} has no readable seq"))
                    })?;
                Ok(RawRow {
                    seq,
                    id,
                    canonical: text.to_string(),
                    columns: None,
                    line,
                })
            });
        match row {
            Ok(row) => verifier.push(row),
            Err(e) => verifier.note(Problem {
                kind: ProblemKind::Malformed,
                seq: None,
                id: None,
                line,
                message: e.to_string(),
            }),
        }
    }
    verifier.finish(None, None)
}

/// Reads a JSONL copy into events and their exact hashed texts, without verifying them.
pub(crate) fn parse_jsonl_texts(bytes: &[u8]) -> crate::Result<Vec<(Event, String)>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| crate::Error::Malformed("the copy is not UTF-8".into()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let at = |e: crate::Error| crate::Error::Malformed(format!("line {}: {e}", i + 1));
            let (text, id) = split_export_line(line).map_err(at)?;
            let event = event_from_hashed(text, &id).map_err(at)?;
            Ok((event, text.to_string()))
        })
        .collect()
}

/// Reads the events of a JSONL copy without verifying them (see [`verify_jsonl`]).
pub fn parse_jsonl(bytes: &[u8]) -> crate::Result<Vec<Event>> {
    Ok(parse_jsonl_texts(bytes)?
        .into_iter()
        .map(|(e, _)| e)
        .collect())
}
