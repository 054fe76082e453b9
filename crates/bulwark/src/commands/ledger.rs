//! `bulwark ledger verify|events|restore`: the evidence ledger's chain and its copies in the
//! repositories; its events; bringing a lost ledger back from those copies.

use bulwark_app::Create;
use bulwark_app::status::{describe, ledger_status};
use bulwark_ledger::EventFilter;
use bulwark_policy::compliance::Verdict;

use super::{emit, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check the hash chain (any altered, removed or reordered event is named) and compare it with
    /// the newest copy in every repository of the policy file (a rewritten ledger is named)
    Verify {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List events
    Events {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this dataset
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Bring a lost ledger back from the longest copy in the repositories
    Restore {
        #[command(flatten)]
        config: ConfigArg,
    },
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    match c {
        Command::Verify { config } => {
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let st = ledger_status(&ws)?;
            emit(g, &st, || {
                let mut t = String::new();
                for p in &st.problems {
                    t += &format!("problem: {p}\n");
                }
                for c in &st.copies {
                    t += &format!("copy in {:<12} {}\n", c.repository, describe(c));
                }
                t += &match st.verdict {
                    Verdict::Breached => format!("FAILED: {}", st.reason),
                    _ => format!("verified: {}", st.reason),
                };
                t
            });
            Ok(if st.verdict == Verdict::Breached {
                1
            } else {
                0
            })
        }
        Command::Events { config, dataset } => {
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let mut filter = EventFilter::all();
            if let Some(d) = dataset {
                filter = filter.dataset(d);
            }
            let events = ws
                .ledger()
                .events(&filter)
                .map_err(bulwark_app::Error::from)?;
            emit(g, &events, || {
                events
                    .iter()
                    .map(|e| {
                        format!(
                            "{:>5} {} {:<14} {:<14} {} {}",
                            e.seq,
                            e.finished.format("%Y-%m-%d %H:%M:%S"),
                            e.kind.as_str(),
                            e.dataset.as_deref().unwrap_or("-"),
                            super::mark(e.ok),
                            e.summary
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
        Command::Restore { config } => {
            let ws = workspace(g, &config.config, Create::Ledger)?;
            let r = bulwark_app::ledger_copy::restore(&ws)?;
            emit(g, &r, || {
                format!(
                    "restored {} events from the copy in '{}' (snapshot {}); the ledger ends at event {}",
                    r.events_added,
                    r.repository,
                    &r.snapshot_id[..8],
                    r.head.seq
                )
            });
            Ok(0)
        }
    }
}
