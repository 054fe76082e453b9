//! `bulwark stats`: how large snapshots are when restored (`restore-size`, the default, as in
//! restic) or in storage (`raw-data`: their distinct blobs, before and after compression).

use bulwark_ops::inspect::{StatsMode, stats};

use super::{FilterArgs, emit, human_bytes, open};
use crate::CliResult;
use crate::cli::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to measure (default: every snapshot the filters take)
    pub snapshots: Vec<String>,
    #[arg(long, value_enum, default_value = "restore-size")]
    pub mode: ModeArg,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum ModeArg {
    RestoreSize,
    RawData,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let repo = open(g)?;
    let mode = match a.mode {
        ModeArg::RestoreSize => StatsMode::RestoreSize,
        ModeArg::RawData => StatsMode::RawData,
    };
    let r = stats(&repo, &a.snapshots, &a.filter.filter(), mode)?;
    emit(g, &r, || {
        let mut t = format!("stats in {} mode of {} snapshots:\n", r.mode, r.snapshots);
        match mode {
            StatsMode::RestoreSize => {
                t += &format!(
                    "  files:       {}\n  directories: {}\n  total size:  {}",
                    r.files.unwrap_or_default(),
                    r.dirs.unwrap_or_default(),
                    human_bytes(r.total_size)
                );
            }
            StatsMode::RawData => {
                let stored = r.stored_size.unwrap_or_default();
                t += &format!(
                    "  blobs:              {}\n  uncompressed size:  {}\n  stored size:        {}",
                    r.blobs.unwrap_or_default(),
                    human_bytes(r.total_size),
                    human_bytes(stored)
                );
                if stored > 0 {
                    t += &format!(
                        "\n  compression ratio:  {:.2}x",
                        r.total_size as f64 / stored as f64
                    );
                }
            }
        }
        t
    });
    Ok(0)
}
