//! The ledger's behaviour, run against both backends: SQLite in a temporary directory and
//! PostgreSQL in a throwaway cluster (see common/mod.rs).

mod common;

use std::sync::{Arc, Barrier};
use std::time::Instant;

use bulwark_ledger::{
    Anchor, Error, Event, EventFilter, EventKind, Ledger, NewEvent, Options, PgLedger, ProblemKind,
    SqliteLedger, VerifyReport, hash_hex, parse_jsonl, verify_jsonl,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

/// One empty ledger database, and raw access to it for tampering.
trait Db: Send + Sync {
    fn open_as(&self, host: &str) -> Box<dyn Ledger>;
    /// Runs SQL directly, with the append-only triggers out of the way.
    fn tamper(&self, sql: &str);
    /// Runs SQL directly, triggers in place.
    fn exec(&self, sql: &str) -> Result<(), String>;
    /// The first column of the first row, as text.
    fn text(&self, sql: &str) -> String;
    /// Another fresh database of the same kind.
    fn sibling(&self) -> Box<dyn Db>;

    fn open(&self) -> Box<dyn Ledger> {
        self.open_as("host-a")
    }
}

struct SqliteDb {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl SqliteDb {
    fn new() -> SqliteDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bulwark-ledger.sqlite");
        SqliteDb { _dir: dir, path }
    }

    fn raw(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(&self.path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
        c
    }
}

impl Db for SqliteDb {
    fn open_as(&self, host: &str) -> Box<dyn Ledger> {
        Box::new(SqliteLedger::open(&self.path, &Options::new(host)).unwrap())
    }

    fn tamper(&self, sql: &str) {
        self.raw()
            .execute_batch(&format!(
                "DROP TRIGGER IF EXISTS ledger_events_append_only_update;
                 DROP TRIGGER IF EXISTS ledger_events_append_only_delete;
                 {sql}"
            ))
            .unwrap();
    }

    fn exec(&self, sql: &str) -> Result<(), String> {
        self.raw().execute_batch(sql).map_err(|e| e.to_string())
    }

    fn text(&self, sql: &str) -> String {
        self.raw().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn sibling(&self) -> Box<dyn Db> {
        Box::new(SqliteDb::new())
    }
}

struct PgDb {
    /// Keeps the cluster running while this database is used.
    _cluster: Arc<common::PgCluster>,
    url: String,
}

impl PgDb {
    fn raw(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Db for PgDb {
    fn open_as(&self, host: &str) -> Box<dyn Ledger> {
        Box::new(PgLedger::connect(&self.url, &Options::new(host)).unwrap())
    }

    fn tamper(&self, sql: &str) {
        self.raw()
            .batch_execute(&format!(
                "ALTER TABLE ledger_events DISABLE TRIGGER ledger_events_append_only;
                 {sql};
                 ALTER TABLE ledger_events ENABLE TRIGGER ledger_events_append_only;"
            ))
            .unwrap();
    }

    fn exec(&self, sql: &str) -> Result<(), String> {
        self.raw().batch_execute(sql).map_err(|e| format!("{e:?}"))
    }

    fn text(&self, sql: &str) -> String {
        self.raw().query_one(sql, &[]).unwrap().get(0)
    }

    fn sibling(&self) -> Box<dyn Db> {
        let url = self._cluster.fresh_database();
        Box::new(PgDb {
            _cluster: self._cluster.clone(),
            url,
        })
    }
}

/// A fresh database of each kind; `None` when PostgreSQL is not installed.
fn sqlite() -> Option<Box<dyn Db>> {
    Some(Box::new(SqliteDb::new()))
}

fn pg() -> Option<Box<dyn Db>> {
    let cluster = common::postgres()?;
    let url = cluster.fresh_database();
    Some(Box::new(PgDb {
        _cluster: cluster,
        url,
    }))
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::seconds(secs)
}

/// Event number `i` of a deterministic history: kinds and datasets rotate, every third fails.
fn sample(i: u64) -> NewEvent {
    let kinds = [
        EventKind::Backup,
        EventKind::Check,
        EventKind::Copy,
        EventKind::RestoreTest,
    ];
    let kind = kinds[i as usize % kinds.len()].clone();
    let started = t(i as i64 * 3600) + Duration::nanoseconds(123_456_789);
    NewEvent::new(kind, format!("event {i}"))
        .dataset(if i.is_multiple_of(2) { "db" } else { "home" })
        .repository("s3-main")
        .config_hash(hash_hex(b"config v1"))
        .timed(started, started + Duration::seconds(90))
        .ok(!i.is_multiple_of(3))
        .details(json!({ "files": i * 10, "ratio": 0.1 * i as f64, "nested": { "z": [1, "é\u{1}\"\\"], "a": null } }))
}

fn fill(ledger: &mut dyn Ledger, n: u64) -> Vec<Event> {
    (1..=n).map(|i| ledger.append(sample(i)).unwrap()).collect()
}

fn assert_only(report: &VerifyReport, expected: &[(ProblemKind, u64)]) {
    let got: Vec<(ProblemKind, Option<u64>)> =
        report.problems.iter().map(|p| (p.kind, p.seq)).collect();
    let want: Vec<(ProblemKind, Option<u64>)> =
        expected.iter().map(|(k, s)| (*k, Some(*s))).collect();
    assert_eq!(got, want, "{report}");
}

// ---------------------------------------------------------------------------------------------
// The scenarios, each given a fresh database.

fn round_trip(db: &dyn Db) {
    let mut ledger = db.open();
    assert_eq!(ledger.head().unwrap(), Anchor::empty());
    assert!(ledger.verify().unwrap().is_ok());
    let written = fill(&mut *ledger, 12);
    let other = ledger
        .append(
            NewEvent::new(EventKind::Other("key_rotation".into()), "rotated")
                .details(json!([1.5e300, -0.0, 17])),
        )
        .unwrap();
    assert_eq!(other.kind, EventKind::Other("key_rotation".into()));

    // Read back, from a second connection too, exactly as returned by append.
    for reader in [&ledger, &db.open_as("host-b")] {
        let all = reader.events(&EventFilter::all()).unwrap();
        assert_eq!(all.len(), 13);
        assert_eq!(&all[..12], &written[..]);
        assert_eq!(all[12], other);
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1);
            assert_eq!(e.host, "host-a");
            assert_eq!(e.id, e.computed_id());
            assert_eq!(
                e.prev_hash,
                if i == 0 {
                    bulwark_ledger::GENESIS.to_string()
                } else {
                    all[i - 1].id.clone()
                }
            );
        }
        assert_eq!(
            reader.get(&written[4].id).unwrap().as_ref(),
            Some(&written[4])
        );
        assert_eq!(reader.get("nope").unwrap(), None);
    }
    let e = &written[0];
    assert_eq!(e.started, t(3600) + Duration::nanoseconds(123_456_789));
    assert_eq!(e.details["nested"]["z"][1], json!("é\u{1}\"\\"));

    // Filters.
    let backups = ledger
        .events(&EventFilter::all().kind(EventKind::Backup))
        .unwrap();
    assert_eq!(
        backups.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [4, 8, 12]
    );
    let db_failures = ledger
        .events(&EventFilter::all().dataset("db").ok(false))
        .unwrap();
    assert_eq!(
        db_failures.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [6, 12]
    );
    let window = ledger
        .events(&EventFilter::all().since(t(5 * 3600)).until(t(8 * 3600)))
        .unwrap();
    assert_eq!(window.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 6, 7]);
    let newest = ledger
        .events(&EventFilter::all().newest_first().limit(2))
        .unwrap();
    assert_eq!(newest.iter().map(|e| e.seq).collect::<Vec<_>>(), [13, 12]);
    let after = ledger
        .events(&EventFilter::all().after_seq(10).repository("s3-main"))
        .unwrap();
    assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), [11, 12]);

    // The status queries.
    assert_eq!(
        ledger
            .last(&EventKind::Backup, Some("db"), false)
            .unwrap()
            .map(|e| e.seq),
        Some(12)
    );
    assert_eq!(
        ledger
            .last(&EventKind::Backup, Some("db"), true)
            .unwrap()
            .map(|e| e.seq),
        Some(8)
    );
    assert_eq!(
        ledger
            .last(&EventKind::Backup, Some("home"), false)
            .unwrap(),
        None
    );
    assert_eq!(
        ledger
            .last(&EventKind::Check, None, true)
            .unwrap()
            .map(|e| e.seq),
        Some(5)
    );
    let since = ledger.since("home", t(7 * 3600)).unwrap();
    assert_eq!(since.iter().map(|e| e.seq).collect::<Vec<_>>(), [7, 9, 11]);

    // Remediation events only through their own calls.
    let err = ledger
        .append(NewEvent::new(EventKind::RemediationOpened, "sneaky").dataset("db"))
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");

    assert_eq!(
        ledger.head().unwrap(),
        Anchor {
            seq: 13,
            id: other.id.clone()
        }
    );
    let report = ledger.verify().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        (report.events, report.head),
        (
            13,
            Anchor {
                seq: 13,
                id: other.id
            }
        )
    );
}

fn append_only_triggers(db: &dyn Db) {
    let mut ledger = db.open();
    fill(&mut *ledger, 3);
    for sql in [
        "UPDATE ledger_events SET summary = 'x' WHERE seq = 2",
        "DELETE FROM ledger_events WHERE seq = 3",
    ] {
        let err = db.exec(sql).unwrap_err();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert!(ledger.verify().unwrap().is_ok());
}

fn tamper_columns(db: &dyn Db) {
    let mut ledger = db.open();
    let written = fill(&mut *ledger, 8);
    db.tamper("UPDATE ledger_events SET summary = 'all good' WHERE seq = 3");
    db.tamper("UPDATE ledger_events SET ok = NOT ok WHERE seq = 4");
    db.tamper("UPDATE ledger_events SET details = '{\"files\":0}' WHERE seq = 5");
    let report = ledger.verify().unwrap();
    assert_only(
        &report,
        &[
            (ProblemKind::ColumnMismatch, 3),
            (ProblemKind::ColumnMismatch, 4),
            (ProblemKind::ColumnMismatch, 5),
        ],
    );
    for (p, column) in report.problems.iter().zip(["summary", "ok", "details"]) {
        assert!(p.message.contains(column), "{p}");
        assert_eq!(
            p.id.as_deref(),
            Some(written[p.seq.unwrap() as usize - 1].id.as_str())
        );
    }
    // Reads come from the hashed text, not the edited columns.
    assert_eq!(
        ledger.get(&written[2].id).unwrap().unwrap().summary,
        "event 3"
    );
    eprintln!("{report}");
}

fn tamper_content(db: &dyn Db) {
    let mut ledger = db.open();
    let written = fill(&mut *ledger, 8);
    assert!(!written[5].ok);
    db.tamper("UPDATE ledger_events SET canonical = replace(canonical, '\"ok\":false', '\"ok\":true') WHERE seq = 6");
    let report = ledger.verify().unwrap();
    assert_only(
        &report,
        &[
            (ProblemKind::HashMismatch, 6),
            (ProblemKind::ColumnMismatch, 6),
        ],
    );
    assert_eq!(
        report.first().unwrap().id.as_deref(),
        Some(written[5].id.as_str())
    );
}

/// Rewrites event `seq`'s summary in its text, columns and id: a consistent forgery of one row.
fn forge(db: &dyn Db, seq: u64, summary: &str) -> String {
    let text = db.text(&format!(
        "SELECT canonical FROM ledger_events WHERE seq = {seq}"
    ));
    let forged = text.replace(
        &format!("\"summary\":\"event {seq}\""),
        &format!("\"summary\":\"{summary}\""),
    );
    assert_ne!(forged, text);
    let id = hash_hex(forged.as_bytes());
    db.tamper(&format!(
        "UPDATE ledger_events SET canonical = '{}', id = '{id}', summary = '{summary}' WHERE seq = {seq}",
        forged.replace('\'', "''")
    ));
    id
}

fn tamper_rehashed(db: &dyn Db) {
    let mut ledger = db.open();
    fill(&mut *ledger, 8);
    let anchor = ledger.head().unwrap();
    forge(db, 6, "forged");
    let report = ledger.verify().unwrap();
    assert_only(&report, &[(ProblemKind::BrokenLink, 7)]);

    // Forging the last event and the head record too passes verify: the documented limit. An
    // anchor kept elsewhere catches it.
    let id = forge(db, 8, "forged too");
    db.tamper(&format!("UPDATE ledger_head SET hash = '{id}'"));
    let report = ledger.verify().unwrap();
    assert_only(&report, &[(ProblemKind::BrokenLink, 7)]);
    let report = ledger.verify_anchors(&[anchor]).unwrap();
    assert_only(
        &report,
        &[
            (ProblemKind::BrokenLink, 7),
            (ProblemKind::AnchorMismatch, 8),
        ],
    );
}

fn tamper_delete(db: &dyn Db) {
    let mut ledger = db.open();
    let written = fill(&mut *ledger, 8);
    db.tamper("DELETE FROM ledger_events WHERE seq = 4");
    let report = ledger.verify().unwrap();
    assert_only(
        &report,
        &[(ProblemKind::SequenceGap, 4), (ProblemKind::BrokenLink, 5)],
    );
    assert_eq!(
        report.problems[0].id.as_deref(),
        Some(written[4].id.as_str())
    );
    assert!(
        report.problems[0].message.contains("seq 4 is missing"),
        "{report}"
    );
    db.tamper("DELETE FROM ledger_events WHERE seq IN (1, 2)");
    let report = ledger.verify().unwrap();
    assert_only(
        &report,
        &[
            (ProblemKind::SequenceGap, 1),
            (ProblemKind::SequenceGap, 4),
            (ProblemKind::BrokenLink, 5),
        ],
    );
}

fn tamper_reorder(db: &dyn Db) {
    let mut ledger = db.open();
    fill(&mut *ledger, 8);
    db.tamper(
        "UPDATE ledger_events SET seq = -1 WHERE seq = 3;
         UPDATE ledger_events SET seq = 3 WHERE seq = 5;
         UPDATE ledger_events SET seq = 5 WHERE seq = -1",
    );
    let report = ledger.verify().unwrap();
    assert_only(
        &report,
        &[
            (ProblemKind::SequenceOrder, 3),
            (ProblemKind::BrokenLink, 3),
            (ProblemKind::BrokenLink, 4),
            (ProblemKind::SequenceOrder, 5),
            (ProblemKind::BrokenLink, 5),
            (ProblemKind::BrokenLink, 6),
        ],
    );
    eprintln!("{report}");
}

fn tamper_truncate(db: &dyn Db) {
    let mut ledger = db.open();
    let written = fill(&mut *ledger, 8);
    db.tamper("DELETE FROM ledger_events WHERE seq > 6");
    let report = ledger.verify().unwrap();
    assert_only(&report, &[(ProblemKind::HeadMismatch, 8)]);
    assert_eq!(report.head.seq, 6);
    assert!(report.problems[0].message.contains("seq 8"), "{report}");

    // Appending goes on after the head, so the hole stays visible.
    let next = ledger.append(sample(9)).unwrap();
    assert_eq!(
        (next.seq, next.prev_hash.as_str()),
        (9, written[7].id.as_str())
    );
    let report = ledger.verify().unwrap();
    assert_only(
        &report,
        &[(ProblemKind::SequenceGap, 7), (ProblemKind::BrokenLink, 9)],
    );

    // A missing head record is reported, and appends are refused.
    db.tamper("DELETE FROM ledger_head");
    assert!(ledger.verify().unwrap().has(ProblemKind::HeadMismatch));
    assert!(matches!(ledger.append(sample(10)), Err(Error::Damaged(_))));
    // Reopening does not quietly recreate it.
    let ledger = db.open();
    assert!(ledger.verify().unwrap().has(ProblemKind::HeadMismatch));
}

fn concurrent_appends(db: &dyn Db) {
    const PER_THREAD: u64 = 40;
    // Both threads open a never-opened database at once: schema creation races too.
    let barrier = Barrier::new(2);
    let started = Instant::now();
    let per_host: Vec<Vec<Event>> = std::thread::scope(|s| {
        let handles: Vec<_> = ["host-a", "host-b"]
            .into_iter()
            .map(|host| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let mut ledger = db.open_as(host);
                    (1..=PER_THREAD)
                        .map(|i| ledger.append(sample(i).dataset(host)).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!(
        "{} concurrent appends in {:.2?}",
        2 * PER_THREAD,
        started.elapsed()
    );
    let ledger = db.open();
    let report = ledger.verify().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.events, 2 * PER_THREAD);
    let all = ledger.events(&EventFilter::all()).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=2 * PER_THREAD).collect::<Vec<_>>()
    );
    for (host, written) in ["host-a", "host-b"].iter().zip(&per_host) {
        let mine: Vec<Event> = all.iter().filter(|e| e.host == *host).cloned().collect();
        assert_eq!(&mine, written);
    }

    // Two hosts closing the same item: exactly one wins.
    let mut ledger = db.open();
    let item = ledger
        .open_remediation("db", "restore test failed", None)
        .unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = ["host-a", "host-b"]
            .into_iter()
            .map(|host| {
                let (barrier, id) = (&barrier, item.id.clone());
                s.spawn(move || {
                    let mut ledger = db.open_as(host);
                    barrier.wait();
                    ledger.close_remediation(&id, None, host)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(Error::RemediationClosed(_))))
    );
    assert!(ledger.verify().unwrap().is_ok());
}

fn remediation_lifecycle(db: &dyn Db) {
    let mut ledger = db.open();
    let failed = ledger
        .append(
            NewEvent::new(
                EventKind::RestoreTest,
                "restore of db failed: 3 files differ",
            )
            .dataset("db")
            .ok(false),
        )
        .unwrap();
    let item = ledger
        .open_remediation("db", "restore test failed", Some(&failed.id))
        .unwrap();
    assert_eq!(
        (item.seq, item.dataset.as_str(), item.reason.as_str()),
        (2, "db", "restore test failed")
    );
    assert_eq!(item.event_id.as_deref(), Some(failed.id.as_str()));
    assert!(item.is_open());
    let other = ledger
        .open_remediation("home", "no backup for 3 days", None)
        .unwrap();
    assert_eq!(
        ledger.remediations(true).unwrap(),
        vec![item.clone(), other.clone()]
    );

    let opened = ledger.get(&item.id).unwrap().unwrap();
    assert_eq!(opened.kind, EventKind::RemediationOpened);
    assert_eq!(opened.details["event_id"], json!(failed.id));

    let passed = ledger
        .append(NewEvent::new(EventKind::RestoreTest, "restore of db ok").dataset("db"))
        .unwrap();
    let closed = ledger
        .close_remediation(&item.id, Some(&passed.id), "fixed the exclude rule")
        .unwrap();
    let closure = closed.closed.clone().unwrap();
    assert_eq!(
        (closure.seq, closure.closing_event_id.as_deref()),
        (5, Some(passed.id.as_str()))
    );
    assert_eq!(closure.note, "fixed the exclude rule");
    assert_eq!(ledger.remediations(true).unwrap(), vec![other.clone()]);
    assert_eq!(
        ledger.remediations(false).unwrap(),
        vec![closed.clone(), other.clone()]
    );
    let closing = ledger.get(&closure.id).unwrap().unwrap();
    assert_eq!(
        (closing.kind, closing.dataset.as_deref()),
        (EventKind::RemediationClosed, Some("db"))
    );

    assert!(matches!(
        ledger.close_remediation(&item.id, None, "again"),
        Err(Error::RemediationClosed(_))
    ));
    assert!(matches!(
        ledger.close_remediation("nope", None, "x"),
        Err(Error::RemediationNotFound(_))
    ));
    assert!(matches!(
        ledger.open_remediation("db", "x", Some("nope")),
        Err(Error::EventNotFound(_))
    ));
    assert!(matches!(
        ledger.close_remediation(&other.id, Some("nope"), "x"),
        Err(Error::EventNotFound(_))
    ));
    assert_eq!(
        ledger.head().unwrap().seq,
        5,
        "refused calls record nothing"
    );
    assert!(ledger.verify().unwrap().is_ok());

    // The table is checked against the events.
    db.tamper(&format!(
        "UPDATE ledger_remediations SET closed_by = '{0}', closed_seq = 1, closed_at = '2026-01-01T00:00:00.000000000Z', note = 'quietly' WHERE id = '{1}'",
        failed.id, other.id
    ));
    let report = ledger.verify().unwrap();
    assert_only(&report, &[(ProblemKind::RemediationMismatch, 3)]);
}

fn jsonl_copies(db: &dyn Db) {
    let mut ledger = db.open();
    fill(&mut *ledger, 6);
    let item = ledger.open_remediation("db", "check failed", None).unwrap();
    ledger
        .close_remediation(&item.id, None, "repaired")
        .unwrap();
    let events = ledger.events(&EventFilter::all()).unwrap();
    let copy = ledger.export_jsonl().unwrap();
    let text = String::from_utf8(copy.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8);
    for (line, e) in lines.iter().zip(&events) {
        assert_eq!(*line, e.export_line());
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            bulwark_ledger::canonical_json(&v),
            *line,
            "each line is canonical JSON"
        );
    }
    let report = verify_jsonl(&copy);
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.events, &report.head), (8, &ledger.head().unwrap()));
    assert_eq!(parse_jsonl(&copy).unwrap(), events);

    let join = |lines: &[String]| {
        lines
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes()
    };
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();

    // A modified line (middle or last) fails where it was modified.
    for n in [3usize, 8] {
        let mut bad = owned.clone();
        bad[n - 1] = if bad[n - 1].contains("\"ok\":true") {
            bad[n - 1].replacen("\"ok\":true", "\"ok\":false", 1)
        } else {
            bad[n - 1].replacen("\"ok\":false", "\"ok\":true", 1)
        };
        assert_ne!(bad[n - 1], owned[n - 1]);
        let report = verify_jsonl(&join(&bad));
        assert_only(&report, &[(ProblemKind::HashMismatch, n as u64)]);
        assert_eq!(report.problems[0].line, Some(n as u64));
    }
    // A removed line, swapped lines, a cut line.
    let mut bad = owned.clone();
    bad.remove(3);
    assert_only(
        &verify_jsonl(&join(&bad)),
        &[(ProblemKind::SequenceGap, 4), (ProblemKind::BrokenLink, 5)],
    );
    let mut bad = owned.clone();
    bad.swap(1, 2);
    let report = verify_jsonl(&join(&bad));
    assert_eq!(
        report.first().map(|p| (p.kind, p.line)),
        Some((ProblemKind::SequenceGap, Some(2))),
        "{report}"
    );
    assert!(report.has(ProblemKind::SequenceOrder) && report.has(ProblemKind::BrokenLink));
    let cut = &copy[..copy.len() - 10];
    let report = verify_jsonl(cut);
    assert!(report.has(ProblemKind::Malformed), "{report}");
    assert_eq!(report.problems[0].line, Some(8));
    // Dropping the closing event makes the remaining copy a valid shorter ledger: only an
    // anchor shows it. Dropping the opening one leaves a close of an unknown item.
    assert!(verify_jsonl(&join(&owned[..7])).is_ok());
    let mut bad = owned.clone();
    bad.remove(6);
    let report = verify_jsonl(&join(&bad));
    assert!(
        report.has(ProblemKind::RemediationMismatch) && report.has(ProblemKind::SequenceGap),
        "{report}"
    );

    // Import into an empty ledger restores it exactly; importing again adds nothing.
    let restored_db = sqlite().unwrap();
    let mut restored = restored_db.open_as("elsewhere");
    assert_eq!(restored.import_jsonl(&join(&owned[..5])).unwrap(), 5);
    assert_eq!(restored.import_jsonl(&copy).unwrap(), 3);
    assert_eq!(restored.import_jsonl(&copy).unwrap(), 0);
    assert_eq!(restored.import_jsonl(&join(&owned[..4])).unwrap(), 0);
    assert_eq!(restored.events(&EventFilter::all()).unwrap(), events);
    assert_eq!(
        restored.remediations(false).unwrap(),
        ledger.remediations(false).unwrap()
    );
    assert!(restored.verify().unwrap().is_ok());
    assert_eq!(restored.export_jsonl().unwrap(), copy);
    // A diverged ledger or a bad copy is refused.
    restored.append(sample(100)).unwrap();
    ledger.append(sample(101)).unwrap();
    assert!(matches!(
        restored.import_jsonl(&ledger.export_jsonl().unwrap()),
        Err(Error::Diverged(_))
    ));
    let mut bad = owned.clone();
    bad.remove(3);
    let mut fresh = sqlite().unwrap().open();
    assert!(matches!(
        fresh.import_jsonl(&join(&bad)),
        Err(Error::CopyInvalid(_))
    ));
    assert_eq!(fresh.head().unwrap(), Anchor::empty());

    // The export of a tampered ledger carries the damage.
    db.tamper("UPDATE ledger_events SET canonical = replace(canonical, 'event 2', 'event two') WHERE seq = 2");
    assert_only(
        &verify_jsonl(&ledger.export_jsonl().unwrap()),
        &[(ProblemKind::HashMismatch, 2)],
    );
}

// ---------------------------------------------------------------------------------------------

/// Every way of tampering, each on a fresh database (one test per backend: fewer restarts of
/// the PostgreSQL cluster when tests run one at a time).
fn tampering(db: &dyn Db) {
    type Scenario = fn(&dyn Db);
    let scenarios: [(&str, Scenario); 7] = [
        ("append_only_triggers", append_only_triggers),
        ("tamper_columns", tamper_columns),
        ("tamper_content", tamper_content),
        ("tamper_rehashed", tamper_rehashed),
        ("tamper_delete", tamper_delete),
        ("tamper_reorder", tamper_reorder),
        ("tamper_truncate", tamper_truncate),
    ];
    for (i, (name, scenario)) in scenarios.into_iter().enumerate() {
        eprintln!("-- {name}");
        if i == 0 {
            scenario(db);
        } else {
            scenario(&*db.sibling());
        }
    }
}

macro_rules! against {
    ($backend:ident: $($scenario:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $scenario() {
                    let Some(db) = super::$backend() else { return };
                    let started = std::time::Instant::now();
                    super::$scenario(&*db);
                    eprintln!("{}::{} took {:.2?}", stringify!($backend), stringify!($scenario), started.elapsed());
                }
            )*
        }
    };
}

against!(sqlite: round_trip, tampering, concurrent_appends, remediation_lifecycle, jsonl_copies);
against!(pg: round_trip, tampering, concurrent_appends, remediation_lifecycle, jsonl_copies);

#[test]
fn a_missing_ledger_is_not_created_when_it_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.sqlite");
    let options = Options::new("h");
    assert!(matches!(
        SqliteLedger::open_existing(&path, &options),
        Err(Error::Missing(_))
    ));
    assert!(!path.exists());
    let mut ledger = SqliteLedger::open(&path, &options).unwrap();
    ledger
        .append(NewEvent::new(
            EventKind::ConfigChange,
            "initial configuration",
        ))
        .unwrap();
    drop(ledger);
    let ledger = SqliteLedger::open_existing(&path, &options).unwrap();
    assert_eq!(ledger.head().unwrap().seq, 1);
    assert_eq!(ledger.location(), path.display().to_string());
}
