//! The scheduler against a clock we move: one catch-up run per dataset after days of downtime
//! (not one per missed slot), one job per repository at a time, jitter that holds a due job back
//! within its bound, and leases with growing fencing tokens recorded with each job's events.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bulwark_app::events::{Details, RunDetails};
use bulwark_ledger::{EventFilter, EventKind};
use bulwark_server::clock::{Clock, ManualClock};
use bulwark_server::daemon::Daemon;
use chrono::Utc;

/// The embedded default in a fresh directory, with `daemon` settings appended.
fn site(daemon: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = common::copy_embedded_default(dir.path());
    let config = dir.path().join("bulwark.toml");
    std::fs::write(&config, format!("{text}\n[daemon]\n{daemon}\n")).unwrap();
    (dir, config)
}

/// Tick until nothing more starts, waiting for each job; the datasets started, in order.
fn settle(d: &Arc<Daemon>) -> Vec<String> {
    let mut started = Vec::new();
    loop {
        let jobs = d.tick().unwrap();
        if jobs.is_empty() {
            return started;
        }
        started.extend(jobs.into_iter().map(|j| j.dataset));
        assert!(d.wait_for_jobs(Duration::from_secs(120)), "jobs finish");
    }
}

fn backups(d: &Daemon, dataset: &str) -> usize {
    d.workspace()
        .ledger()
        .events(
            &EventFilter::all()
                .kind(EventKind::Backup)
                .dataset(dataset)
                .ok(true),
        )
        .unwrap()
        .len()
}

#[test]
fn downtime_costs_one_catch_up_run_per_dataset() {
    let (_dir, config) = site("max_jitter = \"0\"");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let d = common::quick_daemon(&config, clock.clone());

    // Both datasets live in one repository: one job at a time there.
    let first = d.tick().unwrap();
    assert_eq!(first.len(), 1, "one job per repository: {first:?}");
    assert!(
        d.tick().unwrap().is_empty(),
        "the repository's slot is taken"
    );
    assert!(d.wait_for_jobs(Duration::from_secs(120)));
    let mut all = vec![first[0].dataset.clone()];
    all.extend(settle(&d));
    all.sort();
    assert_eq!(all, ["app-db", "docs"]);
    assert!(d.tick().unwrap().is_empty(), "nothing due right after");

    // Three days down: docs (every 6h) missed 12 slots, app-db (daily) 3. One run each.
    clock.advance(chrono::Duration::days(3));
    let mut caught_up = settle(&d);
    caught_up.sort();
    assert_eq!(caught_up, ["app-db", "docs"]);
    assert_eq!(backups(&d, "docs"), 2);
    assert_eq!(backups(&d, "app-db"), 2);

    // Each job's run event names the node and its lease; tokens only grow.
    let runs = d
        .workspace()
        .ledger()
        .events(&EventFilter::all().kind(EventKind::Run))
        .unwrap();
    let fencing: Vec<i64> = runs
        .iter()
        .filter_map(|e| RunDetails::of(e).ok()?.context)
        .filter(|c| c["lease"]["key"] == "dataset:docs")
        .map(|c| c["lease"]["fencing"].as_i64().unwrap())
        .collect();
    assert_eq!(fencing, [1, 2], "{runs:?}");
    let snapshots_time = d
        .workspace()
        .repository("primary")
        .unwrap()
        .load_snapshots()
        .unwrap()
        .0
        .iter()
        .filter(|(_, s)| s.dataset.as_deref() == Some("docs"))
        .map(|(_, s)| s.time.to_utc())
        .max()
        .unwrap();
    assert!(
        snapshots_time >= clock.now() - chrono::Duration::minutes(5),
        "the catch-up snapshot is dated by the daemon's clock"
    );
}

#[test]
fn jitter_holds_a_due_job_back_within_its_bound() {
    let (_dir, config) = site("max_jitter = \"1h\"\njobs_per_repository = 2");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let d = common::quick_daemon(&config, clock.clone());
    assert!(
        d.tick().unwrap().is_empty(),
        "a due job waits for its jitter"
    );
    clock.advance(chrono::Duration::minutes(61));
    let mut started: Vec<String> = d.tick().unwrap().into_iter().map(|j| j.dataset).collect();
    started.sort();
    assert_eq!(started, ["app-db", "docs"], "two slots per repository");
    assert!(d.wait_for_jobs(Duration::from_secs(120)));
}

#[test]
fn a_run_asked_for_is_recorded_with_its_caller() {
    let (_dir, config) = site("max_jitter = \"0\"");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let d = common::quick_daemon(&config, clock);
    let job = d.trigger("docs", "alice").unwrap();
    assert_eq!(job.trigger, "api:alice");
    assert!(d.wait_for_jobs(Duration::from_secs(120)));
    let calls = d
        .workspace()
        .ledger()
        .events(&EventFilter::all().kind(EventKind::ApiCall))
        .unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].details["caller"], "alice");
    assert_eq!(calls[0].dataset.as_deref(), Some("docs"));
    assert_eq!(backups(&d, "docs"), 1);
    assert!(d.trigger("nope", "alice").is_err());
    let recent = d.jobs.recent();
    assert_eq!(recent[0].ok, Some(true), "{recent:?}");
}

#[test]
fn a_breached_recovery_point_is_told_once_per_episode() {
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.txt");
    let (_site, config) = site(&format!(
        "max_jitter = \"0\"\n\n[notifications.ops]\ncommand = [\"sh\", \"-c\", \"cat >> {}\"]\non = [\"rpo_at_risk\", \"rpo_breached\"]\n",
        heard.display()
    ));
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let d = common::quick_daemon(&config, clock.clone());
    settle(&d);
    d.refresh().unwrap();
    assert!(
        !heard.exists(),
        "nothing to tell while every commitment is met"
    );
    // Thirty hours without a backup: past the 24-hour RPO.
    clock.advance(chrono::Duration::hours(30));
    for _ in 0..3 {
        d.refresh().unwrap();
    }
    let text = std::fs::read_to_string(&heard).unwrap();
    let breached: Vec<&str> = text.lines().filter(|l| l.contains("rpo")).collect();
    assert_eq!(
        breached.len(),
        2,
        "one notice per dataset, however often raised: {text}"
    );
    assert!(text.contains("app-db") && text.contains("docs"), "{text}");
    // A new backup is a new episode; breaching again is told again.
    settle(&d);
    clock.advance(chrono::Duration::hours(30));
    d.refresh().unwrap();
    let again = std::fs::read_to_string(&heard).unwrap();
    assert_eq!(
        again.lines().filter(|l| l.contains("rpo")).count(),
        4,
        "{again}"
    );
}
