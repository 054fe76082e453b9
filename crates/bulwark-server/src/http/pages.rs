//! Server-rendered pages (maud): the operators' dashboard, and the public status page. One inline
//! style sheet, SVG charts, no script and nothing fetched from anywhere; every page prints on
//! paper (navigation and buttons hidden, badges keep their words). Verdicts carry `data-verdict`
//! attributes (rows `data-dataset`, commitments `data-aspect`, components `data-component` and
//! `data-state`), so what a page shows can be compared with `status --json`.

use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bulwark_app::ledger_copy::CopyCheck;
use bulwark_policy::compliance::{Aspect, Verdict};
use chrono::{DateTime, Duration, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use super::api::current;
use super::charts::{self, span};
use super::{COOKIE, Caller, HttpState};
use crate::jobs::Job;
use crate::view::{ComponentState, HISTORY_DAYS, Incident, IncidentState, StatusPage, View};

const STYLE: &str = r#"
:root { --met: #1a7f37; --risk: #9a4d00; --breach: #c62828; --ink: #1d2330; --muted: #5c6370;
  --line: #d8dce3; --paper: #fff; --ground: #f4f5f7; --accent: #2f5fb3; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  margin: 0; background: var(--ground); }
header { background: var(--ink); color: #fff; padding: 10px 24px; display: flex; flex-wrap: wrap;
  gap: 6px 22px; align-items: center; }
header a { color: #dfe6f3; text-decoration: none; } header a:hover, header a[aria-current] { color: #fff; text-decoration: underline; }
header .brand { font-weight: 700; font-size: 17px; color: #fff; margin-right: 8px; }
header form { margin-left: auto; }
header button { background: transparent; color: #dfe6f3; border: 1px solid #5c6478; border-radius: 4px; }
main { padding: 18px 24px 40px; max-width: 1180px; }
h1 { font-size: 22px; margin: 4px 0 6px; } h2 { font-size: 17px; margin: 28px 0 8px; }
h1 .verdict { vertical-align: 3px; }
p { margin: 6px 0; }
a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; background: var(--paper); border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eceff3; font-weight: 600; font-size: 13px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.worse td:first-child { box-shadow: inset 4px 0 var(--risk); }
tr.bad td:first-child { box-shadow: inset 4px 0 var(--breach); }
.verdict { display: inline-block; padding: 1px 9px; border-radius: 10px; color: #fff; font-size: 12px;
  font-weight: 600; white-space: nowrap; print-color-adjust: exact; -webkit-print-color-adjust: exact; }
.met, .operational, .passed, .resolved { background: var(--met); }
.at_risk, .degraded, .monitoring, .identified { background: var(--risk); }
.breached, .outage, .failed, .investigating { background: var(--breach); }
.none { background: #8a919c; }
td.aspect { white-space: nowrap; } td.aspect .small { display: block; white-space: normal; max-width: 11em; }
td.reason { min-width: 16em; } td.t { white-space: nowrap; } td.name { white-space: nowrap; } .small { font-size: 12px; }
.wide { overflow-x: auto; }
#components td.state { text-align: right; width: 10em; }
.muted, .caption { color: var(--muted); } .caption { font-size: 13px; margin: 2px 0 0; }
.empty { color: var(--muted); font-style: italic; }
.facts { display: flex; flex-wrap: wrap; gap: 4px 22px; margin: 8px 0 12px; color: var(--muted); }
.facts b { color: var(--ink); font-weight: 600; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0 6px; }
.card { background: var(--paper); border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px; min-width: 150px; }
.card .n { font-size: 26px; font-weight: 700; line-height: 1.1; }
.card.met .n { color: var(--met); } .card.at_risk .n { color: var(--risk); } .card.breached .n { color: var(--breach); }
.card.met, .card.at_risk, .card.breached { background: var(--paper); }
.banner { padding: 14px 18px; border-radius: 6px; color: #fff; font-size: 18px; font-weight: 600; margin: 12px 0 18px;
  print-color-adjust: exact; -webkit-print-color-adjust: exact; }
.chart { display: block; width: 100%; max-width: 900px; height: auto; background: var(--paper); border: 1px solid var(--line); }
.chart .axis { stroke: #8a919c; } .chart .grid { stroke: #eceef2; } .chart .lane { stroke: #d8dce3; stroke-dasharray: 2 3; }
.chart .limit { stroke: var(--breach); stroke-width: 1.5; stroke-dasharray: 6 4; }
.chart .limit-label { font-size: 11px; fill: var(--breach); font-weight: 600; }
.chart .series { fill: none; stroke: var(--accent); stroke-width: 2; } .chart .series.over { stroke: var(--breach); stroke-width: 2.5; }
.chart .area { fill: var(--accent); fill-opacity: 0.08; } .chart .nodata { fill: #8a919c; fill-opacity: 0.12; }
.chart .point { fill: var(--accent); } .chart .point.over { fill: var(--breach); }
.chart .tick { font-size: 11px; fill: var(--muted); } .chart .cross { font-size: 13px; fill: var(--breach); font-weight: 700; }
.chart .bar.pass { fill: var(--met); } .chart .bar.fail { fill: var(--breach); } .chart .dot { fill: var(--accent); stroke: #fff; }
.checks { margin: 0; padding: 0; list-style: none; font-size: 13px; }
.ok::before { content: "✓ "; color: var(--met); font-weight: 700; } .no::before { content: "✗ "; color: var(--breach); font-weight: 700; }
.skip::before { content: "– "; color: var(--muted); }
form.inline { display: inline; } button { font: inherit; padding: 4px 12px; cursor: pointer; }
code, .id { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
.incident { background: var(--paper); border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px; margin: 10px 0; }
.incident ol { margin: 6px 0 0; padding-left: 18px; }
footer { color: var(--muted); font-size: 13px; margin-top: 36px; }
@media print {
  header, form, button, .noprint { display: none !important; }
  body { background: #fff; font-size: 12px; } main { padding: 0; max-width: none; }
  a { color: inherit; text-decoration: none; }
  table, .chart, .card, .incident { break-inside: avoid; }
  h2 { break-after: avoid; }
  .chart { max-width: 100%; border-color: #999; }
}
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

fn row_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "",
        Verdict::AtRisk => "worse",
        Verdict::Breached => "bad",
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// How long before `now` `t` was: `3.2h ago`.
fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_milliseconds() as f64 / 1000.0;
    if s < 1.0 {
        "just now".into()
    } else {
        format!("{} ago", span(s))
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Which part of the dashboard a page belongs to, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Overview,
    Ledger,
    Jobs,
    Incidents,
    /// Pages outside the dashboard: no navigation.
    Public,
}

pub(super) fn page(title: &str, section: Section, body: Markup) -> Markup {
    let nav = [
        (Section::Overview, "/", "Overview"),
        (Section::Ledger, "/ledger", "Ledger"),
        (Section::Jobs, "/jobs", "Jobs"),
        (Section::Incidents, "/incidents", "Incidents"),
    ];
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
                    @if section != Section::Public {
                        @for (s, href, label) in nav {
                            @if s == section { a href=(href) aria-current="page" { (label) } } @else { a href=(href) { (label) } }
                        }
                        a href="/status" { "Status page" }
                        a href="/openapi.json" { "API" }
                        form method="post" action="/logout" { button type="submit" { "Sign out" } }
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
        page(
            "Starting",
            Section::Public,
            html! { h1 { "Starting" } p { "The first status is being computed; reload in a moment." } },
        ),
    )
        .into_response()
}

/// A page saying `what` was not found.
pub fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            "Not found",
            Section::Public,
            html! { h1 { (what) } p { a href="/" { "Overview" } } },
        ),
    )
        .into_response()
}

/// One commitment in a cell of the overview: its badge and what was measured.
fn aspect_cell(a: &Aspect) -> Markup {
    html! {
        td.aspect data-aspect=(a.name) title=(format!("target {}; {}", a.target, a.reason)) {
            (badge(a.verdict)) br; span.muted.small { (a.actual) }
        }
    }
}

pub async fn overview(State(state): State<Arc<HttpState>>) -> Response {
    let Ok(view) = current(&state) else {
        return starting();
    };
    let running = state.daemon.jobs.running();
    page(
        "Overview",
        Section::Overview,
        overview_body(&view, &running, state.daemon.timing.refresh),
    )
    .into_response()
}

fn overview_body(view: &View, running: &[Job], refresh: std::time::Duration) -> Markup {
    let s = &view.status;
    let count = |v: Verdict| {
        s.datasets
            .values()
            .filter(|d| d.status.verdict == v)
            .count()
    };
    // The worst first: what needs attention tops the list.
    let mut rows: Vec<_> = s.datasets.iter().collect();
    rows.sort_by_key(|(name, d)| (std::cmp::Reverse(d.status.verdict), *name));
    // One column per commitment, in the order the judgement lists them.
    let mut aspects: Vec<&str> = Vec::new();
    for a in s.datasets.values().flat_map(|d| &d.status.aspects) {
        if !aspects.contains(&a.name) {
            aspects.push(a.name);
        }
    }
    html! {
        h1 { "Where the commitments stand " (badge(s.verdict)) }
        p.muted { "as of " (when(s.at)) " · recomputed every " (span(refresh.as_secs_f64())) " and after every job" }
        (super::evidence::evidence_button(s.at))
        div.cards {
            @for v in [Verdict::Met, Verdict::AtRisk, Verdict::Breached] {
                div class=(format!("card {}", word(v))) { div.n { (count(v)) } div { "datasets " (word(v).replace('_', " ")) } }
            }
            div.card { div.n { (running.len()) } div { a href="/jobs" { "jobs running" } } }
        }
        div.wide { table #datasets {
            thead { tr {
                th { "dataset" } th { "tier" } th { "verdict" } th { "reason" }
                @for a in &aspects { th { (a) } }
                th { "newest backup" }
            } }
            tbody {
                @for (name, d) in rows {
                    tr data-dataset=(name) class=(row_class(d.status.verdict)) {
                        td.name { a href=(format!("/datasets/{name}")) { strong { (name) } } }
                        td { (tier(d.status.tier)) }
                        td.verdict-cell { (badge(d.status.verdict)) }
                        td.reason { (d.status.reason) }
                        @for name in &aspects {
                            @match d.status.aspects.iter().find(|a| a.name == *name) {
                                Some(a) => { (aspect_cell(a)) },
                                None => { td.muted title="not asked of this tier" { "–" } },
                            }
                        }
                        td { @match d.facts.last_backup { Some(t) => { (ago(t, s.at)) }, None => { span.empty { "none" } } } }
                    }
                }
                tr data-dataset="ledger" class=(row_class(s.ledger.verdict)) {
                    td { a href="/ledger" { strong { "ledger" } } }
                    td { "evidence" }
                    td.verdict-cell { (badge(s.ledger.verdict)) }
                    td.reason { (s.ledger.reason) }
                    td colspan=(aspects.len()) { span.muted { (s.ledger.head.seq) " events, " (s.ledger.copies.len()) " copies checked" } }
                    td {}
                }
            }
        } }
        @if !s.unreachable.is_empty() {
            h2 { "Unreachable repositories" }
            ul { @for u in &s.unreachable { li { (u) } } }
        }
        @if !view.status_page.components.is_empty() {
            h2 { "What customers see" }
            p {
                @for c in &view.status_page.components {
                    (c.name) " " (state_badge(c.state)) " · "
                }
                a href="/status" { "status page" }
            }
        }
    }
}

fn tier(t: bulwark_policy::config::Tier) -> &'static str {
    match t {
        bulwark_policy::config::Tier::Critical => "critical",
        bulwark_policy::config::Tier::Standard => "standard",
    }
}

pub async fn dataset(State(state): State<Arc<HttpState>>, Path(name): Path<String>) -> Response {
    let Ok(view) = current(&state) else {
        return starting();
    };
    let (Some(d), Some(st)) = (view.datasets.get(&name), view.status.datasets.get(&name)) else {
        return not_found(&format!("No dataset '{name}'"));
    };
    let to = view.at;
    let from = to - Duration::days(HISTORY_DAYS);
    let mut repos = vec![d.repository.clone()];
    repos.extend(d.replicas.iter().map(|r| r.repository.clone()));
    let facts = &st.facts;
    let worst_exposure = d
        .exposure
        .iter()
        .filter_map(|p| p.seconds)
        .fold(0.0, f64::max);
    let over_rpo = d
        .exposure
        .iter()
        .filter(|p| p.seconds.is_some_and(|s| s > d.rpo_seconds))
        .count();
    let failed_tests = d.restore_tests.iter().filter(|t| !t.passed).count();
    let open: Vec<_> = d.remediations.iter().filter(|r| r.is_open()).collect();
    let closed: Vec<_> = d.remediations.iter().filter(|r| !r.is_open()).collect();
    let running = state.daemon.jobs.runs(&name);
    let body = html! {
        h1 { (name) " " (badge(st.status.verdict)) }
        p { (st.status.reason) }
        div.facts {
            span { "tier " b { (tier(d.tier)) } }
            span { "repository " b { (d.repository) } }
            span { "schedule " b { (d.schedule) } }
            span { "newest backup " b { (facts.last_backup.map(|t| ago(t, to)).unwrap_or_else(|| "none".into())) } }
            span { "snapshots " b { (facts.snapshots) } }
            span { "RPO " b { (span(d.rpo_seconds)) } " · RTO " b { (span(d.rto_seconds)) } }
        }
        @if running {
            p { span.verdict.none { "running" } " a job of this dataset runs now: " a href="/jobs" { "jobs" } }
        } @else {
            form.inline method="post" action=(format!("/datasets/{name}/run")) {
                button type="submit" title="back up, copy, apply retention and restore-test this dataset now" { "Run now" }
            }
        }
        h2 { "Commitments" }
        table #aspects {
            thead { tr { th { "commitment" } th { "verdict" } th { "target" } th { "actual" } th { "reason" } } }
            tbody {
                @for a in &st.status.aspects {
                    tr data-aspect=(a.name) class=(row_class(a.verdict)) { td { (a.name) } td { (badge(a.verdict)) } td { (a.target) } td { (a.actual) } td { (a.reason) } }
                }
            }
        }
        h2 { "Snapshots, last " (HISTORY_DAYS) " days" }
        (charts::timeline(&d.snapshots, &repos, from, to))
        p.caption {
            @for (i, r) in repos.iter().enumerate() {
                @if i > 0 { " · " }
                (d.snapshots.iter().filter(|s| &s.repository == r).count()) " in " (r)
            }
        }
        h2 { "Recovery-point exposure, last " (HISTORY_DAYS) " days" }
        (charts::exposure(&d.exposure, d.rpo_seconds, "age of the newest backup against the RPO"))
        p.caption {
            "The age of the newest backup, hour by hour; red above the RPO. Worst: " (span(worst_exposure))
            @if over_rpo > 0 { ", over the RPO for " (over_rpo) " hours" } @else { ", never over the RPO" }
            "."
        }
        h2 { "Restore tests" }
        (charts::restore_tests(&d.restore_tests, d.rto_seconds, "measured restore time against the RTO (log scale)"))
        @if !d.restore_tests.is_empty() {
            p.caption { (d.restore_tests.len()) " tests, " (failed_tests) " failed; the measured restore time on a log scale against the RTO of " (span(d.rto_seconds)) "." }
            table #restore-tests {
                thead { tr { th { "finished" } th { "result" } th.num { "duration" } th { "snapshot" } th { "checks" } } }
                tbody {
                    @for t in d.restore_tests.iter().rev().take(10) {
                        tr data-passed=(t.passed) {
                            td.t { (when(t.time)) }
                            td { @if t.passed { span.verdict.passed { "passed" } } @else { span.verdict.failed { "failed" } } }
                            td.num {
                                (span(t.duration_s))
                                @if let Some(s) = &t.sample { br; span.muted { "sampled " (s.files_tested) " of " (s.files_total) " files" } }
                            }
                            td { span.id { (t.snapshot_id.get(..8).unwrap_or(&t.snapshot_id)) } }
                            td {
                                ul.checks {
                                    @for c in &t.checks {
                                        li class=(if c.skipped { "skip" } else if c.passed { "ok" } else { "no" }) {
                                            (c.name) @if !c.detail.is_empty() { ": " span.muted { (c.detail) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Off-site copies" }
        @if d.replicas.is_empty() { p.empty { "no replica of " (d.repository) } } @else {
            (charts::replica_lag(&d.replicas, d.rpo_seconds))
            table #replicas {
                thead { tr { th { "replica" } th { "region" } th { "newest copy" } th.num { "behind the primary" } } }
                tbody {
                    @for r in &d.replicas {
                        tr class=(if r.lag_seconds.is_none_or(|l| l > d.rpo_seconds) { "bad" } else { "" }) {
                            td { (r.repository) }
                            td { (r.region.as_deref().unwrap_or("-")) }
                            td.t { (r.newest.map(when).unwrap_or_else(|| "none".into())) }
                            td.num { (r.lag_seconds.map(span).unwrap_or_else(|| "-".into())) }
                        }
                    }
                }
            }
        }
        h2 { "Open remediation items" }
        @if open.is_empty() { p.empty { "none" } } @else {
            table #remediations {
                thead { tr { th { "opened" } th { "reason" } th { "item" } } }
                tbody {
                    @for r in &open {
                        tr.bad { td.t { (when(r.opened_at)) } td { (r.reason) } td { span.id { (short(&r.id)) } } }
                    }
                }
            }
        }
        @if !closed.is_empty() {
            p.muted { (closed.len()) " closed item(s), the latest closed "
                (closed.iter().filter_map(|r| r.closed.as_ref().map(|c| c.closed_at)).max().map(when).unwrap_or_default()) }
        }
        h2 { "Recent events" }
        (events_table(d.events.iter().rev().take(20)))
    };
    page(&name, Section::Overview, body).into_response()
}

fn events_table<'a>(events: impl Iterator<Item = &'a bulwark_ledger::Event>) -> Markup {
    let events: Vec<_> = events.collect();
    html! {
        @if events.is_empty() { p.empty { "none" } } @else {
            table.events {
                thead { tr { th.num { "seq" } th { "recorded" } th { "kind" } th { "dataset" } th { "result" } th { "summary" } } }
                tbody {
                    @for e in events {
                        tr class=(if e.ok { "" } else { "bad" }) {
                            td.num { (e.seq) }
                            td.t { (when(e.recorded_at)) }
                            td { (e.kind.as_str()) }
                            td { (e.dataset.as_deref().unwrap_or("")) }
                            td.t { @if e.ok { span.ok { "ok" } } @else { span.no { "failed" } } }
                            td { (e.summary) }
                        }
                    }
                }
            }
        }
    }
}

fn copy_verdict(c: &CopyCheck) -> Verdict {
    if c.shows_tampering() {
        Verdict::Breached
    } else if c.agreement.is_some() {
        Verdict::Met
    } else {
        Verdict::AtRisk
    }
}

pub async fn ledger(State(state): State<Arc<HttpState>>) -> Response {
    let Ok(view) = current(&state) else {
        return starting();
    };
    let l = &view.status.ledger;
    let body = html! {
        h1 { "Ledger " (badge(l.verdict)) }
        p { (l.reason) }
        div.facts {
            span { "location " b { code { (l.location) } } }
            span { "events " b { (l.head.seq) } }
            span { "head " b { span.id { (short(&l.head.id)) } } }
        }
        h2 { "The chain" }
        @if l.problems.is_empty() {
            p { span.ok { "every event's hash, link and sequence number verifies" } }
        } @else {
            table #problems {
                thead { tr { th { "problem" } th.num { "seq" } th { "detail" } } }
                tbody {
                    @for p in &l.problems {
                        tr.bad { td { (p.kind.to_string()) } td.num { (p.seq.map(|s| s.to_string()).unwrap_or_default()) } td { (p.message) } }
                    }
                }
            }
        }
        h2 { "Copies in the repositories" }
        @if l.copies.is_empty() { p.empty { "no repository" } } @else {
            table #copies {
                thead { tr { th { "repository" } th { "state" } th { "snapshot" } th { "taken" } th.num { "holds events" } th { "agreement" } } }
                tbody {
                    @for c in &l.copies {
                        tr class=(row_class(copy_verdict(c))) {
                            td { (c.repository) }
                            td { (badge(copy_verdict(c))) }
                            td { span.id { (c.snapshot_id.as_deref().and_then(|s| s.get(..8)).unwrap_or("-")) } }
                            td.t { (c.snapshot_time.map(|t| when(t.to_utc())).unwrap_or_else(|| "-".into())) }
                            td.num { (c.head.as_ref().map(|h| h.seq.to_string()).unwrap_or_else(|| "-".into())) }
                            td { (bulwark_app::status::describe(c)) }
                        }
                    }
                }
            }
        }
        h2 { "Newest events" }
        (events_table(view.events.iter()))
        p.muted { "All events: " code { "GET /api/events" } }
    };
    page("Ledger", Section::Ledger, body).into_response()
}

fn job_result(j: &Job) -> Markup {
    match j.ok {
        Some(true) => html! { span.verdict.passed { "ok" } },
        Some(false) => html! { span.verdict.failed { "failed" } },
        None => html! { span.verdict.none { "running" } },
    }
}

pub async fn jobs(State(state): State<Arc<HttpState>>) -> Response {
    let d = &state.daemon;
    let running = d.jobs.running();
    let recent = d.jobs.recent();
    let now = d.clock.now();
    let body = html! {
        h1 { "Jobs" }
        div.facts {
            span { "node " b { code { (d.node) } } }
            @if d.draining() { span { b { "stopping: no new jobs" } } }
        }
        h2 { "Running" }
        @if running.is_empty() { p.empty { "none" } } @else {
            table #running {
                thead { tr { th { "dataset" } th { "repository" } th { "trigger" } th { "started" } th.num { "running for" } th.num { "lease" } } }
                tbody {
                    @for j in &running {
                        tr data-job=(j.id) {
                            td { a href=(format!("/datasets/{}", j.dataset)) { (j.dataset) } }
                            td { (j.repository) } td { (j.trigger) } td.t { (when(j.started)) }
                            td.num { (span(((now - j.started).num_milliseconds() as f64 / 1000.0).max(0.0))) }
                            td.num { (j.lease.as_ref().map(|l| format!("#{}", l.fencing)).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        h2 { "Recent" }
        @if recent.is_empty() { p.empty { "none since the daemon started" } } @else {
            table #recent {
                thead { tr { th { "dataset" } th { "trigger" } th { "finished" } th.num { "took" } th { "result" } th { "summary" } } }
                tbody {
                    @for j in recent.iter().take(50) {
                        tr data-job=(j.id) class=(if j.ok == Some(false) { "bad" } else { "" }) {
                            td { a href=(format!("/datasets/{}", j.dataset)) { (j.dataset) } }
                            td { (j.trigger) }
                            td.t { (j.finished.map(when).unwrap_or_default()) }
                            td.num { (j.finished.map(|f| span((f - j.started).num_milliseconds() as f64 / 1000.0)).unwrap_or_default()) }
                            td { (job_result(j)) }
                            td { (j.summary.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    page("Jobs", Section::Jobs, body).into_response()
}

/// `POST /datasets/{name}/run` from the dashboard's button: back to the dataset's page, or a
/// page saying why not.
pub async fn run_now(
    State(state): State<Arc<HttpState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    match super::api::start_run(&state, &caller, name.clone()).await {
        Ok(_) => Redirect::to(&format!("/datasets/{name}")).into_response(),
        Err((code, message)) => (
            code,
            page(
                "Not started",
                Section::Overview,
                html! { h1 { "Not started" } p { (message) } p { a href=(format!("/datasets/{name}")) { "back to " (name) } } },
            ),
        )
            .into_response(),
    }
}

fn state_word(s: ComponentState) -> &'static str {
    match s {
        ComponentState::Operational => "operational",
        ComponentState::Degraded => "degraded",
        ComponentState::Outage => "outage",
    }
}

fn state_badge(s: ComponentState) -> Markup {
    html! { span class=(format!("verdict {}", state_word(s))) data-state=(state_word(s)) { (state_word(s)) } }
}

fn incident_word(s: IncidentState) -> &'static str {
    match s {
        IncidentState::Investigating => "investigating",
        IncidentState::Identified => "identified",
        IncidentState::Monitoring => "monitoring",
        IncidentState::Resolved => "resolved",
    }
}

fn incident(i: &Incident) -> Markup {
    html! {
        div.incident data-incident=(i.id) data-state=(incident_word(i.state)) {
            strong { (i.title) } " " span class=(format!("verdict {}", incident_word(i.state))) { (incident_word(i.state)) }
            p.muted {
                "since " (when(i.started))
                @if let Some(r) = i.resolved { " · resolved " (when(r)) }
                @if !i.components.is_empty() { " · affects " (i.components.join(", ")) }
            }
            ol reversed {
                @for u in &i.updates {
                    li data-at=(u.at.to_rfc3339()) {
                        strong { (incident_word(u.state)) } " · " span.muted { (when(u.at)) }
                        @if let Some(eta) = u.eta { " · " span.muted { "ETA " (when(eta)) } }
                        br; (u.message)
                    }
                }
            }
        }
    }
}

/// The customers' page: the components, their state and the incidents; nothing internal.
pub async fn status_page(State(state): State<Arc<HttpState>>) -> Response {
    let Ok(view) = current(&state) else {
        return starting();
    };
    page("Status", Section::Public, status_body(&view.status_page)).into_response()
}

fn status_body(s: &StatusPage) -> Markup {
    let worst = s
        .components
        .iter()
        .map(|c| c.state)
        .max_by_key(|c| match c {
            ComponentState::Operational => 0,
            ComponentState::Degraded => 1,
            ComponentState::Outage => 2,
        })
        .unwrap_or(ComponentState::Operational);
    let headline = match worst {
        ComponentState::Operational => "All systems operational",
        ComponentState::Degraded => "Some systems are degraded",
        ComponentState::Outage => "Some systems are down",
    };
    let (open, resolved): (Vec<&Incident>, Vec<&Incident>) = s
        .incidents
        .iter()
        .partition(|i| i.state != IncidentState::Resolved);
    html! {
        h1 { "Service status" }
        div class=(format!("banner {}", state_word(worst))) data-state=(state_word(worst)) { (headline) }
        @if s.components.is_empty() {
            p.empty { "No services are listed." }
        } @else {
            table #components {
                tbody {
                    @for c in &s.components {
                        tr data-component=(c.name) {
                            td { strong { (c.name) } @if let Some(d) = &c.description { br; span.muted { (d) } } }
                            td.state { (state_badge(c.state)) }
                        }
                    }
                }
            }
        }
        h2 { "Incidents" }
        @if open.is_empty() { p.empty { "No open incidents." } }
        @for i in &open { (incident(i)) }
        @if !resolved.is_empty() {
            h2 { "Resolved in the last " (HISTORY_DAYS) " days" }
            @for i in &resolved { (incident(i)) }
        } @else if open.is_empty() {
            p.muted { "No incidents in the last " (HISTORY_DAYS) " days." }
        }
        footer { "Updated " (when(s.at)) "." }
    }
}

pub fn login_page(message: Option<&str>) -> Markup {
    page(
        "Sign in",
        Section::Public,
        html! {
            h1 { "Sign in" }
            @if let Some(m) = message { p { (m) } }
            form method="post" action="/login" {
                label { "API token " input type="password" name="token" autocomplete="off" required; }
                " " button type="submit" { "Sign in" }
            }
            p.muted { "The token is in the file " code { "bulwark serve" } " named when it started. The browser then keeps a session until the daemon restarts." }
        },
    )
}

pub async fn login_form() -> Markup {
    login_page(None)
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// Sign a browser in: a valid token buys a session cookie (HttpOnly, SameSite=Strict; Secure
/// over TLS).
pub async fn login(
    State(state): State<Arc<HttpState>>,
    form: Result<Form<Login>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return (
            StatusCode::BAD_REQUEST,
            login_page(Some("Send the form with a token.")),
        )
            .into_response();
    };
    let Some(session) = state.tokens.session(f.token.trim()) else {
        return (
            StatusCode::UNAUTHORIZED,
            login_page(Some("That is not a valid token.")),
        )
            .into_response();
    };
    let secure = if state.tls { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/{secure}");
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub async fn logout() -> Response {
    let mut r = Redirect::to("/status").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{ComponentView, IncidentUpdate};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_status_page_shows_components_and_incidents_with_their_updates() {
        let page = StatusPage {
            at: at("2026-03-02T10:00:00Z"),
            components: vec![
                ComponentView {
                    name: "Spark Cloud".into(),
                    description: Some("the application".into()),
                    state: ComponentState::Degraded,
                },
                ComponentView {
                    name: "Document storage".into(),
                    description: None,
                    state: ComponentState::Operational,
                },
            ],
            incidents: vec![Incident {
                id: "inc-1".into(),
                title: "Slow restores".into(),
                components: vec!["Spark Cloud".into()],
                state: IncidentState::Monitoring,
                started: at("2026-03-02T08:00:00Z"),
                resolved: None,
                updates: vec![
                    IncidentUpdate {
                        at: at("2026-03-02T09:00:00Z"),
                        state: IncidentState::Monitoring,
                        message: "A fix is in place".into(),
                        eta: Some(at("2026-03-02T12:00:00Z")),
                    },
                    IncidentUpdate {
                        at: at("2026-03-02T08:00:00Z"),
                        state: IncidentState::Investigating,
                        message: "We are looking into it".into(),
                        eta: None,
                    },
                ],
            }],
        };
        let html = status_body(&page).into_string();
        assert!(html.contains(r#"data-state="degraded">Some systems are degraded"#));
        assert!(html.contains(r#"data-component="Spark Cloud""#));
        assert!(html.contains(r#"data-component="Document storage""#));
        assert!(html.contains(r#"data-incident="inc-1" data-state="monitoring""#));
        assert!(html.contains("ETA 2026-03-02 12:00 UTC"), "{html}");
        let fix = html.find("A fix is in place").unwrap();
        let first = html.find("We are looking into it").unwrap();
        assert!(fix < first, "newest update first");
        assert!(!html.contains("No incidents in the last"));
        assert!(!html.contains("No open incidents."));
    }

    #[test]
    fn without_components_the_status_page_says_so() {
        let page = StatusPage {
            at: at("2026-03-02T10:00:00Z"),
            components: Vec::new(),
            incidents: Vec::new(),
        };
        let html = status_body(&page).into_string();
        assert!(html.contains("No services are listed."));
        assert!(html.contains("All systems operational"));
        assert!(html.contains("No open incidents."));
        assert!(html.contains("No incidents in the last 30 days."));
    }
}
