//! `bulwark wal-push %p`: PostgreSQL's `archive_command` for a physical dataset. Exit 0 only
//! once the file is durable in the repository; anything else fails with one line PostgreSQL
//! logs, and PostgreSQL keeps the file and retries. With the dataset's `wal_async`, it waits
//! for the background pusher's acknowledgement instead (see `bulwark_app::wal`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bulwark_app::wal::{self, Spool, WalTarget};
use bulwark_repo::wal::Pushed;

use crate::CliResult;
use crate::cli::{ConfigArg, Global};
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The dataset (method = "physical") the cluster belongs to
    #[arg(long)]
    pub dataset: String,
    /// The file PostgreSQL archives (`%p`)
    #[arg(required_unless_present = "pusher")]
    pub path: Option<PathBuf>,
    /// With wal_async: how long to wait for the pusher's acknowledgement, in seconds
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Run as the background pusher for this pg_wal directory (wal-push starts it itself)
    #[arg(long, hide = true, value_name = "PG_WAL")]
    pub pusher: Option<PathBuf>,
}

/// No terminal is there to ask on: credentials come from the policy file or the environment.
fn credentials(g: &Global) -> bulwark_app::Credentials {
    bulwark_app::Credentials {
        prompt: None,
        ..crate::credentials::for_workspace(g)
    }
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let policy = &a.config.config;
    if let Some(pg_wal) = &a.pusher {
        let (_, d, base) = wal::physical_dataset(policy, &a.dataset)?;
        let spool = Spool::open(&wal::spool_dir(&d, &base))?;
        let pushed = WalTarget::open(policy, &a.dataset, &credentials(g))
            .and_then(|target| wal::run_pusher(&target, &spool, pg_wal, 2));
        if let Err(e) = pushed {
            // The waiting wal-push says it, in PostgreSQL's log.
            spool.record_error(&e.to_string());
            return Err(e.into());
        }
        return Ok(0);
    }
    let path = a
        .path
        .clone()
        .ok_or_else(|| Failure::usage("no WAL file given", "archive_command passes %p"))?;
    let fail = |e: bulwark_app::Error| {
        Failure::new(
            1,
            format!("wal-push {}: {e}", path.display()),
            Some("PostgreSQL keeps the file and retries; fix the repository or the policy file"),
        )
    };
    let (_, d, base) = wal::physical_dataset(policy, &a.dataset).map_err(fail)?;
    if d.wal_async {
        let spool = Spool::open(&wal::spool_dir(&d, &base)).map_err(fail)?;
        let pg_wal = std::path::absolute(&path)
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .unwrap_or_default();
        let start = || start_pusher(g, &a, &pg_wal, &spool_log(&d, &base));
        let name = wal::push_via_spool(&spool, &path, Duration::from_secs(a.timeout), &start)
            .map_err(fail)?;
        tracing::info!("archived {name} (asynchronously)");
        return Ok(0);
    }
    let target = WalTarget::open(policy, &a.dataset, &credentials(g)).map_err(fail)?;
    let (name, pushed) = wal::push_now(&target, &path).map_err(fail)?;
    match pushed {
        Pushed::Stored(n) => tracing::info!("archived {name} ({n} bytes stored)"),
        Pushed::AlreadyArchived => {
            tracing::info!("{name} was archived already, with the same content")
        }
    }
    Ok(0)
}

fn spool_log(d: &bulwark_policy::config::Dataset, base: &std::path::Path) -> PathBuf {
    wal::spool_dir(d, base).join("pusher.log")
}

/// Start the background pusher: this program again, in its own process group, so that it
/// outlives this `wal-push`; its messages go to the spool's `pusher.log`.
fn start_pusher(
    g: &Global,
    a: &Args,
    pg_wal: &std::path::Path,
    log: &std::path::Path,
) -> Result<(), bulwark_app::Error> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| {
        bulwark_app::Error::Invalid(format!("cannot tell which bulwark this is: {e}"))
    })?;
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| bulwark_app::Error::Invalid(format!("cannot write {}: {e}", log.display())))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("wal-push")
        .arg("-c")
        .arg(&a.config.config)
        .arg("--dataset")
        .arg(&a.dataset)
        .arg("--pusher")
        .arg(pg_wal);
    if let Some(f) = &g.password_file {
        cmd.arg("--password-file").arg(f);
    }
    if let Some(f) = &g.key_file {
        cmd.arg("--key-file").arg(f);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(logf))
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| bulwark_app::Error::Invalid(format!("cannot start the WAL pusher: {e}")))
}
