//! `bulwark roles`: who holds each role, who covers for them, how they are reached, where an
//! overdue reminder escalates, and whether the role checks pass (exit 1 when one fails).

use bulwark_app::{Create, roles};

use super::{emit, mark, parse_at, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Which incidents each role owns as of this instant (RFC 3339), default now
    #[arg(long)]
    at: Option<String>,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let ws = workspace(g, &a.config.config, Create::Nothing)?;
    let r = roles::report(&ws, parse_at(a.at.as_deref())?)?;
    emit(g, &r, || {
        let mut out = Vec::new();
        for v in &r.roles {
            out.push(format!(
                "{}{}{}: owner {}, alternates {}",
                v.name,
                if v.critical { " (critical)" } else { "" },
                if v.default_incident_owner {
                    " [owns new incidents]"
                } else {
                    ""
                },
                v.owner,
                if v.alternates.is_empty() {
                    "none".into()
                } else {
                    v.alternates.join(", ")
                }
            ));
            let contact: Vec<String> = [
                v.email.as_ref().map(|e| format!("email {e}")),
                v.phone.as_ref().map(|p| format!("phone {p}")),
                v.on_call.as_ref().map(|o| format!("on call {o}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !contact.is_empty() {
                out.push(format!("  {}", contact.join(", ")));
            }
            out.push(format!(
                "  reminders to {}; escalation to {}",
                list(&v.channels),
                list(&v.escalation)
            ));
            if !v.open_incidents.is_empty() {
                out.push(format!("  owns {}", v.open_incidents.join(", ")));
            }
        }
        for f in r.findings.iter().filter(|f| !f.ok) {
            out.push(format!("{} {}", mark(false), f.detail));
        }
        out.join("\n")
    });
    Ok(if r.ok { 0 } else { 1 })
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "no channel".into()
    } else {
        v.join(", ")
    }
}
