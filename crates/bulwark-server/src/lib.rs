//! `bulwark serve`: a second front-end over the application layer. It keeps the policy file in
//! force on its own: a scheduler starts each dataset's work when it falls due ([`daemon`]), an
//! HTTP server shows where every commitment stands to operators (dashboard, JSON API, Prometheus
//! metrics) and customers (the status page) ([`http`]), and several nodes on one PostgreSQL ledger
//! share the work through leases, so that no job runs twice and a dead node's job is taken over
//! ([`lease`]).
//!
//! Threads: the HTTP server runs on a Tokio runtime and serves a cached [`view::View`]; jobs, the
//! scheduler, the view's refresh and the policy file's watch run on plain threads, because the
//! repository layer blocks on a runtime of its own.

pub mod clock;
pub mod daemon;
pub mod http;
pub mod jobs;
pub mod lease;
pub mod metrics;
pub mod tokens;
pub mod view;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bulwark_app::Credentials;
use bulwark_app::workspace::LedgerLocation;

use crate::clock::SystemClock;
use crate::daemon::{Daemon, DaemonError, DaemonOptions, Timing};
use crate::http::{HttpState, Listen};
use crate::lease::{Leases, LocalLeases, PgLeases};
use crate::tokens::Tokens;

/// The token file of a policy file that names none: beside it.
pub const DEFAULT_TOKEN_FILE: &str = "bulwark-api.token";

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub token_file: Option<PathBuf>,
    /// Create missing repositories and the ledger at start.
    pub init: bool,
    pub credentials: Credentials,
    pub cache: bool,
    pub timing: Timing,
    /// This node's name (default: host name and process id).
    pub node: Option<String>,
}

/// What a started daemon tells its operator.
pub struct Started {
    pub url: String,
    pub token_file: PathBuf,
    pub token_created: bool,
    pub node: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("{0}")]
    Tokens(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Run the daemon until SIGTERM or SIGINT (SIGHUP, or a change of the file, reloads the policy
/// file). `started` is told the address and token file once the server listens.
pub fn serve(
    policy: &Path,
    opts: ServeOptions,
    started: impl FnOnce(&Started) + Send + 'static,
) -> Result<(), ServeError> {
    let node = opts
        .node
        .clone()
        .unwrap_or_else(|| format!("{}:{}", bulwark_repo::host_name(), std::process::id()));
    let policy_file = bulwark_app::PolicyFile::read(policy).map_err(DaemonError::from)?;
    let leases: Arc<dyn Leases> = match LedgerLocation::of(&policy_file.path, &policy_file.config) {
        LedgerLocation::Postgres(url) => {
            Arc::new(PgLeases::connect(&url, node.clone()).map_err(DaemonError::Leases)?)
        }
        LedgerLocation::Sqlite(_) => Arc::new(LocalLeases::new(node.clone())),
    };
    let token_file = opts
        .token_file
        .clone()
        .unwrap_or_else(|| bulwark_app::workspace::base_of(policy).join(DEFAULT_TOKEN_FILE));
    let (tokens, token_created) =
        Tokens::load_or_create(&token_file).map_err(ServeError::Tokens)?;
    let daemon = Daemon::new(
        policy,
        leases,
        DaemonOptions {
            credentials: opts.credentials,
            cache: opts.cache,
            clock: Arc::new(SystemClock),
            node: node.clone(),
            timing: opts.timing,
            init: opts.init,
        },
    )?;
    daemon.record("started", format!("node {node} started"), true);
    let stop = Arc::new(AtomicBool::new(false));
    let background = spawn_background(&daemon, &stop);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bulwark-http")
        .enable_all()
        .build()?;
    let state = Arc::new(HttpState {
        daemon: daemon.clone(),
        tokens,
        tls: opts.tls.is_some(),
    });
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let served = runtime.block_on(async {
        let stopper = stop.clone();
        let reloader = daemon.clone();
        let shutdown = async move {
            signals(stopper, reloader).await;
        };
        http::serve(
            state,
            Listen {
                addr: opts.listen,
                tls: opts.tls,
            },
            move |addr| {
                started(&Started {
                    url: format!("{scheme}://{addr}/"),
                    token_file,
                    token_created,
                    node,
                })
            },
            shutdown,
        )
        .await
    });
    stop.store(true, Ordering::Relaxed);
    daemon.shut_down();
    for t in background {
        let _ = t.join();
    }
    served?;
    daemon.record("stopped", format!("node {} stopped", daemon.node), true);
    tracing::info!("stopped");
    Ok(())
}

/// Wait for SIGTERM or SIGINT (then set `stop`); reload on SIGHUP.
async fn signals(stop: Arc<AtomicBool>, daemon: Arc<Daemon>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let d = daemon.clone();
                let _ = tokio::task::spawn_blocking(move || d.reload()).await;
            }
        }
    }
    tracing::info!("stopping: no new jobs; running jobs finish or stop at a safe point");
    daemon.drain();
    stop.store(true, Ordering::Relaxed);
}

/// Sleep up to `d`, waking early when `stop` is set.
fn nap(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The scheduler, the view's refresh and the policy file's watch.
fn spawn_background(
    daemon: &Arc<Daemon>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut out = Vec::new();
    let (d, s) = (daemon.clone(), stop.clone());
    out.push(std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if let Err(e) = d.tick() {
                tracing::error!("scheduler: {e}");
            }
            nap(d.timing.poll, &s);
        }
    }));
    let (d, s) = (daemon.clone(), stop.clone());
    out.push(std::thread::spawn(move || {
        let mut last = None::<Instant>;
        while !s.load(Ordering::Relaxed) {
            let due = last.is_none_or(|t| t.elapsed() >= d.timing.refresh) || d.refresh_wanted();
            if due {
                if let Err(e) = d.refresh() {
                    tracing::error!("status: {e}");
                }
                last = Some(Instant::now());
            }
            nap(Duration::from_millis(200), &s);
        }
    }));
    let (d, s) = (daemon.clone(), stop.clone());
    out.push(std::thread::spawn(move || {
        let path = d.policy_path().to_path_buf();
        let mut seen = mtime(&path);
        while !s.load(Ordering::Relaxed) {
            nap(Duration::from_secs(2), &s);
            let now = mtime(&path);
            if now != seen {
                seen = now;
                let _ = d.reload();
            }
        }
    }));
    out
}
