//! `bulwark rewrite`: new snapshots without the files that `--exclude` matches (say a secret
//! backed up by mistake), keeping everything else; `--forget` removes the originals, and a
//! `prune` then deletes the data only they used. See `bulwark_ops::edit`.

use bulwark_ops::edit::{RewriteOptions, rewrite};
use bulwark_source::Patterns;

use super::{FilterArgs, emit, human_bytes, open, plural};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to rewrite (default: every snapshot the filters take)
    pub snapshots: Vec<String>,
    /// Leave out paths matching a glob (the syntax of backup --exclude; repeatable)
    #[arg(long, short = 'e', required = true)]
    pub exclude: Vec<String>,
    /// Remove each original snapshot once its rewrite is saved (held snapshots are refused)
    #[arg(long)]
    pub forget: bool,
    /// Say what would be left out, write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let exclude = Patterns::new(&a.exclude)
        .map_err(|e| Failure::usage(e, "see `bulwark backup --help` for the pattern syntax"))?;
    let repo = open(g)?;
    let report = rewrite(
        &repo,
        &a.snapshots,
        &a.filter.filter(),
        &RewriteOptions {
            exclude,
            forget: a.forget,
            dry_run: a.dry_run,
        },
    )?;
    emit(g, &report, || {
        let mut t = String::new();
        for r in &report.rewritten {
            for p in &r.removed {
                t += &format!("{} {p}\n", &r.old[..8]);
            }
            t += &match &r.new {
                Some(new) => format!(
                    "snapshot {} rewritten as {}: left out {} ({}){}\n",
                    &r.old[..8],
                    &new[..8],
                    plural(r.files_removed as usize, "file", "files"),
                    human_bytes(r.bytes_removed),
                    if r.forgotten {
                        "; original removed"
                    } else {
                        ""
                    }
                ),
                None => format!(
                    "snapshot {} would lose {} ({})\n",
                    &r.old[..8],
                    plural(r.files_removed as usize, "file", "files"),
                    human_bytes(r.bytes_removed)
                ),
            };
        }
        t += &format!(
            "{} {}, {} unchanged",
            if a.dry_run {
                "would rewrite"
            } else {
                "rewrote"
            },
            plural(report.rewritten.len(), "snapshot", "snapshots"),
            report.unchanged
        );
        if a.forget && !a.dry_run && !report.rewritten.is_empty() {
            t += "\nrun `bulwark prune` to delete the data only the originals used";
        }
        t
    });
    Ok(0)
}
