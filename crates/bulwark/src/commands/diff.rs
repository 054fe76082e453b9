//! `bulwark diff`: what changed between two snapshots, restic's way: `+` added, `-` removed,
//! `M` content, `T` type, `U` metadata only.

use bulwark_ops::inspect::diff;

use super::{emit, human_bytes, open};
use crate::CliResult;
use crate::cli::Global;

#[derive(clap::Args)]
pub struct Args {
    /// The older snapshot
    pub from: String,
    /// The newer snapshot
    pub to: String,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let repo = open(g)?;
    let report = diff(&repo, &a.from, &a.to)?;
    emit(g, &report, || {
        let s = &report.stats;
        let mut t = format!(
            "comparing snapshot {} to {}:\n",
            &report.from[..8],
            &report.to[..8]
        );
        for c in &report.changes {
            let slash = if c.kind == bulwark_repo::NodeKind::Dir {
                "/"
            } else {
                ""
            };
            t += &format!("{}    {}{slash}\n", c.change, c.path);
        }
        t += &format!(
            "files:       {} new, {} removed, {} changed\ndirectories: {} new, {} removed\nothers:      {} new, {} removed\nmetadata:    {} changed\nadded:       {}\nremoved:     {}",
            s.files_added,
            s.files_removed,
            s.files_changed,
            s.dirs_added,
            s.dirs_removed,
            s.others_added,
            s.others_removed,
            s.metadata_changed,
            human_bytes(s.bytes_added),
            human_bytes(s.bytes_removed)
        );
        t
    });
    Ok(0)
}
