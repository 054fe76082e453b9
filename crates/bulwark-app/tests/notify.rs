//! Notifications delivered for real: webhooks to an HTTP server this test starts on loopback,
//! mail to a real SMTP server (Debian's python3-aiosmtpd) on loopback, commands as programs.
//! Retries after a server error and not after a client error, Slack's format, one delivery per
//! notice and channel, every delivery in the ledger, and no secret in the ledger or the logs.
//!
//! The SMTP tests skip with a message when aiosmtpd is missing, unless `BULWARK_REQUIRE_SMTP=1`.

#[path = "support/http.rs"]
mod http;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark_app::events::{Details, NotificationDetails};
use bulwark_app::notify::{Notice, Notifier, Retry};
use bulwark_app::{Create, Credentials, OpenOptions, Workspace};
use bulwark_ledger::{Event, EventFilter, EventKind};
use bulwark_policy::config::NotifyEvent;
use http::Hook;

/// A policy file holding only `channels`, its ledger beside it.
fn workspace(dir: &Path, channels: &str) -> Workspace {
    let config = dir.join("bulwark.toml");
    std::fs::write(&config, channels).unwrap();
    Workspace::open(
        &config,
        OpenOptions {
            credentials: Credentials::default(),
            create: Create::Ledger,
            cache: false,
        },
    )
    .unwrap()
}

/// Retries without long waits.
fn quick() -> Notifier {
    Notifier {
        retry: Retry {
            first_wait: Duration::from_millis(10),
            max_wait: Duration::from_millis(50),
            ..Retry::default()
        },
        timeout: Duration::from_secs(5),
    }
}

fn notice(about: &str) -> Notice {
    Notice::new(
        NotifyEvent::BackupFailed,
        about,
        "bulwark: app-db: backup failed: disk full",
    )
    .dataset("app-db")
    .repository("primary")
}

fn notifications(ws: &Workspace) -> Vec<(Event, NotificationDetails)> {
    ws.ledger()
        .events(&EventFilter::all().kind(EventKind::Notification))
        .unwrap()
        .into_iter()
        .map(|e| {
            let d = NotificationDetails::of(&e).unwrap();
            (e, d)
        })
        .collect()
}

fn ledger_text(ws: &Workspace) -> String {
    String::from_utf8(ws.ledger().export_jsonl().unwrap()).unwrap()
}

#[test]
fn a_webhook_is_retried_after_server_errors_and_every_try_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start(|_, n| match n {
        0 => (500, Vec::new(), "try later".into()),
        1 => (429, vec![("Retry-After", "0".into())], "slow down".into()),
        _ => (204, Vec::new(), String::new()),
    });
    let ws = workspace(
        dir.path(),
        &format!(
            "[notifications.ops]\nwebhook = \"{}\"\n",
            hook.url("/hook/T1")
        ),
    );
    let n = notice("event-1");
    let deliveries = quick().send(&ws, &n).unwrap();
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert!(d.ok && !d.duplicate, "{d:?}");
    assert_eq!((d.attempts, d.http_status), (3, Some(204)));

    let requests = hook.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook/T1"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let body = requests[2].json();
    assert_eq!(body["id"], n.id());
    assert_eq!(body["key"], n.key());
    assert_eq!(body["event"], "backup_failed");
    assert_eq!(body["dataset"], "app-db");
    assert_eq!(body["repository"], "primary");
    assert_eq!(body["message"], n.message);
    assert!(
        body["at"]
            .as_str()
            .unwrap()
            .starts_with(&n.at.format("%Y-").to_string())
    );

    let recorded = notifications(&ws);
    assert_eq!(recorded.len(), 1, "one event per delivery");
    let (event, details) = &recorded[0];
    assert!(event.ok);
    assert_eq!(event.dataset.as_deref(), Some("app-db"));
    assert_eq!(event.repository.as_deref(), Some("primary"));
    assert_eq!(Some(event.id.clone()), d.event);
    assert_eq!(
        (details.channel.as_str(), details.channel_kind.as_str()),
        ("ops", "webhook")
    );
    assert_eq!(details.key, n.key());
    assert_eq!(details.attempts, 3);
    let statuses: Vec<_> = details.tries.iter().map(|t| t.http_status).collect();
    assert_eq!(statuses, [Some(500), Some(429), Some(204)]);
    assert!(
        details.tries[0]
            .error
            .as_deref()
            .unwrap()
            .contains("HTTP 500"),
        "{details:?}"
    );
    // The path of a webhook URL can be its credential: it is not recorded.
    assert_eq!(details.target, format!("http://{}", hook.addr));
    assert!(!ledger_text(&ws).contains("/hook/T1"));
}

#[test]
fn a_client_error_is_final_and_raising_the_notice_again_tries_again() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::statuses(&[400]);
    let ws = workspace(
        dir.path(),
        &format!("[notifications.ops]\nwebhook = \"{}\"\n", hook.url("/")),
    );
    let n = notice("event-1");
    let d = quick().send(&ws, &n).unwrap().remove(0);
    assert!(!d.ok, "{d:?}");
    assert_eq!((d.attempts, d.http_status), (1, Some(400)));
    assert_eq!(hook.requests().len(), 1, "a 400 is not retried");
    let error = d.error.unwrap();
    assert!(
        error.starts_with("HTTP 400 Bad Request: answer 0"),
        "{error}"
    );
    assert!(!error.contains('\n'));
    let (event, details) = notifications(&ws).remove(0);
    assert!(!event.ok && !details.ok);
    assert_eq!(details.error.as_deref(), Some(error.as_str()));
    assert!(
        event.summary.contains("not delivered to 'ops'"),
        "{}",
        event.summary
    );

    // A failed delivery is no delivery: the same notice is tried again, then never more.
    let again = quick().send(&ws, &n).unwrap().remove(0);
    assert!(again.ok && !again.duplicate, "{again:?}");
    let third = quick().send(&ws, &n).unwrap().remove(0);
    assert!(third.ok && third.duplicate, "{third:?}");
    assert_eq!(third.attempts, 0);
    assert_eq!(hook.requests().len(), 2);
    assert_eq!(notifications(&ws).len(), 2, "a duplicate is not recorded");
}

#[test]
fn a_notice_reaches_each_channel_once_and_a_new_one_again() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Hook::statuses(&[]), Hook::statuses(&[]));
    let heard = dir.path().join("heard.txt");
    let ws = workspace(
        dir.path(),
        &format!(
            r#"
[notifications.a]
webhook = "{}"

[notifications.b]
webhook = "{}"
on = ["backup_failed"]

[notifications.tests-only]
webhook = "{}"
on = ["restore_test_failed"]

[notifications.pager]
command = ["sh", "-c", "cat >> {}"]
"#,
            a.url("/a"),
            b.url("/b"),
            b.url("/never"),
            heard.display()
        ),
    );
    let first = notice("event-1");
    let sent = quick().send(&ws, &first).unwrap();
    let names: Vec<_> = sent.iter().map(|d| d.channel.as_str()).collect();
    assert_eq!(names, ["a", "b", "pager"], "only the channels that hear it");
    assert!(sent.iter().all(|d| d.ok && !d.duplicate), "{sent:?}");
    // The same failure told again (another process, a retrying daemon): nobody hears it twice.
    let repeat = quick().send(&ws, &notice("event-1")).unwrap();
    assert!(repeat.iter().all(|d| d.duplicate), "{repeat:?}");
    // Another failure is another notice.
    quick().send(&ws, &notice("event-2")).unwrap();
    assert_eq!(a.requests().len(), 2);
    assert_eq!(b.requests().len(), 2);
    assert!(b.requests().iter().all(|r| r.path == "/b"));
    let lines = std::fs::read_to_string(&heard).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(lines.starts_with(&first.message));
    // The key covers dataset and repository too.
    let elsewhere = notice("event-2").dataset("docs");
    assert!(
        quick()
            .send(&ws, &elsewhere)
            .unwrap()
            .iter()
            .all(|d| !d.duplicate)
    );
    let recorded = notifications(&ws);
    assert_eq!(recorded.len(), 9);
    let commands: Vec<_> = recorded
        .iter()
        .filter(|(_, d)| d.channel_kind == "command")
        .collect();
    assert_eq!(commands.len(), 3);
    assert!(
        commands
            .iter()
            .all(|(e, d)| e.ok && d.target == "sh" && d.attempts == 1)
    );
}

#[test]
fn slack_gets_text_and_blocks_with_its_characters_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::statuses(&[]);
    let ws = workspace(
        dir.path(),
        &format!(
            "[notifications.slack]\nwebhook = \"{}\"\nformat = \"slack\"\n",
            hook.url("/services/T/B/X")
        ),
    );
    let mut n = notice("event-1");
    n.message = "copy to <offsite> failed: a & b".into();
    assert!(quick().send(&ws, &n).unwrap()[0].ok);
    let body = hook.requests()[0].json();
    let text = body["text"].as_str().unwrap();
    assert_eq!(
        text,
        "bulwark: backup failed: app-db: copy to &lt;offsite&gt; failed: a &amp; b"
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("*backup failed: app-db*\ncopy to &lt;offsite&gt;"),
        "{body}"
    );
    assert_eq!(blocks[1]["type"], "context");
    let facts = blocks[1]["elements"][0]["text"].as_str().unwrap();
    assert!(facts.contains("`backup_failed`") && facts.contains("repository `primary`"));
    assert!(body.get("id").is_none(), "Slack's own shape only: {body}");
}

/// Everything logged while `f` runs, debug lines included.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer(Arc::new(Mutex::new(Vec::new())));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[test]
fn a_secret_header_reaches_the_server_and_nothing_else() {
    const TOKEN: &str = "tok-3b1e9a-never-recorded";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook.token"), format!("{TOKEN}\n")).unwrap();
    // A careless server echoing the credential in its error page.
    let hook = Hook::start(|r, n| match n {
        0 => (
            503,
            Vec::new(),
            format!("refused {}", r.header("authorization").unwrap_or("none")),
        ),
        _ => (200, Vec::new(), "ok".into()),
    });
    let ws = workspace(
        dir.path(),
        &format!(
            r#"[notifications.ops]
webhook = "{}"
headers = {{ Authorization = {{ secret_file = "hook.token", prefix = "Bearer " }}, X-Team = "ops" }}
"#,
            hook.url("/")
        ),
    );
    let (deliveries, logs) = logged(|| quick().send(&ws, &notice("event-1")).unwrap());
    assert!(
        deliveries[0].ok && deliveries[0].attempts == 2,
        "{deliveries:?}"
    );
    for r in hook.requests() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(r.header("x-team"), Some("ops"));
    }
    let (_, details) = notifications(&ws).remove(0);
    let first = details.tries[0].error.as_deref().unwrap();
    assert_eq!(first, "HTTP 503 Service Unavailable: refused [redacted]");
    assert!(
        logs.contains("try 1 failed"),
        "the retry was logged: {logs}"
    );
    for (what, text) in [("ledger", ledger_text(&ws)), ("logs", logs)] {
        assert!(!text.contains(TOKEN), "{what}: {text}");
    }

    // An unreadable secret is a failed delivery that says which file, without a try.
    std::fs::remove_file(dir.path().join("hook.token")).unwrap();
    let d = quick().send(&ws, &notice("event-2")).unwrap().remove(0);
    assert!(!d.ok && d.attempts == 0, "{d:?}");
    let error = d.error.unwrap();
    assert!(
        error.starts_with("header Authorization: secret file") && error.contains("hook.token"),
        "{error}"
    );
    assert_eq!(hook.requests().len(), 2);
}

#[test]
fn an_unreachable_webhook_is_tried_and_recorded_as_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let ws = workspace(
        dir.path(),
        &format!("[notifications.ops]\nwebhook = \"http://{addr}/hook\"\n"),
    );
    let d = quick().send(&ws, &notice("event-1")).unwrap().remove(0);
    assert!(!d.ok);
    assert_eq!((d.attempts, d.http_status), (3, None));
    let error = d.error.unwrap();
    assert_eq!(
        error,
        format!(
            "http://{addr}: cannot connect: Connection refused (os error 111) (gave up after 3 tries)"
        )
    );
    assert!(!error.contains("/hook"), "{error}");
    let (event, details) = notifications(&ws).remove(0);
    assert!(!event.ok);
    assert_eq!(details.tries.len(), 3);
}

// --- email, against a real SMTP server -------------------------------------------------------

/// aiosmtpd's controller with a handler that writes each mail, as JSON, to a directory. With
/// a user and password it requires AUTH (over plain text: the server is on loopback).
const SMTP_SERVER: &str = r#"
import json, logging, os, sys, warnings
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# AUTH without TLS is what these tests want (loopback): not worth a warning each time.
logging.getLogger("mail.log").setLevel(logging.ERROR)
warnings.simplefilter("ignore")
out, port = sys.argv[1], int(sys.argv[2])
account = tuple(sys.argv[3:5]) if len(sys.argv) > 4 else None

class Store:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Store.count += 1
        path = os.path.join(out, "%d.json" % Store.count)
        with open(path + ".tmp", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "data": envelope.content.decode("utf8", "replace")}, f)
        os.rename(path + ".tmp", path)
        return "250 OK"

def check(server, session, envelope, mechanism, auth_data):
    given = (auth_data.login.decode(), auth_data.password.decode()) \
        if isinstance(auth_data, LoginPassword) else None
    return AuthResult(success=given == account, handled=False)

options = dict(authenticator=check, auth_required=True, auth_require_tls=False) if account else {}
server = Controller(Store(), hostname="127.0.0.1", port=port, **options)
server.start()
print("ready", flush=True)
sys.stdin.read()
server.stop()
"#;

/// A Python that has aiosmtpd (Debian's package installs it for the system interpreter).
fn smtp_python() -> Option<&'static str> {
    let found = ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("BULWARK_REQUIRE_SMTP").as_deref() != Ok("1"),
            "BULWARK_REQUIRE_SMTP=1 but python3-aiosmtpd is not installed"
        );
        eprintln!("skipped: python3-aiosmtpd is not installed");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Smtp {
    child: Child,
    port: u16,
    mails: PathBuf,
}

impl Smtp {
    fn start(python: &str, dir: &Path, account: Option<(&str, &str)>) -> Smtp {
        let script = dir.join("smtp_server.py");
        std::fs::write(&script, SMTP_SERVER).unwrap();
        let mails = dir.join("mails");
        std::fs::create_dir_all(&mails).unwrap();
        let port = free_port();
        let mut c = Command::new(python);
        c.arg(&script).arg(&mails).arg(port.to_string());
        if let Some((user, password)) = account {
            c.args([user, password]);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        Smtp { child, port, mails }
    }

    fn received(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<_> = std::fs::read_dir(&self.mails)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mail_channel(port: u16, extra: &str) -> String {
    format!(
        "[notifications.mail]\nemail = {{ to = [\"oncall@example.com\", \"Backup Team <team@example.com>\"], from = \"bulwark@example.com\", smtp = \"smtp://127.0.0.1:{port}\"{extra} }}\n"
    )
}

#[test]
fn a_mail_arrives_with_its_subject_and_recipients() {
    let Some(python) = smtp_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(python, dir.path(), None);
    let ws = workspace(
        dir.path(),
        &mail_channel(smtp.port, ", starttls = \"opportunistic\""),
    );
    let n = notice("event-1");
    let d = quick().send(&ws, &n).unwrap().remove(0);
    assert!(d.ok && d.attempts == 1, "{d:?}");
    let mails = smtp.received();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m["from"], "bulwark@example.com");
    assert_eq!(
        m["to"],
        serde_json::json!(["oncall@example.com", "team@example.com"])
    );
    let data = m["data"].as_str().unwrap();
    assert!(
        data.contains("Subject: [bulwark] backup failed: app-db\r\n"),
        "{data}"
    );
    assert!(
        data.contains(&format!("Message-ID: <{}@", n.id())),
        "{data}"
    );
    assert!(
        data.contains("To: oncall@example.com, \"Backup Team\" <team@example.com>\r\n"),
        "{data}"
    );
    let (_, body) = data.split_once("\r\n\r\n").unwrap();
    assert!(body.starts_with(&n.message), "{data}");
    assert!(body.contains("dataset:    app-db"), "{data}");
    // Once per notice, here too.
    assert!(quick().send(&ws, &n).unwrap()[0].duplicate);
    assert_eq!(smtp.received().len(), 1);
    let (event, details) = notifications(&ws).remove(0);
    assert!(event.ok);
    assert_eq!(
        details.target,
        format!(
            "smtp://127.0.0.1:{} to oncall@example.com, Backup Team <team@example.com>",
            smtp.port
        )
    );
}

#[test]
fn the_smtp_password_is_sent_to_the_server_and_recorded_nowhere() {
    const PASSWORD: &str = "pw-91f2c7-never-recorded";
    let Some(python) = smtp_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("smtp.pass"), format!("{PASSWORD}\n")).unwrap();
    let smtp = Smtp::start(python, dir.path(), Some(("bulwark", PASSWORD)));
    let ws = workspace(
        dir.path(),
        &mail_channel(
            smtp.port,
            ", starttls = \"none\", username = \"bulwark\", password_file = \"smtp.pass\"",
        ),
    );
    let (d, logs) = logged(|| quick().send(&ws, &notice("event-1")).unwrap().remove(0));
    assert!(d.ok, "{d:?}");
    assert_eq!(smtp.received().len(), 1, "the server took the account");

    // A wrong password is refused for good: one try, a clear line, no password in it.
    std::fs::write(dir.path().join("smtp.pass"), "wrong-password\n").unwrap();
    let (d, more) = logged(|| quick().send(&ws, &notice("event-2")).unwrap().remove(0));
    assert!(!d.ok);
    assert_eq!(d.attempts, 1, "an authentication failure is not retried");
    let error = d.error.unwrap();
    assert!(
        error.starts_with(&format!(
            "smtp://127.0.0.1:{}: permanent error (535)",
            smtp.port
        )),
        "{error}"
    );
    assert_eq!(smtp.received().len(), 1);
    for (what, text) in [("ledger", ledger_text(&ws)), ("logs", logs + &more)] {
        assert!(!text.contains(PASSWORD), "{what}: {text}");
        assert!(!text.contains("wrong-password"), "{what}: {text}");
    }
}

#[test]
fn an_unreachable_smtp_server_is_a_recorded_failure_without_the_password() {
    const PASSWORD: &str = "pw-0c4d11-never-recorded";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("smtp.pass"), PASSWORD).unwrap();
    let port = free_port();
    let ws = workspace(
        dir.path(),
        &mail_channel(
            port,
            ", starttls = \"none\", username = \"bulwark\", password_file = \"smtp.pass\"",
        ),
    );
    let d = quick().send(&ws, &notice("event-1")).unwrap().remove(0);
    assert!(!d.ok);
    assert_eq!(d.attempts, 3, "a refused connection is tried again");
    let error = d.error.unwrap();
    assert!(
        error.starts_with(&format!("smtp://127.0.0.1:{port}: Connection error"))
            && error.contains("refused")
            && error.ends_with("(gave up after 3 tries)"),
        "{error}"
    );
    assert!(!error.contains('\n'));
    let (event, details) = notifications(&ws).remove(0);
    assert!(!event.ok && !details.ok);
    assert_eq!(details.tries.len(), 3);
    assert!(!ledger_text(&ws).contains(PASSWORD));
}

#[test]
fn starttls_required_against_a_server_without_tls_fails_clearly() {
    let Some(python) = smtp_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(python, dir.path(), None);
    // `starttls` is "required" unless the file says otherwise.
    let ws = workspace(dir.path(), &mail_channel(smtp.port, ""));
    let d = quick().send(&ws, &notice("event-1")).unwrap().remove(0);
    assert!(!d.ok);
    assert_eq!(d.attempts, 1);
    assert_eq!(
        d.error.as_deref(),
        Some(
            format!(
                "smtp://127.0.0.1:{}: the server does not offer STARTTLS, which starttls = \"required\" demands; nothing was sent",
                smtp.port
            )
            .as_str()
        )
    );
    assert!(smtp.received().is_empty());
}
