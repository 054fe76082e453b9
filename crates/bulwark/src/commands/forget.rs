//! `bulwark forget`: remove snapshots by retention rules (each kept one says why) or by name;
//! `--prune` frees their data afterwards.

use bulwark_policy::retention::KeepRules;
use serde_json::json;

use super::{emit, open, parse_percent, progress};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to forget by name (instead of rules)
    pub snapshots: Vec<String>,
    /// Keep every snapshot within this span of the newest (e.g. 30d, 1y6m, 12h)
    #[arg(long)]
    pub keep_within: Option<String>,
    /// Keep the N newest (N or `unlimited`)
    #[arg(long)]
    pub keep_last: Option<String>,
    #[arg(long)]
    pub keep_hourly: Option<String>,
    #[arg(long)]
    pub keep_daily: Option<String>,
    #[arg(long)]
    pub keep_weekly: Option<String>,
    #[arg(long)]
    pub keep_monthly: Option<String>,
    #[arg(long)]
    pub keep_yearly: Option<String>,
    /// Keep snapshots with this tag (repeatable; `a,b` needs both)
    #[arg(long)]
    pub keep_tag: Vec<String>,
    /// Apply the rules per history of these fields: host, paths, tags, dataset
    #[arg(long, default_value = "host,paths,dataset")]
    pub group_by: String,
    /// Only snapshots of this dataset
    #[arg(long)]
    pub dataset: Option<String>,
    /// Show what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Prune afterwards
    #[arg(long)]
    pub prune: bool,
    /// With --prune: unused space allowed to remain, as a share of the repository after pruning, e.g. 5%
    #[arg(long, default_value = "5%")]
    pub max_unused: String,
    /// Keep, and leave out of the rules, snapshots whose claimed time differs from the time the
    /// storage recorded for them by more than this (e.g. 1h, 2d), or `off` to trust every claim
    #[arg(long, default_value = "1h")]
    pub clock_tolerance: String,
}

fn clock_check(v: &str) -> CliResult<Option<bulwark_ops::clock_check::ClockCheck>> {
    if v == "off" {
        return Ok(None);
    }
    let tolerance = bulwark_policy::duration::parse_duration(v).map_err(|e| {
        Failure::usage(
            format!("--clock-tolerance: {e}"),
            "give a length such as 1h or 2d, or `off`",
        )
    })?;
    Ok(Some(bulwark_ops::clock_check::ClockCheck {
        tolerance,
        ..Default::default()
    }))
}

fn keep_count(flag: &str, v: &Option<String>) -> CliResult<Option<u32>> {
    v.as_deref()
        .map(bulwark_policy::retention::parse_keep_count)
        .transpose()
        .map_err(|e| Failure::usage(format!("{flag}: {e}"), "give a whole number or `unlimited`"))
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let within = a
        .keep_within
        .as_deref()
        .map(bulwark_policy::CalendarDuration::parse)
        .transpose()
        .map_err(|e| Failure::usage(format!("--keep-within: {e}"), "e.g. 30d, 12h, 1y6m"))?;
    let rules = KeepRules {
        within,
        last: keep_count("--keep-last", &a.keep_last)?,
        hourly: keep_count("--keep-hourly", &a.keep_hourly)?,
        daily: keep_count("--keep-daily", &a.keep_daily)?,
        weekly: keep_count("--keep-weekly", &a.keep_weekly)?,
        monthly: keep_count("--keep-monthly", &a.keep_monthly)?,
        yearly: keep_count("--keep-yearly", &a.keep_yearly)?,
        tags: a.keep_tag.clone(),
    };
    if a.snapshots.is_empty() && rules.is_empty() {
        return Err(Failure::usage(
            "no retention rule given; refusing to forget everything",
            "give --keep-within 30d (the policy default) or other --keep-* options, or snapshot ids",
        ));
    }
    let group_by = bulwark_policy::GroupBy::parse(&a.group_by).map_err(|e| {
        Failure::usage(
            format!("--group-by: unknown field '{}'", e.0),
            "use host, paths, tags, dataset",
        )
    })?;
    let max_unused = parse_percent("--max-unused", &a.max_unused, true)?;
    let clock_check = clock_check(&a.clock_tolerance)?;
    let repo = open(g)?;
    let report = bulwark_ops::forget::forget(
        &repo,
        &bulwark_ops::forget::ForgetOptions {
            rules,
            group_by,
            dataset: a.dataset,
            explicit: a.snapshots,
            dry_run: a.dry_run,
            now: chrono::Utc::now(),
            clock_check,
        },
    )?;
    for w in &report.clock_warnings {
        eprintln!("warning: {}", w.describe());
    }
    let pruned = if a.prune && !a.dry_run {
        Some(bulwark_ops::prune::prune(
            &repo,
            &bulwark_ops::prune::PruneOptions {
                max_unused,
                dry_run: false,
            },
            progress(g),
        )?)
    } else {
        None
    };
    emit(g, &json!({ "forget": &report, "prune": &pruned }), || {
        let mut t = String::new();
        for s in &report.snapshots {
            t += &format!(
                "{} {} {:<25} {}\n",
                if s.keep { "keep  " } else { "remove" },
                s.short_id,
                s.time.format("%Y-%m-%d %H:%M:%S %:z"),
                s.reasons.join("; ")
            );
        }
        t += &format!(
            "{} {} snapshots, kept {}",
            if report.dry_run {
                "would remove"
            } else {
                "removed"
            },
            report.removed.len(),
            report.kept
        );
        if let Some(p) = &pruned {
            t += &format!("\n{}", super::prune::describe(p));
        }
        t
    });
    Ok(0)
}
