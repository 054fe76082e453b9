//! Commands over the policy file: `policy check`, `run`, `status`.

use std::path::Path;

use bulwark_policy::commitments;
use bulwark_policy::config::Config;

use crate::cli::Global;
use crate::commands::emit;
use crate::failure::Failure;
use crate::CliResult;

pub fn load_config(path: &Path) -> CliResult<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            1,
            format!("cannot read {}: {e}", path.display()),
            Some("pass --config PATH or set BULWARK_CONFIG; see examples/bulwark.toml"),
        )
    })?;
    Config::parse(&path.display().to_string(), &text)
        .map_err(|e| Failure::new(1, e.to_string(), Some("fix the file at that line and column")))
}

pub fn policy_check(g: &Global, path: &Path) -> CliResult<i32> {
    let config = load_config(path)?;
    let findings = commitments::check(&config);
    let violations = findings.iter().filter(|f| !f.ok).count();
    let doc = serde_json::json!({ "ok": violations == 0, "violations": violations, "findings": findings });
    emit(g, &doc, || {
        let mut t = String::new();
        for f in &findings {
            let at = f.location.map(|l| format!("{}:{}:{}: ", path.display(), l.line, l.column)).unwrap_or_default();
            t += &format!("{} {:<16} {:<20} {at}{}\n", if f.ok { "ok  " } else { "FAIL" }, f.commitment, f.subject, f.detail);
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
