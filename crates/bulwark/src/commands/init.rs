//! `bulwark init`: create a repository at `-r` (a new master key behind its first key slot, or a
//! replica sharing another repository's key and chunking), or with `-c` every repository of a
//! policy file that does not exist yet, and the ledger.

use std::path::PathBuf;

use bulwark_app::Create;
use bulwark_repo::{Repository, Settings};
use serde_json::json;

use super::{backend, emit, open_other, workspace};
use crate::CliResult;
use crate::cli::{Global, OtherCredentials};
use crate::credentials;
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Create every missing repository of this policy file (primaries, then replicas), and its ledger
    #[arg(long, short = 'c', conflicts_with_all = ["replica_of", "new_key_file"])]
    pub config: Option<PathBuf>,
    /// Protect the first key slot with a new key file written here, instead of a passphrase
    #[arg(long, conflicts_with = "new_password_file")]
    pub new_key_file: Option<PathBuf>,
    /// Read the first passphrase from this file (else --password-file, BULWARK_PASSWORD, or
    /// asked twice)
    #[arg(long)]
    pub new_password_file: Option<PathBuf>,
    /// Target pack size in MiB
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub pack_size_mib: u32,
    /// Average chunk size in KiB (minimum is a quarter, maximum four times); fixed for the repository's life
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(64..=4096))]
    pub chunk_avg_kib: u32,
    /// Create a replica of this repository: same master key and chunking, so `copy` moves packs verbatim
    #[arg(long)]
    pub replica_of: Option<String>,
    #[command(flatten)]
    pub other: OtherCredentials,
    /// zstd compression level
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(-7..=19))]
    pub compression_level: i32,
    /// Lock every object with S3 Object Lock in this mode (governance or compliance); the bucket
    /// must have been created with Object Lock enabled (a replica's too: locks do not carry over)
    #[arg(long)]
    pub object_lock: Option<String>,
    /// With --object-lock: the retention window the locks serve, in days (locks run 7 days longer)
    #[arg(long, requires = "object_lock", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub lock_days: u32,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    if let Some(path) = &a.config {
        if g.repo.is_some() {
            return Err(Failure::usage(
                "-r/--repo and -c/--config exclude each other for init",
                "give the repository, or the policy file whose repositories to create",
            ));
        }
        return init_policy(g, path);
    }
    // The source of a replica first: a mistyped source must not leave an empty directory behind.
    let source = match &a.replica_of {
        Some(s) => Some(open_other(g, s, &a.other)?),
        None => None,
    };
    let backend = backend(g, true)?;
    let credential = credentials::new(
        g,
        a.new_key_file.as_deref(),
        a.new_password_file.as_deref(),
        true,
    )?;
    let object_lock = a
        .object_lock
        .as_deref()
        .map(|m| {
            bulwark_repo::object_lock::LockMode::parse(m)
                .map(|mode| bulwark_repo::object_lock::ObjectLock {
                    mode,
                    days: a.lock_days,
                })
                .ok_or_else(|| {
                    Failure::usage(
                        format!("--object-lock: unknown mode '{m}'"),
                        "use governance or compliance",
                    )
                })
        })
        .transpose()?;
    let mut settings = Settings {
        pack_size: a.pack_size_mib * 1024 * 1024,
        compression_level: a.compression_level,
        object_lock,
        ..Settings::default()
    };
    let avg = a.chunk_avg_kib * 1024;
    (
        settings.chunker.min_size,
        settings.chunker.avg_size,
        settings.chunker.max_size,
    ) = (avg / 4, avg, avg * 4);
    let repo = match &source {
        Some(source) => {
            Repository::init_replica_locked(backend, &credential, source, settings.object_lock)?
        }
        None => Repository::init(backend, &credential, settings)?,
    };
    let location = repo.backend().location().to_string();
    emit(g, &json!({ "id": repo.id(), "location": location }), || {
        format!("created repository {} at {location}", repo.id().short())
    });
    Ok(0)
}

fn init_policy(g: &Global, path: &std::path::Path) -> CliResult<i32> {
    let ws = workspace(g, path, Create::Everything)?;
    let outcomes = ws.init_missing()?;
    let ledger = ws.ledger_location().display();
    emit(
        g,
        &json!({ "repositories": outcomes, "ledger": ledger }),
        || {
            let mut t = String::new();
            for o in &outcomes {
                let what = match (&o.replica_of, o.created) {
                    (Some(of), true) => format!("created, a replica of '{of}'"),
                    (None, true) => "created".to_string(),
                    (_, false) => "already there".to_string(),
                };
                t += &format!("{:<16} {what}: {}\n", o.repository, o.location);
            }
            t += &format!("ledger           {ledger}");
            t
        },
    );
    Ok(0)
}
