//! `bulwark incident open|update|resolve|list|show`: incidents kept in the ledger, with
//! customer-facing updates (to the status page and its subscribers) and internal notes.

use bulwark_app::Create;
use bulwark_app::incident::{self, Incident, OpenRequest, UpdateRequest};
use bulwark_policy::incident::IncidentState;
use chrono::{DateTime, Utc};

use super::{emit, parse_at, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};
use crate::failure::Failure;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Open an incident, owned by a role of the policy file
    Open {
        #[command(flatten)]
        config: ConfigArg,
        /// One line customers understand
        #[arg(long)]
        title: String,
        /// 1 (critical) to 4 (minor); SEV-1 and SEV-2 need a customer update every status_update_every
        #[arg(long)]
        sev: u8,
        /// The owning role (default: [incidents] owner, else the first critical role)
        #[arg(long)]
        owner: Option<String>,
        /// investigating, identified or monitoring
        #[arg(long, default_value = "investigating")]
        state: String,
        /// The first customer-facing update
        #[arg(long)]
        message: Option<String>,
        /// Make the opening message an internal note instead
        #[arg(long)]
        internal: bool,
        /// When the next milestone is expected (RFC 3339)
        #[arg(long)]
        eta: Option<String>,
        /// When it was opened (RFC 3339; for importing an incident), default now
        #[arg(long)]
        at: Option<String>,
    },
    /// Post an update: customer-facing unless --internal
    Update {
        #[command(flatten)]
        config: ConfigArg,
        /// INC-n (or n)
        id: String,
        #[arg(long)]
        message: String,
        /// An internal note: never shown to customers
        #[arg(long)]
        internal: bool,
        /// investigating, identified or monitoring
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        eta: Option<String>,
        #[arg(long)]
        sev: Option<u8>,
        /// Hand the incident to another role
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        at: Option<String>,
    },
    /// Resolve an incident (its post-mortem clock starts)
    Resolve {
        #[command(flatten)]
        config: ConfigArg,
        id: String,
        /// The closing customer-facing message
        #[arg(long)]
        message: Option<String>,
        #[arg(long)]
        at: Option<String>,
    },
    /// The incidents (open ones unless --all)
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        all: bool,
        /// Judge deadlines as of this instant
        #[arg(long)]
        at: Option<String>,
    },
    /// One incident's timeline, internal notes included
    Show {
        #[command(flatten)]
        config: ConfigArg,
        id: String,
        #[arg(long)]
        at: Option<String>,
    },
}

fn state(s: &str) -> CliResult<IncidentState> {
    IncidentState::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
        Failure::usage(
            format!("unknown incident state '{s}'"),
            "use investigating, identified or monitoring (resolve with `bulwark incident resolve`)",
        )
    })
}

fn eta(t: Option<&str>) -> CliResult<Option<DateTime<Utc>>> {
    t.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|t| t.to_utc())
            .map_err(|e| {
                Failure::usage(
                    format!("bad --eta: {e}"),
                    "use RFC 3339, e.g. 2026-12-01T15:00:00Z",
                )
            })
    })
    .transpose()
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn line(i: &Incident) -> String {
    let when = match i.resolved {
        Some(r) => format!("resolved {}", time(r)),
        None => format!("opened {}", time(i.opened)),
    };
    format!(
        "{:<7} SEV-{} {:<13} {:<20} {}  {}",
        i.id,
        i.sev,
        i.state.as_str(),
        i.owner,
        when,
        i.title
    )
}

fn timeline(i: &Incident, now: DateTime<Utc>, cfg: &bulwark_policy::config::Config) -> String {
    let mut out = vec![line(i)];
    if let (Some(c), Some(s)) = (i.cause, &i.subject) {
        out.push(format!("  opened by Bulwark: {} ({s})", c.as_str()));
    }
    for u in &i.timeline {
        let who = if u.internal { "internal" } else { "customers" };
        let mut l = format!(
            "  {}  {:<13} {:<9} {}",
            time(u.at),
            u.state.as_str(),
            who,
            u.message.as_deref().unwrap_or("-")
        );
        if let Some(e) = u.eta {
            l.push_str(&format!(" (ETA {})", time(e)));
        }
        out.push(l);
    }
    for m in &i.missed_updates {
        out.push(format!("  {}  missed customer update", time(*m)));
    }
    let fact = i.fact();
    if let Some(due) = fact.next_update_due(cfg.targets.status_update_every) {
        let late = if now >= due { " (overdue)" } else { "" };
        out.push(format!("  next customer update due {}{late}", time(due)));
    }
    match (&i.postmortem, fact.postmortem_due(cfg)) {
        (Some(p), _) => out.push(format!(
            "  post-mortem submitted {}: {}",
            time(p.at),
            p.reference
                .url
                .clone()
                .or_else(|| p.reference.stored.clone())
                .unwrap_or_default()
        )),
        (None, Some(due)) => out.push(format!(
            "  post-mortem due {}{}",
            time(due),
            if now >= due { " (overdue)" } else { "" }
        )),
        (None, None) => {}
    }
    out.join("\n")
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    match c {
        Command::Open {
            config,
            title,
            sev,
            owner,
            state: s,
            message,
            internal,
            eta: e,
            at,
        } => {
            let ws = workspace(g, &config.config, Create::Ledger)?;
            let req = OpenRequest {
                title,
                sev,
                owner,
                state: state(&s)?,
                message,
                internal,
                eta: eta(e.as_deref())?,
                cause: None,
                subject: None,
                at: parse_at(at.as_deref())?,
            };
            let o = incident::open(&ws, &req)?;
            emit(g, &o, || {
                format!(
                    "{} opened (SEV-{}, owner {}): {}",
                    o.incident.id, o.incident.sev, o.incident.owner, o.incident.title
                )
            });
            Ok(0)
        }
        Command::Update {
            config,
            id,
            message,
            internal,
            state: s,
            eta: e,
            sev,
            owner,
            at,
        } => {
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let req = UpdateRequest {
                id,
                state: s.as_deref().map(state).transpose()?,
                message,
                internal,
                eta: eta(e.as_deref())?,
                sev,
                owner,
                at: parse_at(at.as_deref())?,
            };
            let o = incident::update(&ws, &req)?;
            emit(g, &o, || {
                format!(
                    "{}: {} recorded ({})",
                    o.incident.id,
                    if internal {
                        "internal note"
                    } else {
                        "customer update"
                    },
                    o.incident.state.as_str()
                )
            });
            Ok(0)
        }
        Command::Resolve {
            config,
            id,
            message,
            at,
        } => {
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let o = incident::resolve(&ws, &id, message, parse_at(at.as_deref())?)?;
            emit(g, &o, || {
                let due = o.incident.fact().postmortem_due(ws.config());
                format!(
                    "{} resolved{}",
                    o.incident.id,
                    due.map(|d| format!("; post-mortem due {}", time(d)))
                        .unwrap_or_default()
                )
            });
            Ok(0)
        }
        Command::List { config, all, at } => {
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let now = parse_at(at.as_deref())?;
            let every = ws.config().targets.status_update_every;
            let list: Vec<Incident> = incident::incidents(&ws)?
                .into_iter()
                .filter(|i| all || i.is_open())
                .collect();
            emit(g, &list, || {
                if list.is_empty() {
                    return if all {
                        "no incidents".into()
                    } else {
                        "no open incidents (--all lists resolved ones)".into()
                    };
                }
                list.iter()
                    .map(|i| match i.fact().next_update_due(every) {
                        Some(due) if now >= due => {
                            format!("{}  (customer update overdue since {})", line(i), time(due))
                        }
                        _ => line(i),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
        Command::Show { config, id, at } => {
            let ws = workspace(g, &config.config, Create::Nothing)?;
            let now = parse_at(at.as_deref())?;
            let i = incident::find(&ws, &id)?;
            emit(g, &i, || timeline(&i, now, ws.config()));
            Ok(0)
        }
    }
}
