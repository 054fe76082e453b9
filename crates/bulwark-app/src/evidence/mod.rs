//! Evidence packs (§10): what an auditor needs to judge the policy's commitments over a period,
//! signed so that it can be checked without Bulwark.
//!
//! A pack is a flat set of files ([`pack`]):
//!
//! - `report.json` (schema `report.schema.json`, also in the pack) and `report.html` (the same
//!   report, self-contained, printable), optionally `report.pdf`;
//! - `events.jsonl`: a contiguous segment of the ledger's hash chain, each line
//!   `{"event":TEXT,"id":ID}` with `ID = BLAKE3(TEXT)`, holding every event started in the period
//!   and every earlier event a figure cites; `chain-proof.json` says where it sits (the id before
//!   its first event, its first and last, the live head when the pack was made);
//! - `mapping.json`: which sections give evidence for which policy section, SOC 2 criterion and
//!   ISO/IEC 27001:2022 control;
//! - `MANIFEST` (`sha256sum` format, every file above) and `MANIFEST.sig` (Ed25519, [`sign`]).
//!
//! Sections are modules under [`sections`], each implementing [`Module`]: adding a section is
//! adding one module. Everything is computed from the ledger up to the period's end (and the
//! repositories where the ledger cannot say), judged as of an injected `now`, so the same ledger
//! and period make the same report.

pub mod charts;
pub mod history;
pub mod html;
pub mod measure;
pub mod model;
pub mod monthly;
pub mod pack;
pub mod pdf;
pub mod sections;
pub mod sign;
pub mod verify;

use std::path::PathBuf;

use bulwark_ledger::{EventFilter, GENESIS};
use chrono::{DateTime, NaiveDate, Utc};
use ed25519_dalek::SigningKey;

use crate::error::Result;
use crate::workspace::Workspace;
use history::History;
use model::{
    ChainProof, EventRef, EventSummary, FORMAT, Finding, LedgerState, Period, PolicyRef, Report,
    Section,
};
use pack::Files;

pub use sections::{LatestRestoreTest, TestSummary};

/// The report's JSON Schema, published in the repository and shipped in every pack.
pub const SCHEMA: &str = include_str!("report.schema.json");

/// One section of the report.
pub trait Module {
    /// The section's stable id (its anchor in `report.html`).
    fn id(&self) -> &'static str;
    /// The ledger kinds (`EventKind::as_str`) this section judges, beyond the core ones: a kind
    /// claimed here leaves the generic listing of unjudged kinds.
    fn kinds(&self) -> Vec<&'static str> {
        Vec::new()
    }
    fn build(&self, h: &History) -> Result<Section>;
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists; evidence is never written over", .0.display())]
    Exists(PathBuf),
    #[error("{} is not an evidence pack: {detail}", path.display())]
    BadPack { path: PathBuf, detail: String },
    #[error("{}: {detail}", path.display())]
    Key { path: PathBuf, detail: String },
    #[error(
        "{} can be read by others (mode {mode:o}); a signing key must be owner-only (chmod 600)",
        path.display()
    )]
    KeyReadableByOthers { path: PathBuf, mode: u32 },
    #[error("the period is empty: --from {from} is not before --to {to}")]
    EmptyPeriod {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    #[error("PDF: {0}")]
    Pdf(String),
    #[error(transparent)]
    App(#[from] crate::Error),
}

impl From<bulwark_ledger::Error> for EvidenceError {
    fn from(e: bulwark_ledger::Error) -> Self {
        EvidenceError::App(e.into())
    }
}

/// A built pack: its files (with `MANIFEST` and `MANIFEST.sig`) and the report they hold.
pub struct Pack {
    /// `bulwark-evidence-FROM-TO`, the folder name inside a tar.
    pub name: String,
    pub files: Files,
    pub report: Report,
}

/// What to build.
pub struct Request<'k> {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The moment the pack is made (the report's `generated_at`).
    pub now: DateTime<Utc>,
    pub key: &'k SigningKey,
    /// Also print `report.html` to `report.pdf` with this headless Chromium.
    pub pdf: Option<PathBuf>,
}

/// Builds and signs the pack for `[from, to)`.
pub fn build(ws: &Workspace, req: &Request) -> Result<Pack, EvidenceError> {
    if req.from >= req.to {
        return Err(EvidenceError::EmptyPeriod {
            from: req.from,
            to: req.to,
        });
    }
    let h = History::load(ws, req.from, req.to, req.now)?;
    let sections: Vec<Section> = sections::modules()
        .iter()
        .map(|m| m.build(&h))
        .collect::<Result<_>>()?;
    let (segment, chain) = segment(ws, &h, &sections)?;
    let ledger_section = sections.iter().find(|s| s.id == "evidence_integrity");
    let st = crate::status::ledger_status(ws)?;
    let mut hashes_in_period: Vec<String> = h
        .of_in_period(bulwark_ledger::EventKind::ConfigChange, None)
        .filter_map(|e| e.config_hash.clone())
        .collect();
    hashes_in_period.dedup();
    let cited: std::collections::BTreeSet<&EventRef> =
        sections.iter().flat_map(|s| s.events.iter()).collect();
    let report = Report {
        format: FORMAT.into(),
        generated_at: req.now,
        host: ws.host().to_string(),
        period: Period {
            from: req.from,
            to: req.to,
        },
        policy_file: PolicyRef {
            path: ws.path().display().to_string(),
            hash: ws.config_hash().to_string(),
            hashes_in_period,
        },
        verdict: Finding::worst(sections.iter().map(|s| s.verdict)),
        ledger: LedgerState {
            verdict: ledger_section.map_or(Finding::from(st.verdict), |s| s.verdict),
            reason: st.reason.clone(),
            location: st.location.clone(),
            head: EventRef {
                seq: st.head.seq,
                id: st.head.id.clone(),
            },
        },
        events: segment
            .iter()
            .filter(|e| cited.contains(&EventRef::from(*e)))
            .map(EventSummary::from)
            .collect(),
        sections,
        chain,
        signing_key: sign::fingerprint(&req.key.verifying_key()),
    };
    let mut files = Files::new();
    files.insert("report.json".into(), pretty(&report).into_bytes());
    files.insert(
        "chain-proof.json".into(),
        pretty(&report.chain).into_bytes(),
    );
    files.insert(
        "mapping.json".into(),
        pretty(&mapping(&report)).into_bytes(),
    );
    files.insert("report.schema.json".into(), SCHEMA.as_bytes().to_vec());
    let html = html::render(&report);
    if let Some(chromium) = &req.pdf {
        files.insert("report.pdf".into(), pdf::print(chromium, &html)?);
    }
    files.insert("report.html".into(), html.into_bytes());
    let mut jsonl = String::new();
    for e in &segment {
        jsonl += &e.export_line();
        jsonl.push('\n');
    }
    files.insert("events.jsonl".into(), jsonl.into_bytes());
    let manifest = pack::manifest(&files);
    files.insert(
        pack::SIGNATURE.into(),
        sign::sign(req.key, manifest.as_bytes()).into_bytes(),
    );
    files.insert(pack::MANIFEST.into(), manifest.into_bytes());
    Ok(Pack {
        name: format!(
            "bulwark-evidence-{}-{}",
            req.from.format("%Y%m%dT%H%MZ"),
            req.to.format("%Y%m%dT%H%MZ")
        ),
        files,
        report,
    })
}

/// Pretty JSON, ending in a newline.
fn pretty<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("report values always serialize");
    s.push('\n');
    s
}

/// The contiguous chain segment the pack carries: from the earliest event started in the period
/// or cited by a section to the latest, and where it sits in the chain.
fn segment(
    ws: &Workspace,
    h: &History,
    sections: &[Section],
) -> Result<(Vec<bulwark_ledger::Event>, ChainProof)> {
    let seqs = h
        .events
        .iter()
        .filter(|e| h.in_period(e))
        .map(|e| e.seq)
        .chain(sections.iter().flat_map(|s| s.events.iter().map(|r| r.seq)));
    let (lo, hi) = seqs.fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let (events, head) = {
        let ledger = ws.ledger();
        let head = ledger.head()?;
        let events = if lo > hi {
            Vec::new()
        } else {
            ledger
                .events(&EventFilter::all().after_seq(lo - 1))?
                .into_iter()
                .take_while(|e| e.seq <= hi)
                .collect()
        };
        (events, head)
    };
    let before = match events.first() {
        Some(e) => EventRef {
            seq: e.seq - 1,
            id: e.prev_hash.clone(),
        },
        None => EventRef {
            seq: head.seq,
            id: head.id.clone(),
        },
    };
    let proof = ChainProof {
        hash: "blake3".into(),
        before: if before.seq == 0 {
            EventRef {
                seq: 0,
                id: GENESIS.into(),
            }
        } else {
            before
        },
        first: events.first().map(EventRef::from),
        last: events.last().map(EventRef::from),
        events: events.len() as u64,
        ledger_head: EventRef {
            seq: head.seq,
            id: head.id,
        },
    };
    Ok((events, proof))
}

/// One control (or policy section) and the sections that give evidence for it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ControlMapping {
    pub framework: String,
    pub control: String,
    pub title: String,
    pub sections: Vec<String>,
}

/// The controls the report maps to, with their titles.
const CONTROLS: [(&str, &str, &str); 5] = [
    (
        "SOC 2 TSC",
        "A1.2",
        "Environmental protections, software, data back-up processes and recovery infrastructure",
    ),
    (
        "SOC 2 TSC",
        "A1.3",
        "Testing of recovery plan procedures supporting system recovery",
    ),
    (
        "ISO/IEC 27001:2022",
        "A.5.29",
        "Information security during disruption",
    ),
    (
        "ISO/IEC 27001:2022",
        "A.5.30",
        "ICT readiness for business continuity",
    ),
    ("ISO/IEC 27001:2022", "A.8.13", "Information backup"),
];

/// `mapping.json`: every control and policy section, with the report sections covering it.
pub fn mapping(r: &Report) -> Vec<ControlMapping> {
    let covering = |pick: &dyn Fn(&Section) -> &Vec<String>, control: &str| -> Vec<String> {
        r.sections
            .iter()
            .filter(|s| pick(s).iter().any(|c| c == control))
            .map(|s| s.id.clone())
            .collect()
    };
    let mut out: Vec<ControlMapping> = CONTROLS
        .iter()
        .map(|(framework, control, title)| ControlMapping {
            framework: framework.to_string(),
            control: control.to_string(),
            title: title.to_string(),
            sections: if framework.starts_with("SOC") {
                covering(&|s| &s.mapping.soc2, control)
            } else {
                covering(&|s| &s.mapping.iso27001, control)
            },
        })
        .collect();
    let mut policy: Vec<&String> = r.sections.iter().flat_map(|s| &s.mapping.policy).collect();
    policy.sort_by_key(|p| p.trim_start_matches('§').parse::<u32>().unwrap_or(u32::MAX));
    policy.dedup();
    out.extend(policy.into_iter().map(|p| ControlMapping {
        framework: "BCP/DR policy".into(),
        control: p.clone(),
        title: format!("policy section {p}"),
        sections: covering(&|s| &s.mapping.policy, p),
    }));
    out
}

/// The most recent restore test of every dataset as of `now` (§10, `bulwark evidence
/// restore-tests`).
pub fn latest_restore_tests(ws: &Workspace, now: DateTime<Utc>) -> Result<Vec<LatestRestoreTest>> {
    // Nothing in the period is needed: the summary is of the state at `now`.
    let h = History::load(ws, now, now, now)?;
    Ok(sections::latest_restore_tests(&h))
}

/// A time as the report shows it.
pub(crate) fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A duration in seconds as the report shows it.
pub(crate) fn seconds(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "-".into();
    }
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    bulwark_policy::human(std::time::Duration::from_secs(s.round() as u64))
}

/// The UTC calendar day of `t`.
pub(crate) fn day(t: DateTime<Utc>) -> NaiveDate {
    t.date_naive()
}
