//! Webhook channels: one HTTP POST of the notice per try, `application/json`, as a JSON object
//! (`format = "json"`: the notice with its stable `id` and `key`) or a Slack-compatible message
//! (`format = "slack"`: `text` and `blocks`). Any 2xx is a delivery. Redirects are not followed
//! (the headers could go to another host); a 4xx other than 429 is final; 429, 5xx, timeouts and
//! connection failures are tried again. A loopback URL is reached directly, never through a proxy.

use std::io::Read;
use std::time::Duration;

use bulwark_policy::config::{HeaderValue as Value, Webhook, WebhookFormat};
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde::Serialize;

use super::{Attempt, Failure, Notice, read_secret};
use crate::workspace::Workspace;

/// How much of a refusal's body is kept for the error.
const BODY_EXCERPT: u64 = 300;

pub(super) struct Post {
    client: Client,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Vec<u8>,
    secrets: Vec<String>,
    timeout: Duration,
}

/// `scheme://host:port` of a URL: where a webhook goes, without the path that may be secret.
pub(super) fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "(not a URL)".into(),
    }
}

#[derive(Serialize)]
struct JsonBody<'a> {
    id: String,
    key: String,
    title: &'a str,
    host: &'a str,
    #[serde(flatten)]
    notice: &'a Notice,
}

/// Slack's mrkdwn reserves these three.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack_body(notice: &Notice, host: &str) -> serde_json::Value {
    let mut facts = vec![format!("`{}`", notice.event.as_str())];
    if let Some(r) = &notice.repository {
        facts.push(format!("repository `{}`", slack_escape(r)));
    }
    facts.push(format!("host `{}`", slack_escape(host)));
    facts.push(notice.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    serde_json::json!({
        "text": slack_escape(&format!("bulwark: {}: {}", notice.headline(), notice.message)),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": format!("*{}*\n{}", slack_escape(&notice.headline()), slack_escape(&notice.message)),
                }
            },
            {
                "type": "context",
                "elements": [{ "type": "mrkdwn", "text": facts.join(" · ") }]
            }
        ]
    })
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Post {
    pub(super) fn prepare(
        ws: &Workspace,
        hook: &Webhook,
        notice: &Notice,
        timeout: Duration,
    ) -> Result<Post, Failure> {
        let url = reqwest::Url::parse(&hook.url)
            .map_err(|e| Failure::permanent(format!("not a URL: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut secrets = Vec::new();
        for (name, value) in &hook.headers {
            let bad = |what: &str| Failure::permanent(format!("header {name}: {what}"));
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad("not a valid header name"))?;
            let (text, secret) = match value {
                Value::Plain(v) => (v.clone(), false),
                Value::SecretFile { path, prefix } => {
                    let token = read_secret(ws, path).map_err(|f| bad(&f.message))?;
                    let full = format!("{prefix}{token}");
                    secrets.push(full.clone());
                    secrets.push(token);
                    (full, true)
                }
            };
            let mut value = HeaderValue::from_str(&text)
                .map_err(|_| bad("the value is not a valid header value"))?;
            value.set_sensitive(secret);
            headers.insert(header, value);
        }
        let body = match hook.format {
            WebhookFormat::Json => serde_json::to_vec(&JsonBody {
                id: notice.id(),
                key: notice.key(),
                title: notice.event.title(),
                host: ws.host(),
                notice,
            }),
            WebhookFormat::Slack => serde_json::to_vec(&slack_body(notice, ws.host())),
        }
        .expect("a notice serialises");
        let mut client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bulwark/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&url) {
            client = client.no_proxy();
        }
        let client = client
            .build()
            .map_err(|e| Failure::permanent(format!("no HTTP client: {}", causes(&e))))?;
        Ok(Post {
            client,
            url,
            headers,
            body,
            secrets,
            timeout,
        })
    }
}

/// An error and its causes, on one line, without the URL.
fn causes(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// The cause at the bottom of an error: "Connection refused (os error 111)".
fn innermost(e: &reqwest::Error) -> String {
    let mut err: &dyn std::error::Error = e;
    while let Some(next) = err.source() {
        err = next;
    }
    err.to_string()
}

impl Attempt for Post {
    fn target(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    fn secrets(&self) -> &[String] {
        &self.secrets
    }

    fn attempt(&self) -> Result<Option<u16>, Failure> {
        let sent = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(self.body.clone())
            .send();
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let origin = self.target();
                let e = e.without_url();
                return Err(Failure::transient(if e.is_timeout() {
                    format!("{origin}: no answer within {}s", self.timeout.as_secs_f64())
                } else if e.is_connect() {
                    format!("{origin}: cannot connect: {}", innermost(&e))
                } else {
                    format!("{origin}: {}", causes(&e))
                }));
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(Some(status.as_u16()));
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut excerpt = Vec::new();
        let _ = response.take(BODY_EXCERPT).read_to_end(&mut excerpt);
        let excerpt = String::from_utf8_lossy(&excerpt);
        let excerpt = excerpt.trim();
        let mut message = format!("HTTP {status}");
        if status.is_redirection() {
            message.push_str(": redirects are not followed; give the final URL");
        } else if !excerpt.is_empty() {
            message.push_str(&format!(": {excerpt}"));
        }
        let failure = match status.as_u16() {
            429 => match retry_after {
                Some(wait) => Failure::transient(message).after(wait),
                None => Failure::transient(message),
            },
            500..=599 => Failure::transient(message),
            _ => Failure::permanent(message),
        };
        Err(failure.status(status.as_u16()))
    }
}
