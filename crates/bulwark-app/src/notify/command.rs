//! Command channels: a program run once per notice, with the message and a newline on its
//! standard input and an environment without Bulwark's secrets; one that does not finish
//! within [`COMMAND_TIMEOUT`] is killed. A command is not retried.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{Attempt, Failure};

/// How long a notification command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) struct Run<'a> {
    argv: &'a [String],
    message: &'a str,
}

impl<'a> Run<'a> {
    pub(super) fn new(argv: &'a [String], message: &'a str) -> Run<'a> {
        Run { argv, message }
    }
}

impl Attempt for Run<'_> {
    fn target(&self) -> String {
        self.argv.first().cloned().unwrap_or_default()
    }

    fn secrets(&self) -> &[String] {
        &[]
    }

    fn retries(&self) -> bool {
        false
    }

    fn attempt(&self) -> Result<Option<u16>, Failure> {
        run(self.argv, self.message)
    }
}

fn run(argv: &[String], message: &str) -> Result<Option<u16>, Failure> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Failure::permanent("no command given"))?;
    let mut child = bulwark_source::child::command(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::permanent(format!("cannot run '{program}': {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is not a failure.
        let _ = stdin.write_all(format!("{message}\n").as_bytes());
    }
    // Drained meanwhile, so a chatty command cannot block on a full pipe.
    let stderr = child.stderr.take().map(|e| {
        std::thread::spawn(move || {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::Read::take(e, 64 * 1024), &mut err);
            err
        })
    });
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(None),
            Ok(Some(status)) => {
                let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
                let last = err.lines().last().unwrap_or_default().to_string();
                return Err(Failure::permanent(
                    format!("'{program}' failed ({status}) {last}")
                        .trim()
                        .to_string(),
                ));
            }
            Ok(None) if started.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::permanent(format!(
                    "'{program}' did not finish within {}s and was stopped",
                    COMMAND_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(Failure::permanent(format!("waiting for '{program}': {e}"))),
        }
    }
}
