//! `bulwark policy check`: can the policy file keep each commitment of the BCP/DR policy, and
//! where in the file is each decided.

use std::path::PathBuf;

use bulwark_app::PolicyFile;
use bulwark_policy::commitments;

use super::emit;
use crate::CliResult;
use crate::cli::Global;

#[derive(clap::Subcommand)]
pub enum Command {
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

pub fn run(g: &Global, c: Command) -> CliResult<i32> {
    let Command::Check { config: path } = c;
    let policy = PolicyFile::read(&path)?;
    let findings = commitments::check(&policy.config);
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
                super::mark(f.ok),
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
