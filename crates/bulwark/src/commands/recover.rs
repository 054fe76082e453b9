//! `bulwark recover --from OFFSITE --to DIR`: recovery from nothing. From the one repository left
//! and a credential (a key file, a passphrase, or enough recovery shares), bring back the policy
//! file, the ledger, and every dataset as a drill does (see `bulwark_app::recover`).

use std::path::PathBuf;

use bulwark_app::drill::Scope;
use bulwark_app::recover::{RecoverRequest, recover};
use bulwark_repo::Credential;

use super::{emit, progress};
use crate::CliResult;
use crate::cli::Global;
use crate::credentials;
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The off-site repository (a directory or URL); nothing else is contacted
    #[arg(long)]
    pub from: String,
    /// The directory that receives the policy file and, unless it says otherwise, the ledger
    #[arg(long)]
    pub to: PathBuf,
    /// Recovery shares to rebuild the key from (repeatable); otherwise --key-file or a passphrase
    #[arg(long = "share")]
    pub shares: Vec<PathBuf>,
    /// Which repository of the recovered policy file --from is (by default: the one whose url it is)
    #[arg(long = "as", value_name = "REPOSITORY")]
    pub repository: Option<String>,
    /// Only the critical datasets, not every one
    #[arg(long, conflicts_with = "datasets")]
    pub critical: bool,
    /// Only these datasets
    pub datasets: Vec<String>,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let credential = if a.shares.is_empty() {
        credentials::existing(g)?
    } else {
        Credential::KeyFile(super::key::combine(&a.shares)?)
    };
    let scope = if a.critical {
        Scope::Critical
    } else if a.datasets.is_empty() {
        Scope::All
    } else {
        Scope::Named(a.datasets)
    };
    let report = recover(RecoverRequest {
        from: a.from.clone(),
        credential,
        to: a.to.clone(),
        repository: a.repository,
        scope,
        now: chrono::Utc::now(),
        progress: progress(g),
    })
    .map_err(|e| {
        let mut f = Failure::from(e);
        if f.hint.is_none() {
            f.hint = Some(format!(
                "recovery writes {} only when it is not there yet; give an empty --to",
                a.to.join(bulwark_app::ledger_copy::POLICY_FILE).display()
            ));
        }
        f
    })?;
    emit(g, &report, || {
        format!(
            "policy file  {}\nledger       {} ({} events restored, head seq {}, from copy {} of {})\n\
             repository   {}\n{}",
            report.policy_file.display(),
            report.ledger,
            report.events_restored,
            report.head.seq,
            &report.copy_snapshot[..8],
            report.copy_time.format("%Y-%m-%d %H:%M:%S UTC"),
            report.repository,
            super::drill::render(&report.drill)
        )
    });
    Ok(if report.passed() { 0 } else { 1 })
}
