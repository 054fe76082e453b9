//! `bulwark serve`: the daemon (see `bulwark_server`): the scheduler, the dashboard, the status
//! page, the JSON API and metrics, until SIGTERM or SIGINT; SIGHUP reloads the policy file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bulwark_server::daemon::Timing;
use bulwark_server::{ServeError, ServeOptions};

use crate::CliResult;
use crate::cli::{ConfigArg, Global};
use crate::failure::{FAILED, Failure, USAGE};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Where the HTTP server listens (loopback unless told otherwise)
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The file of API tokens (one per line, or NAME=TOKEN); created with a new token if missing
    /// (default: bulwark-api.token beside the policy file)
    #[arg(long, env = "BULWARK_API_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Create the policy file's missing repositories and ledger at start
    #[arg(long)]
    pub init: bool,
    /// Seconds between looks for due work
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub poll_seconds: u64,
    /// Seconds running jobs may take to finish on their own at SIGTERM before they are stopped at a safe point
    #[arg(long, default_value_t = 30)]
    pub stop_grace_seconds: u64,
    /// Seconds a node's lease on a job lasts unless renewed (several nodes on a PostgreSQL ledger)
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=600))]
    pub lease_seconds: u64,
    /// This node's name in leases and events (default: host name and process id)
    #[arg(long)]
    pub node: Option<String>,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    if !a.listen.ip().is_loopback() && a.tls_cert.is_none() {
        tracing::warn!(
            "listening on {} without TLS: tokens cross the network in clear",
            a.listen
        );
    }
    let quiet = g.quiet;
    let result = bulwark_server::serve(
        &a.config.config,
        ServeOptions {
            listen: a.listen,
            tls: a.tls_cert.zip(a.tls_key),
            token_file: a.token_file,
            init: a.init,
            credentials: crate::credentials::for_workspace(g),
            cache: !g.no_cache,
            timing: Timing {
                poll: Duration::from_secs(a.poll_seconds),
                stop_grace: Duration::from_secs(a.stop_grace_seconds),
                lease_ttl: Duration::from_secs(a.lease_seconds),
                ..Timing::default()
            },
            node: a.node,
        },
        move |s| {
            if !quiet {
                // A daemon outlives its terminal: a closed stderr must not stop it (eprintln! panics).
                use std::io::Write as _;
                let mut err = std::io::stderr().lock();
                let _ = writeln!(
                    err,
                    "bulwark serve: dashboard at {} (node {})",
                    s.url, s.node
                );
                let _ = writeln!(
                    err,
                    "bulwark serve: API token in {}{}; the status page {}status needs none",
                    s.token_file.display(),
                    if s.token_created {
                        " (created now)"
                    } else {
                        ""
                    },
                    s.url
                );
            }
        },
    );
    match result {
        Ok(()) => Ok(0),
        Err(ServeError::Daemon(bulwark_server::daemon::DaemonError::App(e))) => Err(e.into()),
        Err(ServeError::Io(e)) if e.kind() == std::io::ErrorKind::AddrInUse => Err(Failure::new(
            USAGE,
            format!("cannot listen on {}: {e}", a.listen),
            Some("another process uses that address: pick another with --listen"),
        )),
        Err(e) => Err(Failure::new(FAILED, e.to_string(), None)),
    }
}
