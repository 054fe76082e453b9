//! Email channels: one plain-text mail per notice through the channel's SMTP server (lettre,
//! TLS by rustls). The subject is the event and what it is about ("[bulwark] backup failed:
//! app-db"); the body is the message, then the facts. The Message-ID is made of the notice's
//! stable id, so a mail client can tell a repeat. `starttls = "required"` refuses a server that
//! does not offer STARTTLS; a password is only sent over TLS unless the server is on loopback
//! (the policy file refuses anything else). A permanent SMTP reply (5xx) is final; transient
//! replies (4xx), timeouts and connection failures are tried again.

use std::time::Duration;

use bulwark_policy::config::{Email, SmtpSecurity, StartTls};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{SmtpTransport, Transport};

use super::{Attempt, Failure, Notice, read_secret};
use crate::workspace::Workspace;

pub(super) struct Mail {
    transport: SmtpTransport,
    message: Message,
    target: String,
    requires_starttls: bool,
    secrets: Vec<String>,
}

/// `smtp://host:port to a@x, b@y`: where a mail goes.
pub(super) fn target(mail: &Email) -> String {
    let scheme = match mail.security {
        SmtpSecurity::ImplicitTls => "smtps",
        SmtpSecurity::StartTls(_) => "smtp",
    };
    let host = if mail.host.contains(':') {
        format!("[{}]", mail.host)
    } else {
        mail.host.clone()
    };
    format!("{scheme}://{host}:{} to {}", mail.port, mail.to.join(", "))
}

/// This host as a domain for EHLO and the Message-ID (a name with other characters, or none,
/// becomes `localhost`).
fn domain_of(host: &str) -> String {
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        host.to_string()
    } else {
        "localhost".into()
    }
}

fn body(notice: &Notice, host: &str) -> String {
    let mut text = format!("{}\n\n", notice.message);
    let mut fact = |k: &str, v: &str| text.push_str(&format!("{k:<11} {v}\n"));
    fact("event:", notice.event.as_str());
    if let Some(d) = &notice.dataset {
        fact("dataset:", d);
    }
    if let Some(r) = &notice.repository {
        fact("repository:", r);
    }
    fact("host:", host);
    fact("at:", &notice.at.to_rfc3339());
    fact("id:", &notice.id());
    text
}

impl Mail {
    pub(super) fn prepare(
        ws: &Workspace,
        mail: &Email,
        notice: &Notice,
        timeout: Duration,
    ) -> Result<Mail, Failure> {
        let mailbox = |m: &str, role: &str| {
            m.parse::<Mailbox>()
                .map_err(|e| Failure::permanent(format!("{role} '{m}': {e}")))
        };
        let domain = domain_of(ws.host());
        let mut builder = Message::builder()
            .from(mailbox(&mail.from, "from")?)
            .subject(format!("[bulwark] {}", notice.headline()))
            .message_id(Some(format!("<{}@{domain}>", notice.id())))
            .header(ContentType::TEXT_PLAIN);
        for to in &mail.to {
            builder = builder.to(mailbox(to, "to")?);
        }
        let message = builder
            .body(body(notice, ws.host()))
            .map_err(|e| Failure::permanent(format!("cannot write the mail: {e}")))?;
        let tls = || {
            TlsParameters::new(mail.host.clone())
                .map_err(|e| Failure::permanent(format!("cannot set up TLS: {e}")))
        };
        let tls = match mail.security {
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls()?),
            SmtpSecurity::StartTls(StartTls::Required) => Tls::Required(tls()?),
            SmtpSecurity::StartTls(StartTls::Opportunistic) => Tls::Opportunistic(tls()?),
            SmtpSecurity::StartTls(StartTls::None) => Tls::None,
        };
        let mut transport = SmtpTransport::builder_dangerous(mail.host.clone())
            .port(mail.port)
            .tls(tls)
            .timeout(Some(timeout))
            .hello_name(ClientId::Domain(domain));
        let mut secrets = Vec::new();
        if let (Some(user), Some(file)) = (&mail.username, &mail.password_file) {
            let password = read_secret(ws, file)?;
            secrets.push(password.clone());
            transport = transport.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Mail {
            transport: transport.build(),
            message,
            target: target(mail),
            requires_starttls: mail.security == SmtpSecurity::StartTls(StartTls::Required),
            secrets,
        })
    }
}

impl Attempt for Mail {
    fn target(&self) -> String {
        self.target.clone()
    }

    fn secrets(&self) -> &[String] {
        &self.secrets
    }

    fn attempt(&self) -> Result<Option<u16>, Failure> {
        let e = match self.transport.send(&self.message) {
            Ok(_) => return Ok(None),
            Err(e) => e,
        };
        let server = self.target.split(" to ").next().unwrap_or_default();
        let message = format!("{server}: {e}");
        Err(
            if e.is_client() && self.requires_starttls && message.contains("STARTTLS") {
                Failure::permanent(format!(
                    "{server}: the server does not offer STARTTLS, which starttls = \"required\" demands; nothing was sent"
                ))
            } else if e.is_permanent() || e.is_client() || e.is_tls() {
                Failure::permanent(message)
            } else {
                Failure::transient(message)
            },
        )
    }
}
