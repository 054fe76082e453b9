//! `bulwark status`: every dataset's commitments and the ledger itself, met, at risk or
//! breached, with the reason; exit 1 when anything is not met.

use bulwark_app::Create;
use bulwark_policy::compliance::Verdict;

use super::{emit, parse_at, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Judge as of this time (RFC 3339) instead of now
    #[arg(long)]
    pub at: Option<String>,
}

pub fn word(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "met",
        Verdict::AtRisk => "at_risk",
        Verdict::Breached => "breached",
    }
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let now = parse_at(a.at.as_deref())?;
    let ws = workspace(g, &a.config.config, Create::Nothing)?;
    let report = bulwark_app::status::status(&ws, now)?;
    emit(g, &report, || {
        let mut t = String::new();
        for d in report.datasets.values() {
            let s = &d.status;
            t += &format!("{:<20} {:<9} {}\n", s.dataset, word(s.verdict), s.reason);
            for asp in &s.aspects {
                t += &format!(
                    "    {:<10} {:<9} target {:<32} actual {}\n",
                    asp.name,
                    word(asp.verdict),
                    asp.target,
                    asp.actual
                );
            }
        }
        for a in &report.platform.aspects {
            t += &format!("{:<20} {:<9} {}\n", a.name, word(a.verdict), a.reason);
        }
        t += &format!(
            "{:<20} {:<9} {}\n",
            "ledger",
            word(report.ledger.verdict),
            report.ledger.reason
        );
        for f in &report.failovers {
            t += &format!(
                "failover           '{}' backs up into '{}' since {} ({})\n",
                f.primary,
                f.active,
                f.since.format("%Y-%m-%d %H:%M UTC"),
                f.reason
            );
        }
        for u in &report.unreachable {
            t += &format!("unreachable: {u}\n");
        }
        for c in &report.append_only {
            t += &format!(
                "{:<20} {:<9} {}\n",
                format!("append-only {}", c.repository),
                word(c.verdict),
                c.reason
            );
        }
        for c in &report.lock_coverage {
            t += &format!(
                "{:<20} {:<9} {}\n",
                format!("object lock {}", c.repository),
                word(c.verdict),
                c.reason
            );
        }
        t += &format!("overall: {}", word(report.verdict));
        t
    });
    Ok(match report.verdict {
        Verdict::Met => 0,
        _ => 1,
    })
}
