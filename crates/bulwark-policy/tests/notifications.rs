//! `[notifications.NAME]`: the three channel kinds as written in a policy file, their defaults,
//! and every refusal, located at the key that is wrong.

use bulwark_policy::config::{
    Channel, Config, HeaderValue, NotifyEvent, SmtpSecurity, StartTls, WebhookFormat,
};

fn parse(text: &str) -> Config {
    Config::parse("bulwark.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

/// The error for `text`, and the line (1-based) of the first line containing `marker`.
fn refused(text: &str, marker: &str) -> (String, usize, usize) {
    let e = Config::parse("bulwark.toml", text).expect_err(text);
    let line = text
        .lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in {text}"))
        + 1;
    (e.to_string(), e.line, line)
}

fn assert_refused(text: &str, marker: &str, says: &str) {
    let (message, at, expected) = refused(text, marker);
    assert!(message.contains(says), "{message}");
    assert_eq!(at, expected, "{message}");
    assert!(
        message.starts_with(&format!("bulwark.toml:{expected}:")),
        "{message}"
    );
}

#[test]
fn each_channel_kind_parses_with_its_settings() {
    let c = parse(
        r#"
[notifications.pager]
command = ["/usr/local/bin/page", "--team", "ops"]
on = ["backup_failed", "rpo_breached"]

[notifications.slack]
webhook = "https://hooks.example.com/services/T1/B2"
format = "slack"
headers = { Authorization = { secret_file = "slack.token", prefix = "Bearer " }, X-Team = "ops" }

[notifications.local]
webhook = "http://127.0.0.1:8080/hook"

[notifications.mail]
email = { to = ["oncall@example.com", "Backup Team <backups@example.com>"], from = "bulwark@example.com", smtp = "smtp://mail.example.com", username = "bulwark", password_file = "smtp.pass" }

[notifications.relay]
email = { to = ["ops@example.com"], from = "bulwark@example.com", smtp = "smtp://127.0.0.1:2525", starttls = "none", username = "u", password_file = "p" }

[notifications.tls]
email = { to = ["ops@example.com"], from = "bulwark@example.com", smtp = "smtps://mail.example.com" }

[notifications.table]
on = ["rpo_at_risk"]
[notifications.table.email]
to = ["ops@example.com"]
from = "bulwark@example.com"
smtp = "smtp://[::1]:2525"
starttls = "opportunistic"
"#,
    );
    let n = &c.notifications;
    assert_eq!(
        n["pager"].channel,
        Channel::Command(vec![
            "/usr/local/bin/page".into(),
            "--team".into(),
            "ops".into()
        ])
    );
    assert_eq!(
        n["pager"].on,
        [NotifyEvent::BackupFailed, NotifyEvent::RpoBreached]
    );
    assert!(n["pager"].hears(NotifyEvent::RpoBreached));
    assert!(!n["pager"].hears(NotifyEvent::JobStuck));

    let Channel::Webhook(w) = &n["slack"].channel else {
        panic!("{:?}", n["slack"].channel)
    };
    assert_eq!(w.format, WebhookFormat::Slack);
    assert_eq!(
        w.headers["Authorization"],
        HeaderValue::SecretFile {
            path: "slack.token".into(),
            prefix: "Bearer ".into()
        }
    );
    assert_eq!(w.headers["X-Team"], HeaderValue::Plain("ops".into()));
    // A channel without `on` hears everything, the daemon's events too.
    assert_eq!(n["slack"].on, NotifyEvent::ALL);
    let Channel::Webhook(local) = &n["local"].channel else {
        panic!()
    };
    assert_eq!(local.format, WebhookFormat::Json);
    assert!(local.headers.is_empty());

    let Channel::Email(m) = &n["mail"].channel else {
        panic!("{:?}", n["mail"].channel)
    };
    assert_eq!(m.to.len(), 2);
    assert_eq!((m.host.as_str(), m.port), ("mail.example.com", 587));
    assert_eq!(m.security, SmtpSecurity::StartTls(StartTls::Required));
    assert_eq!(m.password_file.as_deref(), Some("smtp.pass"));
    let Channel::Email(relay) = &n["relay"].channel else {
        panic!()
    };
    assert_eq!((relay.host.as_str(), relay.port), ("127.0.0.1", 2525));
    assert_eq!(relay.security, SmtpSecurity::StartTls(StartTls::None));
    let Channel::Email(tls) = &n["tls"].channel else {
        panic!()
    };
    assert_eq!((tls.port, tls.security), (465, SmtpSecurity::ImplicitTls));
    let Channel::Email(table) = &n["table"].channel else {
        panic!()
    };
    assert_eq!((table.host.as_str(), table.port), ("::1", 2525));
    assert_eq!(
        table.security,
        SmtpSecurity::StartTls(StartTls::Opportunistic)
    );
    assert_eq!(n["table"].on, [NotifyEvent::RpoAtRisk]);
    for (name, kind) in [
        ("pager", "command"),
        ("slack", "webhook"),
        ("mail", "email"),
    ] {
        assert_eq!(n[name].channel.kind(), kind);
    }
}

#[test]
fn every_event_has_a_name_that_parses_back() {
    for e in NotifyEvent::ALL {
        assert_eq!(NotifyEvent::parse(e.as_str()), Some(e));
        assert_eq!(
            serde_json::to_value(e).unwrap(),
            serde_json::Value::from(e.as_str())
        );
    }
    for daemon in [
        "rpo_at_risk",
        "rpo_breached",
        "replica_lagging",
        "job_stuck",
    ] {
        assert!(NotifyEvent::parse(daemon).is_some(), "{daemon}");
    }
    let text = "[notifications.x]\ncommand = [\"true\"]\non = [\"backup_failed\", \"rpo_late\"]\n";
    let (message, line, _) = refused(text, "rpo_late");
    assert_eq!(line, 3);
    assert!(
        message.contains("unknown event 'rpo_late'") && message.contains("job_stuck"),
        "{message}"
    );
}

#[test]
fn webhooks_are_refused_where_they_would_leak_or_cannot_work() {
    let hook = |rest: &str| format!("[notifications.hook]\n{rest}\n");
    assert_refused(
        &hook("webhook = \"http://hooks.example.com/x\""),
        "webhook =",
        "plain http",
    );
    // Plain http is for loopback, or on purpose.
    for ok in [
        "webhook = \"http://localhost:9000/x\"",
        "webhook = \"http://[::1]:9000/x\"",
        "webhook = \"http://127.0.0.2/x\"",
        "webhook = \"http://hooks.example.com/x\"\nallow_http = true",
    ] {
        parse(&hook(ok));
    }
    assert_refused(
        &hook("webhook = \"https://user:pw@hooks.example.com/x\""),
        "webhook =",
        "credentials do not belong in the URL",
    );
    assert_refused(
        &hook("webhook = \"ftp://hooks.example.com/x\""),
        "webhook =",
        "not ftp://",
    );
    assert_refused(&hook("webhook = \"hooks/x\""), "webhook =", "not a URL");
    assert_refused(
        &hook("webhook = \"https://h.example.com/\"\nformat = \"teams\""),
        "format =",
        "teams",
    );
    assert_refused(
        &hook("webhook = \"https://h.example.com/\"\nheaders = { \"Bad Name\" = \"x\" }"),
        "headers =",
        "headers.Bad Name: not a valid header name",
    );
    assert_refused(
        &hook("webhook = \"https://h.example.com/\"\nheaders = { X-A = \"one\\ntwo\" }"),
        "headers =",
        "printable ASCII",
    );
    assert_refused(
        &hook("webhook = \"https://h.example.com/\"\nheaders = { X-A = { secret = \"t\" } }"),
        "headers =",
        "secret_file",
    );
    assert_refused(
        &hook("webhook = \"https://h.example.com/\"\nheaders = { X-A = 3 }"),
        "headers =",
        "expected a string",
    );
    assert_refused(
        &hook("command = [\"true\"]\nformat = \"slack\""),
        "format =",
        "only a webhook channel takes `format`",
    );
    assert_refused(
        &hook("command = [\"true\"]\nwebhook = \"https://h.example.com/\""),
        "[notifications.hook]",
        "not command and webhook",
    );
    assert_refused(&hook("on = []"), "[notifications.hook]", "give `command");
    assert_refused(
        &hook("command = []"),
        "[notifications.hook]",
        "give the program",
    );
}

#[test]
fn email_channels_are_refused_where_they_would_leak_or_cannot_work() {
    let mail = |fields: &str| {
        format!(
            "[notifications.mail]\nemail = {{ to = [\"ops@example.com\"], from = \"b@example.com\", {fields} }}\n"
        )
    };
    let marker = "email =";
    assert_refused(
        &mail(
            "smtp = \"smtp://mail.example.com\", starttls = \"none\", username = \"u\", password_file = \"p\"",
        ),
        marker,
        "password would cross the network unencrypted",
    );
    assert_refused(
        &mail(
            "smtp = \"smtp://mail.example.com\", starttls = \"opportunistic\", username = \"u\", password_file = \"p\"",
        ),
        marker,
        "unencrypted",
    );
    assert_refused(
        &mail("smtp = \"smtps://mail.example.com\", starttls = \"required\""),
        marker,
        "drop `starttls`",
    );
    assert_refused(
        &mail("smtp = \"smtp://mail.example.com\", starttls = \"sometimes\""),
        marker,
        "sometimes",
    );
    assert_refused(
        &mail("smtp = \"http://mail.example.com\""),
        marker,
        "not http://",
    );
    assert_refused(
        &mail("smtp = \"smtp://u:pw@mail.example.com\""),
        marker,
        "the account goes in `username`",
    );
    assert_refused(
        &mail("smtp = \"smtp://mail.example.com\", username = \"u\""),
        marker,
        "`username` needs `password_file`",
    );
    assert_refused(
        &mail("smtp = \"smtp://mail.example.com\", password_file = \"p\""),
        marker,
        "needs its `username`",
    );
    assert_refused(
        &mail("smtp = \"smtp://mail.example.com\", cc = [\"x@example.com\"]"),
        marker,
        "cc",
    );
    let bad_to = "[notifications.mail]\nemail = { to = [], from = \"b@example.com\", smtp = \"smtp://m.example.com\" }\n";
    assert_refused(bad_to, marker, "email.to: name at least one recipient");
    for (address, says) in [
        ("nobody", "no `@domain`"),
        ("a b@example.com", "not a mailbox name"),
        ("ops@exa mple.com", "not a domain"),
        ("Ops <ops@example.com", "not a mailbox name"),
    ] {
        let text = format!(
            "[notifications.mail]\nemail = {{ to = [\"ok@example.com\", \"{address}\"], from = \"b@example.com\", smtp = \"smtp://m.example.com\" }}\n"
        );
        assert_refused(&text, marker, says);
    }
    let bad_from = "[notifications.mail]\nemail = { to = [\"ops@example.com\"], from = \"bulwark\", smtp = \"smtp://m.example.com\" }\n";
    assert_refused(bad_from, marker, "email.from: no `@domain`");
}
