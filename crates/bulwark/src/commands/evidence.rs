//! `bulwark evidence`: a signed evidence pack for a period (§10), its signing key, its
//! verification, and the most recent restore-test summary per dataset.
//!
//! Exit codes: 0 made / verified; 1 the pack does not verify, or it could not be made; 2 usage
//! (a bad period, no signing key named).

use std::path::{Path, PathBuf};

use bulwark_app::Create;
use bulwark_app::evidence::{self, EvidenceError, Request, pack, pdf, sign, verify};
use chrono::{DateTime, NaiveDate, Utc};

use super::{emit, parse_at, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};
use crate::failure::{FAILED, Failure, USAGE};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub pack: PackArgs,
}

#[derive(clap::Args)]
pub struct PackArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Start of the period (RFC 3339, or a date: midnight UTC)
    #[arg(long)]
    from: Option<String>,
    /// End of the period, excluded (RFC 3339, or a date: midnight UTC; default now)
    #[arg(long)]
    to: Option<String>,
    /// Where to write the pack: a new (or empty) directory, or FILE.tar
    #[arg(long)]
    out: Option<PathBuf>,
    /// The Ed25519 private key to sign with (default: the policy file's [evidence] signing_key)
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// Also print the report to report.pdf with headless Chromium
    #[arg(long)]
    pdf: bool,
    /// Make the pack as of this instant (RFC 3339) instead of now
    #[arg(long)]
    at: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Make a signing key: FILE (PKCS#8 PEM, owner-only) and FILE.pub (PEM, for auditors)
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a pack: its signature, every file's hash, the chain proof; with -c, the live ledger too
    Verify {
        /// The pack: a directory or a .tar
        pack: PathBuf,
        /// The signer's public key (PEM), obtained independently of the pack
        #[arg(long)]
        public_key: PathBuf,
        /// Also check the pack's events against this policy file's live ledger
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// The most recent restore test of every dataset: what it restored, how long it took, its checks
    RestoreTests {
        #[command(flatten)]
        config: ConfigArg,
        /// As of this instant (RFC 3339) instead of now
        #[arg(long)]
        at: Option<String>,
    },
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    match a.command {
        None => make(g, a.pack),
        Some(Command::Keygen { out }) => keygen(g, &out),
        Some(Command::Verify {
            pack,
            public_key,
            config,
        }) => check(g, &pack, &public_key, config.as_deref()),
        Some(Command::RestoreTests { config, at }) => restore_tests(g, &config.config, at),
    }
}

/// `--from`/`--to`: RFC 3339, or a plain date meaning its midnight UTC.
fn parse_instant(flag: &str, s: &str) -> CliResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| {
            Failure::usage(
                format!("bad {flag} '{s}'"),
                "use a date (2026-01-01) or RFC 3339 (2026-01-01T00:00:00Z)",
            )
        })
}

fn make(g: &Global, a: PackArgs) -> CliResult<i32> {
    let now = parse_at(a.at.as_deref())?;
    let from = a.from.as_deref().ok_or_else(|| {
        Failure::usage(
            "no period given",
            "pass --from DATE (and --to DATE, default now) and --out DIR|FILE.tar",
        )
    })?;
    let from = parse_instant("--from", from)?;
    let to = match &a.to {
        Some(t) => parse_instant("--to", t)?,
        None => now,
    };
    let out = a.out.ok_or_else(|| {
        Failure::usage(
            "no --out given",
            "pass --out DIR (new or empty) or --out FILE.tar",
        )
    })?;
    let ws = workspace(g, &a.config.config, Create::Nothing)?;
    let key_path = match (&a.signing_key, &ws.policy().config.evidence.signing_key) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => ws.resolve(p),
        (None, None) => {
            return Err(Failure::usage(
                "no signing key",
                "pass --signing-key FILE or set [evidence] signing_key; make one with `bulwark evidence keygen --out FILE`",
            ));
        }
    };
    let key = sign::load_signing_key(&key_path)?;
    let chromium = if a.pdf {
        Some(pdf::find_chromium().ok_or_else(|| {
            Failure::new(
                FAILED,
                "--pdf: no headless Chromium on PATH (chromium, chromium-browser, google-chrome)",
                Some("install Chromium, or leave out --pdf: report.html prints cleanly from any browser"),
            )
        })?)
    } else {
        None
    };
    let made = evidence::build(
        &ws,
        &Request {
            from,
            to,
            now,
            key: &key,
            pdf: chromium,
        },
    )?;
    pack::write(&made.files, &made.name, &out)?;
    let r = &made.report;
    let summary = serde_json::json!({
        "out": out.display().to_string(),
        "verdict": r.verdict,
        "signing_key": r.signing_key,
        "files": made.files.keys().collect::<Vec<_>>(),
        "events": r.chain.events,
        "sections": r.sections.iter().map(|s| serde_json::json!({"id": s.id, "verdict": s.verdict, "reason": s.reason})).collect::<Vec<_>>(),
    });
    emit(g, &summary, || {
        let mut lines = vec![format!(
            "evidence {} to {}: {} ({} files, {} ledger events, signed by {})",
            from.format("%Y-%m-%d %H:%M"),
            to.format("%Y-%m-%d %H:%M UTC"),
            r.verdict.word(),
            made.files.len(),
            r.chain.events,
            r.signing_key
        )];
        for s in &r.sections {
            lines.push(format!(
                "  {:<14} {:<24} {}",
                s.verdict.word(),
                s.id,
                s.reason
            ));
        }
        lines.push(format!("written to {}", out.display()));
        lines.join("\n")
    });
    Ok(0)
}

fn keygen(g: &Global, out: &Path) -> CliResult<i32> {
    let (public, fingerprint) = sign::generate(out)?;
    let doc = serde_json::json!({
        "private_key": out.display().to_string(),
        "public_key": public.display().to_string(),
        "fingerprint": fingerprint,
    });
    emit(g, &doc, || {
        format!(
            "signing key {} (owner-only); public key {} for auditors\nfingerprint {fingerprint}",
            out.display(),
            public.display()
        )
    });
    Ok(0)
}

fn check(g: &Global, path: &Path, public_key: &Path, config: Option<&Path>) -> CliResult<i32> {
    let key = sign::load_public_key(public_key)?;
    let files = pack::read(path)?;
    let ws = config
        .map(|c| workspace(g, c, Create::Nothing))
        .transpose()?;
    let ledger = ws.as_ref().map(|ws| ws.ledger());
    let out = verify::verify(&files, &key, ledger.as_deref().map(|l| &**l));
    drop(ledger);
    emit(g, &out, || {
        if out.is_ok() {
            format!(
                "ok: signed by {}; {} files match MANIFEST; {} ledger events chain{}",
                out.signed_by.as_deref().unwrap_or("?"),
                out.files,
                out.events,
                if out.live_checked {
                    " and match the live ledger"
                } else {
                    ""
                }
            )
        } else {
            String::new()
        }
    });
    if out.is_ok() {
        return Ok(0);
    }
    for p in out.problems.iter().skip(1) {
        eprintln!("{}: {}", p.file, p.message);
    }
    let first = &out.problems[0];
    Err(Failure::new(
        FAILED,
        format!(
            "{} does not verify: {}: {}{}",
            path.display(),
            first.file,
            first.message,
            if out.problems.len() > 1 {
                format!(" (and {} more problems, above)", out.problems.len() - 1)
            } else {
                String::new()
            }
        ),
        Some("the pack was altered, or signed by another key, or the ledger was rewritten since"),
    ))
}

fn restore_tests(g: &Global, config: &Path, at: Option<String>) -> CliResult<i32> {
    let now = parse_at(at.as_deref())?;
    let ws = workspace(g, config, Create::Nothing)?;
    let latest = evidence::latest_restore_tests(&ws, now)?;
    emit(g, &latest, || {
        let mut lines = Vec::new();
        for l in &latest {
            lines.push(format!(
                "{:<16} {:<13} {}",
                l.dataset,
                l.verdict.word(),
                l.reason
            ));
            if let Some(t) = &l.last {
                lines.push(format!(
                    "  {} {} snapshot {} ({}), {:.1}s, {} bytes",
                    t.finished.format("%Y-%m-%d %H:%M UTC"),
                    if t.passed { "passed" } else { "FAILED" },
                    &t.snapshot_id[..t.snapshot_id.len().min(12)],
                    t.kind,
                    t.duration_s,
                    t.bytes
                ));
                for c in &t.checks {
                    lines.push(format!("    {c}"));
                }
                if let Some(s) = &t.sample {
                    lines.push(format!("    {s}"));
                }
                if let Some(e) = &t.error {
                    lines.push(format!("    error: {e}"));
                }
            }
        }
        lines.join("\n")
    });
    Ok(0)
}

impl From<EvidenceError> for Failure {
    fn from(e: EvidenceError) -> Failure {
        let message = e.to_string();
        match e {
            EvidenceError::App(e) => e.into(),
            EvidenceError::EmptyPeriod { .. } => {
                Failure::new(USAGE, message, Some("--from must be before --to"))
            }
            EvidenceError::Exists(_) => Failure::new(
                FAILED,
                message,
                Some("choose a new directory or .tar file name"),
            ),
            EvidenceError::KeyReadableByOthers { .. } => {
                Failure::new(FAILED, message, Some("chmod 600 the key file"))
            }
            EvidenceError::Key { .. } => Failure::new(
                FAILED,
                message,
                Some("make a key with `bulwark evidence keygen --out FILE`; verify takes FILE.pub"),
            ),
            EvidenceError::BadPack { .. } => Failure::new(
                FAILED,
                message,
                Some("give the pack's directory or its .tar as written by `bulwark evidence`"),
            ),
            EvidenceError::Io { .. } => {
                Failure::new(FAILED, message, Some("check the path and permissions"))
            }
            EvidenceError::Pdf(_) => Failure::new(
                FAILED,
                message,
                Some("leave out --pdf: report.html prints cleanly from any browser"),
            ),
        }
    }
}
