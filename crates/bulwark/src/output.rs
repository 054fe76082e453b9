//! Writing results to stdout. A reader that stops early (`bulwark ls … | head`) is not an
//! error: the rest is dropped and the command still finishes cleanly, releasing its locks. Any
//! other failure to write (a full disk behind `>`) turns the exit code into 1 at the end.

use std::io::Write;
use std::sync::OnceLock;

static FAILED: OnceLock<String> = OnceLock::new();

/// Print `text` and a newline on stdout.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = FAILED.set(e.to_string());
    }
}

/// Why the output could not be written, if it could not.
pub fn failure() -> Option<&'static str> {
    FAILED.get().map(String::as_str)
}
