//! `bulwark failover --to REPLICA` and `bulwark failback`: backups of a primary go to one of
//! its replicas while its region is down, and back once what was made meanwhile is copied back
//! and verified (see `bulwark_app::failover`).

use bulwark_app::Create;
use bulwark_app::failover::{failback, failover};

use super::{emit, human_bytes, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};

#[derive(clap::Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The replica that takes its primary's writes
    #[arg(long)]
    pub to: String,
    /// Why (recorded in the ledger)
    #[arg(long, default_value = "region degraded")]
    pub reason: String,
}

#[derive(clap::Args)]
pub struct FailbackArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The primary to fail back (needed only when several have failed over)
    #[arg(long)]
    pub primary: Option<String>,
}

pub fn run_failover(g: &Global, a: FailoverArgs) -> CliResult<i32> {
    let ws = workspace(g, &a.config.config, Create::Nothing)?;
    let f = failover(&ws, &a.to, &a.reason)?;
    emit(g, &f, || {
        format!(
            "failed over: backups of '{}' go to '{}' from now on; run `bulwark failback` when '{}' is back",
            f.primary, f.active, f.primary
        )
    });
    Ok(0)
}

pub fn run_failback(g: &Global, a: FailbackArgs) -> CliResult<i32> {
    let ws = workspace(g, &a.config.config, Create::Nothing)?;
    let d = failback(&ws, a.primary.as_deref())?;
    emit(g, &d, || {
        format!(
            "failed back: {} snapshots ({} in {} packs) copied from '{}' to '{}', {} packs verified; backups go to '{}' again",
            d.snapshots_copied.len(),
            human_bytes(d.bytes_copied),
            d.packs_copied,
            d.from,
            d.primary,
            d.packs_checked,
            d.primary
        )
    });
    Ok(0)
}
