//! `bulwark key add|list|remove|split|recover`: the key slots that each wrap the master key, and
//! recovery shares (k of n) so that no single person holds a repository's key.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bulwark_repo::Credential;
use bulwark_repo::shares::{self, Share};
use serde_json::json;

use super::{emit, open};
use crate::CliResult;
use crate::cli::Global;
use crate::credentials;
use crate::failure::Failure;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Add a key slot: a new passphrase (--new-password-file, or asked twice) or a new key file
    Add(NewKey),
    /// List key slots
    List,
    /// Remove a key slot by id prefix
    Remove { id: String },
    /// Add a key slot whose key exists only as shares: any THRESHOLD of the holders together open the repository
    Split {
        /// How many of the shares open the repository
        #[arg(long)]
        threshold: u8,
        /// One share per holder (repeatable); the number of holders is the number of shares
        #[arg(long = "holder", required = true)]
        holders: Vec<String>,
        /// How many shares (must equal the number of holders; for checking)
        #[arg(long)]
        shares: Option<usize>,
        /// Directory to write HOLDER.share files into (created 0700)
        #[arg(long)]
        out: PathBuf,
    },
    /// Rebuild a key file from enough shares (damaged or foreign shares are named)
    Recover {
        /// A share file (repeatable)
        #[arg(long = "share", required = true)]
        shares: Vec<PathBuf>,
        /// Where to write the key file (created 0600; must not exist)
        #[arg(long)]
        out: PathBuf,
    },
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
    match c {
        Command::Add(new) => {
            let repo = open(g)?;
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
            let mut repo = open(g)?;
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
            let repo = open(g)?;
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
            let repo = open(g)?;
            let removed = repo.remove_key(&id)?;
            emit(g, &json!({ "removed": removed }), || {
                format!("removed key {}", &removed[..8])
            });
        }
        Command::Split {
            threshold,
            holders,
            shares: count,
            out,
        } => {
            let repo = open(g)?;
            if count.is_some_and(|n| n != holders.len()) {
                return Err(Failure::usage(
                    format!(
                        "--shares {} but {} holders",
                        count.unwrap_or(0),
                        holders.len()
                    ),
                    "name one --holder per share",
                ));
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&out)
                .map_err(|e| {
                    Failure::new(1, format!("cannot create {}: {e}", out.display()), None)
                })?;
            let secret = shares::new_secret();
            let slot = repo.add_key(&Credential::KeyFile(secret))?;
            let paths: Vec<PathBuf> = holders
                .iter()
                .map(|h| out.join(format!("{h}.share")))
                .collect();
            // A slot whose shares were not all written must not stay: nobody could open it.
            let mut created = Vec::new();
            let written = shares::split(&secret, repo.id(), &slot, &holders, threshold)
                .map_err(Failure::from)
                .and_then(|made| {
                    made.iter().zip(&paths).try_for_each(|(share, path)| {
                        write_new(path, &share.to_text())?;
                        created.push(path.clone());
                        Ok(())
                    })
                });
            if let Err(e) = written {
                for p in &created {
                    let _ = std::fs::remove_file(p);
                }
                let _ = repo.remove_key(&slot);
                return Err(e);
            }
            emit(
                g,
                &json!({ "key_slot": slot, "threshold": threshold, "shares": paths }),
                || {
                    format!(
                        "added key {} held as {} shares, any {threshold} of which open the repository:\n{}",
                        &slot[..8],
                        paths.len(),
                        paths
                            .iter()
                            .map(|p| format!("  {}", p.display()))
                            .collect::<Vec<_>>()
                            .join("\n")
                    )
                },
            );
        }
        Command::Recover { shares, out } => recover(g, &shares, &out)?,
    }
    Ok(0)
}

/// Read and combine share files into a key file's secret.
pub fn combine(paths: &[PathBuf]) -> CliResult<[u8; bulwark_repo::crypto::KEY_LEN]> {
    let mut read = Vec::new();
    for p in paths {
        let text = bulwark_app::credentials::read_secret_file(p, "share file")?;
        let share = Share::parse(&text).map_err(|e| {
            Failure::new(
                1,
                format!("{}: {e}", p.display()),
                Some("give the .share files `bulwark key split` wrote"),
            )
        })?;
        read.push((p.display().to_string(), share));
    }
    shares::combine(&read).map_err(|e| {
        Failure::new(
            crate::failure::WRONG_KEY,
            e.to_string(),
            Some("give at least the threshold of undamaged shares of one split"),
        )
    })
}

fn recover(g: &Global, paths: &[PathBuf], out: &Path) -> CliResult<()> {
    let secret = combine(paths)?;
    write_new(out, &Credential::key_file_text(&secret))?;
    emit(g, &json!({ "key_file": out }), || {
        format!(
            "wrote the key file {} from {} shares",
            out.display(),
            paths.len()
        )
    });
    Ok(())
}

/// A new owner-only file.
fn write_new(path: &Path, text: &str) -> CliResult<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Failure::new(
                1,
                format!("cannot create {}: {e}", path.display()),
                Some("choose a path that does not exist yet"),
            )
        })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::new(1, format!("cannot write {}: {e}", path.display()), None))
}
