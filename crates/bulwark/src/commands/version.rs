//! `bulwark version`: this build, and the repository format it reads and writes.

use serde_json::json;

use super::emit;
use crate::CliResult;
use crate::cli::Global;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(g: &Global, _a: Args) -> CliResult<i32> {
    let version = env!("CARGO_PKG_VERSION");
    let format = bulwark_repo::repository::VERSION;
    let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
    emit(
        g,
        &json!({ "version": version, "repository_format": format, "os": os, "arch": arch }),
        || format!("bulwark {version} (repository format {format}) on {os}/{arch}"),
    );
    Ok(0)
}
