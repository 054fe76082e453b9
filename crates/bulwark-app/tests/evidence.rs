//! Evidence packs from a fabricated year: weekly runs of the embedded default on a clock set back
//! a year (a stretch where one dataset was not backed up, a restore test that failed and was
//! re-tested, a drill, a failover and its failback, an incident), judged section by section;
//! the pack verified by Bulwark and by `sha256sum` and `openssl` alone; any edit of the pack
//! named by verify; a ledger whose tail was rewritten after the pack failing the live check.

#[path = "support/site.rs"]
mod site;

use site::{open, site};
use std::path::{Path, PathBuf};
use std::process::Command;

use bulwark_app::Workspace;
use bulwark_app::drill::{DrillRequest, Scope, Source, drill};
use bulwark_app::evidence::model::{Finding, Report};
use bulwark_app::evidence::{Request, build, pack, sign, verify};
use bulwark_app::run::{RunRequest, Selection, run};
use bulwark_ledger::{EventKind, NewEvent};
use bulwark_ops::Silent;
use chrono::{DateTime, Duration, DurationRound, Utc};

struct Year {
    dir: tempfile::TempDir,
    config: PathBuf,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    key: ed25519_dalek::SigningKey,
    public: PathBuf,
}

/// A run every 84 hours for a year, ending a day ago; for four weeks from day 140 only app-db is
/// backed up; from day 200 app-db's orders are gone until a restore test fails on it (its check
/// finds no order), and the next run's re-test passes.
fn year() -> Year {
    let (dir, config) = site();
    let ws = open(&config);
    ws.init_missing().unwrap();
    let now = Utc::now().duration_trunc(Duration::hours(1)).unwrap();
    let from = now - Duration::days(365);
    let db = dir.path().join("sample/app.db");
    let saved = dir.path().join("app.db.saved");
    let mut emptied = false;
    let mut failed = 0;
    let mut drilled = false;
    let mut runs = 0;
    let mut at = from + Duration::hours(1);
    while at < now - Duration::days(1) {
        let day = (at - from).num_days();
        if day >= 200 && failed == 0 && !emptied {
            std::fs::copy(&db, &saved).unwrap();
            let c = rusqlite::Connection::open(&db).unwrap();
            c.execute("DELETE FROM orders", []).unwrap();
            emptied = true;
        }
        let selection = if (140..168).contains(&day) {
            Selection::Named(vec!["app-db".into()])
        } else {
            Selection::All
        };
        let report = run(
            &ws,
            &RunRequest {
                selection,
                now: at,
                progress: &Silent,
                context: None,
            },
        )
        .unwrap();
        runs += 1;
        if !report.ok {
            failed += 1;
            assert!(emptied && failed == 1, "day {day}: {report:?}");
            std::fs::copy(&saved, &db).unwrap();
            emptied = false;
        }
        if day >= 180 && !drilled {
            let report = drill(
                &ws,
                &DrillRequest {
                    scope: Scope::Critical,
                    source: Source::Replicas,
                    now: at + Duration::hours(2),
                    progress: &Silent,
                },
            )
            .unwrap();
            assert!(report.passed, "{report:?}");
            drilled = true;
        }
        at += Duration::hours(84);
    }
    assert_eq!(failed, 1);
    assert!(runs > 100);
    bulwark_app::failover::failover(&ws, "offsite", "region local-a unreachable (exercise)")
        .unwrap();
    drop(ws);
    let ws = open(&config);
    bulwark_app::failover::failback(&ws, Some("primary")).unwrap();
    ws.ledger()
        .append(
            NewEvent::new(EventKind::Incident, "SEV-2: primary region degraded")
                .timed(now - Duration::hours(3), now - Duration::hours(2))
                .details(serde_json::json!({"severity": "SEV-2", "status": "resolved"})),
        )
        .unwrap();
    drop(ws);
    let key_file = dir.path().join("evidence.key");
    let (public, _) = sign::generate(&key_file).unwrap();
    let key = sign::load_signing_key(&key_file).unwrap();
    Year {
        dir,
        config,
        from,
        to: now + Duration::days(1),
        key,
        public,
    }
}

fn verdict(r: &Report, section: &str, subject: Option<&str>) -> Finding {
    let s = r
        .sections
        .iter()
        .find(|s| s.id == section)
        .unwrap_or_else(|| panic!("no section {section}"));
    match subject {
        None => s.verdict,
        Some(name) => {
            s.subjects
                .iter()
                .find(|x| x.name == name)
                .unwrap_or_else(|| panic!("no subject {name} in {section}: {:?}", s.subjects))
                .verdict
        }
    }
}

fn sh(dir: &Path, script: &str) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_year_of_history_makes_a_pack_an_auditor_can_check_with_standard_tools() {
    let y = year();
    let ws = open(&y.config);
    let pack = build(
        &ws,
        &Request {
            from: y.from,
            to: y.to,
            now: y.to,
            key: &y.key,
            pdf: None,
        },
    )
    .unwrap();
    let r = &pack.report;
    let s = |id: &str, subject: Option<&str>| verdict(r, id, subject);
    // The skipped weeks breach docs' RPO, and only docs'.
    assert_eq!(s("rpo", Some("app-db")), Finding::Met);
    assert_eq!(s("rpo", Some("docs")), Finding::Breached);
    let rpo = r.sections.iter().find(|x| x.id == "rpo").unwrap();
    let stretches = rpo
        .tables
        .iter()
        .find(|t| t.title.contains("past the RPO"))
        .unwrap();
    assert_eq!(stretches.rows.len(), 1, "{:?}", stretches.rows);
    assert_eq!(stretches.rows[0].cells[0], "docs");
    assert!(rpo.charts.iter().all(|c| !c.points.is_empty()));
    // The failed restore test left app-db longer than its interval (plus a run's grace) without
    // a passing one; docs were tested on time.
    assert_eq!(s("restore_tests", Some("app-db")), Finding::Breached);
    assert_eq!(s("restore_tests", Some("docs")), Finding::Met);
    let tests = r.sections.iter().find(|x| x.id == "restore_tests").unwrap();
    let app_db = tests.subjects.iter().find(|x| x.name == "app-db").unwrap();
    assert!(
        app_db.reason.contains("without a passing restore test"),
        "{}",
        app_db.reason
    );
    assert!(
        app_db.measured.contains("(1 failed)"),
        "{}",
        app_db.measured
    );
    assert_eq!(s("remediation", None), Finding::Met);
    assert_eq!(s("restore_test_summary", Some("app-db")), Finding::Met);
    assert_eq!(s("retention", Some("app-db")), Finding::Met);
    assert_eq!(s("encryption", None), Finding::Met);
    assert_eq!(s("offsite", Some("app-db → offsite")), Finding::Met);
    assert_eq!(s("offsite", Some("docs → offsite")), Finding::Informational);
    assert_eq!(s("drills", None), Finding::Met);
    assert_eq!(s("failovers", None), Finding::Met);
    assert_eq!(s("roles", None), Finding::Met);
    assert_eq!(s("evidence_integrity", None), Finding::Met);
    let incidents = r
        .sections
        .iter()
        .find(|x| x.id == "incidents_and_reviews")
        .unwrap();
    assert_eq!(incidents.verdict, Finding::Informational);
    assert!(incidents.tables[0].rows[0].cells[4].contains("SEV-2"));
    assert_eq!(r.verdict, Finding::Breached);
    // Every cited event is in the segment, and the segment is the period's.
    assert!(r.chain.events > 300, "{:?}", r.chain);
    assert_eq!(r.chain.last.as_ref().unwrap(), &r.chain.ledger_head);

    // report.json validates against the published schema.
    let schema: serde_json::Value = serde_json::from_str(bulwark_app::evidence::SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let instance: serde_json::Value = serde_json::from_slice(&pack.files["report.json"]).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut bad = instance.clone();
    bad["sections"][0]["verdict"] = "fine".into();
    assert!(!validator.is_valid(&bad));
    let html = String::from_utf8_lossy(&pack.files["report.html"]);
    assert!(html.contains("<svg") && !html.contains("<script") && !html.contains("http://"));

    // Bulwark's verify, including the live ledger.
    let public = sign::load_public_key(&y.public).unwrap();
    let out = verify::verify(&pack.files, &public, Some(&**ws.ledger()));
    assert!(out.is_ok(), "{:?}", out.problems);
    assert!(out.live_checked);

    // The standard tools, on the directory and on the extracted tar.
    let as_dir = y.dir.path().join("pack");
    pack::write(&pack.files, &pack.name, &as_dir).unwrap();
    let tar = y.dir.path().join("pack.tar");
    pack::write(&pack.files, &pack.name, &tar).unwrap();
    assert!(matches!(
        pack::write(&pack.files, &pack.name, &tar),
        Err(bulwark_app::evidence::EvidenceError::Exists(_))
    ));
    let (ok, text) = sh(y.dir.path(), "mkdir x && tar -C x -xf pack.tar");
    assert!(ok, "{text}");
    let extracted = y.dir.path().join("x").join(&pack.name);
    let pubkey = y.public.display().to_string();
    let procedure = format!(
        "sha256sum -c MANIFEST && sed -n 's/^signature: //p' MANIFEST.sig | base64 -d > /tmp/sig-$$.bin \
         && openssl pkeyutl -verify -pubin -inkey {pubkey} -rawin -in MANIFEST -sigfile /tmp/sig-$$.bin; \
         rc=$?; rm -f /tmp/sig-$$.bin; exit $rc"
    );
    for d in [&as_dir, &extracted] {
        let (ok, text) = sh(d, &procedure);
        assert!(ok, "{text}");
        assert!(text.contains("Signature Verified Successfully"), "{text}");
    }
    // The fingerprint is openssl's too.
    let (ok, text) = sh(
        y.dir.path(),
        &format!("openssl pkey -pubin -in {pubkey} -outform DER | sha256sum"),
    );
    assert!(ok, "{text}");
    assert_eq!(r.signing_key, format!("SHA256:{}", &text[..64]));
    // An edited file fails both.
    std::fs::write(as_dir.join("report.html"), b"<p>all fine</p>").unwrap();
    let (ok, text) = sh(&as_dir, &procedure);
    assert!(!ok && text.contains("report.html: FAILED"), "{text}");
}

#[test]
fn every_edit_of_a_pack_is_named_and_a_rewritten_ledger_fails_the_live_check() {
    let y = year();
    let ws = open(&y.config);
    let make = |ws: &Workspace| {
        build(
            ws,
            &Request {
                from: y.from,
                to: y.to,
                now: y.to,
                key: &y.key,
                pdf: None,
            },
        )
        .unwrap()
    };
    let pack = make(&ws);
    let public = sign::load_public_key(&y.public).unwrap();
    for name in pack.files.keys() {
        let mut files = pack.files.clone();
        files.get_mut(name).unwrap().push(b'\n');
        let out = verify::verify(&files, &public, None);
        assert!(
            out.problems.iter().any(|p| &p.file == name),
            "{name}: {:?}",
            out.problems
        );
    }
    // An event edited, and the pack re-hashed and re-signed with another key: the signature
    // names the wrong key; and even under that key, the chain names the event.
    let text = String::from_utf8(pack.files["events.jsonl"].clone()).unwrap();
    let line = text.lines().nth(5).unwrap();
    let edited_line = line.replacen("\"ok\":true", "\"ok\":false", 1);
    assert_ne!(line, edited_line);
    let mut files = pack.files.clone();
    files.insert(
        "events.jsonl".into(),
        text.replacen(line, &edited_line, 1).into_bytes(),
    );
    let other_file = y.dir.path().join("other.key");
    sign::generate(&other_file).unwrap();
    let other = sign::load_signing_key(&other_file).unwrap();
    let manifest = pack::manifest(&files);
    files.insert(pack::MANIFEST.into(), manifest.clone().into_bytes());
    files.insert(
        pack::SIGNATURE.into(),
        sign::sign(&other, manifest.as_bytes()).into_bytes(),
    );
    let out = verify::verify(&files, &public, None);
    assert!(
        out.problems.iter().any(|p| p.file == pack::SIGNATURE),
        "{:?}",
        out.problems
    );
    let out = verify::verify(&files, &other.verifying_key(), None);
    let seq: u64 = serde_json::from_str::<serde_json::Value>(line).unwrap()["event"]["seq"]
        .as_u64()
        .unwrap();
    assert!(
        out.problems.iter().any(|p| p.file == "events.jsonl"
            && p.message.contains(&format!("event {seq} "))
            && p.message.contains("changed")),
        "{:?}",
        out.problems
    );

    // The ledger's tail rewritten after the pack: restored from a copy taken before its last
    // event and extended with a different one. Its own chain verifies; the pack's does not match.
    let ledger_file = y.dir.path().join("state/bulwark-ledger.db");
    let before = y.dir.path().join("ledger-before.db");
    drop(ws);
    std::fs::copy(&ledger_file, &before).unwrap();
    let ws = open(&y.config);
    ws.ledger()
        .append(
            NewEvent::new(EventKind::Review, "annual plan review")
                .timed(y.to - Duration::hours(2), y.to - Duration::hours(2)),
        )
        .unwrap();
    let pack = make(&ws);
    assert!(verify::verify(&pack.files, &public, Some(&**ws.ledger())).is_ok());
    drop(ws);
    std::fs::copy(&before, &ledger_file).unwrap();
    let ws = open(&y.config);
    ws.ledger()
        .append(
            NewEvent::new(EventKind::Review, "no review happened")
                .timed(y.to - Duration::hours(2), y.to - Duration::hours(2)),
        )
        .unwrap();
    assert!(ws.ledger().verify().unwrap().is_ok());
    let out = verify::verify(&pack.files, &public, Some(&**ws.ledger()));
    assert!(
        out.problems
            .iter()
            .any(|p| p.message.contains("not the live ledger's")),
        "{:?}",
        out.problems
    );
    // Without the live check, the pack itself is still sound.
    assert!(verify::verify(&pack.files, &public, None).is_ok());
}

#[test]
fn the_daemon_files_last_months_pack_once() {
    let (dir, config) = site();
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[evidence]\nsigning_key = \"evidence.key\"\nmonthly_to = \"evidence\"\n";
    std::fs::write(&config, text).unwrap();
    let (public, _) = sign::generate(&dir.path().join("evidence.key")).unwrap();
    let ws = open(&config);
    ws.init_missing().unwrap();
    let now = Utc::now();
    let (from, to) = bulwark_app::evidence::monthly::previous_month(now);
    run(
        &ws,
        &RunRequest {
            selection: Selection::All,
            now: from + Duration::days(3),
            progress: &Silent,
            context: None,
        },
    )
    .unwrap();
    let filed = bulwark_app::evidence::monthly::file_last_month(&ws, now)
        .unwrap()
        .expect("last month filed");
    let filed = std::path::PathBuf::from(filed);
    assert_eq!(
        filed,
        dir.path()
            .join("evidence")
            .join(bulwark_app::evidence::monthly::file_name(from))
    );
    let files = pack::read(&filed).unwrap();
    let report: Report = serde_json::from_slice(&files["report.json"]).unwrap();
    assert_eq!((report.period.from, report.period.to), (from, to));
    let key = sign::load_public_key(&public).unwrap();
    assert!(verify::verify(&files, &key, Some(&**ws.ledger())).is_ok());
    // Filed once: a second tick leaves it alone.
    assert!(
        bulwark_app::evidence::monthly::file_last_month(&ws, now)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("evidence"))
            .unwrap()
            .count(),
        1
    );
}
