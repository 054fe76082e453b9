//! `bulwark audit replication`: is each bucket really in its replica? Compares the two listings
//! (key, size, entity tag) of every `[replication.NAME]` pair of the policy file, or of two
//! buckets given on the command line, and names what is missing or different (see
//! `bulwark_app::replication`).

use bulwark_app::Create;
use bulwark_app::replication::{PairOutcome, audit_buckets, audit_pairs};
use bulwark_ops::bucket_audit::BucketAudit;

use super::{emit, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};
use crate::failure::Failure;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Compare buckets with their replicas: the policy file's pairs (recorded in the ledger), or SOURCE REPLICA
    Replication(ReplicationArgs),
}

#[derive(clap::Args)]
pub struct ReplicationArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only these `[replication.NAME]` pairs
    #[arg(long = "pair")]
    pub pairs: Vec<String>,
    /// Two buckets to compare instead (s3://BUCKET[/PREFIX]?region=…&endpoint=… or directories); nothing is recorded
    #[arg(num_args = 2, value_names = ["SOURCE", "REPLICA"], conflicts_with = "pairs")]
    pub buckets: Vec<String>,
}

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    let Command::Replication(a) = c;
    let now = chrono::Utc::now();
    if let [source, replica] = a.buckets.as_slice() {
        let audit = audit_buckets(source, replica, now)?;
        emit(g, &audit, || render(&audit));
        return Ok(if audit.in_sync() { 0 } else { 1 });
    }
    // An audit is evidence: it may start the ledger, as a run does.
    let ws = workspace(g, &a.config.config, Create::Ledger)?;
    if ws.config().replication.is_empty() {
        return Err(Failure::usage(
            format!(
                "{} names no [replication.NAME] pair",
                ws.policy().path.display()
            ),
            "add one (source and replica bucket URLs), or give SOURCE REPLICA",
        ));
    }
    let outcomes = audit_pairs(&ws, &a.pairs, false, now)?;
    let ok = outcomes
        .iter()
        .all(|o| o.audit.as_ref().is_some_and(BucketAudit::in_sync));
    emit(g, &outcomes, || {
        outcomes
            .iter()
            .map(render_pair)
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(if ok { 0 } else { 1 })
}

fn render_pair(o: &PairOutcome) -> String {
    match (&o.audit, &o.error) {
        (Some(a), _) => format!("{}:\n{}", o.name, render(a)),
        (None, e) => format!(
            "{} {}: not audited: {}",
            super::mark(false),
            o.name,
            e.as_deref().unwrap_or("")
        ),
    }
}

fn render(a: &BucketAudit) -> String {
    let mut t = String::new();
    for u in a.unreplicated.iter().take(20) {
        t += &format!(
            "  {} {} ({} bytes, modified {}){}\n",
            if u.replica_size.is_some() {
                "differs"
            } else {
                "missing"
            },
            u.key,
            u.size,
            u.modified.format("%Y-%m-%d %H:%M:%S UTC"),
            u.replica_size
                .map(|s| format!(", {s} bytes in the replica"))
                .unwrap_or_default()
        );
    }
    let more = (a.missing + a.differing).saturating_sub(20);
    if more > 0 {
        t += &format!("  … and {more} more (--json lists up to 1000)\n");
    }
    let lag = a
        .oldest_unreplicated
        .map(|t| {
            format!(
                "; the oldest unreplicated object changed {} ago",
                bulwark_policy::human((a.at - t).to_std().unwrap_or_default())
            )
        })
        .unwrap_or_default();
    t += &format!(
        "{} {} → {}: {} objects ({}), {} missing, {} differing, {} only in the replica{lag}",
        super::mark(a.in_sync()),
        a.source,
        a.replica,
        a.source_objects,
        bulwark_policy::human_size(a.source_bytes),
        a.missing,
        a.differing,
        a.extra
    );
    if a.size_only > 0 {
        t += &format!(
            "\n  {} multipart objects were compared by size only",
            a.size_only
        );
    }
    t
}
