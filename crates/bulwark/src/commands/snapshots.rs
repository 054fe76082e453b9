//! `bulwark snapshots`: list snapshots, oldest first.

use serde_json::json;

use super::{emit, open};
use crate::CliResult;
use crate::cli::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Only snapshots of this host
    #[arg(long)]
    pub host: Option<String>,
    /// Only snapshots with this tag
    #[arg(long)]
    pub tag: Option<String>,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
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
