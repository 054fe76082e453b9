//! One file per command: its arguments, its call into the libraries, and its rendering. What
//! several commands share (opening a repository, printing a report) is here.

pub mod audit;
pub mod backup;
pub mod cat;
pub mod check;
pub mod check_locks;
pub mod copy;
pub mod diff;
pub mod drill;
pub mod dump;
pub mod evidence;
pub mod export;
pub mod failover;
pub mod find;
pub mod forget;
pub mod generate;
pub mod hold;
pub mod incident;
pub mod init;
pub mod key;
pub mod ledger;
pub mod ls;
pub mod mount;
pub mod physical;
pub mod policy;
pub mod postmortem;
pub mod prune;
pub mod recover;
pub mod remediation;
pub mod repair;
pub mod replica;
pub mod restore;
pub mod restore_bucket;
pub mod restore_test;
pub mod review;
pub mod rewrite;
pub mod roles;
pub mod run;
pub mod serve;
pub mod snapshots;
pub mod stats;
pub mod status;
pub mod tag;
pub mod unlock;
pub mod version;
pub mod wal_fetch;
pub mod wal_push;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use bulwark_app::{Create, OpenOptions, Workspace};
use bulwark_ops::Progress;
use bulwark_repo::{Backend, Repository};
use chrono::DateTime;
use serde::Serialize;

use crate::CliResult;
use crate::cli::{Global, OtherCredentials};
use crate::credentials;
use crate::failure::Failure;

/// restic's snapshot filters: which snapshots `latest` and listings consider.
#[derive(clap::Args, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable: any of them)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags (TAG[,TAG...]: all of them; repeatable: any group)
    #[arg(long = "tag", value_name = "TAGS")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable: all of them)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> bulwark_repo::SnapshotFilter {
        bulwark_repo::SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
        }
    }
}

/// Print `value` as JSON, or `text` for a person.
pub fn emit<T: Serialize>(g: &Global, value: &T, text: impl FnOnce() -> String) {
    if g.json {
        crate::output::print(&serde_json::to_string(value).expect("reports serialise"));
    } else if !g.quiet {
        let t = text();
        if !t.is_empty() {
            crate::output::print(&t);
        }
    }
}

/// Progress bars only for a person watching a terminal; either way the job hears of SIGINT and
/// SIGTERM (see `signals`).
pub fn progress(g: &Global) -> &'static dyn Progress {
    if !g.json && !g.quiet && std::io::stderr().is_terminal() {
        &crate::progress::Bars
    } else {
        &crate::signals::StopOnly
    }
}

pub fn backend(g: &Global, create: bool) -> CliResult<Arc<dyn Backend>> {
    let repo = g.repo.as_deref().ok_or_else(|| {
        Failure::usage("no repository given", "pass -r/--repo or set BULWARK_REPO")
    })?;
    Ok(bulwark_repo::backend::open_location(repo, create)?)
}

/// The repository of `-r`, through the local cache where it is remote.
pub fn open(g: &Global) -> CliResult<Repository> {
    Ok(with_cache(g, open_uncached(g)?))
}

pub fn open_uncached(g: &Global) -> CliResult<Repository> {
    let backend = backend(g, false)?;
    // Refuse early, before asking for a passphrase, when nothing is there.
    bulwark_repo::repository::describe_header(backend.as_ref())?;
    let credential = credentials::existing(g)?;
    Ok(Repository::open(backend, &credential)?)
}

/// Remote repositories read their unchanging objects through a local cache, which saves a
/// request per tree, snapshot and index file on every command after the first.
pub fn with_cache(g: &Global, mut repo: Repository) -> Repository {
    if !g.no_cache
        && repo.backend().remote()
        && let Some(base) = bulwark_repo::cache::Cache::default_base()
    {
        repo.use_cache(Some(&base));
    }
    repo
}

/// The second repository of `copy`, `replica status`, `repair packs` and `init --replica-of`.
pub fn open_other(g: &Global, location: &str, other: &OtherCredentials) -> CliResult<Repository> {
    let backend = bulwark_repo::backend::open_location(location, false)?;
    bulwark_repo::repository::describe_header(backend.as_ref())?;
    let credential = if other.password_file.is_some() || other.key_file.is_some() {
        let mut alt = g.clone();
        alt.password_file = other.password_file.clone();
        alt.key_file = other.key_file.clone();
        credentials::existing(&alt)?
    } else {
        credentials::existing(g)?
    };
    Ok(with_cache(g, Repository::open(backend, &credential)?))
}

/// The workspace of a policy file, with the global credential for repositories that name none.
pub fn workspace(g: &Global, path: &Path, create: Create) -> CliResult<Workspace> {
    Ok(Workspace::open(
        path,
        OpenOptions {
            credentials: credentials::for_workspace(g),
            create,
            cache: !g.no_cache,
        },
    )?)
}

/// `--time`: an RFC 3339 instant with its offset, for importing history.
pub fn parse_time(t: Option<&str>) -> CliResult<Option<DateTime<chrono::FixedOffset>>> {
    t.map(DateTime::parse_from_rfc3339)
        .transpose()
        .map_err(|e| {
            Failure::usage(
                format!("bad --time: {e}"),
                "use RFC 3339, e.g. 2026-01-31T02:00:00Z",
            )
        })
}

/// `--at`: judge or record as of this instant instead of now.
pub fn parse_at(t: Option<&str>) -> CliResult<chrono::DateTime<chrono::Utc>> {
    match t {
        None => Ok(chrono::Utc::now()),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.to_utc())
            .map_err(|e| {
                Failure::usage(
                    format!("bad --at: {e}"),
                    "use RFC 3339, e.g. 2026-12-01T00:00:00Z",
                )
            }),
    }
}

/// A percentage such as `10%` (or `10`), as a fraction; `allow_zero` for allowances.
pub fn parse_percent(flag: &str, s: &str, allow_zero: bool) -> CliResult<f64> {
    let bad = || Failure::usage(format!("bad {flag} '{s}'"), "give a percentage such as 10%");
    let v: f64 = s.trim_end_matches('%').parse().map_err(|_| bad())?;
    if !(v <= 100.0 && (v > 0.0 || (allow_zero && v == 0.0))) {
        return Err(bad());
    }
    Ok(v / 100.0)
}

/// `1 file`, `2 files`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn human_bytes(n: u64) -> String {
    bulwark_policy::human_size(n)
}

/// `ok`/`FAIL` columns.
pub fn mark(ok: bool) -> &'static str {
    if ok { "ok  " } else { "FAIL" }
}
