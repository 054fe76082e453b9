//! `bulwark run`: execute what the policy file asks, dataset by dataset — backup, copy to each
//! off-site replica, retention, and a restore test when one is due — recording every step in
//! the ledger. A failed restore test opens a remediation item, and every run re-tests until one
//! passes and closes it. One dataset's failure never stops the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bulwark_ledger::{EventKind, Ledger, NewEvent};
use bulwark_policy::GroupBy;
use bulwark_policy::config::{Config, Dataset, DatasetKind};
use bulwark_repo::{Error, Repository, Result};
use bulwark_source::Patterns;
use bulwark_source::db::postgres::{PgBackupOptions, PgTools};
use bulwark_source::stream::CommandStream;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::backup::{BackupOptions, BackupSource, backup};
use crate::database::{DbBackupOptions, DbSource, backup_database};
use crate::forget::{ForgetOptions, forget};
use crate::progress::Progress;
use crate::prune::{PruneOptions, prune};
use crate::restore::{RestoreOptions, restore};
use crate::restore_test::{RestoreTestOptions, restore_test};

/// Which datasets a run covers.
pub enum Selection {
    All,
    /// Only datasets whose schedule has come round since their last backup (or whose restore
    /// test is due or failing).
    Due,
    Named(Vec<String>),
}

#[derive(Serialize, Debug)]
pub struct Step {
    pub step: String,
    pub ok: bool,
    pub summary: String,
    pub duration_s: f64,
}

#[derive(Serialize, Debug, Default)]
pub struct DatasetRun {
    pub dataset: String,
    pub ok: bool,
    pub steps: Vec<Step>,
}

#[derive(Serialize, Debug, Default)]
pub struct RunReport {
    pub ok: bool,
    pub datasets: Vec<DatasetRun>,
    /// Repository-wide maintenance and the ledger's own off-host copy.
    pub maintenance: Vec<Step>,
}

pub struct RunContext<'a> {
    pub config: &'a Config,
    /// Relative paths in the configuration are relative to this directory.
    pub base: PathBuf,
    pub config_hash: String,
    pub now: DateTime<Utc>,
    pub show_progress: bool,
    /// Opens a configured repository by name (credentials are the caller's business).
    pub open: &'a dyn Fn(&str) -> Result<Repository>,
}

/// The dataset name under which the ledger's own copy is stored in each repository.
pub const LEDGER_DATASET: &str = "bulwark-ledger";

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

pub fn run(
    ctx: &RunContext,
    ledger: &mut dyn Ledger,
    selection: &Selection,
) -> std::result::Result<RunReport, bulwark_ledger::Error> {
    let mut report = RunReport {
        ok: true,
        ..Default::default()
    };
    let selected: Vec<&Dataset> = ctx
        .config
        .datasets
        .values()
        .filter(|d| match selection {
            Selection::All | Selection::Due => true,
            Selection::Named(names) => names.contains(&d.name),
        })
        .collect();
    // Each repository is opened once; one that cannot be opened fails the datasets that need it.
    let mut repos: BTreeMap<String, std::result::Result<Repository, String>> = BTreeMap::new();
    for d in &selected {
        for name in std::iter::once(d.repository.clone()).chain(
            ctx.config
                .replicas_of(&d.repository)
                .map(|r| r.name.clone()),
        ) {
            repos.entry(name.clone()).or_insert_with(|| {
                (ctx.open)(&name).map_err(|e| format!("repository '{name}': {e}"))
            });
        }
    }
    let mut touched: Vec<String> = Vec::new();
    for d in selected {
        let mut run = DatasetRun {
            dataset: d.name.clone(),
            ok: true,
            steps: Vec::new(),
        };
        for name in std::iter::once(d.repository.clone()).chain(
            ctx.config
                .replicas_of(&d.repository)
                .map(|r| r.name.clone()),
        ) {
            if let Err(e) = &repos[&name] {
                run.steps.push(Step {
                    step: format!("open {name}"),
                    ok: false,
                    summary: e.clone(),
                    duration_s: 0.0,
                });
            }
        }
        if let Ok(primary) = &repos[&d.repository] {
            let replicas: Vec<(&str, &Repository)> = ctx
                .config
                .replicas_of(&d.repository)
                .filter_map(|r| {
                    repos
                        .get(&r.name)
                        .and_then(|x| x.as_ref().ok())
                        .map(|x| (r.name.as_str(), x))
                })
                .collect();
            run_dataset(ctx, ledger, d, primary, &replicas, selection, &mut run)?;
            if !touched.contains(&d.repository) {
                touched.push(d.repository.clone());
            }
        }
        run.ok = run.steps.iter().all(|s| s.ok);
        report.ok &= run.ok;
        report.datasets.push(run);
    }
    for name in touched {
        let Ok(repo) = &repos[&name] else { continue };
        let step = timed("prune", || {
            let r = prune(
                repo,
                &PruneOptions {
                    max_unused: 0.05,
                    dry_run: false,
                    show_progress: ctx.show_progress,
                },
            )?;
            Ok((
                format!(
                    "deleted {} packs ({} bytes)",
                    r.packs_deleted, r.bytes_freed
                ),
                json!(r),
            ))
        });
        record(ctx, ledger, EventKind::Prune, None, Some(&name), &step)?;
        report.maintenance.push(step.0);
        // The evidence travels with the data: the ledger is backed up into the repository and its replicas.
        let export = ledger.export_jsonl()?;
        let step = timed("ledger copy", || {
            let b = backup(
                repo,
                BackupOptions {
                    source: BackupSource::Stream {
                        name: "ledger.jsonl".into(),
                        reader: Box::new(std::io::Cursor::new(export)),
                    },
                    excludes: Patterns::default(),
                    tags: vec!["ledger".into()],
                    host: None,
                    time: None,
                    parent: None,
                    dataset: Some(LEDGER_DATASET.into()),
                    meta: BTreeMap::new(),
                },
                &Progress::hidden(),
            )?;
            for replica in ctx.config.replicas_of(&name) {
                if let Some(Ok(dst)) = repos.get(&replica.name) {
                    crate::copy::copy(repo, dst, &[b.snapshot_id.to_hex()], false)?;
                }
            }
            Ok((
                format!("ledger stored as snapshot {}", b.snapshot_id.short()),
                json!({ "snapshot_id": b.snapshot_id }),
            ))
        });
        report.ok &= step.0.ok;
        report.maintenance.push(step.0);
    }
    Ok(report)
}

/// Run `f`, timing it; failures become a failed step rather than an error.
fn timed(
    step: &str,
    f: impl FnOnce() -> Result<(String, serde_json::Value)>,
) -> (Step, serde_json::Value, DateTime<Utc>, DateTime<Utc>) {
    let (started, clock) = (Utc::now(), Instant::now());
    let (ok, summary, details) = match f() {
        Ok((s, d)) => (true, s, d),
        Err(e) => (false, e.to_string(), json!({ "error": e.to_string() })),
    };
    let step = Step {
        step: step.to_string(),
        ok,
        summary,
        duration_s: clock.elapsed().as_secs_f64(),
    };
    (step, details, started, Utc::now())
}

fn record(
    ctx: &RunContext,
    ledger: &mut dyn Ledger,
    kind: EventKind,
    dataset: Option<&str>,
    repository: Option<&str>,
    step: &(Step, serde_json::Value, DateTime<Utc>, DateTime<Utc>),
) -> std::result::Result<bulwark_ledger::Event, bulwark_ledger::Error> {
    let mut e = NewEvent::new(kind, step.0.summary.clone())
        .config_hash(ctx.config_hash.clone())
        .timed(step.2, step.3)
        .ok(step.0.ok)
        .details(step.1.clone());
    if let Some(d) = dataset {
        e = e.dataset(d);
    }
    if let Some(r) = repository {
        e = e.repository(r);
    }
    ledger.append(e)
}

fn backup_dataset(
    ctx: &RunContext,
    d: &Dataset,
    repo: &Repository,
) -> Result<(String, serde_json::Value)> {
    let dataset = Some(d.name.clone());
    let progress = Progress::bytes(ctx.show_progress, None, &d.name);
    let source = d
        .source
        .as_deref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let report = match d.kind {
        DatasetKind::Files | DatasetKind::Command => {
            let source = if d.kind == DatasetKind::Files {
                BackupSource::Paths(d.paths.iter().map(|p| resolve(&ctx.base, p)).collect())
            } else {
                let stream = CommandStream::spawn(&d.command)
                    .map_err(|e| Error::SourceFailed(e.to_string()))?;
                BackupSource::Stream {
                    name: format!("{}.out", d.name),
                    reader: Box::new(stream),
                }
            };
            backup(
                repo,
                BackupOptions {
                    source,
                    excludes: Patterns::new(&d.exclude).map_err(Error::Invalid)?,
                    tags: Vec::new(),
                    host: None,
                    time: None,
                    parent: None,
                    dataset,
                    meta: BTreeMap::new(),
                },
                &progress,
            )?
        }
        DatasetKind::Sqlite | DatasetKind::Postgres => {
            let source = if d.kind == DatasetKind::Sqlite {
                DbSource::Sqlite(resolve(&ctx.base, &source))
            } else {
                DbSource::Postgres(PgBackupOptions {
                    dsn: source,
                    checksum_max_bytes: 256 << 20,
                    globals: true,
                    tools: PgTools::locate(),
                })
            };
            backup_database(
                repo,
                DbBackupOptions {
                    source,
                    tags: Vec::new(),
                    host: None,
                    time: None,
                    dataset,
                },
                &progress,
            )?
            .backup
        }
    };
    progress.finish();
    let s = &report.summary;
    Ok((
        format!(
            "snapshot {}: {} files, {} bytes added",
            report.snapshot_id.short(),
            s.total_files,
            s.bytes_added_stored
        ),
        json!({ "snapshot_id": report.snapshot_id, "summary": s, "unreadable": report.unreadable }),
    ))
}

/// Restore a file dataset's latest snapshot into a scratch directory and verify every byte.
fn restore_test_files(
    ctx: &RunContext,
    d: &Dataset,
    repo: &Repository,
) -> Result<(bool, serde_json::Value)> {
    let started = Instant::now();
    let (id, snap) = repo.find_snapshot("latest", |s| s.dataset.as_deref() == Some(&d.name))?;
    let scratch = tempfile::tempdir().map_err(|e| Error::io("scratch directory", e))?;
    let r = restore(
        repo,
        &id.to_hex(),
        &RestoreOptions {
            target: scratch.path().to_path_buf(),
            include: Patterns::default(),
            verify: true,
            show_progress: ctx.show_progress,
        },
    )?;
    let expected = snap
        .summary
        .as_ref()
        .map(|s| (s.total_files, s.total_bytes));
    let fidelity = expected.is_none_or(|(f, b)| f == r.files && b == r.bytes);
    let checks = json!([
        { "name": "integrity", "passed": r.verified, "detail": format!("{} files re-read and matched chunk by chunk", r.files_verified) },
        { "name": "fidelity", "passed": fidelity, "detail": format!("restored {} files, {} bytes; snapshot recorded {:?}", r.files, r.bytes, expected) },
    ]);
    let passed = r.verified && fidelity;
    Ok((
        passed,
        json!({ "passed": passed, "snapshot_id": id, "duration_s": started.elapsed().as_secs_f64(), "checks": checks }),
    ))
}

fn run_dataset(
    ctx: &RunContext,
    ledger: &mut dyn Ledger,
    d: &Dataset,
    primary: &Repository,
    replicas: &[(&str, &Repository)],
    selection: &Selection,
    run: &mut DatasetRun,
) -> std::result::Result<(), bulwark_ledger::Error> {
    let name = d.name.as_str();
    let newest = primary.load_snapshots().ok().and_then(|(s, _)| {
        s.into_iter()
            .rev()
            .find(|(_, s)| s.dataset.as_deref() == Some(name))
            .map(|(_, s)| s.time.to_utc())
    });
    let backup_due = match selection {
        Selection::Due => match (newest, d.schedule.last_at_or_before(ctx.now)) {
            (None, _) => true,
            (Some(n), Some(slot)) => n < slot,
            (Some(_), None) => false,
        },
        _ => true,
    };
    if backup_due {
        let step = timed("backup", || backup_dataset(ctx, d, primary));
        record(
            ctx,
            ledger,
            EventKind::Backup,
            Some(name),
            Some(&d.repository),
            &step,
        )?;
        let failed = !step.0.ok;
        run.steps.push(step.0);
        if failed {
            return Ok(());
        }
    }
    let ids: Vec<String> = primary
        .load_snapshots()
        .map(|(s, _)| {
            s.into_iter()
                .filter(|(_, s)| s.dataset.as_deref() == Some(name))
                .map(|(id, _)| id.to_hex())
                .collect()
        })
        .unwrap_or_default();
    for (replica_name, replica) in replicas {
        let step = timed(&format!("copy to {replica_name}"), || {
            let r = crate::copy::copy(primary, replica, &ids, false)?;
            Ok((
                format!(
                    "{} snapshots, {} packs copied",
                    r.snapshots_copied.len(),
                    r.packs_copied
                ),
                json!(r),
            ))
        });
        record(
            ctx,
            ledger,
            EventKind::Copy,
            Some(name),
            Some(replica_name),
            &step,
        )?;
        run.steps.push(step.0);
    }
    let step = timed("forget", || {
        let r = forget(
            primary,
            &ForgetOptions {
                rules: d.retention.clone(),
                group_by: GroupBy {
                    host: true,
                    paths: true,
                    tags: false,
                    dataset: true,
                },
                dataset: Some(name.to_string()),
                explicit: Vec::new(),
                dry_run: false,
                now: ctx.now,
            },
        )?;
        Ok((
            format!("kept {}, removed {}", r.kept, r.removed.len()),
            json!({ "kept": r.kept, "removed": r.removed }),
        ))
    });
    record(
        ctx,
        ledger,
        EventKind::Forget,
        Some(name),
        Some(&d.repository),
        &step,
    )?;
    run.steps.push(step.0);

    // A restore test when the last pass is too old, or the last test failed (re-test until it passes).
    let every = chrono::Duration::from_std(d.restore_test.every).unwrap_or(chrono::Duration::MAX);
    let last = ledger.last(&EventKind::RestoreTest, Some(name), false)?;
    let test_due = match &last {
        None => true,
        Some(e) => !e.ok || ctx.now - e.finished >= every,
    };
    if !(test_due || matches!(selection, Selection::Named(_))) {
        return Ok(());
    }
    let step = timed("restore test", || {
        let (passed, details) = match d.kind {
            DatasetKind::Files | DatasetKind::Command => restore_test_files(ctx, d, primary)?,
            DatasetKind::Sqlite | DatasetKind::Postgres => {
                let r = restore_test(
                    primary,
                    &RestoreTestOptions {
                        spec: "latest".into(),
                        dataset: Some(name.to_string()),
                        check_sql: d.restore_test.checks.clone(),
                        scratch_postgres: None,
                        show_progress: ctx.show_progress,
                    },
                )?;
                (r.passed, json!(r))
            }
        };
        if !passed {
            let failed: Vec<String> = details["checks"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter(|c| c["passed"] == false)
                        .map(|c| {
                            format!(
                                "{}: {}",
                                c["name"].as_str().unwrap_or(""),
                                c["detail"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Err(Error::Invalid(format!(
                "restore test failed: {}",
                failed.join("; ")
            )));
        }
        Ok((
            format!(
                "passed in {:.1}s",
                details["duration_s"].as_f64().unwrap_or_default()
            ),
            details,
        ))
    });
    let event = record(
        ctx,
        ledger,
        EventKind::RestoreTest,
        Some(name),
        Some(&d.repository),
        &step,
    )?;
    let open: Vec<_> = ledger
        .remediations(true)?
        .into_iter()
        .filter(|r| r.dataset == name)
        .collect();
    if step.0.ok {
        for r in open {
            ledger.close_remediation(&r.id, Some(&event.id), "a restore test passed")?;
        }
    } else if open.is_empty() {
        ledger.open_remediation(name, &step.0.summary, Some(&event.id))?;
        notify(
            ctx.config,
            &format!("bulwark: restore test of {name} failed: {}", step.0.summary),
        );
    }
    run.steps.push(step.0);
    Ok(())
}

/// Tell the configured channels; a channel that fails is logged, never fatal.
pub fn notify(config: &Config, message: &str) {
    use std::io::Write;
    for (name, n) in &config.notifications {
        if let Some(argv) = n.command.as_ref().filter(|a| !a.is_empty()) {
            let spawned = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(std::process::Stdio::piped())
                .spawn();
            match spawned {
                Ok(mut child) => {
                    if let Some(mut stdin) = child.stdin.take() {
                        let _ = stdin.write_all(message.as_bytes());
                    }
                    let _ = child.wait();
                }
                Err(e) => tracing::warn!("notification '{name}' failed: {e}"),
            }
        }
        if n.webhook.is_some() {
            tracing::warn!("notification '{name}': webhooks are not supported yet; use `command`");
        }
    }
}
