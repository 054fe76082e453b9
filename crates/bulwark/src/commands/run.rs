//! `bulwark run`: carry out what the policy file asks (see `bulwark_app::run`), and exit with
//! the most telling code of any failed step (10 when a repository is missing).

use bulwark_app::Create;
use bulwark_app::run::{RunRequest, Selection, run as run_policy};

use super::{emit, progress, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};
use crate::failure::{Failure, code_of};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only what is due by the schedules (for cron or a systemd timer)
    #[arg(long, conflicts_with = "datasets")]
    pub due: bool,
    /// Create the policy file's repositories and ledger where they are missing (as `init -c` does)
    #[arg(long)]
    pub init: bool,
    /// Only these datasets (a restore test runs for each)
    pub datasets: Vec<String>,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let create = if a.init {
        Create::Everything
    } else {
        Create::Ledger
    };
    let ws = workspace(g, &a.config.config, create)?;
    if a.init {
        for o in ws.init_missing()?.iter().filter(|o| o.created) {
            eprintln!("created repository '{}' at {}", o.repository, o.location);
        }
    }
    let selection = if a.due {
        Selection::Due
    } else if a.datasets.is_empty() {
        Selection::All
    } else {
        Selection::Named(a.datasets.clone())
    };
    let report = run_policy(
        &ws,
        &RunRequest {
            selection,
            now: chrono::Utc::now(),
            progress: progress(g),
            context: None,
        },
    )?;
    emit(g, &report, || {
        let mut t = String::new();
        if report.nothing_due {
            t += "nothing is due";
            if let Some(at) = report.next_due {
                t += &format!("; next at {}", at.format("%Y-%m-%d %H:%M UTC"));
            }
            return t;
        }
        for d in &report.datasets {
            t += &format!("{} {}\n", if d.ok { "ok    " } else { "FAILED" }, d.dataset);
            for s in &d.steps {
                t += &format!(
                    "  {} {:<18} {:>6.1}s  {}\n",
                    super::mark(s.ok),
                    s.step,
                    s.duration_s,
                    s.summary
                );
            }
        }
        for s in &report.maintenance {
            t += &format!(
                "{} {:<20} {:>6.1}s  {}{}\n",
                if s.ok { "ok    " } else { "FAILED" },
                s.step,
                s.duration_s,
                s.repository
                    .as_deref()
                    .map(|r| format!("{r}: "))
                    .unwrap_or_default(),
                s.summary
            );
        }
        t.trim_end().to_string()
    });
    match report
        .failures()
        .filter_map(|s| s.failure)
        .map(code_of)
        .max()
    {
        None if report.ok => Ok(0),
        None => Ok(1),
        Some(code) => {
            if code == crate::failure::NO_REPOSITORY {
                let f = Failure::new(
                    code,
                    "a repository of the policy file does not exist",
                    Some(
                        "check its url (an unmounted disk, a typo?); create it with `bulwark init -c FILE` or `run --init`",
                    ),
                );
                eprintln!(
                    "error: {} (hint: {})",
                    f.message,
                    f.hint.as_deref().unwrap_or("")
                );
            }
            Ok(code)
        }
    }
}
