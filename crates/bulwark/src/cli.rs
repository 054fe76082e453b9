//! The command line, as clap sees it: the global options, and one subcommand per file of
//! `commands/`, each with its own arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::*;

/// The variables every command reads, for `--help` (options with variables show them too).
const ENVIRONMENT: &str = "Environment:
  BULWARK_REPO               the repository (-r)
  BULWARK_PASSWORD_FILE      file whose first line is the passphrase (--password-file)
  BULWARK_PASSWORD           the passphrase itself
  BULWARK_KEY_FILE           open with a key file (--key-file)
  BULWARK_NEW_PASSWORD_FILE  the new passphrase of `init`, `key add`, `key passwd` (--new-password-file)
  BULWARK_OTHER_PASSWORD_FILE, BULWARK_OTHER_KEY_FILE  the other repository of copy, replica, repair packs
  BULWARK_CONFIG             the policy file (-c)
  BULWARK_CACHE_DIR          the local cache of remote repositories
  BULWARK_LOG                log filter for stderr, e.g. info
Exit codes: 0 ok, 1 failed, 2 usage, 3 some files unreadable or changed while read,
  10 no repository, 11 locked, 12 wrong key, 130 SIGINT, 143 SIGTERM";

#[derive(Parser)]
#[command(
    name = "bulwark",
    version,
    about = "Encrypted, deduplicated backups that prove they restore",
    after_help = ENVIRONMENT
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Repository: a directory, file://PATH, or s3://BUCKET/PREFIX?region=R&endpoint=URL
    #[arg(short = 'r', long = "repo", env = "BULWARK_REPO", global = true)]
    pub repo: Option<String>,
    /// Read the passphrase from this file's first line
    #[arg(long, env = "BULWARK_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Open the repository with a key file instead of a passphrase
    #[arg(long, env = "BULWARK_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output on stderr (-v info, -vv debug)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Read everything from the repository itself, not from the local cache kept for remote
    /// repositories (BULWARK_CACHE_DIR, else ~/.cache/bulwark)
    #[arg(long, global = true)]
    pub no_cache: bool,
}

/// The policy file.
#[derive(Args, Clone)]
pub struct ConfigArg {
    /// The policy file
    #[arg(
        long,
        short = 'c',
        env = "BULWARK_CONFIG",
        default_value = "bulwark.toml"
    )]
    pub config: PathBuf,
}

/// How to open the other repository of a two-repository command (default: the same credential).
#[derive(Args, Clone)]
pub struct OtherCredentials {
    /// Passphrase file for the other repository
    #[arg(long = "other-password-file", env = "BULWARK_OTHER_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Key file for the other repository
    #[arg(long = "other-key-file", env = "BULWARK_OTHER_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a new repository, or every missing repository of a policy file (-c)
    Init(init::Args),
    /// Back up files, a stream from stdin, a command's output, or a database
    Backup(backup::Args),
    /// List snapshots
    Snapshots(snapshots::Args),
    /// List the files in a snapshot
    Ls(ls::Args),
    /// Restore a snapshot, or a path inside one, or a database
    Restore(restore::Args),
    /// Restore a snapshot into a scratch target, check it, and time it
    RestoreTest(restore_test::Args),
    /// Verify the repository's structure and, optionally, its data
    Check(check::Args),
    /// Manage key slots
    #[command(subcommand)]
    Key(key::Command),
    /// Print repository objects
    #[command(subcommand)]
    Cat(cat::Command),
    /// Repair the repository
    #[command(subcommand)]
    Repair(repair::Command),
    /// Remove snapshots by retention rules (kept ones say why), or by name
    Forget(forget::Args),
    /// Delete data no snapshot needs, without making backups wait
    Prune(prune::Args),
    /// Legal or contract holds: a held snapshot is never forgotten
    #[command(subcommand)]
    Hold(hold::Command),
    /// Copy snapshots to another repository (an off-site replica)
    Copy(copy::Args),
    /// Compare a repository with its replica
    #[command(subcommand)]
    Replica(replica::Command),
    /// The policy file (bulwark.toml): can it keep every commitment?
    #[command(subcommand)]
    Policy(policy::Command),
    /// Run what the policy file asks: backup, off-site copy, retention, restore tests
    Run(run::Args),
    /// Per dataset: is each commitment met, at risk or breached, and why
    Status(status::Args),
    /// Disaster-recovery drill: restore the critical datasets from the off-site replicas alone, and judge RTO and RPO
    Drill(drill::Args),
    /// Audits: whether object storage is really in its replica
    #[command(subcommand)]
    Audit(audit::Command),
    /// Send a primary's backups to one of its replicas while its region is down
    Failover(failover::FailoverArgs),
    /// Copy back what was made during a failover, verify it, and send backups to the primary again
    Failback(failover::FailbackArgs),
    /// Recovery from nothing: the policy file, the ledger and every dataset back from the off-site repository alone
    Recover(recover::Args),
    /// The daemon: schedules the policy file's work, serves the dashboard, status page, API and metrics
    Serve(serve::Args),
    /// The evidence ledger
    #[command(subcommand)]
    Ledger(ledger::Command),
    /// Remediation items opened by failed restore tests
    #[command(subcommand)]
    Remediation(remediation::Command),
    /// What changed between two snapshots
    Diff(diff::Args),
    /// Which snapshots hold files matching a pattern
    Find(find::Args),
    /// How large snapshots are, restored or in storage
    Stats(stats::Args),
    /// Write a file of a snapshot to stdout, or a directory as a tar archive
    Dump(dump::Args),
    /// Every snapshot as a read-only file system (FUSE) until Ctrl-C
    Mount(mount::Args),
    /// Add, remove or set snapshot tags
    Tag(tag::Args),
    /// Remove stale locks (or every lock with --remove-all)
    Unlock(unlock::Args),
    /// New snapshots without the files --exclude matches (a secret backed up by mistake)
    Rewrite(rewrite::Args),
    /// Print the version and the repository format
    Version(version::Args),
    /// Shell completions and man pages
    Generate(generate::Args),
    /// PostgreSQL's archive_command for a physical dataset: archive one WAL file, durably
    WalPush(wal_push::Args),
    /// PostgreSQL's restore_command for a physical dataset: fetch one archived WAL file
    WalFetch(wal_fetch::Args),
    /// Incidents: open, customer updates and internal notes, resolve, list, show
    #[command(subcommand)]
    Incident(incident::Command),
    /// Post-mortems of resolved incidents, due within business days
    #[command(subcommand)]
    Postmortem(postmortem::Command),
    /// Who holds each role, who covers, where reminders escalate; fails when a role check does
    Roles(roles::Args),
    /// Plan reviews: record one, what changed since the last, when the next is due
    #[command(subcommand)]
    Review(review::Command),
    /// Signed evidence packs for auditors (make, keygen, verify, restore-tests)
    Evidence(evidence::Args),
    /// A snapshot as a tar or zip with SHA256SUMS inside, streamed, recorded in the ledger
    Export(export::Args),
}
