//! Telling people. A [`Notice`] goes to every channel of the policy file whose `on` list names
//! its event: a program (`command`), an HTTP POST (`webhook`) or a mail (`email`).
//!
//! Per notice and channel:
//! 1. The notice's [key](Notice::key) (its event, dataset, repository and what it is about: the
//!    ledger event of a failed step, or the state or slot a daemon judged) is looked up among
//!    the ledger's successful `notification` events: a channel that has had it delivered is not
//!    sent it again. A failed delivery is no delivery: raising the notice again tries again.
//! 2. Up to [`Retry::attempts`] tries, each within [`Notifier::timeout`], waiting
//!    [`Retry::first_wait`] after the first failure and `factor` times longer after each next
//!    (never more than [`Retry::max_wait`], which also caps a server's `Retry-After`). What
//!    trying again cannot fix is not retried: an HTTP 4xx other than 429, a redirect, a
//!    permanent SMTP reply, a server without the STARTTLS the channel requires, an unreadable
//!    secret file. A command runs once: it may have paged someone before it failed, and a
//!    program can retry by itself.
//! 3. The outcome, with every try, is one `notification` event ([`NotificationDetails`]).
//!
//! Secrets (header values read from files, the SMTP password) go to the server and nowhere
//! else: not into the ledger, a log line or an error; a server that echoes one back has it
//! replaced by `[redacted]`. A webhook is named by its scheme, host and port only, since its path
//! can be a credential too (Slack's is). A channel that fails is logged and recorded, never fatal
//! to the run. The ledger is locked to look up and to record, never while a channel is tried.

mod command;
mod email;
mod webhook;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bulwark_ledger::{EventFilter, EventKind};
use bulwark_policy::config::{Channel, Notification, NotifyEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use command::COMMAND_TIMEOUT;

use crate::error::Result;
use crate::events::{Details, NotificationDetails, NotificationTry};
use crate::workspace::Workspace;

/// Something worth telling.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub event: NotifyEvent,
    pub dataset: Option<String>,
    pub repository: Option<String>,
    /// What makes this notice this one and not another of its event for the same dataset and
    /// repository: the id of the ledger event of a failed step, or the state or slot judged
    /// (for `rpo_at_risk`, say, the newest snapshot the judgement was made on). Part of the key.
    pub about: String,
    /// One line, for people.
    pub message: String,
    pub at: DateTime<Utc>,
}

impl Notice {
    /// A notice of `event` about `about`, now.
    pub fn new(event: NotifyEvent, about: impl Into<String>, message: impl Into<String>) -> Notice {
        Notice {
            event,
            dataset: None,
            repository: None,
            about: about.into(),
            message: message.into(),
            at: Utc::now(),
        }
    }

    pub fn dataset(mut self, dataset: impl Into<String>) -> Self {
        self.dataset = Some(dataset.into());
        self
    }

    pub fn repository(mut self, repository: impl Into<String>) -> Self {
        self.repository = Some(repository.into());
        self
    }

    /// `EVENT/DATASET/REPOSITORY/ABOUT` (`-` for none): a notice with the same key is the same
    /// notice, and a channel gets it once.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.event.as_str(),
            self.dataset.as_deref().unwrap_or("-"),
            self.repository.as_deref().unwrap_or("-"),
            self.about
        )
    }

    /// The stable id receivers can tell repeats by: BLAKE3 (hex) of the key.
    pub fn id(&self) -> String {
        bulwark_ledger::hash_hex(self.key().as_bytes())
    }

    /// "backup failed: app-db", for subjects and titles.
    pub fn headline(&self) -> String {
        let title = self.event.title();
        match (&self.dataset, &self.repository) {
            (Some(d), _) => format!("{title}: {d}"),
            (None, Some(r)) => format!("{title}: repository {r}"),
            (None, None) => title.to_string(),
        }
    }
}

/// How one channel took a notice.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub channel: String,
    /// `command`, `webhook` or `email`.
    pub kind: String,
    pub ok: bool,
    /// Delivered before for the same key: not sent again, and not recorded again.
    pub duplicate: bool,
    /// Tries made now (0 for a duplicate, or a channel that could not be prepared).
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `notification` event that records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// When to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The wait after the first failed try.
    pub first_wait: Duration,
    /// Each further wait is this many times the one before.
    pub factor: u32,
    /// No wait is longer, a server's `Retry-After` included.
    pub max_wait: Duration,
}

impl Default for Retry {
    /// Three tries, 1 s and 4 s apart.
    fn default() -> Self {
        Retry {
            attempts: 3,
            first_wait: Duration::from_secs(1),
            factor: 4,
            max_wait: Duration::from_secs(30),
        }
    }
}

impl Retry {
    /// The wait after failed try `n` (1-based), before try `n + 1`.
    pub fn wait_after(&self, n: u32) -> Duration {
        let factor = self.factor.max(1).saturating_pow(n.saturating_sub(1));
        self.first_wait
            .checked_mul(factor)
            .unwrap_or(self.max_wait)
            .min(self.max_wait)
    }
}

/// Delivers notices: [`send`] with the defaults, or with other waits and timeouts.
#[derive(Debug, Clone)]
pub struct Notifier {
    pub retry: Retry,
    /// How long one try at a webhook or an SMTP server may take.
    pub timeout: Duration,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            retry: Retry::default(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Send `notice` to every channel that hears its event, with the default retries, and record
/// each delivery in `ws`'s ledger. Errors only when the ledger cannot be read or written.
pub fn send(ws: &Workspace, notice: &Notice) -> Result<Vec<Delivery>> {
    Notifier::default().send(ws, notice)
}

/// Why a try failed, and whether another could succeed.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    http_status: Option<u16>,
    again: Again,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    No,
    Yes,
    /// As the server asked (`Retry-After`).
    After(Duration),
}

impl Failure {
    /// A failure another try would repeat.
    pub(crate) fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            http_status: None,
            again: Again::No,
        }
    }

    /// A failure another try may not meet.
    pub(crate) fn transient(message: impl Into<String>) -> Failure {
        Failure {
            again: Again::Yes,
            ..Failure::permanent(message)
        }
    }

    fn status(mut self, status: u16) -> Failure {
        self.http_status = Some(status);
        self
    }

    fn after(mut self, wait: Duration) -> Failure {
        self.again = Again::After(wait);
        self
    }
}

/// A channel made ready for one notice: what it is tried with.
trait Attempt {
    /// Where it goes, for the record: never a secret.
    fn target(&self) -> String;
    /// Values that must not appear in what is recorded or logged.
    fn secrets(&self) -> &[String];
    /// Whether a failed try may be followed by another.
    fn retries(&self) -> bool {
        true
    }
    /// One try: the HTTP status, if any, on success.
    fn attempt(&self) -> Result<Option<u16>, Failure>;
}

impl Notifier {
    /// As [`send`], with these retries and timeout.
    pub fn send(&self, ws: &Workspace, notice: &Notice) -> Result<Vec<Delivery>> {
        self.send_filtered(ws, notice, None)
    }

    /// As [`Notifier::send`], to the channels named in `only` (a role's) that hear the event.
    pub fn send_to(
        &self,
        ws: &Workspace,
        notice: &Notice,
        only: &[String],
    ) -> Result<Vec<Delivery>> {
        self.send_filtered(ws, notice, Some(only))
    }

    fn send_filtered(
        &self,
        ws: &Workspace,
        notice: &Notice,
        only: Option<&[String]>,
    ) -> Result<Vec<Delivery>> {
        let channels: Vec<&Notification> = ws
            .config()
            .notifications
            .values()
            .filter(|n| n.hears(notice.event))
            .filter(|n| only.is_none_or(|o| o.contains(&n.name)))
            .collect();
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let key = notice.key();
        let delivered = delivered_before(ws, notice, &key)?;
        let mut out = Vec::new();
        for n in channels {
            if delivered.contains(&n.name) {
                out.push(Delivery {
                    channel: n.name.clone(),
                    kind: n.channel.kind().into(),
                    ok: true,
                    duplicate: true,
                    attempts: 0,
                    http_status: None,
                    error: None,
                    event: None,
                });
                continue;
            }
            let started = Utc::now();
            let details = self.deliver(ws, n, notice, &key);
            let summary = match &details.error {
                None => format!(
                    "{} delivered to '{}' ({}){}",
                    notice.event.as_str(),
                    n.name,
                    details.channel_kind,
                    if details.attempts > 1 {
                        format!(" on try {}", details.attempts)
                    } else {
                        String::new()
                    }
                ),
                Some(e) => {
                    tracing::warn!("notification channel '{}' failed: {e}", n.name);
                    format!(
                        "{} not delivered to '{}' ({}): {e}",
                        notice.event.as_str(),
                        n.name,
                        details.channel_kind
                    )
                }
            };
            let mut event = details
                .event(summary)
                .config_hash(ws.config_hash())
                .timed(started, Utc::now())
                .ok(details.ok);
            event.dataset = notice.dataset.clone();
            event.repository = notice.repository.clone();
            let recorded = ws.ledger().append(event)?;
            out.push(Delivery {
                channel: n.name.clone(),
                kind: details.channel_kind,
                ok: details.ok,
                duplicate: false,
                attempts: details.attempts,
                http_status: details.http_status,
                error: details.error,
                event: Some(recorded.id),
            });
        }
        Ok(out)
    }

    /// Tries channel `n` until it takes the notice, fails for good, or runs out of tries.
    fn deliver(
        &self,
        ws: &Workspace,
        n: &Notification,
        notice: &Notice,
        key: &str,
    ) -> NotificationDetails {
        let mut details = NotificationDetails {
            channel: n.name.clone(),
            channel_kind: n.channel.kind().into(),
            event: notice.event.as_str().into(),
            key: key.to_string(),
            id: notice.id(),
            ..Default::default()
        };
        let prepared: std::result::Result<Box<dyn Attempt + '_>, Failure> = match &n.channel {
            Channel::Command(argv) => Ok(Box::new(command::Run::new(argv, &notice.message))),
            Channel::Webhook(hook) => webhook::Post::prepare(ws, hook, notice, self.timeout)
                .map(|p| Box::new(p) as Box<dyn Attempt + '_>),
            Channel::Email(mail) => email::Mail::prepare(ws, mail, notice, self.timeout)
                .map(|m| Box::new(m) as Box<dyn Attempt + '_>),
        };
        let channel = match prepared {
            Ok(c) => c,
            Err(f) => {
                details.target = target_of(&n.channel);
                details.error = Some(one_line(&f.message, &[]));
                return details;
            }
        };
        details.target = channel.target();
        let attempts = if channel.retries() {
            self.retry.attempts.max(1)
        } else {
            1
        };
        for number in 1..=attempts {
            let at = Utc::now();
            let clock = Instant::now();
            let result = channel.attempt();
            let mut tried = NotificationTry {
                at: Some(at),
                duration_s: clock.elapsed().as_secs_f64(),
                ..Default::default()
            };
            details.attempts = number;
            match result {
                Ok(status) => {
                    tried.http_status = status;
                    details.http_status = status;
                    details.tries.push(tried);
                    details.ok = true;
                    details.error = None;
                    return details;
                }
                Err(f) => {
                    let message = one_line(&f.message, channel.secrets());
                    tried.http_status = f.http_status;
                    tried.error = Some(message.clone());
                    details.http_status = f.http_status;
                    details.tries.push(tried);
                    let wait = match f.again {
                        Again::No => None,
                        Again::Yes => Some(self.retry.wait_after(number)),
                        Again::After(w) => Some(w.min(self.retry.max_wait)),
                    };
                    let last = number == attempts;
                    details.error = Some(match (wait, last) {
                        (Some(_), true) if attempts > 1 => {
                            format!("{message} (gave up after {attempts} tries)")
                        }
                        _ => message.clone(),
                    });
                    match wait {
                        Some(wait) if !last => {
                            tracing::debug!(
                                "notification channel '{}': try {number} failed ({message}); again in {wait:?}",
                                details.channel
                            );
                            std::thread::sleep(wait);
                        }
                        _ => return details,
                    }
                }
            }
        }
        details
    }
}

/// The channels that have had the notice with `key` delivered.
fn delivered_before(ws: &Workspace, notice: &Notice, key: &str) -> Result<BTreeSet<String>> {
    let mut filter = EventFilter::all().kind(EventKind::Notification).ok(true);
    // The (kind, dataset) index narrows the search; the key decides.
    match (&notice.dataset, &notice.repository) {
        (Some(d), _) => filter = filter.dataset(d.clone()),
        (None, Some(r)) => filter = filter.repository(r.clone()),
        (None, None) => {}
    }
    let events = ws.ledger().events(&filter)?;
    Ok(events
        .iter()
        .filter_map(|e| NotificationDetails::of(e).ok())
        .filter(|d| d.ok && d.key == key)
        .map(|d| d.channel)
        .collect())
}

/// Where a channel that could not be prepared would have gone.
fn target_of(channel: &Channel) -> String {
    match channel {
        Channel::Command(argv) => argv.first().cloned().unwrap_or_default(),
        Channel::Webhook(hook) => webhook::origin(&hook.url),
        Channel::Email(mail) => email::target(mail),
    }
}

/// `text` on one line, every secret replaced.
fn one_line(text: &str, secrets: &[String]) -> String {
    let mut out = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "[redacted]");
    }
    out
}

/// The first line of secret file `path` (relative to the policy file).
fn read_secret(ws: &Workspace, path: &str) -> std::result::Result<String, Failure> {
    let path = ws.resolve(path);
    let text = crate::credentials::read_secret_file(&path, "secret file")
        .map_err(|e| Failure::permanent(e.to_string()))?;
    let line = text.lines().next().unwrap_or_default().trim_end();
    if line.is_empty() {
        return Err(Failure::permanent(format!(
            "secret file {}: its first line is empty",
            path.display()
        )));
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_by_the_factor_up_to_the_cap() {
        let r = Retry::default();
        assert_eq!(r.wait_after(1), Duration::from_secs(1));
        assert_eq!(r.wait_after(2), Duration::from_secs(4));
        assert_eq!(r.wait_after(3), Duration::from_secs(16));
        assert_eq!(r.wait_after(4), Duration::from_secs(30));
        assert_eq!(r.wait_after(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn keys_tell_notices_apart_and_secrets_never_survive() {
        let a = Notice::new(NotifyEvent::BackupFailed, "ev1", "m")
            .dataset("db")
            .repository("primary");
        assert_eq!(a.key(), "backup_failed/db/primary/ev1");
        let mut b = a.clone();
        b.message = "another wording".into();
        assert_eq!(a.id(), b.id(), "the message is not part of the key");
        b.about = "ev2".into();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.headline(), "backup failed: db");
        let text = "401 Unauthorized:\n bad token Bearer s3cret (s3cret)";
        assert_eq!(
            one_line(text, &["Bearer s3cret".into(), "s3cret".into()]),
            "401 Unauthorized: bad token [redacted] ([redacted])"
        );
    }
}
