//! `bulwark wal-fetch %f %p`: PostgreSQL's `restore_command` for a physical dataset, from the
//! repository (`-c POLICY --dataset NAME`), or from a running `bulwark restore` (`--socket`).
//!
//! Exit codes are PostgreSQL's protocol: 0 fetched, 1 not in the archive (recovery takes it for
//! the archive's end), and [`ARCHIVE_ERROR`] for anything else (the repository unreachable, a
//! damaged object): above 125, so PostgreSQL aborts recovery instead of ending it early at a
//! point nobody chose.

use std::path::PathBuf;

use bulwark_app::wal::{self, WalTarget};

use crate::CliResult;
use crate::cli::Global;

/// What wal-fetch exits with when the archive could not be read (PostgreSQL aborts recovery).
pub const ARCHIVE_ERROR: i32 = 250;

#[derive(clap::Args)]
pub struct Args {
    /// The policy file
    #[arg(
        long,
        short = 'c',
        env = "BULWARK_CONFIG",
        required_unless_present = "socket"
    )]
    pub config: Option<PathBuf>,
    /// The dataset (method = "physical") the cluster belongs to
    #[arg(long, required_unless_present = "socket")]
    pub dataset: Option<String>,
    /// Fetch from the restore that started this server, through its socket
    #[arg(long, conflicts_with_all = ["config", "dataset"])]
    pub socket: Option<PathBuf>,
    /// The WAL file PostgreSQL asks for (`%f`)
    pub name: String,
    /// Where PostgreSQL wants it (`%p`)
    pub dest: PathBuf,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let fetched = match &a.socket {
        Some(socket) => {
            bulwark_ops::wal::fetch_over_socket(socket, &a.name, &a.dest).map_err(|e| e.to_string())
        }
        None => from_repository(g, &a),
    };
    match fetched {
        Ok(true) => Ok(0),
        Ok(false) => {
            tracing::info!("{} is not in the archive", a.name);
            Ok(1)
        }
        Err(e) => {
            eprintln!(
                "error: wal-fetch {}: {e} (recovery stops here rather than end early)",
                a.name
            );
            Ok(ARCHIVE_ERROR)
        }
    }
}

fn from_repository(g: &Global, a: &Args) -> Result<bool, String> {
    let policy = a.config.as_ref().ok_or("no policy file")?;
    let dataset = a.dataset.as_deref().ok_or("no dataset")?;
    let creds = bulwark_app::Credentials {
        prompt: None,
        ..crate::credentials::for_workspace(g)
    };
    let target = WalTarget::open(policy, dataset, &creds).map_err(|e| e.to_string())?;
    let archive = target
        .archive(&wal::data_dir_of(&a.dest))
        .map_err(|e| e.to_string())?;
    let Some(data) = archive.fetch(&a.name).map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    let tmp = a.dest.with_extension("bulwark-fetch");
    std::fs::write(&tmp, &data)
        .and_then(|_| std::fs::rename(&tmp, &a.dest))
        .map_err(|e| format!("cannot write {}: {e}", a.dest.display()))?;
    Ok(true)
}
