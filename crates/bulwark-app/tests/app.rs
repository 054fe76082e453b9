//! The application layer used as a library, the way the CLI and the daemon use it: a run of the
//! embedded default, status judged against a clock we choose, a failing restore test opening a
//! remediation item that a passing one closes, and typed events read back from the ledger.

#[path = "support/site.rs"]
mod site;

use std::path::Path;

use bulwark_app::events::{BackupDetails, Details, RestoreTestDetails, RunDetails};
use bulwark_app::run::{RunRequest, Selection, run};
use bulwark_app::status::status;
use bulwark_app::{Create, Credentials, FailureKind, OpenOptions, Workspace};
use bulwark_ledger::{EventFilter, EventKind};
use bulwark_ops::Silent;
use bulwark_policy::compliance::Verdict;
use chrono::{Duration, Utc};

fn open(config: &Path, create: Create) -> Workspace {
    Workspace::open(
        config,
        OpenOptions {
            credentials: Credentials::default(),
            create,
            cache: false,
        },
    )
    .unwrap()
}

fn request(selection: Selection) -> RunRequest<'static> {
    RunRequest {
        selection,
        now: Utc::now(),
        progress: &Silent,
        context: None,
    }
}

#[test]
fn the_embedded_default_runs_and_every_commitment_is_met() {
    let (_dir, config) = site::embedded_default();
    let ws = open(&config, Create::Everything);
    let created = ws.init_missing().unwrap();
    assert_eq!(created.len(), 2);
    assert!(created.iter().all(|o| o.created));
    assert_eq!(
        created
            .iter()
            .find(|o| o.repository == "offsite")
            .unwrap()
            .replica_of
            .as_deref(),
        Some("primary")
    );

    let report = run(&ws, &request(Selection::All)).unwrap();
    assert!(report.ok, "{report:?}");
    assert!(!report.nothing_due);
    for d in &report.datasets {
        let steps: Vec<&str> = d.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(
            steps,
            ["backup", "copy to offsite", "forget", "restore test"],
            "{}",
            d.dataset
        );
    }
    assert!(report.maintenance.iter().any(|s| s.step == "ledger copy"));

    // Every step is an event whose typed details say what happened.
    let ledger = ws.ledger();
    let backups = ledger
        .events(&EventFilter::all().kind(EventKind::Backup))
        .unwrap();
    assert_eq!(backups.len(), 2);
    let primary = ws.repository("primary").unwrap();
    for e in &backups {
        let d = BackupDetails::of(e).unwrap();
        let id = d.snapshot_id.unwrap();
        let (_, snap) = primary.find_snapshot(&id, |_| true).unwrap();
        assert_eq!(snap.dataset.as_deref(), e.dataset.as_deref());
        assert_eq!(
            d.summary.unwrap().total_files,
            snap.summary.unwrap().total_files
        );
    }
    let tests = ledger
        .events(&EventFilter::all().kind(EventKind::RestoreTest))
        .unwrap();
    for e in &tests {
        let d = RestoreTestDetails::of(e).unwrap();
        assert!(d.report.passed && e.ok, "{d:?}");
        assert!(d.report.checks.iter().any(|c| c.name == "integrity"));
    }
    let last_run = ledger.last(&EventKind::Run, None, false).unwrap().unwrap();
    assert_eq!(RunDetails::of(&last_run).unwrap().selection, "all");
    drop(ledger);

    let st = status(&ws, Utc::now()).unwrap();
    assert_eq!(st.verdict, Verdict::Met, "{st:?}");
    assert_eq!(st.ledger.verdict, Verdict::Met, "{:?}", st.ledger);
    assert!(st.ledger.copies.iter().all(|c| c.agreement.is_some()));
}

#[test]
fn status_follows_the_clock_it_is_given() {
    let (_dir, config) = site::embedded_default();
    let ws = open(&config, Create::Everything);
    ws.init_missing().unwrap();
    assert!(run(&ws, &request(Selection::All)).unwrap().ok);
    let now = Utc::now();
    let rpo = |at| {
        let st = status(&ws, at).unwrap();
        st.datasets["app-db"]
            .status
            .aspects
            .iter()
            .find(|a| a.name == "rpo")
            .unwrap()
            .verdict
    };
    assert_eq!(rpo(now), Verdict::Met);
    assert_eq!(rpo(now + Duration::days(2)), Verdict::Breached);
    // A restore test every 7 days for app-db: overdue after 8.
    let st = status(&ws, now + Duration::days(8)).unwrap();
    let rto = st.datasets["app-db"]
        .status
        .aspects
        .iter()
        .find(|a| a.name == "rto")
        .unwrap();
    assert_eq!(rto.verdict, Verdict::Breached, "{rto:?}");
}

#[test]
fn a_failing_restore_test_opens_a_remediation_item_that_a_pass_closes() {
    let (dir, config) = site::embedded_default();
    let ws = open(&config, Create::Everything);
    ws.init_missing().unwrap();
    assert!(
        run(&ws, &request(Selection::Named(vec!["docs".into()])))
            .unwrap()
            .ok
    );
    drop(ws);
    // Damage every data pack of the primary.
    let mut damaged = 0;
    let mut stack = vec![dir.path().join("state/primary/data")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mut bytes = std::fs::read(&p).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                std::fs::write(&p, bytes).unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0);
    let ws = open(&config, Create::Nothing);
    let report = run(&ws, &request(Selection::Named(vec!["docs".into()]))).unwrap();
    assert!(!report.ok);
    let test = report.datasets[0]
        .steps
        .iter()
        .find(|s| s.step == "restore test")
        .unwrap();
    assert!(!test.ok);
    assert_eq!(test.failure, Some(FailureKind::Check), "{test:?}");
    let open_items = ws.ledger().remediations(true).unwrap();
    assert_eq!(open_items.len(), 1);
    assert_eq!(open_items[0].dataset, "docs");
    assert_eq!(open_items[0].event_id.as_deref(), test.event.as_deref());
    let event = ws
        .ledger()
        .get(test.event.as_deref().unwrap())
        .unwrap()
        .unwrap();
    let details = RestoreTestDetails::of(&event).unwrap();
    assert!(
        details.report.failed_checks().next().is_some(),
        "{details:?}"
    );
    let st = status(&ws, Utc::now()).unwrap();
    assert_eq!(st.datasets["docs"].facts.open_remediations, 1);
    assert_eq!(st.datasets["docs"].status.verdict, Verdict::Breached);

    // Heal from the replica; the next run re-tests, passes and closes the item.
    let primary = ws.repository("primary").unwrap();
    let offsite = ws.repository("offsite").unwrap();
    bulwark_ops::replica::repair_packs(&primary, &offsite).unwrap();
    drop((primary, offsite));
    let ws = open(&config, Create::Nothing);
    let report = run(&ws, &request(Selection::Named(vec!["docs".into()]))).unwrap();
    assert!(report.ok, "{report:?}");
    assert!(ws.ledger().remediations(true).unwrap().is_empty());
    let all = ws.ledger().remediations(false).unwrap();
    assert!(all[0].closed.is_some());
}

#[test]
fn reading_opens_nothing_that_is_not_there() {
    let (dir, config) = site::embedded_default();
    // No ledger yet: reading refuses, and creates nothing.
    assert!(
        Workspace::open(
            &config,
            OpenOptions {
                credentials: Credentials::default(),
                create: Create::Nothing,
                cache: false,
            }
        )
        .is_err()
    );
    assert!(!dir.path().join("state").exists());
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let ws = open(&config, Create::Ledger);
    let err = ws.repository("primary").err().unwrap();
    assert_eq!(err.kind(), FailureKind::NoRepository, "{err}");
    assert!(!dir.path().join("state/primary").exists());
    let st = status(&ws, Utc::now()).unwrap();
    assert_eq!(st.unreachable.len(), 2, "{st:?}");
    assert_eq!(st.verdict, Verdict::Breached);
}

#[test]
fn a_snapshot_saved_without_its_event_is_recorded_by_the_next_run() {
    let (_dir, config) = site::embedded_default();
    let ws = open(&config, Create::Everything);
    ws.init_missing().unwrap();
    assert!(run(&ws, &request(Selection::All)).unwrap().ok);
    // A node that saved a snapshot and stopped before it wrote the ledger event.
    let primary = ws.repository("primary").unwrap();
    let d = ws.dataset("app-db").unwrap();
    let made = Utc::now() + Duration::minutes(1);
    let orphan = bulwark_app::dataset::backup_dataset(&ws, d, &primary, &Silent, made).unwrap();
    let backups = |found: bool| -> Vec<BackupDetails> {
        ws.ledger()
            .events(&EventFilter::all().kind(EventKind::Backup).dataset("app-db"))
            .unwrap()
            .iter()
            .map(|e| BackupDetails::of(e).unwrap())
            .filter(|b| b.found == found)
            .collect()
    };
    assert_eq!(backups(false).len(), 1);
    assert!(backups(true).is_empty());

    // The next run has no backup due for app-db, yet records what it found (and copies it
    // off-site, which the stopped node never did).
    let mut later = request(Selection::Due);
    later.now = made + Duration::minutes(1);
    let report = run(&ws, &later).unwrap();
    assert!(report.ok, "{report:?}");
    let app = report
        .datasets
        .iter()
        .find(|r| r.dataset == "app-db")
        .expect("the found snapshot is reported");
    let steps: Vec<&str> = app.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(
        steps,
        ["record found snapshot", "copy to offsite"],
        "{app:?}"
    );
    let found = backups(true);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].snapshot_id.as_deref(),
        Some(orphan.snapshot_id.to_hex().as_str())
    );
    assert_eq!(
        found[0].summary.as_ref().unwrap().total_files,
        orphan.summary.total_files
    );
    let event = ws
        .ledger()
        .last(&EventKind::Backup, Some("app-db"), true)
        .unwrap()
        .unwrap();
    assert!(
        (event.started - made).num_seconds().abs() <= 1,
        "the event starts when the snapshot was taken: {event:?}"
    );

    // Recorded once: the run after finds nothing new.
    later.now += Duration::minutes(1);
    let report = run(&ws, &later).unwrap();
    assert!(
        report.steps().all(|s| s.step != "record found snapshot"),
        "{report:?}"
    );
    assert_eq!(backups(true).len(), 1);
}
