//! Hostile-input fuzzing of the ledger's JSONL imports (`parse_jsonl`, `verify_jsonl`,
//! `import_jsonl` into a real SQLite ledger), on stable Rust with the kit in
//! `bulwark-repo/tests/support/fuzzing.rs`.
//!
//! Copies are arbitrary bytes, byte and line mutations of a real export (cut, duplicated,
//! reordered and dropped lines), and forgeries: an event's hashed text mutated field by field
//! (seq 2^63-1, u64::MAX, -1, huge strings, wrong types...), then re-hashed and, optionally,
//! the chain re-linked after it, so the copy gets past the hash checks into the sequence,
//! link and remediation logic and into the import itself. Nothing may panic; an import is
//! accepted only when the copy verifies, and then the ledger exports exactly the copy.
//!
//! `cargo test -p bulwark-ledger --test fuzz_ledger -- --nocapture` prints the cases per
//! parser; `BULWARK_THOROUGH=1` runs 100 times as many.

#[path = "../../bulwark-repo/tests/support/fuzzing.rs"]
mod fuzzing;

use bulwark_ledger::{
    Error, EventKind, Ledger, NewEvent, SqliteLedger, canonical_json, hash_hex, parse_jsonl,
    verify_jsonl,
};
use chrono::{Duration, TimeZone, Utc};
use fuzzing::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

/// Ledgers live on tmpfs when there is one: every import commits with `synchronous = FULL`.
fn scratch() -> tempfile::TempDir {
    match tempfile::tempdir_in("/dev/shm") {
        Ok(d) => d,
        Err(_) => tempfile::tempdir().unwrap(),
    }
}

/// A real export: several kinds of events, one remediation opened and closed.
fn valid_export(dir: &std::path::Path) -> Vec<u8> {
    let mut ledger = SqliteLedger::open(
        dir.join("source.sqlite"),
        &bulwark_ledger::Options::new("test"),
    )
    .unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let mut first = None;
    for i in 0..5i64 {
        let t = t0 + Duration::hours(i);
        let e = ledger
            .append(
                NewEvent::new(
                    [EventKind::Backup, EventKind::Check, EventKind::Copy][i as usize % 3].clone(),
                    format!("event {i}"),
                )
                .dataset("db")
                .repository("main")
                .timed(t, t + Duration::seconds(30))
                .ok(i != 2)
                .details(json!({ "files": i, "nested": { "a": [1.5, null, "é"] } })),
            )
            .unwrap();
        first.get_or_insert(e.id);
    }
    let item = ledger
        .open_remediation("db", "restore test failed", first.as_deref())
        .unwrap();
    ledger.close_remediation(&item.id, None, "fixed").unwrap();
    ledger.export_jsonl().unwrap()
}

fn lines_of(export: &[u8]) -> Vec<(Value, String)> {
    std::str::from_utf8(export)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["event"].clone(), v["id"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Re-hash mutated event texts as a forger would: every id recomputed, and with `relink` every
/// `prev_hash` pointed at the id before it.
fn forge(events: &[Value], relink: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev: Option<String> = None;
    for e in events {
        let mut e = e.clone();
        if relink && let (Some(p), Some(obj)) = (&prev, e.as_object_mut()) {
            obj.insert("prev_hash".into(), Value::from(p.clone()));
        }
        let text = canonical_json(&e);
        let id = hash_hex(text.as_bytes());
        out.extend_from_slice(format!("{{\"event\":{text},\"id\":\"{id}\"}}\n").as_bytes());
        prev = Some(id);
    }
    out
}

/// Everything done with a copy: parse, verify, import into an empty ledger and into one that
/// holds the start of the real chain.
fn check_copy(dir: &std::path::Path, valid: &[u8], copy: &[u8]) -> Result<(), TestCaseError> {
    let parsed = bounded_allocation("parse_jsonl", copy.len(), || parse_jsonl(copy))?;
    if let Err(e) = &parsed {
        prop_assert!(matches!(e, Error::Malformed(_)), "parse_jsonl: {e:?}");
    }
    let report = bounded_allocation("verify_jsonl", copy.len(), || verify_jsonl(copy))?;
    for p in &report.problems {
        prop_assert!(!p.to_string().contains('\n'), "a problem spans lines: {p}");
    }
    if report.is_ok() {
        accepted();
    }
    for prefix_events in [0usize, 3] {
        let path = dir.join(format!("import-{prefix_events}.sqlite"));
        let _ = std::fs::remove_file(&path);
        let mut ledger = SqliteLedger::open(&path, &bulwark_ledger::Options::new("test")).unwrap();
        if prefix_events > 0 {
            let prefix: Vec<&[u8]> = valid
                .split_inclusive(|b| *b == b'\n')
                .take(prefix_events)
                .collect();
            ledger.import_jsonl(&prefix.concat()).unwrap();
        }
        let imported = ledger.import_jsonl(copy);
        match &imported {
            Ok(_) => {
                prop_assert!(
                    report.is_ok(),
                    "imported a copy that does not verify: {report}"
                );
                prop_assert!(
                    ledger.verify().unwrap().is_ok(),
                    "import left a damaged ledger"
                );
                if prefix_events == 0 {
                    prop_assert_eq!(ledger.export_jsonl().unwrap(), copy.to_vec());
                }
            }
            Err(e) => prop_assert!(
                matches!(
                    e,
                    Error::CopyInvalid(_) | Error::Diverged(_) | Error::Malformed(_)
                ),
                "import failed untyped: {e:?}"
            ),
        }
        drop(ledger);
        std::fs::remove_file(&path).unwrap();
    }
    Ok(())
}

#[test]
fn jsonl_copies() {
    let dir = scratch();
    let valid = valid_export(dir.path());
    let events: Vec<Value> = lines_of(&valid).into_iter().map(|(e, _)| e).collect();
    assert!(verify_jsonl(&valid).is_ok());
    check_copy(dir.path(), &valid, &valid).unwrap();

    let mut n = 0;
    for len in 0..valid.len() {
        let r = verify_jsonl(&valid[..len]);
        assert!(
            len == 0 || valid[len - 1] == b'\n' || !r.is_ok(),
            "a cut inside a line verified"
        );
        let _ = parse_jsonl(&valid[..len]);
        n += 1;
    }
    report("ledger jsonl (truncations)", n);

    let text = String::from_utf8(valid.clone()).unwrap();
    fuzz("ledger jsonl (bytes)", 300, arbitrary_bytes(), |b| {
        check_copy(dir.path(), &valid, &b)
    });
    fuzz("ledger jsonl (mutated)", 600, mutations(), |ms| {
        check_copy(dir.path(), &valid, &mutated(&valid, &ms))
    });
    fuzz("ledger jsonl (lines)", 600, hostile_text(text), |t| {
        check_copy(dir.path(), &valid, t.as_bytes())
    });
    let forged = (
        any::<prop::sample::Index>(),
        json_mutations(),
        any::<bool>(),
        any::<bool>(),
    );
    fuzz(
        "ledger jsonl (forged, re-hashed)",
        1500,
        forged,
        |(at, ms, relink, duplicate)| {
            let mut evs = events.clone();
            let i = at.index(evs.len());
            evs[i] = mutated_json(&evs[i], &ms);
            if duplicate {
                evs.insert(i, evs[i].clone());
            }
            check_copy(dir.path(), &valid, &forge(&evs, relink))
        },
    );
}

/// `verify_jsonl` and `parse_jsonl` alone, many more cases than the imports can afford.
#[test]
fn jsonl_verification() {
    let dir = scratch();
    let valid = valid_export(dir.path());
    let events: Vec<Value> = lines_of(&valid).into_iter().map(|(e, _)| e).collect();
    let check = |copy: &[u8]| -> Result<(), TestCaseError> {
        let parsed = bounded_allocation("parse_jsonl", copy.len(), || parse_jsonl(copy))?;
        if let Err(e) = &parsed {
            prop_assert!(matches!(e, Error::Malformed(_)), "parse_jsonl: {e:?}");
        }
        let report = bounded_allocation("verify_jsonl", copy.len(), || verify_jsonl(copy))?;
        if report.is_ok() {
            accepted();
            prop_assert!(parsed.is_ok(), "a copy that verifies does not parse");
        }
        Ok(())
    };
    fuzz("ledger verify_jsonl (mutated)", 4000, mutations(), |ms| {
        check(&mutated(&valid, &ms))
    });
    let seqs = prop::sample::select(vec![
        Value::from(i64::MAX),
        Value::from(i64::MAX - 1),
        Value::from(i64::MIN),
        Value::from(u64::MAX),
        Value::from(1u64 << 63),
        Value::from(-1),
        Value::from(0),
        Value::from(1),
        Value::from(3),
    ]);
    fuzz(
        "ledger verify_jsonl (forged seqs)",
        4000,
        (
            prop::collection::vec((any::<prop::sample::Index>(), seqs), 1..4),
            any::<bool>(),
        ),
        |(changes, relink)| {
            let mut evs = events.clone();
            for (at, seq) in changes {
                let i = at.index(evs.len());
                evs[i]["seq"] = seq;
            }
            check(&forge(&evs, relink))
        },
    );
    fuzz(
        "ledger verify_jsonl (forged fields)",
        4000,
        (
            any::<prop::sample::Index>(),
            json_mutations(),
            any::<bool>(),
        ),
        |(at, ms, relink)| {
            let mut evs = events.clone();
            let i = at.index(evs.len());
            evs[i] = mutated_json(&evs[i], &ms);
            check(&forge(&evs, relink))
        },
    );
}

/// Found by the forged-seq fuzzing: an event at seq i64::MAX followed by another overflowed
/// the verifier's next expected seq (a panic in debug builds, a wrapped gap in release).
#[test]
fn a_copy_reaching_seq_i64_max_is_reported() {
    let dir = scratch();
    let valid = valid_export(dir.path());
    let mut events: Vec<Value> = lines_of(&valid).into_iter().map(|(e, _)| e).collect();
    events[1]["seq"] = Value::from(i64::MAX);
    let report = verify_jsonl(&forge(&events, true));
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == bulwark_ledger::ProblemKind::SequenceGap),
        "{report}"
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == bulwark_ledger::ProblemKind::SequenceOrder),
        "{report}"
    );
}

/// Found by the forged-field fuzzing: serde's "unknown field" error quoted a field name holding
/// a newline, and the verification problem spanned two lines.
#[test]
fn a_field_name_with_a_newline_stays_inside_one_problem_line() {
    let dir = scratch();
    let valid = valid_export(dir.path());
    let mut events: Vec<Value> = lines_of(&valid).into_iter().map(|(e, _)| e).collect();
    events[0]["a\nb"] = Value::from(1);
    let report = verify_jsonl(&forge(&events, true));
    assert!(!report.is_ok());
    for p in &report.problems {
        assert!(!p.to_string().contains('\n'), "{p}");
    }
}
