//! `bulwark replica status`: what a replica lacks of its primary, and the reverse.

use super::{emit, human_bytes, open, open_other};
use crate::CliResult;
use crate::cli::{Global, OtherCredentials};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Snapshots and bytes each side lacks
    Status {
        #[arg(long)]
        to: String,
        #[command(flatten)]
        other: OtherCredentials,
    },
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    let Command::Status { to, other } = c;
    let primary = open(g)?;
    let replica = open_other(g, &to, &other)?;
    let st = bulwark_ops::replica::status(&primary, &replica)?;
    emit(g, &st, || {
        format!(
            "primary: {} snapshots, replica: {} snapshots\nmissing on replica: {} snapshots, {} packs ({})\nmissing on primary: {} snapshots\n{}",
            st.primary_snapshots,
            st.replica_snapshots,
            st.missing_on_replica.len(),
            st.packs_missing_on_replica,
            human_bytes(st.bytes_missing_on_replica),
            st.missing_on_primary.len(),
            if st.in_sync {
                "in sync"
            } else {
                "replica lags: run `bulwark copy`"
            }
        )
    });
    Ok(0)
}
