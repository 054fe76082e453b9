//! Bulwark's application layer: a policy file made into running work, for every front-end (the
//! CLI, the daemon). A [`Workspace`] opens the policy file, its ledger and its repositories once;
//! [`run`] carries out what is due and records each step as a typed ledger event ([`events`]);
//! [`status`] judges every commitment; [`ledger_copy`] keeps the ledger's copies in the
//! repositories and checks the live chain against them; [`notify`] tells the channels; [`wal`]
//! archives and serves PostgreSQL WAL for physical datasets; [`replication`] audits buckets
//! against their replicas.
//!
//! Decisions (what is due, whether a commitment holds) are `bulwark_policy`'s pure functions;
//! single-repository jobs are `bulwark_ops`'s; exit codes, hints and rendering belong to the
//! front-ends. Nothing here creates a repository or a ledger unless asked to (see [`workspace`]).

pub mod append_only;
pub mod auto_failover;
pub mod credentials;
pub mod dataset;
pub mod db_export;
pub mod drill;
pub mod error;
pub mod events;
pub mod evidence;
pub mod export;
pub mod failover;
pub mod incident;
pub mod ledger_copy;
pub mod lock_coverage;
pub mod notify;
pub mod postmortem;
pub mod recover;
pub mod replication;
pub mod review;
pub mod roles;
pub mod run;
pub mod status;
pub mod wal;
pub mod workspace;

pub use credentials::Credentials;
pub use error::{Error, FailureKind, Result};
pub use workspace::{Create, OpenOptions, PolicyFile, Workspace};
