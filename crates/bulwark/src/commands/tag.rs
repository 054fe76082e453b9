//! `bulwark tag`: add, remove or set the tags of snapshots (see `bulwark_ops::edit`: a retagged
//! snapshot is a new object with a new id; holds follow it).

use bulwark_ops::edit::{TagChange, tag};

use super::{FilterArgs, emit, open, plural};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to change (default: every snapshot the filters take)
    pub snapshots: Vec<String>,
    /// Add these tags (TAG[,TAG...], repeatable)
    #[arg(long)]
    pub add: Vec<String>,
    /// Remove these tags (TAG[,TAG...], repeatable)
    #[arg(long)]
    pub remove: Vec<String>,
    /// Replace the tags with these (TAG[,TAG...], repeatable; `--set ''` clears them)
    #[arg(long)]
    pub set: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

fn split(v: &[String]) -> Vec<String> {
    v.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() {
        return Err(Failure::usage(
            "nothing to change",
            "give --add, --remove or --set",
        ));
    }
    let adds_or_removes = !a.add.is_empty() || !a.remove.is_empty();
    if !a.set.is_empty() && adds_or_removes {
        return Err(Failure::usage(
            "--set excludes --add and --remove",
            "set the whole list, or add and remove",
        ));
    }
    let repo = open(g)?;
    let change = TagChange {
        set: (!a.set.is_empty()).then(|| split(&a.set)),
        add: split(&a.add),
        remove: split(&a.remove),
    };
    let report = tag(&repo, &a.snapshots, &a.filter.filter(), &change)?;
    emit(g, &report, || {
        let mut t = String::new();
        for c in &report.changed {
            t += &format!("snapshot {} is now {}\n", &c.old[..8], &c.new[..8]);
        }
        t += &format!(
            "changed {}, {} unchanged",
            plural(report.changed.len(), "snapshot", "snapshots"),
            report.unchanged
        );
        t
    });
    Ok(0)
}
