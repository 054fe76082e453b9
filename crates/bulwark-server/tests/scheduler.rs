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
use bulwark_server::daemon::{Daemon, PLATFORM_JOB, PLATFORM_RETRY};
use chrono::Utc;

/// The embedded default in a fresh directory, with `daemon` settings appended.
fn site(daemon: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = common::copy_embedded_default(dir.path());
    let config = dir.path().join("bulwark.toml");
    std::fs::write(&config, format!("{text}\n[daemon]\n{daemon}\n")).unwrap();
    (dir, config)
}

/// Tick until nothing more starts, waiting for each job; the jobs started, in order, the
/// platform's (drill, replication audits) included.
fn settle_all(d: &Arc<Daemon>) -> Vec<String> {
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

/// [`settle_all`], the datasets' jobs only.
fn settle(d: &Arc<Daemon>) -> Vec<String> {
    let mut started = settle_all(d);
    started.retain(|j| j != PLATFORM_JOB);
    started
}

fn count(d: &Daemon, kind: EventKind) -> usize {
    d.workspace()
        .ledger()
        .events(&EventFilter::all().kind(kind))
        .unwrap()
        .len()
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

#[test]
fn the_drill_and_replication_audits_run_as_one_platform_job_after_the_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let (source, replica) = (dir.path().join("media-eu"), dir.path().join("media-us"));
    for b in [&source, &replica] {
        std::fs::create_dir_all(b).unwrap();
        std::fs::write(b.join("logo.png"), b"png").unwrap();
    }
    std::fs::write(source.join("new.png"), b"not replicated yet").unwrap();
    let (_site, config) = site(&format!(
        "max_jitter = \"0\"\n\n[replication.media]\nsource = \"{}\"\nreplica = \"{}\"\naudit_every = \"6h\"\n",
        source.display(),
        replica.display()
    ));
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let d = common::quick_daemon(&config, clock.clone());

    // The datasets first; the platform's work once none is due or running, in one job.
    let started = settle_all(&d);
    assert_eq!(started.len(), 3, "{started:?}");
    assert_eq!(started.last().map(String::as_str), Some(PLATFORM_JOB));
    assert_eq!(count(&d, EventKind::Drill), 1);
    assert_eq!(count(&d, EventKind::ReplicationAudit), 1);
    let drill = d
        .workspace()
        .ledger()
        .last(&EventKind::Drill, None, false)
        .unwrap()
        .unwrap();
    assert!(
        drill.ok,
        "the drill restores the copies just made: {drill:?}"
    );
    assert!(
        settle_all(&d).is_empty(),
        "nothing is due right after, however often the scheduler looks"
    );

    // The audit found a missing object: it is due again after `audit_every`; the drill is not.
    clock.advance(chrono::Duration::hours(7));
    std::fs::write(replica.join("new.png"), b"not replicated yet").unwrap();
    let started = settle_all(&d);
    assert!(started.iter().any(|j| j == PLATFORM_JOB), "{started:?}");
    assert_eq!(count(&d, EventKind::Drill), 1);
    assert_eq!(count(&d, EventKind::ReplicationAudit), 2);
    let audits = d
        .workspace()
        .ledger()
        .events(&EventFilter::all().kind(EventKind::ReplicationAudit))
        .unwrap();
    assert!(!audits[0].ok && audits[1].ok, "{audits:?}");
}

#[test]
fn a_failed_platform_job_is_retried_after_a_pause_not_at_every_poll() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("no-such-bucket");
    let replica = dir.path().join("replica");
    std::fs::create_dir_all(&replica).unwrap();
    let (_site, config) = site(&format!(
        "max_jitter = \"0\"\n\n[replication.media]\nsource = \"{}\"\nreplica = \"{}\"\n",
        gone.display(),
        replica.display()
    ));
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let d = common::quick_daemon(&config, clock.clone());
    settle_all(&d);
    assert_eq!(count(&d, EventKind::ReplicationAudit), 1);
    for _ in 0..3 {
        assert!(d.tick().unwrap().is_empty(), "held back after the failure");
    }
    clock.advance(PLATFORM_RETRY + chrono::Duration::minutes(1));
    let again = settle_all(&d);
    assert!(again.iter().any(|j| j == PLATFORM_JOB), "{again:?}");
    assert_eq!(count(&d, EventKind::ReplicationAudit), 2);
}

#[test]
fn a_job_that_fails_over_on_its_own_switches_the_daemon_and_degrades_the_status_page() {
    let (dir, config) = site("max_jitter = \"0\"");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen(
            "region = \"local-a\"\n",
            "region = \"local-a\"\nauto_failover = true\nauto_failover_after = 1\n",
            1,
        ),
    )
    .unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let d = common::quick_daemon(&config, clock.clone());
    settle(&d);
    let state = |d: &Arc<Daemon>| {
        let view = d.refresh().unwrap();
        view.status_page
            .components
            .iter()
            .map(|c| format!("{:?}", c.state))
            .collect::<Vec<_>>()
    };
    assert!(
        state(&d).iter().all(|s| s == "Operational"),
        "{:?}",
        state(&d)
    );
    std::fs::rename(dir.path().join("state/primary"), dir.path().join("gone")).unwrap();
    clock.advance(chrono::Duration::hours(7));
    settle(&d);
    let ws = d.workspace();
    let backups = ws
        .ledger()
        .events(&EventFilter::all().kind(EventKind::Backup).newest_first())
        .unwrap();
    assert_eq!(
        ws.failovers().len(),
        1,
        "the daemon follows the failover: {backups:?}"
    );
    assert_eq!(ws.failovers()[0].active, "offsite");
    assert_eq!(ws.config().datasets["docs"].repository, "offsite");
    assert!(
        state(&d).iter().any(|s| s == "Degraded"),
        "customers see the failover: {:?}",
        state(&d)
    );
    // The next slot backs up into the replica without another failover.
    clock.advance(chrono::Duration::hours(7));
    settle(&d);
    assert_eq!(count(&d, EventKind::Failover), 1);
    let newest = d
        .workspace()
        .ledger()
        .last(&EventKind::Backup, Some("docs"), false)
        .unwrap()
        .unwrap();
    assert!(
        newest.ok && newest.repository.as_deref() == Some("offsite"),
        "{newest:?}"
    );
}
