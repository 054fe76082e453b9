//! `bulwark check`: the repository's structure and, with `--read-data`, every stored byte.

use bulwark_ops::check::{ReadData, check};

use super::{emit, open_uncached, parse_percent, progress};
use crate::CliResult;
use crate::cli::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Read, decrypt and verify every pack
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read a random subset of packs, e.g. 10%
    #[arg(long)]
    pub read_data_subset: Option<String>,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
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
    let report = check(&repo, read, progress(g))?;
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
