//! What a report is made of: sections of verdicts, tables, charts and the ledger events behind
//! them. Every section, whatever it is about, has this one shape, so `report.json` has one
//! schema (`report.schema.json`) and `report.html` one renderer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use bulwark_ledger::Event;
use bulwark_policy::compliance::Verdict;

/// The version of `report.json`'s shape, stored in it as `format`.
pub const FORMAT: &str = "bulwark-evidence/1";

/// A section's (or a subject's) judgement over the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// Reported, not judged (what the ledger holds of kinds no commitment covers yet).
    Informational,
    Met,
    AtRisk,
    Breached,
}

impl Finding {
    pub fn word(self) -> &'static str {
        match self {
            Finding::Informational => "informational",
            Finding::Met => "met",
            Finding::AtRisk => "at_risk",
            Finding::Breached => "breached",
        }
    }

    /// The worst of several findings; informational ones do not count, unless all are.
    pub fn worst(findings: impl IntoIterator<Item = Finding>) -> Finding {
        findings
            .into_iter()
            .fold(Finding::Informational, Finding::max)
    }
}

impl From<Verdict> for Finding {
    fn from(v: Verdict) -> Finding {
        match v {
            Verdict::Met => Finding::Met,
            Verdict::AtRisk => Finding::AtRisk,
            Verdict::Breached => Finding::Breached,
        }
    }
}

/// A ledger event a figure stands on: its place in the chain and its id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventRef {
    pub seq: u64,
    pub id: String,
}

impl From<&Event> for EventRef {
    fn from(e: &Event) -> EventRef {
        EventRef {
            seq: e.seq,
            id: e.id.clone(),
        }
    }
}

/// Which frameworks' controls and which policy sections a section gives evidence for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// The policy's own section numbers (`§2`...).
    pub policy: Vec<String>,
    /// SOC 2 Trust Services Criteria (`A1.2`, `A1.3`).
    pub soc2: Vec<String>,
    /// ISO/IEC 27001:2022 Annex A controls (`A.5.29`, `A.5.30`, `A.8.13`).
    pub iso27001: Vec<String>,
}

impl Mapping {
    pub fn new(policy: &[&str], soc2: &[&str], iso27001: &[&str]) -> Mapping {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Mapping {
            policy: own(policy),
            soc2: own(soc2),
            iso27001: own(iso27001),
        }
    }
}

/// One thing a section judges: a dataset, a replica, a role, a drill.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub verdict: Finding,
    pub target: String,
    pub measured: String,
    pub reason: String,
    pub events: Vec<EventRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub cells: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Finding>,
    pub events: Vec<EventRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(title: impl Into<String>, columns: &[&str]) -> Table {
        Table {
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>, verdict: Option<Finding>, events: Vec<EventRef>) {
        self.rows.push(Row {
            cells,
            verdict,
            events,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// A line over time (an age, a lag) against a limit.
    Series,
    /// One bar per measurement (a restore's duration), passed or failed, against a limit.
    Bars,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChartPoint {
    pub time: DateTime<Utc>,
    /// Seconds; `None` where there is nothing to measure yet.
    pub value_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chart {
    pub title: String,
    pub kind: ChartKind,
    pub subject: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The commitment's limit, in seconds (the RPO, the RTO).
    pub limit_s: f64,
    pub limit_label: String,
    pub points: Vec<ChartPoint>,
}

/// One commitment (or one body of evidence) over the period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Section {
    /// Stable id, also the anchor in `report.html`.
    pub id: String,
    pub title: String,
    /// What the policy promises, in its words.
    pub commitment: String,
    pub target: String,
    /// What was measured over the period, in one line.
    pub measured: String,
    pub verdict: Finding,
    pub reason: String,
    pub mapping: Mapping,
    pub subjects: Vec<Subject>,
    pub tables: Vec<Table>,
    pub charts: Vec<Chart>,
    /// Every event the section's figures stand on.
    pub events: Vec<EventRef>,
}

/// Where the pack's events sit in the full chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainProof {
    /// The hash chain: `blake3`, each event's id the hash of its canonical text, which holds the
    /// id of the event before it (`prev_hash`).
    pub hash: String,
    /// The event just before the segment (`seq` 0 and the genesis hash when it starts the ledger).
    pub before: EventRef,
    /// The first and last event of `events.jsonl` (none when the period holds no event).
    pub first: Option<EventRef>,
    pub last: Option<EventRef>,
    pub events: u64,
    /// The live ledger's head when the pack was made.
    pub ledger_head: EventRef,
}

/// The live ledger when the pack was made: whether its chain verified and agreed with its copies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerState {
    pub verdict: Finding,
    pub reason: String,
    pub location: String,
    pub head: EventRef,
}

/// An event as the report lists it (the full text is in `events.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventSummary {
    pub seq: u64,
    pub id: String,
    pub kind: String,
    pub dataset: Option<String>,
    pub repository: Option<String>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub ok: bool,
    pub summary: String,
}

impl From<&Event> for EventSummary {
    fn from(e: &Event) -> EventSummary {
        EventSummary {
            seq: e.seq,
            id: e.id.clone(),
            kind: e.kind.as_str().to_string(),
            dataset: e.dataset.clone(),
            repository: e.repository.clone(),
            started: e.started,
            finished: e.finished,
            ok: e.ok,
            summary: e.summary.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyRef {
    pub path: String,
    /// BLAKE3 of the policy file in force when the pack was made.
    pub hash: String,
    /// Every other policy file hash recorded in force during the period.
    pub hashes_in_period: Vec<String>,
}

/// `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub generated_at: DateTime<Utc>,
    pub host: String,
    pub period: Period,
    pub policy_file: PolicyRef,
    /// The worst verdict of the judged sections.
    pub verdict: Finding,
    pub sections: Vec<Section>,
    pub chain: ChainProof,
    pub ledger: LedgerState,
    /// The events the sections refer to (all events of the period are in `events.jsonl`).
    pub events: Vec<EventSummary>,
    /// The fingerprint of the key the pack is signed with.
    pub signing_key: String,
}

impl Section {
    /// An empty section, informational until judged.
    pub fn new(
        id: &str,
        title: &str,
        commitment: &str,
        target: impl Into<String>,
        mapping: Mapping,
    ) -> Section {
        Section {
            id: id.to_string(),
            title: title.to_string(),
            commitment: commitment.to_string(),
            target: target.into(),
            measured: String::new(),
            verdict: Finding::Informational,
            reason: String::new(),
            mapping,
            subjects: Vec::new(),
            tables: Vec::new(),
            charts: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Adds a subject; its events are the section's too.
    pub fn subject(&mut self, s: Subject) {
        self.cite(s.events.iter().cloned());
        self.subjects.push(s);
    }

    /// Adds events the section's figures stand on (each once, in chain order).
    pub fn cite(&mut self, events: impl IntoIterator<Item = EventRef>) {
        self.events.extend(events);
        self.events.sort();
        self.events.dedup();
    }

    /// The section's verdict is its worst subject's, and that subject's reason speaks for it.
    pub fn judge_by_subjects(&mut self) {
        self.verdict = Finding::worst(self.subjects.iter().map(|s| s.verdict));
        self.reason = match self
            .subjects
            .iter()
            .find(|s| s.verdict == self.verdict && self.verdict > Finding::Met)
        {
            Some(s) => format!("{}: {}", s.name, s.reason),
            None if self.subjects.is_empty() => "nothing to judge in the period".into(),
            None if self.verdict == Finding::Met => "every subject met its commitment".into(),
            None => "reported, not judged".into(),
        };
    }
}
