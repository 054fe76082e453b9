//! `bulwark ls`: the entries of a snapshot, or of a path inside one.

use bulwark_ops::browse;
use bulwark_repo::lock::LockKind;
use chrono::DateTime;
use serde_json::json;

use super::{emit, open};
use crate::CliResult;
use crate::cli::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot id (8+ hex digits), `latest`, or ID:PATH
    pub snapshot: String,
    /// Only below this path
    pub path: Option<String>,
    /// Show type, mode, size and time
    #[arg(short, long)]
    pub long: bool,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let repo = open(g)?;
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let sel = browse::select(&repo, &index, &a.snapshot, a.path.as_deref())?;
    let tree = browse::selected_tree(&repo, &index, &sel)?;
    let base = match &sel.node {
        Some(n) if n.kind != bulwark_repo::NodeKind::Dir => sel
            .path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default(),
        _ => sel.path.clone(),
    };
    let mut entries = Vec::new();
    browse::walk(&repo, &index, &tree, &base, &mut |path, node| {
        entries.push(json!({
            "path": path.display().to_string(),
            "type": node.kind,
            "size": node.size,
            "mode": format!("{:o}", node.mode),
            "uid": node.uid,
            "gid": node.gid,
            "mtime": DateTime::from_timestamp_nanos(node.mtime_ns).to_rfc3339(),
        }));
        Ok(())
    })?;
    emit(g, &entries, || {
        entries
            .iter()
            .map(|e| {
                let path = e["path"].as_str().unwrap_or_default();
                if a.long {
                    format!(
                        "{:<8} {:>6} {:>12} {} {path}",
                        e["type"].as_str().unwrap_or_default(),
                        e["mode"].as_str().unwrap_or_default(),
                        e["size"],
                        e["mtime"].as_str().unwrap_or_default()
                    )
                } else {
                    path.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(0)
}
