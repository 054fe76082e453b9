//! `bulwark cat config|snapshot`: repository objects as stored (always JSON).

use serde_json::json;

use super::open;
use crate::CliResult;
use crate::cli::Global;

#[derive(clap::Subcommand)]
pub enum Command {
    /// The repository's configuration: its format, and the settings fixed at init (the chunker seed stays secret)
    Config,
    /// A snapshot object
    Snapshot { id: String },
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    let repo = open(g)?;
    let doc = match c {
        Command::Config => serde_json::to_value(repo.describe()).expect("descriptions serialise"),
        Command::Snapshot { id } => {
            let (sid, snap) = repo.find_snapshot(&id, |_| true)?;
            let mut v = serde_json::to_value(snap).expect("snapshots serialise");
            v["id"] = json!(sid);
            v
        }
    };
    crate::output::print(&serde_json::to_string_pretty(&doc).expect("json"));
    Ok(0)
}
