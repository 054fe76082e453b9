//! Bulwark's jobs, each a function over one open repository (or a source and a replica): backup,
//! restore, check, repair, copy, forget, prune, tag and rewrite (`edit`), database backups and
//! restores, PostgreSQL physical backups with archived WAL and point-in-time restores ([`wal`]),
//! restore tests, browsing, buckets as datasets ([`bucket`]: backup, restore into a bucket), and
//! audits of a bucket's replication ([`bucket_audit`]). Jobs return typed reports and errors ([`Error`]) and report progress through the
//! front-end's [`Progress`]; what a policy file asks for (which jobs, when, recorded how) is the
//! application layer's business, and exit codes and rendering are the front-ends'.

pub mod backup;
pub mod browse;
pub mod bucket;
pub mod bucket_audit;
pub mod check;
pub mod clock_check;
pub mod copy;
pub mod csv_out;
pub mod database;
pub mod db_export;
pub mod edit;
pub mod error;
pub mod export;
pub mod forget;
pub mod inspect;
pub mod object_lock;
pub mod progress;
pub mod prune;
pub mod repair;
pub mod replica;
pub mod restore;
pub mod restore_test;
pub mod wal;

pub use error::{Error, Result};
pub use progress::{Counter, Progress, Silent, Unit};
