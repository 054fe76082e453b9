//! The JSON API: everything the dashboard shows, from the cached view, plus a run on request.
//! The shapes are described by `openapi.json` beside this crate's manifest, which the tests
//! check real responses against.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulwark_ledger::{EventFilter, EventKind};
use serde::Deserialize;
use serde_json::json;

use super::{Caller, HttpState};
use crate::daemon::DaemonError;
use crate::view::View;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The cached view, or `Err` while the first one is being computed.
pub fn current(state: &HttpState) -> Result<Arc<View>, Starting> {
    state.daemon.view().ok_or(Starting)
}

/// No view yet: the daemon has just started.
pub struct Starting;

impl IntoResponse for Starting {
    fn into_response(self) -> Response {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: the first status is being computed",
        )
    }
}

pub async fn status(State(state): State<Arc<HttpState>>) -> Response {
    match current(&state) {
        Ok(v) => Json(&v.status).into_response(),
        Err(r) => r.into_response(),
    }
}

pub async fn datasets(State(state): State<Arc<HttpState>>) -> Response {
    match current(&state) {
        Ok(v) => Json(v.datasets.keys().collect::<Vec<_>>()).into_response(),
        Err(r) => r.into_response(),
    }
}

pub async fn dataset(State(state): State<Arc<HttpState>>, Path(name): Path<String>) -> Response {
    let view = match current(&state) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    match (view.datasets.get(&name), view.status.datasets.get(&name)) {
        (Some(d), Some(s)) => Json(json!({ "dataset": d, "status": s })).into_response(),
        _ => error(StatusCode::NOT_FOUND, &format!("no dataset '{name}'")),
    }
}

pub async fn ledger(State(state): State<Arc<HttpState>>) -> Response {
    match current(&state) {
        Ok(v) => Json(&v.status.ledger).into_response(),
        Err(r) => r.into_response(),
    }
}

pub async fn jobs(State(state): State<Arc<HttpState>>) -> Response {
    let d = &state.daemon;
    Json(json!({
        "node": d.node,
        "draining": d.draining(),
        "running": d.jobs.running(),
        "recent": d.jobs.recent(),
    }))
    .into_response()
}

pub async fn status_page(State(state): State<Arc<HttpState>>) -> Response {
    match current(&state) {
        Ok(v) => {
            let incidents = super::incidents::for_status_page(&state, v.at).await;
            Json(json!({ "at": v.at, "components": v.components, "incidents": incidents }))
                .into_response()
        }
        Err(r) => r.into_response(),
    }
}

#[derive(Deserialize)]
pub struct EventsQuery {
    dataset: Option<String>,
    kind: Option<String>,
    after_seq: Option<u64>,
    limit: Option<usize>,
}

/// The newest events (oldest first), at most `limit` (100 by default, 1000 at most).
pub async fn events(State(state): State<Arc<HttpState>>, Query(q): Query<EventsQuery>) -> Response {
    let ws = state.daemon.workspace();
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let found = tokio::task::spawn_blocking(move || {
        let mut f = EventFilter::all().newest_first().limit(limit);
        if let Some(d) = q.dataset {
            f = f.dataset(d);
        }
        if let Some(k) = q.kind {
            f = f.kind(EventKind::parse(&k));
        }
        if let Some(s) = q.after_seq {
            f = f.after_seq(s);
        }
        ws.ledger().events(&f)
    })
    .await;
    match found {
        Ok(Ok(mut events)) => {
            events.reverse();
            Json(events).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("ledger: {e}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `POST /api/datasets/{name}/run`: start a run of the dataset now; 202 with the job.
pub async fn run(
    State(state): State<Arc<HttpState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    let daemon = state.daemon.clone();
    let started = tokio::task::spawn_blocking(move || daemon.trigger(&name, &caller.0)).await;
    match started {
        Ok(Ok(job)) => (StatusCode::ACCEPTED, Json(job)).into_response(),
        Ok(Err(e)) => {
            let code = match &e {
                DaemonError::NoSuchDataset(_) => StatusCode::NOT_FOUND,
                DaemonError::Busy(_) => StatusCode::CONFLICT,
                DaemonError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(code, &e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.daemon.metrics.render(),
    )
        .into_response()
}

/// Ready when the first view exists and the daemon takes jobs.
pub async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    if state.daemon.draining() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "stopping");
    }
    match current(&state) {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(r) => r.into_response(),
    }
}
