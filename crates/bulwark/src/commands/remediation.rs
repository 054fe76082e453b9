//! `bulwark remediation list|close`: the items failed restore tests open.

use bulwark_app::Create;

use super::{emit, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};
use crate::failure::Failure;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List remediation items (open ones unless --all)
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        all: bool,
    },
    /// Close an item by hand, with a note
    Close {
        #[command(flatten)]
        config: ConfigArg,
        id: String,
        #[arg(long)]
        note: String,
    },
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    match c {
        Command::List { config, all } => {
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let items = ws
                .ledger()
                .remediations(!all)
                .map_err(bulwark_app::Error::from)?;
            emit(g, &items, || {
                items
                    .iter()
                    .map(|i| {
                        format!(
                            "{} {:<16} {} {}",
                            &i.id[..12],
                            i.dataset,
                            if i.is_open() { "open  " } else { "closed" },
                            i.reason
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
        Command::Close { config, id, note } => {
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let mut ledger = ws.ledger();
            let full = ledger
                .remediations(true)
                .map_err(bulwark_app::Error::from)?
                .into_iter()
                .find(|i| i.id.starts_with(&id))
                .ok_or_else(|| {
                    Failure::new(
                        1,
                        format!("no open remediation item '{id}'"),
                        Some("see `bulwark remediation list`"),
                    )
                })?;
            let closed = ledger
                .close_remediation(&full.id, None, &note)
                .map_err(bulwark_app::Error::from)?;
            emit(g, &closed, || format!("closed {}", &closed.id[..12]));
            Ok(0)
        }
    }
}
