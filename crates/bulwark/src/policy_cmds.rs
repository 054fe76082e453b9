//! Commands over the policy file: `policy check`, `run`, `status`.

use std::path::Path;

use bulwark_policy::commitments;
use bulwark_policy::config::Config;

use crate::CliResult;
use crate::cli::Global;
use crate::commands::emit;
use crate::failure::Failure;

pub fn load_config(path: &Path) -> CliResult<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            1,
            format!("cannot read {}: {e}", path.display()),
            Some("pass --config PATH or set BULWARK_CONFIG; see examples/bulwark.toml"),
        )
    })?;
    Config::parse(&path.display().to_string(), &text).map_err(|e| {
        Failure::new(
            1,
            e.to_string(),
            Some("fix the file at that line and column"),
        )
    })
}

pub fn policy_check(g: &Global, path: &Path) -> CliResult<i32> {
    let config = load_config(path)?;
    let findings = commitments::check(&config);
    let violations = findings.iter().filter(|f| !f.ok).count();
    let doc = serde_json::json!({ "ok": violations == 0, "violations": violations, "findings": findings });
    emit(g, &doc, || {
        let mut t = String::new();
        for f in &findings {
            let at = f
                .location
                .map(|l| format!("{}:{}:{}: ", path.display(), l.line, l.column))
                .unwrap_or_default();
            t += &format!(
                "{} {:<16} {:<20} {at}{}\n",
                if f.ok { "ok  " } else { "FAIL" },
                f.commitment,
                f.subject,
                f.detail
            );
        }
        t += &if violations == 0 {
            "the configuration can keep every commitment".to_string()
        } else {
            format!("{violations} commitments cannot be kept as configured")
        };
        t
    });
    Ok(if violations == 0 { 0 } else { 1 })
}

fn config_base(path: &Path) -> std::path::PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| ".".into(), Path::to_path_buf)
}

fn relative(base: &Path, p: &str) -> std::path::PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn open_ledger(path: &Path, config: &Config) -> CliResult<Box<dyn bulwark_ledger::Ledger>> {
    let setting = config.ledger.as_deref();
    let file = match setting {
        Some(l) if l.contains("://") => None,
        Some(l) => Some(relative(&config_base(path), l)),
        None => Some(bulwark_ledger::default_path(path)),
    };
    if let Some(dir) = file.as_deref().and_then(Path::parent) {
        let _ = std::fs::create_dir_all(dir);
    }
    bulwark_ledger::open_for_config(path, setting, &bulwark_ledger::Options::default()).map_err(
        |e| {
            Failure::new(
                1,
                format!("ledger: {e}"),
                Some("check `ledger` in the policy file"),
            )
        },
    )
}

/// Open a configured repository with its own credentials, else the global ones.
fn repository_opener<'a>(
    g: &'a Global,
    path: &'a Path,
    config: &'a Config,
) -> impl Fn(&str) -> bulwark_repo::Result<bulwark_repo::Repository> + 'a {
    move |name: &str| {
        let r = &config.repositories[name];
        let base = config_base(path);
        let url = if r.url.contains("://") {
            r.url.clone()
        } else {
            relative(&base, &r.url).display().to_string()
        };
        let mut creds = g.clone();
        if let Some(f) = &r.password_file {
            creds.password_file = Some(relative(&base, f));
        }
        if let Some(f) = &r.key_file {
            creds.key_file = Some(relative(&base, f));
        }
        let credential = crate::credentials::existing(&creds)
            .map_err(|f| bulwark_repo::Error::Invalid(f.message))?;
        let backend = bulwark_repo::backend::open_location(&url, true)?;
        let opened = match bulwark_repo::Repository::open(backend.clone(), &credential) {
            // The embedded default creates its repositories on first use.
            Err(bulwark_repo::Error::NoRepository { .. }) if !url.contains("://") => {
                match &r.replica_of {
                    None => bulwark_repo::Repository::init(
                        backend,
                        &credential,
                        bulwark_repo::Settings::default(),
                    ),
                    Some(of) => {
                        let source = repository_opener(g, path, config)(of)?;
                        let backend = bulwark_repo::backend::open_location(&url, true)?;
                        bulwark_repo::Repository::init_replica(backend, &credential, &source)
                    }
                }
            }
            other => other,
        };
        opened.map(|repo| crate::commands::with_cache(g, repo))
    }
}

pub fn run(g: &Global, a: crate::cli::RunArgs) -> CliResult<i32> {
    let path = a.config.config;
    let config = load_config(&path)?;
    for name in &a.datasets {
        if !config.datasets.contains_key(name) {
            return Err(Failure::usage(
                format!("no dataset '{name}' in {}", path.display()),
                "see `bulwark status` for the datasets",
            ));
        }
    }
    let bytes = std::fs::read(&path).unwrap_or_default();
    let mut ledger = open_ledger(&path, &config)?;
    let opener = repository_opener(g, &path, &config);
    let ctx = bulwark_ops::run::RunContext {
        config: &config,
        base: config_base(&path),
        config_hash: bulwark_ledger::config_hash(&bytes),
        now: chrono::Utc::now(),
        show_progress: crate::show_progress(g),
        open: &opener,
    };
    record_config_change(ledger.as_mut(), &ctx.config_hash, &path)?;
    let selection = if a.due {
        bulwark_ops::run::Selection::Due
    } else if a.datasets.is_empty() {
        bulwark_ops::run::Selection::All
    } else {
        bulwark_ops::run::Selection::Named(a.datasets.clone())
    };
    let report =
        bulwark_ops::run::run(&ctx, ledger.as_mut(), &selection).map_err(ledger_failure)?;
    emit(g, &report, || {
        let mut t = String::new();
        for d in &report.datasets {
            t += &format!("{} {}\n", if d.ok { "ok    " } else { "FAILED" }, d.dataset);
            for s in &d.steps {
                t += &format!(
                    "  {} {:<18} {:>6.1}s  {}\n",
                    if s.ok { "ok  " } else { "FAIL" },
                    s.step,
                    s.duration_s,
                    s.summary
                );
            }
        }
        for s in &report.maintenance {
            t += &format!(
                "{} {:<20} {:>6.1}s  {}\n",
                if s.ok { "ok    " } else { "FAILED" },
                s.step,
                s.duration_s,
                s.summary
            );
        }
        t.trim_end().to_string()
    });
    Ok(if report.ok { 0 } else { 1 })
}

/// A changed policy file is itself an event: the ledger says which configuration each run kept.
fn record_config_change(
    ledger: &mut dyn bulwark_ledger::Ledger,
    hash: &str,
    path: &Path,
) -> CliResult<()> {
    use bulwark_ledger::{EventKind, NewEvent};
    let last = ledger
        .last(&EventKind::ConfigChange, None, true)
        .map_err(ledger_failure)?;
    if last.as_ref().and_then(|e| e.config_hash.as_deref()) != Some(hash) {
        let now = chrono::Utc::now();
        ledger
            .append(
                NewEvent::new(
                    EventKind::ConfigChange,
                    format!("policy file {} is now {}", path.display(), &hash[..12]),
                )
                .config_hash(hash.to_string())
                .timed(now, now)
                .ok(true),
            )
            .map_err(ledger_failure)?;
    }
    Ok(())
}

pub fn status(g: &Global, a: crate::cli::StatusArgs) -> CliResult<i32> {
    use bulwark_policy::compliance::{Verdict, evaluate};
    let path = a.config.config;
    let config = load_config(&path)?;
    let now = match &a.at {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| {
                Failure::usage(
                    format!("bad --at: {e}"),
                    "use RFC 3339, e.g. 2026-12-01T00:00:00Z",
                )
            })?
            .to_utc(),
        None => chrono::Utc::now(),
    };
    let ledger = open_ledger(&path, &config)?;
    let opener = repository_opener(g, &path, &config);
    let mut times = std::collections::BTreeMap::new();
    let mut unreachable = Vec::new();
    for name in config.repositories.keys() {
        match opener(name).and_then(|r| bulwark_ops::status::dataset_times(&r)) {
            Ok(t) => {
                times.insert(name.clone(), t);
            }
            Err(e) => unreachable.push(format!("repository '{name}': {e}")),
        }
    }
    let mut out = serde_json::Map::new();
    let mut overall = Verdict::Met;
    let mut rendered = String::new();
    for d in config.datasets.values() {
        let facts = bulwark_ops::status::facts(&config, d, &times, ledger.as_ref())
            .map_err(ledger_failure)?;
        let s = evaluate(&config, d, &facts, now);
        overall = overall.max(s.verdict);
        rendered += &format!(
            "{:<20} {:<9} {}\n",
            s.dataset,
            format!("{:?}", s.verdict).to_lowercase(),
            s.reason
        );
        for asp in &s.aspects {
            rendered += &format!(
                "    {:<10} {:<9} target {:<32} actual {}\n",
                asp.name,
                format!("{:?}", asp.verdict).to_lowercase(),
                asp.target,
                asp.actual
            );
        }
        let mut v = serde_json::to_value(&s).expect("status serialises");
        v["facts"] = serde_json::to_value(&facts).expect("facts serialise");
        out.insert(d.name.clone(), v);
    }
    let doc = serde_json::json!({ "verdict": overall, "at": now, "datasets": out, "unreachable": unreachable });
    emit(g, &doc, || {
        let mut t = rendered.clone();
        for u in &unreachable {
            t += &format!("unreachable: {u}\n");
        }
        t += &format!("overall: {}", format!("{overall:?}").to_lowercase());
        t
    });
    Ok(match overall {
        Verdict::Met => 0,
        _ => 1,
    })
}

pub fn ledger(g: &Global, l: crate::cli::LedgerCommand) -> CliResult<i32> {
    match l {
        crate::cli::LedgerCommand::Verify { config } => {
            let cfg = load_config(&config.config)?;
            let ledger = open_ledger(&config.config, &cfg)?;
            let report = ledger.verify().map_err(ledger_failure)?;
            emit(g, &report, || report.to_string());
            Ok(if report.is_ok() { 0 } else { 1 })
        }
        crate::cli::LedgerCommand::Events { config, dataset } => {
            let cfg = load_config(&config.config)?;
            let ledger = open_ledger(&config.config, &cfg)?;
            let mut filter = bulwark_ledger::EventFilter::all();
            if let Some(d) = dataset {
                filter = filter.dataset(d);
            }
            let events = ledger.events(&filter).map_err(ledger_failure)?;
            emit(g, &events, || {
                events
                    .iter()
                    .map(|e| {
                        format!(
                            "{:>5} {} {:<14} {:<14} {} {}",
                            e.seq,
                            e.finished.format("%Y-%m-%d %H:%M:%S"),
                            e.kind.as_str(),
                            e.dataset.as_deref().unwrap_or("-"),
                            if e.ok { "ok  " } else { "FAIL" },
                            e.summary
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
    }
}

pub fn remediation(g: &Global, r: crate::cli::RemediationCommand) -> CliResult<i32> {
    match r {
        crate::cli::RemediationCommand::List { config, all } => {
            let cfg = load_config(&config.config)?;
            let ledger = open_ledger(&config.config, &cfg)?;
            let items = ledger.remediations(!all).map_err(ledger_failure)?;
            emit(g, &items, || {
                items
                    .iter()
                    .map(|i| {
                        format!(
                            "{} {:<16} {} {}",
                            &i.id[..12],
                            i.dataset,
                            if i.is_open() { "open  " } else { "closed" },
                            i.reason
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
        crate::cli::RemediationCommand::Close { config, id, note } => {
            let cfg = load_config(&config.config)?;
            let mut ledger = open_ledger(&config.config, &cfg)?;
            let full = ledger
                .remediations(true)
                .map_err(ledger_failure)?
                .into_iter()
                .find(|i| i.id.starts_with(&id))
                .ok_or_else(|| {
                    Failure::new(
                        1,
                        format!("no open remediation item '{id}'"),
                        Some("see `bulwark remediation list`"),
                    )
                })?;
            let closed = ledger
                .close_remediation(&full.id, None, &note)
                .map_err(ledger_failure)?;
            emit(g, &closed, || format!("closed {}", &closed.id[..12]));
            Ok(0)
        }
    }
}

/// A ledger that cannot be read or written fails the command: evidence must not go missing quietly.
fn ledger_failure(e: bulwark_ledger::Error) -> Failure {
    Failure::new(1, format!("ledger: {e}"), None)
}
