//! `bulwark prune`: delete data no snapshot needs, under the two-phase protocol that never makes
//! a backup wait (see `bulwark_ops::prune`).

use bulwark_ops::prune::{PruneOptions, PruneReport, prune};

use super::{emit, human_bytes, open, parse_percent, progress};
use crate::CliResult;
use crate::cli::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Unused space allowed to remain instead of repacking, as a share of the repository after
    /// pruning (restic's measure), e.g. 5%; 100% repacks nothing
    #[arg(long, default_value = "5%")]
    pub max_unused: String,
    /// Show what would be deleted and freed, delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let max_unused = parse_percent("--max-unused", &a.max_unused, true)?;
    let repo = open(g)?;
    let report = prune(
        &repo,
        &PruneOptions {
            max_unused,
            dry_run: a.dry_run,
        },
        progress(g),
    )?;
    emit(g, &report, || describe(&report));
    Ok(0)
}

pub fn describe(p: &PruneReport) -> String {
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
