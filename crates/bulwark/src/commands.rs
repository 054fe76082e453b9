//! One function per command: open what it needs, call the job, render the result.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use bulwark_ops::backup::{BackupOptions, BackupSource, backup};
use bulwark_ops::check::{ReadData, check};
use bulwark_ops::restore::{RestoreOptions, restore};
use bulwark_ops::{Progress, browse, repair};
use bulwark_repo::lock::LockKind;
use bulwark_repo::{Backend, Repository, Settings};
use bulwark_source::Patterns;
use bulwark_source::stream::CommandStream;
use chrono::DateTime;
use serde::Serialize;
use serde_json::json;

use crate::cli::*;
use crate::failure::Failure;
use crate::{CliResult, credentials, output, show_progress};

pub fn run(cli: Cli) -> CliResult<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init(g, a),
        Command::Backup(a) if a.db.wanted() => crate::db::backup_cmd(g, a),
        Command::Backup(a) => backup_cmd(g, a),
        Command::Snapshots(a) => snapshots(g, a),
        Command::Ls(a) => ls(g, a),
        Command::Restore(a) if a.db.wanted() => crate::db::restore_cmd(g, a),
        Command::Restore(a) => restore_cmd(g, a),
        Command::RestoreTest(a) => crate::db::restore_test_cmd(g, a),
        Command::Check(a) => check_cmd(g, a),
        Command::Key(k) => key(g, k),
        Command::Cat(c) => cat(g, c),
        Command::Repair(RepairCommand::Index) => repair_index(g),
        Command::Repair(RepairCommand::Packs { from, other }) => repair_packs(g, &from, &other),
        Command::Copy(a) => copy_cmd(g, a),
        Command::Policy(PolicyCommand::Check { config }) => {
            crate::policy_cmds::policy_check(g, &config)
        }
        Command::Run(a) => crate::policy_cmds::run(g, a),
        Command::Status(a) => crate::policy_cmds::status(g, a),
        Command::Ledger(l) => crate::policy_cmds::ledger(g, l),
        Command::Remediation(r) => crate::policy_cmds::remediation(g, r),
        Command::Forget(a) => forget_cmd(g, a),
        Command::Prune(a) => prune_cmd(g, a),
        Command::Hold(h) => hold_cmd(g, h),
        Command::Replica(ReplicaCommand::Status { to, other }) => replica_status(g, &to, &other),
    }
}

/// Print `value` as JSON, or `text` for a person.
pub fn emit<T: Serialize>(g: &Global, value: &T, text: impl FnOnce() -> String) {
    if g.json {
        output::print(&serde_json::to_string(value).expect("reports serialise"));
    } else if !g.quiet {
        let t = text();
        if !t.is_empty() {
            output::print(&t);
        }
    }
}

fn backend(g: &Global, create: bool) -> CliResult<Arc<dyn Backend>> {
    let repo = g.repo.as_deref().ok_or_else(|| {
        Failure::usage("no repository given", "pass -r/--repo or set BULWARK_REPO")
    })?;
    Ok(bulwark_repo::backend::open_location(repo, create)?)
}

pub(crate) fn open(g: &Global) -> CliResult<Repository> {
    Ok(with_cache(g, open_uncached(g)?))
}

fn open_uncached(g: &Global) -> CliResult<Repository> {
    let backend = backend(g, false)?;
    // Refuse early, before asking for a passphrase, when nothing is there.
    bulwark_repo::repository::describe_header(backend.as_ref())?;
    let credential = credentials::existing(g)?;
    Ok(Repository::open(backend, &credential)?)
}

/// Remote repositories read their unchanging objects through a local cache, which saves a
/// request per tree, snapshot and index file on every command after the first.
pub(crate) fn with_cache(g: &Global, mut repo: Repository) -> Repository {
    if !g.no_cache
        && repo.backend().remote()
        && let Some(base) = bulwark_repo::cache::Cache::default_base()
    {
        repo.use_cache(Some(&base));
    }
    repo
}

/// The second repository of `copy`, `replica status`, `repair packs` and `init --replica-of`.
fn open_other(g: &Global, location: &str, other: &OtherCredentials) -> CliResult<Repository> {
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

fn init(g: &Global, a: InitArgs) -> CliResult<i32> {
    let backend = backend(g, true)?;
    let credential = credentials::new(g, a.new_key_file.as_deref(), "BULWARK_PASSWORD_FILE")?;
    let mut settings = Settings {
        pack_size: a.pack_size_mib * 1024 * 1024,
        compression_level: a.compression_level,
        ..Settings::default()
    };
    let avg = a.chunk_avg_kib * 1024;
    (
        settings.chunker.min_size,
        settings.chunker.avg_size,
        settings.chunker.max_size,
    ) = (avg / 4, avg, avg * 4);
    let repo = match &a.replica_of {
        Some(source) => {
            Repository::init_replica(backend, &credential, &open_other(g, source, &a.other)?)?
        }
        None => Repository::init(backend, &credential, settings)?,
    };
    let location = repo.backend().location().to_string();
    emit(g, &json!({ "id": repo.id(), "location": location }), || {
        format!("created repository {} at {location}", repo.id().short())
    });
    Ok(0)
}

#[derive(Serialize)]
struct BackupJson<'a> {
    snapshot_id: String,
    parent: Option<String>,
    #[serde(flatten)]
    summary: &'a bulwark_repo::Summary,
    unreadable: &'a [String],
}

fn backup_cmd(g: &Global, a: BackupArgs) -> CliResult<i32> {
    let source = match &a.stdin_name {
        Some(name) => {
            if !a.paths.is_empty() {
                return Err(Failure::usage(
                    "paths and --stdin-name exclude each other",
                    "back up one or the other",
                ));
            }
            let reader: Box<dyn Read + Send> = if a.stdin_from_command {
                Box::new(CommandStream::spawn(&a.command).map_err(|e| {
                    Failure::new(
                        1,
                        e.to_string(),
                        Some("give the command after `--`, e.g. -- pg_dump mydb"),
                    )
                })?)
            } else {
                Box::new(std::io::stdin())
            };
            BackupSource::Stream {
                name: name.clone(),
                reader,
            }
        }
        None if a.paths.is_empty() => {
            return Err(Failure::usage(
                "nothing to back up",
                "give paths, or --stdin-name NAME to read stdin",
            ));
        }
        None => BackupSource::Paths(a.paths.clone()),
    };
    let time = parse_time(a.time.as_deref())?;
    let excludes = Patterns::new(&a.exclude)
        .map_err(|e| Failure::usage(e, "see --help for the pattern syntax"))?;
    let repo = open(g)?;
    let progress = Progress::bytes(show_progress(g), None, "backup");
    let report = backup(
        &repo,
        BackupOptions {
            source,
            excludes,
            tags: a.tag,
            host: a.host,
            time,
            parent: a.parent,
            dataset: a.dataset,
            meta: BTreeMap::new(),
        },
        &progress,
    )?;
    let s = &report.summary;
    emit(
        g,
        &BackupJson {
            snapshot_id: report.snapshot_id.to_hex(),
            parent: report.parent.map(|p| p.to_hex()),
            summary: s,
            unreadable: &report.unreadable,
        },
        || {
            format!(
                "snapshot {} saved\nfiles: {} new, {} changed, {} unmodified\nadded: {} ({} stored) in {:.1}s",
                report.snapshot_id.short(),
                s.files_new,
                s.files_changed,
                s.files_unmodified,
                human_bytes(s.bytes_added),
                human_bytes(s.bytes_added_stored),
                s.duration_s
            )
        },
    );
    if report.unreadable.is_empty() {
        Ok(0)
    } else {
        for u in &report.unreadable {
            eprintln!("unreadable: {u}");
        }
        eprintln!(
            "warning: {} items could not be read; the snapshot holds everything else",
            report.unreadable.len()
        );
        Ok(3)
    }
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

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn snapshots(g: &Global, a: SnapshotsArgs) -> CliResult<i32> {
    let repo = open(g)?;
    let (snaps, bad) = repo.load_snapshots()?;
    for e in &bad {
        eprintln!("warning: {e}");
    }
    let snaps: Vec<_> = snaps
        .into_iter()
        .filter(|(_, s)| a.host.as_ref().is_none_or(|h| &s.hostname == h))
        .filter(|(_, s)| a.tag.as_ref().is_none_or(|t| s.tags.contains(t)))
        .collect();
    let docs: Vec<_> = snaps
        .iter()
        .map(|(id, s)| {
            let mut v = serde_json::to_value(s).expect("snapshots serialise");
            v["id"] = json!(id);
            v["short_id"] = json!(id.short());
            v
        })
        .collect();
    emit(g, &docs, || {
        let mut out = format!(
            "{:<10} {:<25} {:<16} {:<16} {}\n",
            "ID", "Time", "Host", "Tags", "Paths"
        );
        for (id, s) in &snaps {
            out += &format!(
                "{:<10} {:<25} {:<16} {:<16} {}\n",
                id.short(),
                s.time.format("%Y-%m-%d %H:%M:%S %:z"),
                s.hostname,
                s.tags.join(","),
                s.paths.join(" ")
            );
        }
        out += &format!("{} snapshots", snaps.len());
        out
    });
    Ok(0)
}

fn ls(g: &Global, a: LsArgs) -> CliResult<i32> {
    let repo = open(g)?;
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let sel = browse::select(&repo, &index, &a.snapshot, a.path.as_deref())?;
    let tree = browse::selected_tree(&repo, &index, &sel)?;
    let base = match &sel.node {
        Some(n) if n.kind != bulwark_repo::NodeKind::Dir => sel
            .path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default(),
        _ => sel.path.clone(),
    };
    let mut entries = Vec::new();
    browse::walk(&repo, &index, &tree, &base, &mut |path, node| {
        entries.push(json!({
            "path": path.display().to_string(),
            "type": node.kind,
            "size": node.size,
            "mode": format!("{:o}", node.mode),
            "uid": node.uid,
            "gid": node.gid,
            "mtime": DateTime::from_timestamp_nanos(node.mtime_ns).to_rfc3339(),
        }));
        Ok(())
    })?;
    emit(g, &entries, || {
        entries
            .iter()
            .map(|e| {
                let path = e["path"].as_str().unwrap_or_default();
                if a.long {
                    format!(
                        "{:<8} {:>6} {:>12} {} {path}",
                        e["type"].as_str().unwrap_or_default(),
                        e["mode"].as_str().unwrap_or_default(),
                        e["size"],
                        e["mtime"].as_str().unwrap_or_default()
                    )
                } else {
                    path.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(0)
}

fn restore_cmd(g: &Global, a: RestoreArgs) -> CliResult<i32> {
    let include = Patterns::new(&a.include)
        .map_err(|e| Failure::usage(e, "see --help for the pattern syntax"))?;
    let target = a
        .target
        .clone()
        .ok_or_else(|| Failure::usage("no --target given", "name a directory to restore into"))?;
    let repo = open(g)?;
    let opts = RestoreOptions {
        target: target.clone(),
        include,
        verify: a.verify,
        show_progress: show_progress(g),
    };
    let report = restore(&repo, &a.snapshot, &opts)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    emit(g, &report, || {
        let mut t = format!(
            "restored {} files, {} directories, {} links ({}) to {}",
            report.files,
            report.dirs,
            report.links,
            human_bytes(report.bytes),
            target.display()
        );
        if a.verify && report.verified {
            t += &format!(
                "\nverified {} files: all match the snapshot",
                report.files_verified
            );
        }
        t
    });
    if !report.errors.is_empty() {
        return Err(Failure::new(
            1,
            format!("{} files were not restored intact", report.errors.len()),
            Some("run `bulwark check --read-data` to find damaged packs"),
        ));
    }
    Ok(0)
}

/// A percentage such as `10%` (or `10`), as a fraction; `allow_zero` for allowances.
fn parse_percent(flag: &str, s: &str, allow_zero: bool) -> CliResult<f64> {
    let bad = || Failure::usage(format!("bad {flag} '{s}'"), "give a percentage such as 10%");
    let v: f64 = s.trim_end_matches('%').parse().map_err(|_| bad())?;
    if !(v <= 100.0 && (v > 0.0 || (allow_zero && v == 0.0))) {
        return Err(bad());
    }
    Ok(v / 100.0)
}

fn check_cmd(g: &Global, a: CheckArgs) -> CliResult<i32> {
    let read = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => ReadData::Subset(parse_percent("--read-data-subset", s, false)?),
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    // A check judges what the repository holds now, so it reads nothing from the lasting cache;
    // a cache of its own still fetches each tree pack once instead of each tree.
    let mut repo = open_uncached(g)?;
    if !g.no_cache && repo.backend().remote() {
        repo.use_cache(None);
    }
    let report = check(&repo, read, show_progress(g))?;
    if !g.json {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
    }
    emit(g, &report, || {
        let mut t = String::new();
        for e in &report.errors {
            t += &format!("error: {e}\n");
        }
        for p in &report.damaged_packs {
            t += &format!("damaged pack: {p}\n");
        }
        for p in &report.affected {
            t += &format!("affected: {p}\n");
        }
        t += &format!(
            "checked {} snapshots, {} packs ({} read), {} blobs: {}",
            report.snapshots,
            report.packs,
            report.packs_read,
            report.blobs,
            if report.ok {
                "no errors were found"
            } else {
                "ERRORS FOUND"
            }
        );
        t
    });
    Ok(if report.ok { 0 } else { 1 })
}

fn key(g: &Global, k: KeyCommand) -> CliResult<i32> {
    let repo = open(g)?;
    match k {
        KeyCommand::Add { new_key_file } => {
            let cred = credentials::new(g, new_key_file.as_deref(), "BULWARK_NEW_PASSWORD_FILE")?;
            let id = repo.add_key(&cred)?;
            emit(g, &json!({ "id": id }), || {
                format!("added key {}", &id[..8])
            });
        }
        KeyCommand::List => {
            let keys = repo.list_keys()?;
            let docs: Vec<_> = keys
                .iter()
                .map(|(id, s)| {
                    json!({ "id": id, "current": id == repo.key_slot(), "kind": s.kind,
                            "host": s.host, "user": s.user, "created": s.created })
                })
                .collect();
            emit(g, &docs, || {
                keys.iter()
                    .map(|(id, s)| {
                        let mark = if id == repo.key_slot() { "*" } else { " " };
                        format!(
                            "{mark}{} {:<10} {}@{} {}",
                            &id[..8],
                            format!("{:?}", s.kind),
                            s.user,
                            s.host,
                            s.created.format("%Y-%m-%d %H:%M:%S")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(&id)?;
            emit(g, &json!({ "removed": removed }), || {
                format!("removed key {}", &removed[..8])
            });
        }
    }
    Ok(0)
}

fn cat(g: &Global, c: CatCommand) -> CliResult<i32> {
    let repo = open(g)?;
    let doc = match c {
        CatCommand::Config => {
            let s = repo.settings();
            json!({
                "id": repo.id(),
                "version": 1,
                "created": repo.created(),
                "chunker": { "algorithm": "fastcdc-2020", "min_size": s.chunker.min_size,
                             "avg_size": s.chunker.avg_size, "max_size": s.chunker.max_size, "seed": "secret" },
                "pack_size": s.pack_size,
                "compression": { "algorithm": "zstd", "level": s.compression_level },
                "encryption": "AES-256-GCM, per-object keys from HKDF-SHA256",
                "blob_ids": "keyed BLAKE3",
            })
        }
        CatCommand::Snapshot { id } => {
            let (sid, snap) = repo.find_snapshot(&id, |_| true)?;
            let mut v = serde_json::to_value(snap).expect("snapshots serialise");
            v["id"] = json!(sid);
            v
        }
    };
    // `cat` prints JSON either way: it shows objects as stored.
    output::print(&serde_json::to_string_pretty(&doc).expect("json"));
    Ok(0)
}

fn repair_index(g: &Global) -> CliResult<i32> {
    let repo = open(g)?;
    let report = repair::repair_index(&repo, show_progress(g))?;
    for p in &report.unreadable_packs {
        eprintln!("warning: unreadable pack {p}");
    }
    emit(g, &report, || {
        format!(
            "indexed {} blobs in {} packs; removed {} old index files",
            report.blobs_indexed, report.packs_indexed, report.index_files_removed
        )
    });
    Ok(if report.unreadable_packs.is_empty() {
        0
    } else {
        1
    })
}

fn copy_cmd(g: &Global, a: CopyArgs) -> CliResult<i32> {
    let src = open(g)?;
    let dst = open_other(g, &a.to, &a.other)?;
    let report = bulwark_ops::copy::copy(&src, &dst, &a.snapshots, show_progress(g))?;
    emit(g, &report, || {
        format!(
            "copied {} snapshots ({} already there), {} packs, {} ({})",
            report.snapshots_copied.len(),
            report.snapshots_already_present,
            report.packs_copied,
            human_bytes(report.bytes_copied),
            report.mode
        )
    });
    Ok(0)
}

fn replica_status(g: &Global, to: &str, other: &OtherCredentials) -> CliResult<i32> {
    let primary = open(g)?;
    let replica = open_other(g, to, other)?;
    let st = bulwark_ops::replica::status(&primary, &replica)?;
    emit(g, &st, || {
        format!(
            "primary: {} snapshots, replica: {} snapshots\nmissing on replica: {} snapshots, {} packs ({})\nmissing on primary: {} snapshots\n{}",
            st.primary_snapshots,
            st.replica_snapshots,
            st.missing_on_replica.len(),
            st.packs_missing_on_replica,
            human_bytes(st.bytes_missing_on_replica),
            st.missing_on_primary.len(),
            if st.in_sync {
                "in sync"
            } else {
                "replica lags: run `bulwark copy`"
            }
        )
    });
    Ok(0)
}

fn repair_packs(g: &Global, from: &str, other: &OtherCredentials) -> CliResult<i32> {
    let primary = open(g)?;
    let replica = open_other(g, from, other)?;
    let report = bulwark_ops::replica::repair_packs(&primary, &replica)?;
    for p in &report.unrecoverable {
        eprintln!("error: pack {p} is damaged or missing and the replica has no good copy");
    }
    emit(g, &report, || {
        format!(
            "checked {} packs: replaced {}, unrecoverable {}",
            report.packs_checked,
            report.replaced.len(),
            report.unrecoverable.len()
        )
    });
    Ok(if report.unrecoverable.is_empty() {
        0
    } else {
        1
    })
}

fn keep_count(flag: &str, v: &Option<String>) -> CliResult<Option<u32>> {
    v.as_deref()
        .map(bulwark_policy::retention::parse_keep_count)
        .transpose()
        .map_err(|e| Failure::usage(format!("{flag}: {e}"), "give a whole number or `unlimited`"))
}

fn forget_cmd(g: &Global, a: ForgetArgs) -> CliResult<i32> {
    use bulwark_policy::retention::KeepRules;
    let within = a
        .keep_within
        .as_deref()
        .map(bulwark_policy::CalendarDuration::parse)
        .transpose()
        .map_err(|e| Failure::usage(format!("--keep-within: {e}"), "e.g. 30d, 12h, 1y6m"))?;
    let rules = KeepRules {
        within,
        last: keep_count("--keep-last", &a.keep_last)?,
        hourly: keep_count("--keep-hourly", &a.keep_hourly)?,
        daily: keep_count("--keep-daily", &a.keep_daily)?,
        weekly: keep_count("--keep-weekly", &a.keep_weekly)?,
        monthly: keep_count("--keep-monthly", &a.keep_monthly)?,
        yearly: keep_count("--keep-yearly", &a.keep_yearly)?,
        tags: a.keep_tag.clone(),
    };
    if a.snapshots.is_empty() && rules.is_empty() {
        return Err(Failure::usage(
            "no retention rule given; refusing to forget everything",
            "give --keep-within 30d (the policy default) or other --keep-* options, or snapshot ids",
        ));
    }
    let group_by = bulwark_policy::GroupBy::parse(&a.group_by).map_err(|e| {
        Failure::usage(
            format!("--group-by: unknown field '{}'", e.0),
            "use host, paths, tags, dataset",
        )
    })?;
    let max_unused = parse_percent("--max-unused", &a.max_unused, true)?;
    let repo = open(g)?;
    let report = bulwark_ops::forget::forget(
        &repo,
        &bulwark_ops::forget::ForgetOptions {
            rules,
            group_by,
            dataset: a.dataset,
            explicit: a.snapshots,
            dry_run: a.dry_run,
            now: chrono::Utc::now(),
        },
    )?;
    let pruned = if a.prune && !a.dry_run {
        Some(bulwark_ops::prune::prune(
            &repo,
            &bulwark_ops::prune::PruneOptions {
                max_unused,
                dry_run: false,
                show_progress: show_progress(g),
            },
        )?)
    } else {
        None
    };
    emit(g, &json!({ "forget": &report, "prune": &pruned }), || {
        let mut t = String::new();
        for s in &report.snapshots {
            t += &format!(
                "{} {} {:<25} {}\n",
                if s.keep { "keep  " } else { "remove" },
                s.short_id,
                s.time.format("%Y-%m-%d %H:%M:%S %:z"),
                s.reasons.join("; ")
            );
        }
        t += &format!(
            "{} {} snapshots, kept {}",
            if report.dry_run {
                "would remove"
            } else {
                "removed"
            },
            report.removed.len(),
            report.kept
        );
        if let Some(p) = &pruned {
            t += &format!("\n{}", prune_text(p));
        }
        t
    });
    Ok(0)
}

fn prune_text(p: &bulwark_ops::prune::PruneReport) -> String {
    let mut t = format!(
        "{} packs, {} used, {} unused; {} unused packs, {} to repack; {} {}",
        p.packs,
        human_bytes(p.bytes_used),
        human_bytes(p.bytes_unused),
        p.packs_unused,
        p.packs_to_repack,
        if p.dry_run { "would free" } else { "frees" },
        human_bytes(p.bytes_to_free)
    );
    if !p.dry_run {
        t += &format!(
            "\ndeleted {} packs ({})",
            p.packs_deleted,
            human_bytes(p.bytes_freed)
        );
    }
    for r in &p.postponed {
        t += &format!("\npostponed: {r}");
    }
    t
}

fn prune_cmd(g: &Global, a: PruneArgs) -> CliResult<i32> {
    let max_unused = parse_percent("--max-unused", &a.max_unused, true)?;
    let repo = open(g)?;
    let report = bulwark_ops::prune::prune(
        &repo,
        &bulwark_ops::prune::PruneOptions {
            max_unused,
            dry_run: a.dry_run,
            show_progress: show_progress(g),
        },
    )?;
    emit(g, &report, || prune_text(&report));
    Ok(0)
}

fn parse_until(s: &str) -> CliResult<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| Failure::usage(format!("bad --until '{s}'"), "use YYYY-MM-DD or RFC 3339"))
}

fn hold_cmd(g: &Global, h: HoldCommand) -> CliResult<i32> {
    let repo = open(g)?;
    match h {
        HoldCommand::Add {
            snapshot,
            until,
            reason,
        } => {
            let until = until.as_deref().map(parse_until).transpose()?;
            let (id, _) = repo.find_snapshot(&snapshot, |_| true)?;
            let record = bulwark_repo::holds::HoldRecord {
                snapshot: id,
                until,
                reason,
                created: chrono::Utc::now(),
                by: format!(
                    "{}@{}",
                    bulwark_repo::user_name(),
                    bulwark_repo::host_name()
                ),
            };
            repo.add_hold(&record)?;
            emit(g, &record, || match until {
                Some(u) => format!(
                    "held snapshot {} until {}",
                    id.short(),
                    u.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                None => format!("held snapshot {} until the hold is removed", id.short()),
            });
        }
        HoldCommand::Remove { snapshot } => {
            let (id, _) = repo.find_snapshot(&snapshot, |_| true)?;
            let n = repo.remove_holds(&id)?;
            emit(g, &json!({ "snapshot": id, "removed": n }), || {
                format!("removed {n} holds from {}", id.short())
            });
        }
        HoldCommand::List => {
            let now = chrono::Utc::now();
            let holds: Vec<_> = repo
                .holds()?
                .into_iter()
                .map(|(_, h)| {
                    let mut v = serde_json::to_value(&h).expect("holds serialise");
                    v["active"] = json!(h.is_active(now));
                    v
                })
                .collect();
            emit(g, &holds, || {
                holds
                    .iter()
                    .map(|h| {
                        format!(
                            "{} until {} {} {}",
                            &h["snapshot"].as_str().unwrap_or_default()[..8],
                            h["until"].as_str().unwrap_or("removed"),
                            if h["active"] == json!(true) {
                                "active "
                            } else {
                                "expired"
                            },
                            h["reason"].as_str().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(0)
}
