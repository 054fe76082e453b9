//! A workspace: one policy file, read and checked once, with its ledger and its repositories.
//!
//! Invariants:
//! - Nothing is created as a side effect. A repository that is not where the policy file says is
//!   an error naming the location (a missing disk or a typo must never become a fresh, empty
//!   repository), and so is a missing ledger, except that a run creates the ledger in an existing
//!   directory. Only [`Workspace::init_missing`] (`bulwark init -c`, `run --init`) creates
//!   repositories, and only [`Create::Everything`] creates the ledger's directory.
//! - Each repository is opened at most once per workspace, on first use, and shared.
//! - Relative paths in the policy file are relative to the file's directory.
//! - The ledger records this host's name, the same name snapshots record.
//! - While a failover is in force (the last `failover` event of a primary has no `failback`
//!   after it), [`Workspace::config`] is the effective configuration: the primary's datasets
//!   back up into the replica it failed over to, the primary's other replicas are that replica's,
//!   and the primary itself is left alone until `failback` (see `crate::failover`). The file as
//!   written stays in [`Workspace::policy`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bulwark_ledger::{Ledger, Options, PgLedger, SqliteLedger};
use bulwark_policy::config::{Config, Dataset};
use bulwark_repo::{Repository, Settings};
use serde::Serialize;

use crate::credentials::{Credentials, resolve};
use crate::error::{Error, Result};

/// The ledger file of a policy file that names none, beside it.
pub const DEFAULT_LEDGER_FILE: &str = "bulwark-ledger.sqlite";

/// What opening a workspace may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Nothing: the ledger must exist (status, ledger, remediation, evidence).
    Nothing,
    /// The ledger, in a directory that exists (run).
    Ledger,
    /// The ledger and its directory (init, run --init).
    Everything,
}

pub struct OpenOptions {
    pub credentials: Credentials,
    pub create: Create,
    /// Remote repositories read their unchanging objects through the local cache.
    pub cache: bool,
}

/// Where a policy file's ledger is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerLocation {
    Sqlite(PathBuf),
    /// A libpq URL (it may hold a password: show it through [`LedgerLocation::display`]).
    Postgres(String),
}

impl LedgerLocation {
    /// The location `config`'s `ledger` setting names for the policy file at `path`.
    pub fn of(path: &Path, config: &Config) -> LedgerLocation {
        let base = base_of(path);
        match config.ledger.as_deref() {
            None => LedgerLocation::Sqlite(base.join(DEFAULT_LEDGER_FILE)),
            Some(l) if bulwark_ledger::is_postgres(l) => LedgerLocation::Postgres(l.to_string()),
            Some(l) => {
                let file = l
                    .strip_prefix("sqlite://")
                    .or_else(|| l.strip_prefix("sqlite:"))
                    .unwrap_or(l);
                LedgerLocation::Sqlite(resolve(&base, file))
            }
        }
    }

    /// Without any password.
    pub fn display(&self) -> String {
        match self {
            LedgerLocation::Sqlite(p) => p.display().to_string(),
            LedgerLocation::Postgres(url) => bulwark_source::db::postgres::redact(url),
        }
    }
}

/// The directory relative paths in the policy file at `path` are relative to.
pub fn base_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A policy file as read: its configuration and the hash of its bytes.
pub struct PolicyFile {
    pub path: PathBuf,
    pub config: Config,
    /// BLAKE3 of the file's bytes, recorded with every event (see `bulwark_ledger::config_hash`).
    pub hash: String,
    pub bytes: Vec<u8>,
}

impl PolicyFile {
    pub fn read(path: &Path) -> Result<PolicyFile> {
        let bytes = std::fs::read(path).map_err(|source| Error::ConfigUnreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let config = Config::parse(&path.display().to_string(), &text)?;
        Ok(PolicyFile {
            path: path.to_path_buf(),
            hash: bulwark_ledger::config_hash(&bytes),
            config,
            bytes,
        })
    }
}

pub struct Workspace {
    policy: PolicyFile,
    /// The configuration in force: the file's, with failovers applied.
    effective: Config,
    failovers: Vec<crate::failover::Failover>,
    base: PathBuf,
    host: String,
    ledger_location: LedgerLocation,
    ledger: Mutex<Box<dyn Ledger>>,
    credentials: Credentials,
    cache: bool,
    repositories: Mutex<BTreeMap<String, Arc<Repository>>>,
}

/// What `init_missing` did with one repository.
#[derive(Debug, Clone, Serialize)]
pub struct InitOutcome {
    pub repository: String,
    pub location: String,
    pub replica_of: Option<String>,
    /// Created now (false: it was there already).
    pub created: bool,
}

impl Workspace {
    pub fn open(path: &Path, opts: OpenOptions) -> Result<Workspace> {
        Workspace::with_policy(PolicyFile::read(path)?, opts)
    }

    pub fn with_policy(policy: PolicyFile, opts: OpenOptions) -> Result<Workspace> {
        let host = bulwark_repo::host_name();
        let ledger_location = LedgerLocation::of(&policy.path, &policy.config);
        let options = Options::new(host.clone());
        let ledger: Box<dyn Ledger> = match &ledger_location {
            LedgerLocation::Postgres(url) => Box::new(PgLedger::connect(url, &options)?),
            LedgerLocation::Sqlite(file) => match opts.create {
                Create::Nothing => Box::new(SqliteLedger::open_existing(file, &options)?),
                Create::Ledger => {
                    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
                        && !dir.is_dir()
                    {
                        return Err(Error::LedgerDirectoryMissing {
                            dir: dir.to_path_buf(),
                        });
                    }
                    Box::new(SqliteLedger::open(file, &options)?)
                }
                Create::Everything => {
                    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            Error::Invalid(format!(
                                "cannot create the ledger's directory {}: {e}",
                                dir.display()
                            ))
                        })?;
                    }
                    Box::new(SqliteLedger::open(file, &options)?)
                }
            },
        };
        let failovers = crate::failover::in_force(ledger.as_ref())?;
        let effective = crate::failover::apply(&policy.config, &failovers);
        Ok(Workspace {
            base: base_of(&policy.path),
            effective,
            failovers,
            policy,
            host,
            ledger_location,
            ledger: Mutex::new(ledger),
            credentials: opts.credentials,
            cache: opts.cache,
            repositories: Mutex::new(BTreeMap::new()),
        })
    }

    /// The configuration in force (the policy file's, with any failover applied).
    pub fn config(&self) -> &Config {
        &self.effective
    }

    /// The failovers in force.
    pub fn failovers(&self) -> &[crate::failover::Failover] {
        &self.failovers
    }

    pub fn policy(&self) -> &PolicyFile {
        &self.policy
    }

    pub fn path(&self) -> &Path {
        &self.policy.path
    }

    /// The directory relative paths in the policy file are relative to.
    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn config_hash(&self) -> &str {
        &self.policy.hash
    }

    /// This host's name, as snapshots and ledger events record it.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn ledger(&self) -> MutexGuard<'_, Box<dyn Ledger>> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn ledger_location(&self) -> &LedgerLocation {
        &self.ledger_location
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn dataset(&self, name: &str) -> Result<&Dataset> {
        self.config()
            .datasets
            .get(name)
            .ok_or_else(|| Error::NoSuchDataset {
                name: name.to_string(),
                file: self.policy.path.clone(),
            })
    }

    /// A path from the policy file, relative to its directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        resolve(&self.base, p)
    }

    /// Where repository `name` is: its URL, with a relative directory made relative to the file.
    pub fn location_of(&self, name: &str) -> Result<String> {
        let r = self.repository_config(name)?;
        Ok(if r.url.contains("://") {
            r.url.clone()
        } else {
            self.resolve(&r.url).display().to_string()
        })
    }

    fn repository_config(&self, name: &str) -> Result<&bulwark_policy::config::Repository> {
        self.policy
            .config
            .repositories
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("no repository '{name}' in the policy file")))
    }

    /// Repository `name`, opened on first use. Never creates anything.
    pub fn repository(&self, name: &str) -> Result<Arc<Repository>> {
        if let Some(r) = self.cached(name) {
            return Ok(r);
        }
        let location = self.location_of(name)?;
        let fail = |e: bulwark_repo::Error| Error::repository(name, e);
        let backend = bulwark_repo::backend::open_location(&location, false).map_err(fail)?;
        // Refuse before asking for a credential when nothing is there.
        bulwark_repo::repository::describe_header(backend.as_ref()).map_err(fail)?;
        let credential = self
            .credentials
            .for_repository(self.repository_config(name)?, &self.base)?;
        let mut repo = Repository::open(backend, &credential).map_err(fail)?;
        if self.cache
            && repo.backend().remote()
            && let Some(base) = bulwark_repo::cache::Cache::default_base()
        {
            repo.use_cache(Some(&base));
        }
        Ok(self.remember(name, repo))
    }

    /// Use `repo`, opened by the caller (with a credential the policy file does not name), as
    /// repository `name` from now on.
    pub fn adopt_repository(&self, name: &str, repo: Repository) -> Arc<Repository> {
        self.remember(name, repo)
    }

    fn cached(&self, name: &str) -> Option<Arc<Repository>> {
        self.repositories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn remember(&self, name: &str, repo: Repository) -> Arc<Repository> {
        let repo = Arc::new(repo);
        self.repositories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), repo.clone());
        repo
    }

    /// Creates every repository of the policy file that does not exist yet: primaries first,
    /// then each replica as a replica of its primary (same master key and chunking).
    pub fn init_missing(&self) -> Result<Vec<InitOutcome>> {
        let mut order: Vec<&bulwark_policy::config::Repository> =
            self.policy.config.repositories.values().collect();
        order.sort_by_key(|r| r.replica_of.is_some());
        let mut out = Vec::new();
        for r in order {
            let location = self.location_of(&r.name)?;
            let fail = |e: bulwark_repo::Error| Error::repository(&r.name, e);
            let backend = bulwark_repo::backend::open_location(&location, true).map_err(fail)?;
            let exists = match bulwark_repo::repository::describe_header(backend.as_ref()) {
                Ok(_) => true,
                Err(bulwark_repo::Error::NoRepository { .. }) => false,
                Err(e) => return Err(fail(e)),
            };
            if !exists {
                let credential = self.credentials.for_repository(r, &self.base)?;
                let repo = match &r.replica_of {
                    None => Repository::init(backend, &credential, Settings::default()),
                    Some(of) => {
                        let source = self.repository(of)?;
                        Repository::init_replica(backend, &credential, &source)
                    }
                }
                .map_err(fail)?;
                self.remember(&r.name, repo);
            }
            out.push(InitOutcome {
                repository: r.name.clone(),
                location,
                replica_of: r.replica_of.clone(),
                created: !exists,
            });
        }
        Ok(out)
    }
}
