//! Incidents over HTTP: the operators' JSON API and page (behind the token; internal notes
//! included), and the public status page's Incidents section (customer-facing updates only,
//! with their time, state and ETA: never an internal note, an owner or a cause).
//!
//! Every state-changing request (`POST`) is an `api_call` event naming its caller, followed by
//! the incident event itself. Incidents are read from the ledger on each request (they are few,
//! and read by kind); nothing here is cached, so a page never shows a stale timeline.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark_app::incident::{self, Incident, OpenRequest, UpdateRequest};
use bulwark_ledger::{EventKind, NewEvent};
use bulwark_policy::incident::IncidentState;
use chrono::{DateTime, Utc};
use maud::html;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api::error;
use super::{Caller, HttpState};

async fn load(state: &HttpState) -> Result<Vec<Incident>, Response> {
    let ws = state.daemon.workspace();
    match tokio::task::spawn_blocking(move || incident::incidents(&ws)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `GET /api/incidents`: every incident with its whole timeline (internal notes included).
pub async fn list(State(state): State<Arc<HttpState>>) -> Response {
    match load(&state).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

/// `GET /api/incidents/{id}`.
pub async fn show(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Response {
    let ws = state.daemon.workspace();
    match tokio::task::spawn_blocking(move || incident::find(&ws, &id)).await {
        Ok(Ok(i)) => Json(i).into_response(),
        Ok(Err(e)) => app_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn app_error(e: bulwark_app::Error) -> Response {
    match &e {
        bulwark_app::Error::Request { message, hint } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": message, "hint": hint })),
        )
            .into_response(),
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Deserialize)]
pub struct OpenBody {
    title: String,
    sev: u8,
    owner: Option<String>,
    state: Option<IncidentState>,
    message: Option<String>,
    #[serde(default)]
    internal: bool,
    eta: Option<DateTime<Utc>>,
    at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
pub struct UpdateBody {
    message: String,
    #[serde(default)]
    internal: bool,
    state: Option<IncidentState>,
    eta: Option<DateTime<Utc>>,
    sev: Option<u8>,
    owner: Option<String>,
    at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, Default)]
pub struct ResolveBody {
    message: Option<String>,
    at: Option<DateTime<Utc>>,
}

/// Record who asked, then do it: the caller is in the ledger whether or not the step is refused.
async fn act<T: Serialize + Send + 'static>(
    state: &HttpState,
    caller: &Caller,
    action: &'static str,
    summary: String,
    f: impl FnOnce(&bulwark_app::Workspace, DateTime<Utc>) -> bulwark_app::Result<T> + Send + 'static,
    created: StatusCode,
) -> Response {
    let ws = state.daemon.workspace();
    let now = state.daemon.clock.now();
    let (caller, node) = (caller.0.clone(), state.daemon.node.clone());
    let daemon = state.daemon.clone();
    let done = tokio::task::spawn_blocking(move || {
        ws.ledger().append(
            NewEvent::new(EventKind::ApiCall, format!("{caller} {summary}"))
                .config_hash(ws.config_hash())
                .timed(now, now)
                .details(json!({ "caller": caller, "action": action, "node": node })),
        )?;
        let done = f(&ws, now)?;
        // The status page serves from the cached view: it shows the step before this answers.
        if let Err(e) = daemon.refresh() {
            tracing::warn!("the view was not refreshed after the incident step: {e}");
        }
        Ok(done)
    })
    .await;
    match done {
        Ok(Ok(v)) => (created, Json(v)).into_response(),
        Ok(Err(e)) => app_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `POST /api/incidents`: open one; 201 with the incident and who was told.
pub async fn open(
    State(state): State<Arc<HttpState>>,
    Extension(caller): Extension<Caller>,
    Json(b): Json<OpenBody>,
) -> Response {
    let summary = format!("opened an incident: {}", b.title);
    act(
        &state,
        &caller,
        "incident_open",
        summary,
        move |ws, now| {
            incident::open(
                ws,
                &OpenRequest {
                    title: b.title,
                    sev: b.sev,
                    owner: b.owner,
                    state: b.state.unwrap_or(IncidentState::Investigating),
                    message: b.message,
                    internal: b.internal,
                    eta: b.eta,
                    cause: None,
                    subject: None,
                    at: b.at.unwrap_or(now),
                },
            )
        },
        StatusCode::CREATED,
    )
    .await
}

/// `POST /api/incidents/{id}/updates`: a customer update or internal note.
pub async fn update(
    State(state): State<Arc<HttpState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(b): Json<UpdateBody>,
) -> Response {
    let summary = format!("updated incident {id}");
    act(
        &state,
        &caller,
        "incident_update",
        summary,
        move |ws, now| {
            incident::update(
                ws,
                &UpdateRequest {
                    id,
                    state: b.state,
                    message: b.message,
                    internal: b.internal,
                    eta: b.eta,
                    sev: b.sev,
                    owner: b.owner,
                    at: b.at.unwrap_or(now),
                },
            )
        },
        StatusCode::CREATED,
    )
    .await
}

/// `POST /api/incidents/{id}/resolve`.
pub async fn resolve(
    State(state): State<Arc<HttpState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Option<Json<ResolveBody>>,
) -> Response {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let summary = format!("resolved incident {id}");
    act(
        &state,
        &caller,
        "incident_resolve",
        summary,
        move |ws, now| incident::resolve(ws, &id, b.message, b.at.unwrap_or(now)),
        StatusCode::OK,
    )
    .await
}

/// `GET /incidents`: the operators' page, every incident with its whole timeline.
pub async fn page(State(state): State<Arc<HttpState>>) -> Response {
    let all = match load(&state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ws = state.daemon.workspace();
    let now = state.daemon.clock.now();
    let every = ws.config().targets.status_update_every;
    let body = html! {
        h1 { "Incidents" }
        @if all.is_empty() { p.empty { "No incidents on record." } }
        @for i in all.iter().rev() {
            section.incident data-incident=(i.id) data-state=(i.state.as_str()) {
                h2 { (i.id) " SEV-" (i.sev) " " (i.title) }
                p.muted {
                    "owner " (i.owner) " · opened " (time(i.opened))
                    @if let Some(r) = i.resolved { " · resolved " (time(r)) }
                    @if let Some(due) = i.fact().next_update_due(every) {
                        " · next customer update due " (time(due))
                        @if now >= due { " " span.verdict.breached data-overdue="update" { "overdue" } }
                    }
                    @if let Some(due) = i.fact().postmortem_due(ws.config()) {
                        " · post-mortem "
                        @if i.postmortem.is_some() { "submitted" } @else { "due " (time(due)) }
                    }
                }
                table {
                    tbody {
                        @for u in &i.timeline {
                            tr data-internal=(u.internal) {
                                td { (time(u.at)) }
                                td { (u.state.as_str()) }
                                td { @if u.internal { "internal note" } @else { "customers" } }
                                td { (u.message.as_deref().unwrap_or("-")) }
                            }
                        }
                    }
                }
            }
        }
    };
    super::pages::page("Incidents", super::pages::Section::Incidents, body).into_response()
}
