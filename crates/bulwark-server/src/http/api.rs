//! The JSON API: everything the dashboard shows, from the cached view, plus a run on request.
//! The shapes are described by `openapi.json` beside this crate's manifest, which the tests
//! check real responses against.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulwark_ledger::{EventFilter, EventKind};
use serde::Deserialize;
use serde_json::json;

use super::{Caller, HttpState};
use crate::daemon::DaemonError;
use crate::jobs::Job;
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
        Ok(v) => Json(&v.status_page).into_response(),
        Err(r) => r.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    dataset: Option<String>,
    kind: Option<String>,
    after_seq: Option<u64>,
    limit: Option<usize>,
}

/// The most events one request returns.
pub const MAX_EVENTS: usize = 1000;

/// Events, oldest first, at most `limit` (100 by default): the newest ones, or with `after_seq`
/// the first ones after it, so a client pages forward from the last seq it saw.
pub async fn events(
    State(state): State<Arc<HttpState>>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_EVENTS).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("limit must be 1 to {MAX_EVENTS}, not {limit}"),
        );
    }
    let ws = state.daemon.workspace();
    let found = tokio::task::spawn_blocking(move || {
        let mut f = EventFilter::all().limit(limit);
        if let Some(d) = q.dataset {
            f = f.dataset(d);
        }
        if let Some(k) = q.kind {
            f = f.kind(EventKind::parse(&k));
        }
        let newest = match q.after_seq {
            Some(s) => {
                f = f.after_seq(s);
                false
            }
            None => {
                f = f.newest_first();
                true
            }
        };
        ws.ledger().events(&f).map(|mut events| {
            if newest {
                events.reverse();
            }
            events
        })
    })
    .await;
    match found {
        Ok(Ok(events)) => Json(events).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("ledger: {e}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Start a run of dataset `name` for `caller`: the job, or the status and message of a refusal.
pub async fn start_run(
    state: &HttpState,
    caller: &Caller,
    name: String,
) -> Result<Job, (StatusCode, String)> {
    let daemon = state.daemon.clone();
    let caller = caller.0.clone();
    match tokio::task::spawn_blocking(move || daemon.trigger(&name, &caller)).await {
        Ok(Ok(job)) => Ok(job),
        Ok(Err(e)) => {
            let code = match &e {
                DaemonError::NoSuchDataset(_) => StatusCode::NOT_FOUND,
                DaemonError::Busy(_) => StatusCode::CONFLICT,
                DaemonError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Err((code, e.to_string()))
        }
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// `POST /api/datasets/{name}/run`: start a run of the dataset now; 202 with the job.
pub async fn run(
    State(state): State<Arc<HttpState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    match start_run(&state, &caller, name).await {
        Ok(job) => (StatusCode::ACCEPTED, Json(job)).into_response(),
        Err((code, message)) => error(code, &message),
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
