//! `bulwark key add|list|remove`: the key slots that each wrap the master key.

use std::path::PathBuf;

use serde_json::json;

use super::{emit, open};
use crate::CliResult;
use crate::cli::Global;
use crate::credentials;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Add a key slot: a new passphrase (--new-password-file, or asked twice) or a new key file
    Add(NewKey),
    /// List key slots
    List,
    /// Remove a key slot by id prefix
    Remove { id: String },
    /// Change the passphrase: replace the key slot this command opens with a new one
    Passwd(NewKey),
}

/// The credential of a new key slot.
#[derive(clap::Args)]
pub struct NewKey {
    /// Write a new random key file here and protect the slot with it
    #[arg(long, conflicts_with = "new_password_file")]
    pub new_key_file: Option<PathBuf>,
    /// Read the new passphrase from this file's first line
    #[arg(long, env = "BULWARK_NEW_PASSWORD_FILE")]
    pub new_password_file: Option<PathBuf>,
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    let mut repo = open(g)?;
    match c {
        Command::Add(new) => {
            let cred = credentials::new(
                g,
                new.new_key_file.as_deref(),
                new.new_password_file.as_deref(),
                false,
            )?;
            let id = repo.add_key(&cred)?;
            emit(g, &json!({ "id": id }), || {
                format!("added key {}", &id[..8])
            });
        }
        Command::Passwd(new) => {
            let cred = credentials::new(
                g,
                new.new_key_file.as_deref(),
                new.new_password_file.as_deref(),
                false,
            )?;
            let old = repo.key_slot().to_string();
            let id = repo.replace_own_key(&cred)?;
            emit(g, &json!({ "id": id, "removed": old }), || {
                format!("replaced key {} with {}", &old[..8], &id[..8])
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
