//! `bulwark check`: the repository's structure and, with `--read-data`, every stored byte.

use bulwark_ops::check::{ReadData, check};

use super::{emit, open_uncached, plural, progress};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Read, decrypt and verify every pack
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read a subset of packs: a share chosen at random (10%: ⌈n·p⌉ packs, at least one), a group
    /// (1/5: the first of five groups that together cover every pack) or a size (50M, 2G)
    #[arg(long)]
    pub read_data_subset: Option<String>,
    /// Instead of the structure, prove S3 Object Lock coverage: every object each retained
    /// snapshot needs is locked until the snapshot's earliest possible forget date
    #[arg(long, conflicts_with_all = ["read_data", "read_data_subset"])]
    pub locks: bool,
    /// With --locks: first extend every lock that runs short (the maintenance step)
    #[arg(long, requires = "locks")]
    pub extend_locks: bool,
    /// With --locks: judge at this time instead of now (RFC 3339)
    #[arg(long, requires = "locks")]
    pub at: Option<String>,
    /// Instead of the structure, find out on a canary object whether the credential in use can
    /// delete or overwrite objects (a backup host's should not); needs no key
    #[arg(long, conflicts_with_all = ["read_data", "read_data_subset", "locks"])]
    pub credentials: bool,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    if a.locks {
        return super::check_locks::run(g, a.extend_locks, a.at.as_deref());
    }
    if a.credentials {
        return super::check_locks::credentials(g);
    }
    let read = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => ReadData::parse_subset(s)
            .map_err(|e| Failure::usage(e, "e.g. --read-data-subset 10%, 1/5 or 500M"))?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    // A check judges what the repository holds now, so it reads nothing from the lasting cache;
    // a cache of its own still fetches each tree pack once instead of each tree.
    let mut repo = open_uncached(g)?;
    if !g.no_cache && repo.backend().remote() {
        repo.use_cache(None);
    }
    let report = check(&repo, read, progress(g))?;
    if !g.json {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
    }
    if !g.json && !g.quiet {
        summarise_damage(&report);
    }
    emit(g, &report, || {
        format!(
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
        )
    });
    Ok(if report.ok { 0 } else { 1 })
}

/// Damage on stderr, summarised: each problem that is not about one blob, one line per damaged
/// pack, a count of the blobs, and per snapshot how many entries are affected with an example.
/// `--json` has the full lists.
fn summarise_damage(report: &bulwark_ops::check::CheckReport) {
    let per_blob = |e: &str| e.starts_with("blob ") || e.starts_with("tree ");
    for e in report.errors.iter().filter(|e| !per_blob(e)) {
        eprintln!("error: {e}");
    }
    let blobs = report.errors.iter().filter(|e| per_blob(e)).count();
    if blobs > 0 {
        eprintln!(
            "error: {} missing or in damaged packs (each is listed by --json)",
            plural(blobs, "blob or tree is", "blobs or trees are")
        );
    }
    for p in &report.damaged_packs {
        eprintln!("damaged pack: {p}");
    }
    let mut by_snapshot: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for a in &report.affected {
        let (snap, path) = a.split_once(':').unwrap_or((a, ""));
        by_snapshot.entry(snap).or_default().push(path);
    }
    for (snap, paths) in by_snapshot {
        eprintln!(
            "snapshot {snap}: {} cannot be restored intact, e.g. {}",
            plural(paths.len(), "entry", "entries"),
            paths[0]
        );
    }
}
