//! `bulwark key add|list|remove`: the key slots that each wrap the master key.

use std::path::PathBuf;

use serde_json::json;

use super::{emit, open};
use crate::CliResult;
use crate::cli::Global;
use crate::credentials;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Add a key slot: a new passphrase (BULWARK_NEW_PASSWORD_FILE or prompt) or a new key file
    Add {
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// List key slots
    List,
    /// Remove a key slot by id prefix
    Remove { id: String },
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    let repo = open(g)?;
    match c {
        Command::Add { new_key_file } => {
            let cred = credentials::new(g, new_key_file.as_deref(), "BULWARK_NEW_PASSWORD_FILE")?;
            let id = repo.add_key(&cred)?;
            emit(g, &json!({ "id": id }), || {
                format!("added key {}", &id[..8])
            });
        }
        Command::List => {
            let keys = repo.list_keys()?;
            let docs: Vec<_> = keys
                .iter()
                .map(|(id, s)| {
                    json!({ "id": id, "current": id == repo.key_slot(), "kind": s.kind,
                            "host": s.host, "user": s.user, "created": s.created })
                })
                .collect();
            emit(g, &docs, || {
                keys.iter()
                    .map(|(id, s)| {
                        let mark = if id == repo.key_slot() { "*" } else { " " };
                        format!(
                            "{mark}{} {:<10} {}@{} {}",
                            &id[..8],
                            format!("{:?}", s.kind),
                            s.user,
                            s.host,
                            s.created.format("%Y-%m-%d %H:%M:%S")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Remove { id } => {
            let removed = repo.remove_key(&id)?;
            emit(g, &json!({ "removed": removed }), || {
                format!("removed key {}", &removed[..8])
            });
        }
    }
    Ok(0)
}
