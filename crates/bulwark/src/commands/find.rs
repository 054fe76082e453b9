//! `bulwark find`: which snapshots hold entries matching a pattern (the syntax of `--exclude`:
//! `*.conf` a name anywhere, `/etc/*.conf` anchored).

use bulwark_ops::inspect::find;
use bulwark_source::Patterns;

use super::{FilterArgs, emit, human_bytes, open, plural};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Patterns to look for (an entry matching any is listed)
    #[arg(required = true)]
    pub patterns: Vec<String>,
    /// Look only in this snapshot (repeatable; default: every snapshot the filters take)
    #[arg(long = "snapshot", short = 's', value_name = "ID")]
    pub snapshots: Vec<String>,
    /// Ignore case
    #[arg(long, short = 'i')]
    pub ignore_case: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let (exact, folded) = if a.ignore_case {
        (Vec::new(), a.patterns.clone())
    } else {
        (a.patterns.clone(), Vec::new())
    };
    let patterns = Patterns::with_case_insensitive(&exact, &folded)
        .map_err(|e| Failure::usage(e, "see `bulwark backup --help` for the pattern syntax"))?;
    let repo = open(g)?;
    let found = find(&repo, &patterns, &a.snapshots, &a.filter.filter())?;
    emit(g, &found, || {
        let mut t = String::new();
        for f in &found {
            t += &format!(
                "found {} in snapshot {} of {} ({}):\n",
                plural(f.matches.len(), "entry", "entries"),
                &f.snapshot[..8],
                f.hostname,
                f.time
            );
            for m in &f.matches {
                t += &format!(
                    "  {:<8} {:>10} {} {}\n",
                    serde_json::to_value(m.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    human_bytes(m.size),
                    m.mtime,
                    m.path
                );
            }
        }
        if found.is_empty() {
            t += "nothing found";
        }
        t.trim_end().to_string()
    });
    Ok(0)
}
