//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bulwark",
    version,
    about = "Encrypted, deduplicated backups that prove they restore"
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

#[derive(Subcommand)]
pub enum Command {
    /// Create a new repository
    Init(InitArgs),
    /// Back up files, a stream from stdin, or a command's output
    Backup(BackupArgs),
    /// List snapshots
    Snapshots(SnapshotsArgs),
    /// List the files in a snapshot
    Ls(LsArgs),
    /// Restore a snapshot, or a path inside one
    Restore(RestoreArgs),
    /// Restore a database snapshot into a scratch target, check it, and time it
    RestoreTest(crate::db::RestoreTestArgs),
    /// Verify the repository's structure and, optionally, its data
    Check(CheckArgs),
    /// Manage key slots
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print repository objects
    #[command(subcommand)]
    Cat(CatCommand),
    /// Repair the repository
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Remove snapshots by retention rules (kept ones say why), or by name
    Forget(ForgetArgs),
    /// Delete data no snapshot needs, without making backups wait
    Prune(PruneArgs),
    /// Legal or contract holds: a held snapshot is never forgotten
    #[command(subcommand)]
    Hold(HoldCommand),
    /// The policy file (bulwark.toml): can it keep every commitment?
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run what the policy file asks: backup, off-site copy, retention, restore tests
    Run(RunArgs),
    /// Per dataset: is each commitment met, at risk or breached, and why
    Status(StatusArgs),
    /// The evidence ledger
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Remediation items opened by failed restore tests
    #[command(subcommand)]
    Remediation(RemediationCommand),
    /// Copy snapshots to another repository (an off-site replica)
    Copy(CopyArgs),
    /// Compare a repository with its replica
    #[command(subcommand)]
    Replica(ReplicaCommand),
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

#[derive(Args)]
pub struct CopyArgs {
    /// The destination repository
    #[arg(long)]
    pub to: String,
    /// Snapshots to copy (default: all)
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub other: OtherCredentials,
}

#[derive(Subcommand)]
pub enum ReplicaCommand {
    /// Snapshots and bytes each side lacks
    Status {
        #[arg(long)]
        to: String,
        #[command(flatten)]
        other: OtherCredentials,
    },
}

#[derive(Args)]
pub struct InitArgs {
    /// Protect the first key slot with a new key file written here, instead of a passphrase
    #[arg(long)]
    pub new_key_file: Option<PathBuf>,
    /// Target pack size in MiB
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub pack_size_mib: u32,
    /// Average chunk size in KiB (minimum is a quarter, maximum four times); fixed for the repository's life
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(64..=4096))]
    pub chunk_avg_kib: u32,
    /// Create a replica of this repository: same master key and chunking, so `copy` moves packs verbatim
    #[arg(long)]
    pub replica_of: Option<String>,
    #[command(flatten)]
    pub other: OtherCredentials,
    /// zstd compression level
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(-7..=19))]
    pub compression_level: i32,
}

#[derive(Args)]
pub struct BackupArgs {
    /// Files and directories to back up
    pub paths: Vec<PathBuf>,
    /// Exclude paths matching a glob (a pattern without '/' matches names)
    #[arg(long, short = 'e')]
    pub exclude: Vec<String>,
    /// Tag the snapshot (repeatable)
    #[arg(long)]
    pub tag: Vec<String>,
    /// Host name to record (default: this host's)
    #[arg(long)]
    pub host: Option<String>,
    /// Snapshot time (RFC 3339), for importing history
    #[arg(long)]
    pub time: Option<String>,
    /// Parent snapshot for change detection (default: latest of the same host and paths)
    #[arg(long)]
    pub parent: Option<String>,
    /// Dataset name to record with the snapshot
    #[arg(long)]
    pub dataset: Option<String>,
    /// Back up standard input as a file with this name
    #[arg(long)]
    pub stdin_name: Option<String>,
    /// With --stdin-name: back up the output of the command after `--` instead of stdin
    #[arg(long, requires = "stdin_name")]
    pub stdin_from_command: bool,
    /// The command for --stdin-from-command
    #[arg(last = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub db: crate::db::DbBackupArgs,
}

#[derive(Args)]
pub struct SnapshotsArgs {
    /// Only snapshots of this host
    #[arg(long)]
    pub host: Option<String>,
    /// Only snapshots with this tag
    #[arg(long)]
    pub tag: Option<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Snapshot id (8+ hex digits), `latest`, or ID:PATH
    pub snapshot: String,
    /// Only below this path
    pub path: Option<String>,
    /// Show type, mode, size and time
    #[arg(short, long)]
    pub long: bool,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// Snapshot id (8+ hex digits), `latest`, or ID:PATH
    pub snapshot: String,
    /// Directory to restore into
    #[arg(long, short = 't', required_unless_present_any = ["postgres_target", "sqlite_target"])]
    pub target: Option<PathBuf>,
    /// Restore only paths matching a glob (repeatable)
    #[arg(long, short = 'i')]
    pub include: Vec<String>,
    /// Re-read every restored file and compare it with the snapshot
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub db: crate::db::DbRestoreArgs,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Read, decrypt and verify every pack
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read a random subset of packs, e.g. 10%
    #[arg(long)]
    pub read_data_subset: Option<String>,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Add a key slot: a new passphrase (BULWARK_NEW_PASSWORD_FILE or prompt) or a new key file
    Add {
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// List key slots
    List,
    /// Remove a key slot by id prefix
    Remove { id: String },
}

#[derive(Subcommand)]
pub enum CatCommand {
    /// The repository's configuration (the chunker seed stays secret)
    Config,
    /// A snapshot object
    Snapshot { id: String },
}

#[derive(Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the packs alone
    Index,
    /// Replace missing or damaged packs with verified copies from a replica
    Packs {
        #[arg(long)]
        from: String,
        #[command(flatten)]
        other: OtherCredentials,
    },
}

#[derive(Args)]
pub struct ForgetArgs {
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
}

#[derive(Args)]
pub struct PruneArgs {
    /// Unused space allowed to remain instead of repacking, as a share of the repository after
    /// pruning (restic's measure), e.g. 5%; 100% repacks nothing
    #[arg(long, default_value = "5%")]
    pub max_unused: String,
    /// Show what would be deleted and freed, delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand)]
pub enum HoldCommand {
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

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check, commitment by commitment, whether the configuration can keep the policy
    Check {
        /// The policy file
        #[arg(
            long,
            short = 'c',
            env = "BULWARK_CONFIG",
            default_value = "bulwark.toml"
        )]
        config: PathBuf,
    },
}

#[derive(Args)]
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

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only what is due by the schedules (for cron or a systemd timer)
    #[arg(long, conflicts_with = "datasets")]
    pub due: bool,
    /// Only these datasets (a restore test runs for each)
    pub datasets: Vec<String>,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Judge as of this time (RFC 3339) instead of now
    #[arg(long)]
    pub at: Option<String>,
}

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Check the hash chain: any altered, removed or reordered event is named
    Verify {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List events
    Events {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this dataset
        #[arg(long)]
        dataset: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum RemediationCommand {
    /// List remediation items (open ones unless --all)
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        all: bool,
    },
    /// Close an item by hand, with a note
    Close {
        #[command(flatten)]
        config: ConfigArg,
        id: String,
        #[arg(long)]
        note: String,
    },
}
