//! `bulwark unlock`: remove stale locks (their holder stopped refreshing them, or was a process
//! on this host that no longer runs); `--remove-all` removes every lock, running holders' too.

use serde_json::json;

use super::{emit, open, plural};
use crate::CliResult;
use crate::cli::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Remove every lock, also those of processes that are still running
    #[arg(long)]
    pub remove_all: bool,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let repo = open(g)?;
    let removed =
        bulwark_repo::lock::remove_locks(repo.backend().as_ref(), repo.key(), a.remove_all)?;
    emit(g, &json!({ "removed": removed }), || {
        let mut t = format!("removed {}", plural(removed.len(), "lock", "locks"));
        for r in &removed {
            t += &format!("\n  locked {r}");
        }
        t
    });
    Ok(0)
}
