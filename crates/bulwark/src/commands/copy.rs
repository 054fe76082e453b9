//! `bulwark copy`: snapshots to another repository: verbatim to a replica, re-encrypted to any
//! other; killed and run again, it sends nothing twice.

use super::{emit, human_bytes, open, open_other, progress};
use crate::CliResult;
use crate::cli::{Global, OtherCredentials};

#[derive(clap::Args)]
pub struct Args {
    /// The destination repository
    #[arg(long)]
    pub to: String,
    /// Snapshots to copy (default: all)
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub other: OtherCredentials,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let src = open(g)?;
    let dst = open_other(g, &a.to, &a.other)?;
    let report = bulwark_ops::copy::copy(&src, &dst, &a.snapshots, progress(g))?;
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
