//! Server-rendered pages (maud): the operators' dashboard, and the public status page. One inline
//! style sheet, SVG charts, no script and nothing fetched from anywhere. Verdicts carry
//! `data-verdict` attributes, so what a page shows can be compared with `status --json`.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bulwark_policy::compliance::Verdict;
use chrono::Duration;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use super::api::current;
use super::charts;
use super::{COOKIE, Caller, HttpState};
use crate::view::{ComponentState, HISTORY_DAYS, View};

const STYLE: &str = r#"
:root { --met: #1a7f37; --risk: #b35900; --breach: #c62828; --ink: #1d2330; --muted: #5c6370; --line: #d8dce3; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 0; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 12px 24px; display: flex; gap: 24px; align-items: baseline; }
header a { color: #dfe6f3; text-decoration: none; } header a:hover { text-decoration: underline; }
header .brand { font-weight: 700; font-size: 17px; color: #fff; }
main { padding: 20px 24px; max-width: 1100px; }
h1 { font-size: 22px; margin: 4px 0 16px; } h2 { font-size: 17px; margin: 24px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef0f4; font-weight: 600; font-size: 13px; }
.verdict { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; }
.met { background: var(--met); } .at_risk { background: var(--risk); } .breached { background: var(--breach); }
.operational { background: var(--met); } .degraded { background: var(--risk); } .outage { background: var(--breach); }
.muted { color: var(--muted); } .empty { color: var(--muted); font-style: italic; }
.chart { width: 100%; max-width: 720px; background: #fff; border: 1px solid var(--line); }
.chart .axis { stroke: #8a919c; } .chart .grid { stroke: #eceef2; } .chart .limit { stroke: var(--breach); stroke-dasharray: 5 4; }
.chart .series { fill: none; stroke: #2f6fde; stroke-width: 2; } .chart .tick { font-size: 11px; fill: var(--muted); }
.chart .bar.pass { fill: var(--met); } .chart .bar.fail { fill: var(--breach); } .chart .dot { fill: #2f6fde; }
form.inline { display: inline; } button { font: inherit; padding: 4px 12px; }
code { font-size: 13px; }
@media print { header { display: none; } body { background: #fff; } }
"#;

fn word(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "met",
        Verdict::AtRisk => "at_risk",
        Verdict::Breached => "breached",
    }
}

fn badge(v: Verdict) -> Markup {
    html! { span class=(format!("verdict {}", word(v))) data-verdict=(word(v)) { (word(v).replace('_', " ")) } }
}

fn page(title: &str, nav: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Bulwark" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    span.brand { "Bulwark" }
                    @if nav {
                        a href="/" { "Overview" }
                        a href="/ledger" { "Ledger" }
                        a href="/jobs" { "Jobs" }
                        a href="/status" { "Status page" }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn starting() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        page("Starting", false, html! { h1 { "Starting" } p { "The first status is being computed; reload in a moment." } }),
    )
        .into_response()
}

pub async fn overview(State(state): State<Arc<HttpState>>) -> Response {
    let Ok(view) = current(&state) else {
        return starting();
    };
    page("Overview", true, overview_body(&view)).into_response()
}

fn overview_body(view: &View) -> Markup {
    let s = &view.status;
    html! {
        h1 { "Where the commitments stand " (badge(s.verdict)) }
        p.muted { "as of " (s.at.format("%Y-%m-%d %H:%M:%S UTC")) }
        (super::evidence::evidence_button(s.at))
        table #datasets {
            thead { tr { th { "dataset" } th { "tier" } th { "verdict" } th { "reason" } th { "commitments" } } }
            tbody {
                @for (name, d) in &s.datasets {
                    tr data-dataset=(name) {
                        td { a href=(format!("/datasets/{name}")) { (name) } }
                        td { (format!("{:?}", d.status.tier).to_lowercase()) }
                        td { (badge(d.status.verdict)) }
                        td { (d.status.reason) }
                        td {
                            @for a in &d.status.aspects {
                                span title=(format!("{}: target {}, actual {}", a.name, a.target, a.actual)) data-aspect=(a.name) {
                                    (a.name) " " (badge(a.verdict)) " "
                                }
                            }
                        }
                    }
                }
                tr data-dataset="ledger" {
                    td { a href="/ledger" { "ledger" } }
                    td { "evidence" }
                    td { (badge(s.ledger.verdict)) }
                    td { (s.ledger.reason) }
                    td {}
                }
            }
        }
        @if !s.unreachable.is_empty() {
            h2 { "Unreachable" }
            ul { @for u in &s.unreachable { li { (u) } } }
        }
    }
}

pub async fn dataset(State(state): State<Arc<HttpState>>, Path(name): Path<String>) -> Response {
    let Ok(view) = current(&state) else {
        return starting();
    };
    let (Some(d), Some(st)) = (view.datasets.get(&name), view.status.datasets.get(&name)) else {
        return (
            StatusCode::NOT_FOUND,
            page(
                "Not found",
                true,
                html! { h1 { "No dataset " code { (name) } } },
            ),
        )
            .into_response();
    };
    let to = view.at;
    let from = to - Duration::days(HISTORY_DAYS);
    let mut repos = vec![d.repository.clone()];
    repos.extend(d.replicas.iter().map(|r| r.repository.clone()));
    let body = html! {
        h1 { (name) " " (badge(st.status.verdict)) }
        p { (st.status.reason) }
        p.muted { "tier " (format!("{:?}", d.tier).to_lowercase()) " · repository " code { (d.repository) } " · schedule " code { (d.schedule) } }
        form.inline method="post" action=(format!("/datasets/{name}/run")) { button type="submit" { "Run now" } }
        h2 { "Commitments" }
        table {
            thead { tr { th { "commitment" } th { "verdict" } th { "target" } th { "actual" } th { "reason" } } }
            tbody {
                @for a in &st.status.aspects {
                    tr data-aspect=(a.name) { td { (a.name) } td { (badge(a.verdict)) } td { (a.target) } td { (a.actual) } td { (a.reason) } }
                }
            }
        }
        h2 { "Snapshots, last " (HISTORY_DAYS) " days" }
        (charts::timeline(&d.snapshots, &repos, from, to))
        h2 { "Recovery-point exposure" }
        (charts::exposure(&d.exposure, d.rpo_seconds, "age of the newest backup against the RPO"))
        h2 { "Restore tests" }
        (charts::restore_tests(&d.restore_tests, d.rto_seconds, "measured restore time against the RTO"))
        @if !d.restore_tests.is_empty() {
            table {
                thead { tr { th { "finished" } th { "result" } th { "duration" } th { "checks" } } }
                tbody {
                    @for t in d.restore_tests.iter().rev().take(10) {
                        tr {
                            td { (t.time.format("%Y-%m-%d %H:%M UTC")) }
                            td { @if t.passed { span.verdict.met { "passed" } } @else { span.verdict.breached { "failed" } } }
                            td { (format!("{:.1}s", t.duration_s)) @if let Some(s) = &t.sample { br; span.muted { "sampled " (s.files_tested) " of " (s.files_total) " files" } } }
                            td { @for c in &t.checks { div { (if c.passed { "✓ " } else { "✗ " }) (c.name) ": " span.muted { (c.detail) } } } }
                        }
                    }
                }
            }
        }
        h2 { "Off-site copies" }
        @if d.replicas.is_empty() { p.empty { "no replica" } } @else {
            table {
                thead { tr { th { "replica" } th { "region" } th { "newest" } th { "behind the primary" } } }
                tbody {
                    @for r in &d.replicas {
                        tr {
                            td { (r.repository) }
                            td { (r.region.as_deref().unwrap_or("-")) }
                            td { (r.newest.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "none".into())) }
                            td { (r.lag_seconds.map(|s| format!("{:.0}s", s)).unwrap_or_else(|| "-".into())) }
                        }
                    }
                }
            }
        }
        h2 { "Remediation items" }
        @if d.remediations.is_empty() { p.empty { "none" } } @else {
            table {
                thead { tr { th { "opened" } th { "reason" } th { "state" } } }
                tbody {
                    @for r in &d.remediations {
                        tr { td { (r.opened_at.format("%Y-%m-%d %H:%M UTC")) } td { (r.reason) } td { @if r.is_open() { "open" } @else { "closed" } } }
                    }
                }
            }
        }
    };
    page(&name, true, body).into_response()
}

pub async fn ledger(State(state): State<Arc<HttpState>>) -> Response {
    let Ok(view) = current(&state) else {
        return starting();
    };
    let l = &view.status.ledger;
    let body = html! {
        h1 { "Ledger " (badge(l.verdict)) }
        p { (l.reason) }
        p.muted { code { (l.location) } " · " (l.head.seq) " events · head " code { (&l.head.id[..l.head.id.len().min(16)]) } }
        h2 { "Copies in the repositories" }
        table {
            thead { tr { th { "repository" } th { "snapshot" } th { "agreement" } } }
            tbody {
                @for c in &l.copies {
                    tr { td { (c.repository) } td { (c.snapshot_id.as_deref().map(|s| &s[..8]).unwrap_or("-")) } td { (bulwark_app::status::describe(c)) } }
                }
            }
        }
        @if !l.problems.is_empty() {
            h2 { "Problems" }
            ul { @for p in &l.problems { li { (p.to_string()) } } }
        }
    };
    page("Ledger", true, body).into_response()
}

pub async fn jobs(State(state): State<Arc<HttpState>>) -> Response {
    let d = &state.daemon;
    let running = d.jobs.running();
    let recent = d.jobs.recent();
    let body = html! {
        h1 { "Jobs" }
        p.muted { "node " code { (d.node) } @if d.draining() { " · stopping" } }
        h2 { "Running" }
        @if running.is_empty() { p.empty { "none" } } @else {
            table { tbody { @for j in &running { tr { td { (j.dataset) } td { (j.trigger) } td { "since " (j.started.format("%H:%M:%S UTC")) } } } } }
        }
        h2 { "Recent" }
        @if recent.is_empty() { p.empty { "none yet" } } @else {
            table {
                thead { tr { th { "dataset" } th { "trigger" } th { "finished" } th { "result" } } }
                tbody {
                    @for j in recent.iter().take(50) {
                        tr {
                            td { (j.dataset) } td { (j.trigger) }
                            td { (j.finished.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default()) }
                            td { (j.summary.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    page("Jobs", true, body).into_response()
}

/// `POST /datasets/{name}/run` from the dashboard's button.
pub async fn run_now(
    state: State<Arc<HttpState>>,
    caller: Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    let r = super::api::run(state, caller, Path(name.clone())).await;
    if r.status().is_success() {
        Redirect::to(&format!("/datasets/{name}")).into_response()
    } else {
        r
    }
}

fn state_word(s: ComponentState) -> &'static str {
    match s {
        ComponentState::Operational => "operational",
        ComponentState::Degraded => "degraded",
        ComponentState::Outage => "outage",
    }
}

/// The customers' page: components and their state, nothing internal.
pub async fn status_page(State(state): State<Arc<HttpState>>) -> Response {
    let Ok(view) = current(&state) else {
        return starting();
    };
    let body = html! {
        h1 { "Service status" }
        p.muted { "updated " (view.at.format("%Y-%m-%d %H:%M UTC")) }
        @if view.components.is_empty() {
            p.empty { "No services are listed." }
        } @else {
            table #components {
                tbody {
                    @for c in &view.components {
                        tr data-component=(c.name) {
                            td { strong { (c.name) } @if let Some(d) = &c.description { br; span.muted { (d) } } }
                            td { span class=(format!("verdict {}", state_word(c.state))) data-state=(state_word(c.state)) { (state_word(c.state)) } }
                        }
                    }
                }
            }
        }
        h2 { "Incidents" }
        p.empty { "No incidents reported." }
    };
    page("Status", false, body).into_response()
}

pub fn login_page(failed: bool) -> Markup {
    page(
        "Sign in",
        false,
        html! {
            h1 { "Sign in" }
            @if failed { p { "A token is needed to see this page." } }
            form method="post" action="/login" {
                label { "API token " input type="password" name="token" autocomplete="off" required; }
                " " button type="submit" { "Sign in" }
            }
            p.muted { "The token is in the file `bulwark serve` printed at start." }
        },
    )
}

pub async fn login_form() -> Markup {
    login_page(false)
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// Keep a valid token in an HttpOnly, SameSite=Strict cookie.
pub async fn login(State(state): State<Arc<HttpState>>, Form(f): Form<Login>) -> Response {
    if state.tokens.holder(&f.token).is_none() {
        return (StatusCode::UNAUTHORIZED, login_page(true)).into_response();
    }
    let secure = if state.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}",
        f.token
    );
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub async fn logout() -> Response {
    let mut r = Redirect::to("/status").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("bulwark_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"),
    );
    r
}
