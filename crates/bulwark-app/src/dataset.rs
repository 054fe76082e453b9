//! A dataset of the policy file as jobs: what its backup reads (paths, a command's output, a
//! SQLite file, a PostgreSQL database with its credentials, a PostgreSQL cluster's base
//! backup, or an S3 bucket's objects) and how its restore test runs.

use std::collections::BTreeMap;

use bulwark_ops::Progress;
use bulwark_ops::backup::{BackupOptions, BackupReport, BackupSource, backup};
use bulwark_ops::bucket::{BucketBackupOptions, backup_bucket};
use bulwark_ops::database::{DbBackupOptions, DbSource, backup_database};
use bulwark_ops::restore_test::RestoreTestOptions;
use bulwark_policy::config::{self, Dataset, DatasetKind, Method};
use bulwark_repo::Repository;
use bulwark_source::Patterns;
use bulwark_source::db::mariadb::{self, MariadbBackupOptions, MariadbTools};
use bulwark_source::db::physical::{BaseBackupOptions, BaseBackupRead};
use bulwark_source::db::postgres::{self as pg, PgBackupOptions, PgTools};
use bulwark_source::stream::CommandStream;
use chrono::{DateTime, Local, Utc};

use crate::credentials::read_password_file;
use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// Tables up to this size get a content checksum in a PostgreSQL dataset's fingerprint.
const CHECKSUM_MAX_BYTES: u64 = 256 << 20;

/// Back `d` up into `repo`, as a snapshot taken at `time`.
pub fn backup_dataset(
    ws: &Workspace,
    d: &Dataset,
    repo: &Repository,
    progress: &dyn Progress,
    time: DateTime<Utc>,
) -> Result<BackupReport> {
    let fail = |e: bulwark_ops::Error| Error::repository(&d.repository, e);
    let time = Some(time.with_timezone(&Local).fixed_offset());
    let dataset = Some(d.name.clone());
    let report = match d.kind {
        DatasetKind::Files | DatasetKind::Command => {
            let source = if d.kind == DatasetKind::Files {
                BackupSource::Paths(d.paths.iter().map(|p| ws.resolve(p)).collect())
            } else {
                let stream = CommandStream::spawn(&d.command)
                    .map_err(|e| fail(bulwark_ops::Error::source(e)))?;
                BackupSource::Stream {
                    name: format!("{}.out", d.name),
                    reader: Box::new(stream),
                }
            };
            let excludes = Patterns::new(&d.exclude)
                .map_err(|e| Error::Invalid(format!("datasets.{}.exclude: {e}", d.name)))?;
            backup(
                repo,
                BackupOptions {
                    source,
                    excludes,
                    tags: Vec::new(),
                    host: None,
                    time,
                    parent: None,
                    dataset,
                    meta: BTreeMap::new(),
                    ..Default::default()
                },
                progress,
            )
            .map_err(fail)?
        }
        DatasetKind::S3 => {
            let patterns = |p: &[String], key: &str| {
                Patterns::new(p)
                    .map_err(|e| Error::Invalid(format!("datasets.{}.{key}: {e}", d.name)))
            };
            backup_bucket(
                repo,
                BucketBackupOptions {
                    include: patterns(&d.include, "include")?,
                    exclude: patterns(&d.exclude, "exclude")?,
                    dataset,
                    time,
                    ..BucketBackupOptions::new(d.url.clone().unwrap_or_default())
                },
                progress,
            )
            .map_err(fail)?
        }
        DatasetKind::Postgres if d.method == Method::Physical => {
            let source = d.source.clone().unwrap_or_default();
            let dsn = match &d.password_file {
                Some(f) => pg::with_password(&source, &read_password_file(&ws.resolve(f))?),
                None => source,
            };
            bulwark_ops::wal::backup_physical(
                repo,
                bulwark_ops::wal::PhysicalBackupOptions {
                    source: BaseBackupOptions {
                        dsn,
                        tools: PgTools::locate(),
                        read: match d.base_backup {
                            config::BaseBackupRead::Auto => BaseBackupRead::Auto,
                            config::BaseBackupRead::Direct => BaseBackupRead::Direct,
                            config::BaseBackupRead::PgBasebackup => BaseBackupRead::PgBasebackup,
                        },
                    },
                    dataset: d.name.clone(),
                    tags: Vec::new(),
                    host: None,
                    time,
                },
                progress,
            )
            .map_err(fail)?
            .backup
        }
        DatasetKind::Sqlite | DatasetKind::Postgres | DatasetKind::Mariadb => {
            let source = d.source.clone().unwrap_or_default();
            let password = match &d.password_file {
                Some(f) => Some(read_password_file(&ws.resolve(f))?),
                None => None,
            };
            let source = match d.kind {
                DatasetKind::Sqlite => DbSource::Sqlite(ws.resolve(&source)),
                DatasetKind::Mariadb => DbSource::Mariadb(MariadbBackupOptions {
                    dsn: match &password {
                        Some(p) => mariadb::with_password(&source, p),
                        None => source,
                    },
                    checksum_max_bytes: CHECKSUM_MAX_BYTES,
                    tools: MariadbTools::locate(),
                }),
                _ => DbSource::Postgres(PgBackupOptions {
                    dsn: match &password {
                        Some(p) => pg::with_password(&source, p),
                        None => source,
                    },
                    checksum_max_bytes: CHECKSUM_MAX_BYTES,
                    globals: true,
                    tools: PgTools::locate(),
                }),
            };
            backup_database(
                repo,
                DbBackupOptions {
                    source,
                    tags: Vec::new(),
                    host: None,
                    time,
                    dataset,
                },
                progress,
            )
            .map_err(fail)?
            .backup
        }
    };
    Ok(report)
}

/// The restore test the policy file asks for `d`: its latest snapshot, its assertions, its
/// scratch location and budget.
pub fn restore_test_options(ws: &Workspace, d: &Dataset) -> RestoreTestOptions {
    RestoreTestOptions {
        dataset: Some(d.name.clone()),
        check_sql: d.restore_test.checks.clone(),
        scratch_dir: d.restore_test.scratch.as_deref().map(|s| ws.resolve(s)),
        max_bytes: d.restore_test.max_bytes,
        rpo: Some(ws.config().targets.rpo),
        ..RestoreTestOptions::new("latest")
    }
}
