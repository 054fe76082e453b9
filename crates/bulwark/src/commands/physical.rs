//! PostgreSQL physical datasets on the command line: `backup --postgres DSN --physical` (a base
//! backup) and `restore --postgres-datadir DIR [--to-time T | --to-lsn L]` (a point-in-time
//! restore that ends promoted).

use std::time::Duration;

use bulwark_ops::wal::{PhysicalBackupOptions, PitrOptions, backup_physical, restore_physical};
use bulwark_source::db::physical::{BaseBackupOptions, RecoveryTarget};
use bulwark_source::db::postgres::PgTools;
use serde_json::json;

use super::{emit, human_bytes, open, parse_time, progress};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

pub fn backup(g: &Global, a: super::backup::Args) -> CliResult<i32> {
    let dsn = a.db.postgres.clone().ok_or_else(|| {
        Failure::usage(
            "--physical needs --postgres DSN",
            "name the cluster to back up",
        )
    })?;
    let dataset = a.dataset.clone().ok_or_else(|| {
        Failure::usage(
            "--physical needs --dataset",
            "its WAL is archived under the dataset's name (wal-push --dataset)",
        )
    })?;
    let time = parse_time(a.time.as_deref())?;
    let repo = open(g)?;
    let report = backup_physical(
        &repo,
        PhysicalBackupOptions {
            source: BaseBackupOptions {
                dsn,
                tools: PgTools::locate(),
                read: a.db.base_backup,
            },
            dataset,
            tags: a.tag,
            host: a.host,
            time,
        },
        progress(g),
    )?;
    let b = &report.backup;
    let f = &report.facts;
    let s = &b.summary;
    let doc = json!({
        "snapshot_id": b.snapshot_id.to_hex(),
        "summary": s,
        "physical": f,
    });
    emit(g, &doc, || {
        format!(
            "snapshot {} saved: base backup of PostgreSQL {} ({}; timeline {}, WAL {} to {})\n{} files, {} read, {} added ({} stored) in {:.1}s",
            b.snapshot_id.short(),
            f.server_version,
            if f.direct {
                "read from its data directory"
            } else {
                "through pg_basebackup"
            },
            f.timeline,
            f.start_lsn,
            f.end_lsn,
            s.total_files,
            human_bytes(s.total_bytes),
            human_bytes(s.bytes_added),
            human_bytes(s.bytes_added_stored),
            s.duration_s
        )
    });
    Ok(0)
}

pub fn restore(g: &Global, a: super::restore::Args) -> CliResult<i32> {
    let db = &a.db;
    let dir = db.postgres_datadir.clone().ok_or_else(|| {
        Failure::usage("no --postgres-datadir given", "name the new data directory")
    })?;
    let dataset = db.dataset.clone().ok_or_else(|| {
        Failure::usage(
            "--postgres-datadir needs --dataset",
            "name the physical dataset",
        )
    })?;
    let target = match (&db.to_time, &db.to_lsn) {
        (Some(t), None) => RecoveryTarget::Time(parse_time(Some(t))?.expect("given").to_utc()),
        (None, Some(l)) => {
            RecoveryTarget::Lsn(l.parse().map_err(|e: bulwark_source::db::DbError| {
                Failure::usage(
                    format!("bad --to-lsn: {e}"),
                    "give a WAL location such as 0/3000028",
                )
            })?)
        }
        (None, None) => RecoveryTarget::Latest,
        (Some(_), Some(_)) => {
            return Err(Failure::usage(
                "--to-time and --to-lsn exclude each other",
                "give one recovery target",
            ));
        }
    };
    let repo = open(g)?;
    let program = std::env::current_exe()
        .map_err(|e| Failure::new(1, format!("cannot tell which bulwark this is: {e}"), None))?;
    let report = restore_physical(
        &repo,
        &PitrOptions {
            dataset,
            spec: a.snapshot.clone(),
            target,
            data_dir: dir.clone(),
            program,
            throwaway: false,
            timeout: Duration::from_secs(7 * 24 * 3600),
            verify_manifest: false,
        },
        progress(g),
    )?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    emit(g, &report, || {
        let o = &report.outcome;
        format!(
            "restored base backup {} and replayed {} WAL files ({}) to {}: promoted to timeline {} at {}{}\n\
             {} is stopped and ready to start; it keeps the source's archive_command: starting it archives \
             its new timeline into the dataset (set archive_mode = off first if it is not to become the primary)",
            &report.snapshot_id[..8],
            report.wal_files_fetched,
            human_bytes(report.wal_bytes_fetched),
            report.target,
            o.timeline,
            o.replayed_lsn,
            o.stop
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            dir.display()
        )
    });
    Ok(0)
}
