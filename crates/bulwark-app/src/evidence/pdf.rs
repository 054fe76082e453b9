//! `report.pdf`: `report.html` printed by headless Chromium (`chromium --headless
//! --print-to-pdf`), when one is installed. The page fetches nothing, so printing it needs no
//! network; Chromium runs in a private temporary profile with a clean environment, so it sees no
//! secret of the caller's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::EvidenceError;

/// The names a headless Chromium goes by, in the order they are tried on `PATH`.
const NAMES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "headless_shell",
];

/// The first Chromium on `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| NAMES.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Prints `html` to PDF with `chromium`.
pub fn print(chromium: &Path, html: &str) -> Result<Vec<u8>, EvidenceError> {
    let dir = tempfile::tempdir()
        .map_err(|e| EvidenceError::Pdf(format!("no temporary directory: {e}")))?;
    let page = dir.path().join("report.html");
    let out = dir.path().join("report.pdf");
    std::fs::write(&page, html).map_err(|e| EvidenceError::Pdf(e.to_string()))?;
    let mut cmd = Command::new(chromium);
    cmd.env_clear()
        .env("HOME", dir.path())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-pdf-header-footer",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--print-to-pdf={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let result = cmd
        .output()
        .map_err(|e| EvidenceError::Pdf(format!("cannot run {}: {e}", chromium.display())))?;
    match std::fs::read(&out) {
        Ok(pdf) if pdf.starts_with(b"%PDF") => Ok(pdf),
        _ => {
            let stderr = String::from_utf8_lossy(&result.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(EvidenceError::Pdf(format!(
                "{} made no PDF ({}): {last}",
                chromium.display(),
                result.status
            )))
        }
    }
}
