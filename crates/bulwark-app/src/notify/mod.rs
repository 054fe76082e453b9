//! Telling people: every failed step (and a restore test fixed again) goes to the channels of the
//! policy file whose `on` list names its event. A channel that fails is reported back and logged,
//! never fatal to the run. A command channel gets one line of text on standard input and an
//! environment without Bulwark's secrets; one that does not finish within [`COMMAND_TIMEOUT`] is
//! killed.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bulwark_policy::config::{Channel, Config, NotifyEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// How long a notification command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Something worth telling.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub event: NotifyEvent,
    pub dataset: Option<String>,
    pub repository: Option<String>,
    /// One line, for people.
    pub message: String,
    pub at: DateTime<Utc>,
}

/// How one channel took a notice.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub channel: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Send `notice` to every channel that hears its event.
pub fn send(config: &Config, notice: &Notice) -> Vec<Delivery> {
    let mut out = Vec::new();
    for n in config
        .notifications
        .values()
        .filter(|n| n.hears(notice.event))
    {
        let result = match &n.channel {
            Channel::Command(argv) => run_command(argv, &notice.message),
            Channel::Webhook(_) => {
                Err("webhook channels cannot be delivered by this version".into())
            }
        };
        if let Err(e) = &result {
            tracing::warn!("notification channel '{}' failed: {e}", n.name);
        }
        out.push(Delivery {
            channel: n.name.clone(),
            ok: result.is_ok(),
            error: result.err(),
        });
    }
    out
}

fn run_command(argv: &[String], message: &str) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("no command given")?;
    let mut child = bulwark_source::child::command(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run '{program}': {e}"))?;
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
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
                let last = err.lines().last().unwrap_or_default().to_string();
                return Err(format!("'{program}' failed ({status}) {last}")
                    .trim()
                    .to_string());
            }
            Ok(None) if started.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "'{program}' did not finish within {}s and was stopped",
                    COMMAND_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for '{program}': {e}")),
        }
    }
}
