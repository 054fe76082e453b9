//! `bulwark postmortem submit|list`: post-mortems of resolved incidents, as a link or as a
//! document stored content-addressed beside the ledger, judged against their business-day
//! deadlines.

use std::path::PathBuf;

use bulwark_app::Create;
use bulwark_app::postmortem::{self, Source};

use super::{emit, parse_at, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};
use crate::failure::Failure;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Record an incident's post-mortem: --url LINK or --file DOCUMENT
    Submit {
        #[command(flatten)]
        config: ConfigArg,
        /// INC-n (or n)
        id: String,
        #[arg(long, conflicts_with = "file")]
        url: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
        /// When it was submitted (RFC 3339), default now
        #[arg(long)]
        at: Option<String>,
    },
    /// Post-mortems due, overdue, submitted and late
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Judge deadlines as of this instant
        #[arg(long)]
        at: Option<String>,
    },
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    match c {
        Command::Submit {
            config,
            id,
            url,
            file,
            at,
        } => {
            let source = match (url, file) {
                (Some(u), None) => Source::Url(u),
                (None, Some(f)) => Source::File(f),
                _ => {
                    return Err(Failure::usage(
                        "give the post-mortem as --url LINK or --file DOCUMENT",
                        "e.g. bulwark postmortem submit INC-3 --file pm.md",
                    ));
                }
            };
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let s = postmortem::submit(&ws, &id, &source, parse_at(at.as_deref())?)?;
            emit(g, &s, || {
                let what = match (&s.reference.url, &s.reference.stored) {
                    (Some(u), _) => u.clone(),
                    (None, Some(p)) => format!(
                        "{p} (BLAKE3 {})",
                        s.reference.blake3.as_deref().unwrap_or_default()
                    ),
                    _ => String::new(),
                };
                let late = s
                    .late_by_s
                    .map(|l| {
                        format!(
                            "; {} after its deadline",
                            bulwark_policy::duration::human(std::time::Duration::from_secs(
                                l as u64
                            ))
                        )
                    })
                    .unwrap_or_default();
                format!("{}: post-mortem recorded: {what}{late}", s.incident.id)
            });
            Ok(0)
        }
        Command::List { config, at } => {
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let now = parse_at(at.as_deref())?;
            let list = postmortem::list(&ws, now)?;
            emit(g, &list, || {
                if list.is_empty() {
                    return "no post-mortems due or submitted".into();
                }
                list.iter()
                    .map(|e| {
                        format!(
                            "{:<7} SEV-{} {:<9} due {}  {}",
                            e.incident,
                            e.sev,
                            e.state,
                            e.deadline
                                .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                                .unwrap_or_else(|| "-".into()),
                            e.title
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
    }
}
