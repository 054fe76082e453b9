//! `bulwark review record|diff|list`: plan reviews, with the topology each one reviewed and what
//! changed since; `list` also says when the next one is due and why.

use bulwark_app::{Create, review};

use super::{emit, parse_at, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Record a review of the plan in force (its topology and the policy file's git commit)
    Record {
        #[command(flatten)]
        config: ConfigArg,
        /// Who reviewed
        #[arg(long)]
        by: String,
        #[arg(long)]
        notes: Option<String>,
        /// When it took place (RFC 3339), default now
        #[arg(long)]
        at: Option<String>,
    },
    /// What changed in the topology (repositories, regions, datasets, tiers, roles) since the last review
    Diff {
        #[command(flatten)]
        config: ConfigArg,
        /// Against the last review recorded by this instant (RFC 3339), default now
        #[arg(long)]
        at: Option<String>,
    },
    /// The reviews on record, and when and why the next is due
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Judge as of this instant
        #[arg(long)]
        at: Option<String>,
    },
}

fn day(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    match c {
        Command::Record {
            config,
            by,
            notes,
            at,
        } => {
            let ws = workspace(g, &config.config, Create::Ledger)?;
            let r = review::record(&ws, &by, notes, parse_at(at.as_deref())?)?;
            emit(g, &r, || {
                format!(
                    "plan review recorded ({} by {}): topology {}{}",
                    day(r.at),
                    r.details.by,
                    &r.details.fingerprint[..16],
                    r.details
                        .policy_commit
                        .as_ref()
                        .map(|c| format!(", policy file at commit {}", &c[..c.len().min(12)]))
                        .unwrap_or_default()
                )
            });
            Ok(0)
        }
        Command::Diff { config, at } => {
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let ch = review::changes(&ws, parse_at(at.as_deref())?)?;
            emit(g, &ch, || {
                let mut out = vec![match ch.since {
                    Some(t) => format!("since the review of {}:", day(t)),
                    None => "no review on record; the whole topology is new:".into(),
                }];
                out.extend(ch.diff.removed.iter().map(|l| format!("- {l}")));
                out.extend(ch.diff.added.iter().map(|l| format!("+ {l}")));
                if ch.diff.is_empty() {
                    out.push("  no change".into());
                }
                out.join("\n")
            });
            // Like diff(1): 1 when something changed.
            Ok(if ch.diff.is_empty() { 0 } else { 1 })
        }
        Command::List { config, at } => {
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let now = parse_at(at.as_deref())?;
            let reviews = review::reviews(&ws)?;
            let due = review::due(&ws, now)?;
            let aspect = review::aspect(&ws, now)?;
            let value = serde_json::json!({ "reviews": reviews, "due": due, "review": aspect });
            emit(g, &value, || {
                let mut out: Vec<String> = reviews
                    .iter()
                    .map(|r| {
                        format!(
                            "{}  by {}  topology {}{}",
                            day(r.at),
                            r.details.by,
                            &r.details.fingerprint[..16],
                            r.details
                                .notes
                                .as_ref()
                                .map(|n| format!("  {n}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                if out.is_empty() {
                    out.push("no plan review on record".into());
                }
                for t in &due {
                    out.push(format!("due by {} ({}): {}", day(t.due), t.kind, t.reason));
                }
                out.push(format!(
                    "review: {} - {}",
                    super::status::word(aspect.verdict),
                    aspect.reason
                ));
                out.join("\n")
            });
            Ok(0)
        }
    }
}
