//! `bulwark generate`: shell completions and man pages, made from the command line's own
//! definition (clap_complete, clap_mangen), as restic's `generate` does.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::CliResult;
use crate::cli::{Cli, Global};
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Print the completion script for this shell on stdout
    #[arg(long, value_name = "SHELL")]
    pub completion: Option<Shell>,
    /// Write a man page per command (bulwark.1, bulwark-backup.1, ...) into this directory
    #[arg(long, value_name = "DIR")]
    pub man: Option<PathBuf>,
}

pub fn run(_g: &Global, a: Args) -> CliResult<i32> {
    if a.completion.is_none() && a.man.is_none() {
        return Err(Failure::usage(
            "nothing to generate",
            "give --completion bash|zsh|fish|elvish|powershell, or --man DIR",
        ));
    }
    let mut cmd = Cli::command();
    if let Some(shell) = a.completion {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, "bulwark", &mut script);
        crate::output::print(String::from_utf8_lossy(&script).trim_end());
    }
    if let Some(dir) = &a.man {
        write_man_pages(&cmd, dir).map_err(|e| {
            Failure::new(
                1,
                format!("cannot write man pages to {}: {e}", dir.display()),
                Some("give an existing, writable directory"),
            )
        })?;
    }
    Ok(0)
}

fn write_man_pages(cmd: &clap::Command, dir: &Path) -> std::io::Result<()> {
    // Subcommands are named bulwark-backup, bulwark-key-add, ..., as git's and restic's are.
    clap_mangen::generate_to(cmd.clone(), dir)
}
