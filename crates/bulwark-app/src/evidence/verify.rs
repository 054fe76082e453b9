//! Checking a pack: what `bulwark evidence verify` does, and what an auditor can do with
//! `sha256sum`, `openssl` and a JSON reader.
//!
//! In order: the signature over `MANIFEST` under the given public key (and that the signature
//! names that key); every file against `MANIFEST`, and no file unlisted; `events.jsonl` as a
//! chain (each line's id the BLAKE3 of its text, the text canonical, consecutive `seq`, each
//! `prev_hash` the id before, the first linking to `chain-proof.json`'s `before`, the last its
//! `last`); `report.json` agreeing with the chain proof and citing only events of the segment.
//! With the live ledger, the segment and the event before it must be the ledger's own: a ledger
//! rewritten after the pack was made no longer holds them. Every problem names the file (and the
//! event) it is about; checking goes on after one, so a report lists them all.

use std::collections::BTreeMap;

use bulwark_ledger::{EventFilter, GENESIS, Ledger, canonical_json, hash_hex};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::{ChainProof, EventRef, Report};
use super::pack::{Files, MANIFEST, SIGNATURE};
use super::sign;

/// One thing wrong with a pack.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The file it is about.
    pub file: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The fingerprint the signature names.
    pub signed_by: Option<String>,
    pub files: usize,
    pub events: u64,
    /// Whether the segment was compared with a live ledger.
    pub live_checked: bool,
    pub problems: Vec<Problem>,
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(file: &str, message: impl Into<String>) -> Problem {
    Problem {
        file: file.to_string(),
        message: message.into(),
    }
}

/// Checks `files` (a pack read with [`super::pack::read`]) under `key`, and against `live` when
/// given.
pub fn verify(files: &Files, key: &VerifyingKey, live: Option<&dyn Ledger>) -> Outcome {
    let mut problems = Vec::new();
    let mut out = Outcome {
        signed_by: None,
        files: files.len(),
        events: 0,
        live_checked: false,
        problems: Vec::new(),
    };
    let Some(manifest) = files.get(MANIFEST) else {
        out.problems
            .push(problem(MANIFEST, "the pack has no MANIFEST"));
        return out;
    };
    match files
        .get(SIGNATURE)
        .map(|b| sign::parse(&String::from_utf8_lossy(b)))
    {
        None => problems.push(problem(SIGNATURE, "the pack has no signature")),
        Some(Err(e)) => problems.push(problem(SIGNATURE, format!("not a signature file: {e}"))),
        Some(Ok(d)) => {
            let expected = sign::fingerprint(key);
            if d.fingerprint != expected {
                problems.push(problem(
                    SIGNATURE,
                    format!(
                        "signed by key {}, not by the given public key {expected}",
                        d.fingerprint
                    ),
                ));
            } else if !sign::verifies(key, manifest, &d.signature) {
                problems.push(problem(
                    MANIFEST,
                    "the signature does not verify: MANIFEST (or its signature) was changed after signing",
                ));
            }
            out.signed_by = Some(d.fingerprint);
        }
    }
    check_manifest(files, manifest, &mut problems);
    let proof: Option<ChainProof> = json(files, "chain-proof.json", &mut problems);
    let report: Option<Report> = json(files, "report.json", &mut problems);
    let segment = match files.get("events.jsonl") {
        None => {
            problems.push(problem("events.jsonl", "missing"));
            Vec::new()
        }
        Some(bytes) => check_chain(bytes, proof.as_ref(), &mut problems),
    };
    out.events = segment.len() as u64;
    if let (Some(r), Some(p)) = (&report, &proof) {
        if &r.chain != p {
            problems.push(problem(
                "report.json",
                "its chain proof differs from chain-proof.json",
            ));
        }
        let ids: BTreeMap<u64, &str> = segment.iter().map(|e| (e.seq, e.id.as_str())).collect();
        for e in &r.events {
            if ids.get(&e.seq) != Some(&e.id.as_str()) {
                problems.push(problem(
                    "report.json",
                    format!(
                        "cites event {} ({}), which events.jsonl does not hold",
                        e.seq,
                        short(&e.id)
                    ),
                ));
            }
        }
    }
    if let (Some(ledger), Some(p)) = (live, &proof) {
        out.live_checked = true;
        check_live(ledger, p, &segment, &mut problems);
    }
    out.problems = problems;
    out
}

fn short(id: &str) -> &str {
    &id[..id.len().min(16)]
}

fn json<T: serde::de::DeserializeOwned>(
    files: &Files,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match files.get(name).map(|b| serde_json::from_slice(b)) {
        None => {
            problems.push(problem(name, "missing"));
            None
        }
        Some(Err(e)) => {
            problems.push(problem(name, format!("not readable: {e}")));
            None
        }
        Some(Ok(v)) => Some(v),
    }
}

fn check_manifest(files: &Files, manifest: &[u8], problems: &mut Vec<Problem>) {
    let text = String::from_utf8_lossy(manifest);
    let mut listed = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let Some((hash, name)) = line.split_once("  ") else {
            problems.push(problem(
                MANIFEST,
                format!("line {} is not 'SHA256  NAME'", i + 1),
            ));
            continue;
        };
        listed.insert(name.to_string(), hash.to_string());
    }
    for (name, hash) in &listed {
        match files.get(name) {
            None => problems.push(problem(
                name,
                "listed in MANIFEST but missing from the pack",
            )),
            Some(bytes) if hex::encode(Sha256::digest(bytes)) != *hash => problems.push(problem(
                name,
                "changed: its SHA-256 differs from MANIFEST's",
            )),
            Some(_) => {}
        }
    }
    for name in files.keys() {
        if name != MANIFEST && name != SIGNATURE && !listed.contains_key(name) {
            problems.push(problem(
                name,
                "not listed in MANIFEST (added after signing)",
            ));
        }
    }
}

/// An event of the segment as its line says.
struct Line {
    seq: u64,
    id: String,
    prev: String,
}

fn check_chain(bytes: &[u8], proof: Option<&ChainProof>, problems: &mut Vec<Problem>) -> Vec<Line> {
    const FILE: &str = "events.jsonl";
    let mut lines = Vec::new();
    let text = String::from_utf8_lossy(bytes);
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let parsed: Result<(Value, String), String> = serde_json::from_str::<Value>(raw)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                let id = v
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or("no id")?
                    .to_string();
                let event = v.get("event").cloned().ok_or("no event")?;
                Ok((event, id))
            });
        let (event, id) = match parsed {
            Ok(x) => x,
            Err(e) => {
                problems.push(problem(FILE, format!("line {n} is not an event line: {e}")));
                continue;
            }
        };
        let canonical = canonical_json(&event);
        let seq = event.get("seq").and_then(Value::as_u64).unwrap_or(0);
        if format!(
            "{{\"event\":{canonical},\"id\":{}}}",
            Value::String(id.clone())
        ) != raw
        {
            problems.push(problem(
                FILE,
                format!("line {n} (event {seq}) is not in canonical form: it was rewritten"),
            ));
        }
        if hash_hex(canonical.as_bytes()) != id {
            let kind = event.get("kind").and_then(Value::as_str).unwrap_or("?");
            problems.push(problem(
                FILE,
                format!(
                    "event {seq} ({kind}) was changed: its id {} is not the hash of its content",
                    short(&id)
                ),
            ));
        }
        let prev = event
            .get("prev_hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(before) = lines.last().map(|l: &Line| (l.seq, l.id.clone())) {
            if seq != before.0 + 1 {
                problems.push(problem(
                    FILE,
                    format!(
                        "event {seq} follows event {}: events are missing or reordered",
                        before.0
                    ),
                ));
            } else if prev != before.1 {
                problems.push(problem(
                    FILE,
                    format!("event {seq} does not link to event {}", before.0),
                ));
            }
        }
        lines.push(Line { seq, id, prev });
    }
    if let Some(p) = proof {
        let first = lines.first().map(|l| EventRef {
            seq: l.seq,
            id: l.id.clone(),
        });
        let last = lines.last().map(|l| EventRef {
            seq: l.seq,
            id: l.id.clone(),
        });
        if first != p.first || last != p.last || lines.len() as u64 != p.events {
            problems.push(problem(
                FILE,
                format!(
                    "holds {} events from {} to {}, not the {} chain-proof.json names",
                    lines.len(),
                    first.map_or("-".into(), |f| f.seq.to_string()),
                    last.map_or("-".into(), |f| f.seq.to_string()),
                    p.events
                ),
            ));
        }
        if let Some(l) = lines.first()
            && (l.prev != p.before.id || l.seq != p.before.seq + 1)
        {
            problems.push(problem(
                FILE,
                format!(
                    "event {} does not follow the event chain-proof.json names before it",
                    l.seq
                ),
            ));
        }
        if p.before.seq == 0 && p.before.id != GENESIS {
            problems.push(problem(
                "chain-proof.json",
                "the chain starts at a non-genesis hash",
            ));
        }
    }
    lines
}

fn check_live(ledger: &dyn Ledger, p: &ChainProof, segment: &[Line], problems: &mut Vec<Problem>) {
    let mut report = |message: String| problems.push(problem("events.jsonl", message));
    let head = match ledger.head() {
        Ok(h) => h,
        Err(e) => return report(format!("the live ledger cannot be read: {e}")),
    };
    let Some(last) = segment.last() else {
        if head.seq < p.before.seq {
            report(format!(
                "the live ledger ends at event {}, before the pack's head {}",
                head.seq, p.before.seq
            ));
        }
        return;
    };
    let from = p.before.seq.saturating_sub(1);
    let live = match ledger.events(&EventFilter::all().after_seq(from)) {
        Ok(v) => v,
        Err(e) => return report(format!("the live ledger cannot be read: {e}")),
    };
    let live: BTreeMap<u64, &str> = live
        .iter()
        .take_while(|e| e.seq <= last.seq)
        .map(|e| (e.seq, e.id.as_str()))
        .collect();
    if p.before.seq > 0 && live.get(&p.before.seq) != Some(&p.before.id.as_str()) {
        report(format!(
            "the live ledger's event {} is not the one the pack's segment follows: the ledger was rewritten",
            p.before.seq
        ));
    }
    for l in segment {
        match live.get(&l.seq) {
            None => {
                report(format!(
                    "the live ledger has no event {} (it ends at {}): events were removed",
                    l.seq, head.seq
                ));
                return;
            }
            Some(id) if *id != l.id => {
                report(format!(
                    "event {} in the pack ({}) is not the live ledger's ({}): the ledger was rewritten",
                    l.seq,
                    short(&l.id),
                    short(id)
                ));
                return;
            }
            Some(_) => {}
        }
    }
}
