//! `bulwark check --locks [--extend-locks] [--at T]`: the proof that S3 Object Lock covers what
//! every retained snapshot needs (see `bulwark_ops::object_lock`). Exit 0 when it holds, 1 when
//! some snapshot's objects are locked too briefly (each listed).
//!
//! `bulwark check --credentials`: what the credential in use may do to existing objects, found
//! on a canary (see `bulwark_repo::canary`). Exit 0 whatever it may do: the answer is the
//! report.

use bulwark_repo::object_lock::LockMode;

use super::{emit, open_uncached, parse_at};
use crate::CliResult;
use crate::cli::Global;

pub fn run(g: &Global, extend: bool, at: Option<&str>) -> CliResult<i32> {
    let now = parse_at(at)?;
    let repo = open_uncached(g)?;
    let report = bulwark_ops::object_lock::check_locks(&repo, now, extend)?;
    emit(g, &report, || {
        let mut t = String::new();
        for s in &report.short {
            t += &format!(
                "short: snapshot {} ({}) needs its objects locked until {}; {} are not:\n",
                s.short_id,
                s.time.format("%Y-%m-%d %H:%M:%S %:z"),
                s.needed_until.format("%Y-%m-%d %H:%M:%S UTC"),
                s.objects.len()
            );
            for o in &s.objects {
                t += &format!(
                    "    {} {}\n",
                    o.key,
                    o.locked_until.map_or("not locked".to_string(), |u| format!(
                        "locked until {}",
                        u.format("%Y-%m-%d %H:%M:%S UTC")
                    ))
                );
            }
        }
        let slack = report.least_slack_s.map_or(String::new(), |s| {
            format!(
                ", least slack {}{}",
                if s < 0 { "-" } else { "" },
                bulwark_policy::duration::human(std::time::Duration::from_secs(s.unsigned_abs()))
            )
        });
        t += &format!(
            "{} snapshots, {} objects, {} locks extended{slack}: {}",
            report.snapshots,
            report.objects,
            report.extended,
            if report.ok {
                format!(
                    "every object is locked ({}) for as long as its snapshots need it",
                    match report.mode {
                        LockMode::Governance => "governance",
                        LockMode::Compliance => "compliance",
                    }
                )
            } else {
                format!("{} snapshots are not covered", report.short.len())
            }
        );
        t
    });
    Ok(if report.ok { 0 } else { 1 })
}

pub fn credentials(g: &Global) -> CliResult<i32> {
    let location = g.repo.as_deref().ok_or_else(|| {
        crate::failure::Failure::usage("no repository given", "pass -r/--repo or set BULWARK_REPO")
    })?;
    let probe = bulwark_repo::StoreBackend::bucket(location)?.probe_credentials()?;
    let append_only = probe.append_only();
    let report = serde_json::json!({ "probe": &probe, "append_only": append_only });
    emit(g, &report, || {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut t = format!(
            "credential at {}: create {}, overwrite {}, delete {}\n",
            probe.location,
            yes(probe.can_create),
            yes(probe.can_overwrite),
            yes(probe.can_delete)
        );
        if probe.left_behind {
            t += &format!(
                "the canary {} stays behind: this credential cannot remove it\n",
                probe.canary
            );
        }
        t += if !probe.can_create {
            "this credential cannot write: backups with it fail"
        } else if append_only {
            "append-only: fit for a backup host"
        } else {
            "not append-only: whoever holds it can destroy backups (see SECURITY.md)"
        };
        t
    });
    Ok(0)
}
