//! `bulwark hold add|remove|list`: legal and contract holds; a held snapshot is never forgotten.

use bulwark_repo::holds::HoldRecord;
use chrono::DateTime;
use serde_json::json;

use super::{emit, open};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Hold a snapshot
    Add {
        snapshot: String,
        /// When the hold ends (RFC 3339 or YYYY-MM-DD); default: until removed
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift every hold on a snapshot
    Remove { snapshot: String },
    /// List holds
    List,
}

fn parse_until(s: &str) -> CliResult<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| Failure::usage(format!("bad --until '{s}'"), "use YYYY-MM-DD or RFC 3339"))
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    let repo = open(g)?;
    match c {
        Command::Add {
            snapshot,
            until,
            reason,
        } => {
            let until = until.as_deref().map(parse_until).transpose()?;
            if let Some(u) = until.filter(|u| *u <= chrono::Utc::now()) {
                return Err(Failure::usage(
                    format!(
                        "--until {} is in the past: such a hold would hold nothing",
                        u.format("%Y-%m-%d %H:%M:%S UTC")
                    ),
                    "give a future date, or leave --until out to hold until removed",
                ));
            }
            let (id, _) = repo.find_snapshot(&snapshot, |_| true)?;
            let record = HoldRecord {
                snapshot: id,
                until,
                reason,
                created: chrono::Utc::now(),
                by: format!(
                    "{}@{}",
                    bulwark_repo::user_name(),
                    bulwark_repo::host_name()
                ),
            };
            repo.add_hold(&record)?;
            emit(g, &record, || match until {
                Some(u) => format!(
                    "held snapshot {} until {}",
                    id.short(),
                    u.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                None => format!("held snapshot {} until the hold is removed", id.short()),
            });
        }
        Command::Remove { snapshot } => {
            let (id, _) = repo.find_snapshot(&snapshot, |_| true)?;
            let n = repo.remove_holds(&id)?;
            emit(g, &json!({ "snapshot": id, "removed": n }), || {
                format!("removed {n} holds from {}", id.short())
            });
        }
        Command::List => {
            let now = chrono::Utc::now();
            let holds: Vec<_> = repo
                .holds()?
                .into_iter()
                .map(|(_, h)| {
                    let mut v = serde_json::to_value(&h).expect("holds serialise");
                    v["active"] = json!(h.is_active(now));
                    v
                })
                .collect();
            emit(g, &holds, || {
                holds
                    .iter()
                    .map(|h| {
                        format!(
                            "{} until {} {} {}",
                            &h["snapshot"].as_str().unwrap_or_default()[..8],
                            h["until"].as_str().unwrap_or("removed"),
                            if h["active"] == json!(true) {
                                "active "
                            } else {
                                "expired"
                            },
                            h["reason"].as_str().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(0)
}
