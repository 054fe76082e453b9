//! Database exports (`bulwark export SNAPSHOT --format sql|csv`) and export profiles
//! (`bulwark export --profile NAME [SNAPSHOT]`): a customer's own copy of a database, taken from
//! a repository of the policy file (restored into a scratch target for CSV), never from
//! production.
//!
//! A profile (`[exports.NAME]`) names a database dataset and, per output file, one query: the
//! snapshot (`latest` by default) must be of that dataset, and each query runs read-only on its
//! scratch restore. Every export, done or failed, is a ledger event of kind `export` (as file
//! exports are), naming the snapshot, the dataset, the profile, and every file with its rows
//! and SHA-256.

use std::io::Write;
use std::path::Path;

use bulwark_ledger::{EventKind, NewEvent};
use bulwark_ops::db_export::{self, CsvSelection, CsvSink, DbExportReport, DbFormat};
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::export::KIND;
use crate::workspace::Workspace;

/// Where a database export goes.
pub enum DbOut<'a> {
    /// One stream: the SQL, or a tar of the CSV files.
    Stream(&'a mut dyn Write),
    /// A new (or empty) directory of CSV files.
    Dir(&'a Path),
}

/// Exports database snapshot `spec` of `repository` (`latest`: the latest database snapshot,
/// of `dataset` if given) as `format` and records the export.
pub fn export_database(
    ws: &Workspace,
    repository: &str,
    spec: &str,
    dataset: Option<&str>,
    format: DbFormat,
    out: DbOut,
    now: DateTime<Utc>,
) -> Result<DbExportReport> {
    let result = (|| {
        let repo = ws.repository(repository)?;
        let scratch = scratch_dir_of(ws, &repo, spec);
        let job = match (format, out) {
            (DbFormat::Sql, DbOut::Stream(w)) => {
                db_export::export_sql(&repo, spec, dataset, scratch.as_deref(), w)
            }
            (DbFormat::Sql, DbOut::Dir(_)) => {
                return Err(Error::Invalid(
                    "--format sql writes one file: give --out FILE or --out -".into(),
                ));
            }
            (DbFormat::Csv, out) => db_export::export_csv(
                &repo,
                spec,
                dataset,
                &CsvSelection::EveryTable,
                scratch.as_deref(),
                sink(out),
            ),
        };
        job.map_err(|e| Error::repository(repository, e))
    })();
    record(ws, repository, spec, format, None, &result, now)?;
    result
}

/// Runs export profile `name` on snapshot `spec` (`latest`: its dataset's latest) and records
/// the export. The repository is the dataset's.
pub fn export_profile(
    ws: &Workspace,
    name: &str,
    spec: &str,
    out: DbOut,
    now: DateTime<Utc>,
) -> Result<DbExportReport> {
    let Some(profile) = ws.config().exports.get(name) else {
        let known: Vec<&str> = ws.config().exports.keys().map(String::as_str).collect();
        return Err(Error::request(
            format!(
                "no export profile '{name}' in {} (profiles: {})",
                ws.path().display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
            "declare it as [exports.NAME] with a dataset and files = { \"NAME.csv\" = \"SELECT ...\" }",
        ));
    };
    let dataset = ws.dataset(&profile.dataset)?;
    let repository = dataset.repository.clone();
    let result = (|| {
        let repo = ws.repository(&repository)?;
        let scratch = dataset
            .restore_test
            .scratch
            .as_deref()
            .map(|s| ws.resolve(s));
        let queries = profile
            .files
            .iter()
            .map(|(f, q)| (f.clone(), q.clone()))
            .collect();
        let out = match out {
            DbOut::Stream(w) => CsvSink::Tar(w),
            DbOut::Dir(d) => CsvSink::Dir(d),
        };
        db_export::export_csv(
            &repo,
            spec,
            Some(&profile.dataset),
            &CsvSelection::Queries(queries),
            scratch.as_deref(),
            out,
        )
        .map_err(|e| Error::repository(&repository, e))
    })();
    record(
        ws,
        &repository,
        spec,
        DbFormat::Csv,
        Some((name, &profile.dataset)),
        &result,
        now,
    )?;
    result
}

fn sink(out: DbOut) -> CsvSink {
    match out {
        DbOut::Stream(w) => CsvSink::Tar(w),
        DbOut::Dir(d) => CsvSink::Dir(d),
    }
}

/// The scratch directory the snapshot's dataset names for restore tests, if any.
fn scratch_dir_of(
    ws: &Workspace,
    repo: &bulwark_repo::Repository,
    spec: &str,
) -> Option<std::path::PathBuf> {
    let (_, snap) = repo.find_snapshot(spec, |_| true).ok()?;
    let d = ws.config().datasets.get(snap.dataset.as_deref()?)?;
    d.restore_test.scratch.as_deref().map(|s| ws.resolve(s))
}

fn record(
    ws: &Workspace,
    repository: &str,
    spec: &str,
    format: DbFormat,
    profile: Option<(&str, &str)>,
    result: &Result<DbExportReport>,
    now: DateTime<Utc>,
) -> Result<()> {
    let finished = now + (Utc::now() - now).max(chrono::Duration::zero());
    let what = match profile {
        Some((p, _)) => format!("export profile {p}"),
        None => format!("{format:?} export").to_lowercase(),
    };
    let mut event = match result {
        Ok(r) => {
            let mut details = serde_json::to_value(r).expect("reports serialise");
            if let Some((p, _)) = profile {
                details["profile"] = p.into();
            }
            let summary = format!(
                "{what}: {} files ({} bytes) of snapshot {}",
                r.files.len(),
                r.bytes,
                &r.snapshot[..8.min(r.snapshot.len())]
            );
            let mut e = NewEvent::new(EventKind::parse(KIND), summary)
                .ok(true)
                .details(details);
            if let Some(d) = &r.dataset {
                e = e.dataset(d.clone());
            }
            e
        }
        Err(err) => {
            let mut details =
                serde_json::json!({ "spec": spec, "format": format, "error": err.to_string() });
            if let Some((p, _)) = profile {
                details["profile"] = p.into();
            }
            let mut e = NewEvent::new(
                EventKind::parse(KIND),
                format!("{what} of {spec} failed: {err}"),
            )
            .ok(false)
            .details(details);
            if let Some((_, d)) = profile {
                e = e.dataset(d);
            }
            e
        }
    };
    event = event
        .repository(repository)
        .config_hash(ws.config_hash())
        .timed(now, finished);
    ws.ledger().append(event)?;
    Ok(())
}
