//! `bulwark repair index|packs`: rebuild the index from the packs alone, or replace damaged and
//! missing packs with verified copies from a replica.

use super::{emit, open, open_other, progress};
use crate::CliResult;
use crate::cli::{Global, OtherCredentials};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Rebuild the index from the packs alone
    Index,
    /// Replace missing or damaged packs with verified copies from a replica
    Packs {
        #[arg(long)]
        from: String,
        #[command(flatten)]
        other: OtherCredentials,
    },
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    match c {
        Command::Index => index(g),
        Command::Packs { from, other } => packs(g, &from, &other),
    }
}

fn index(g: &Global) -> CliResult<i32> {
    let repo = open(g)?;
    let report = bulwark_ops::repair::repair_index(&repo, progress(g))?;
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

fn packs(g: &Global, from: &str, other: &OtherCredentials) -> CliResult<i32> {
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
