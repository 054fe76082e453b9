//! `GET /api/evidence?from=&to=`: a signed evidence pack for the period, as a tar (behind the
//! bearer token, like every `/api` route), signed with the policy file's `[evidence]
//! signing_key`. A GET changes nothing: the pack is built from the ledger and returned, not
//! filed. Times are RFC 3339 or dates (midnight UTC); `to` defaults to the daemon's now.
//! The dashboard links here (`evidence_button`).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulwark_app::evidence::{self, EvidenceError, Request, pack, sign};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::HttpState;
use super::api::error;

#[derive(Deserialize)]
pub struct EvidenceQuery {
    from: Option<String>,
    to: Option<String>,
}

/// A query time, or the message saying why not.
fn instant(name: &str, s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .or_else(|_| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        })
        .map_err(|_| format!("bad {name} '{s}': use a date (2026-01-01) or RFC 3339"))
}

pub async fn pack(State(state): State<Arc<HttpState>>, Query(q): Query<EvidenceQuery>) -> Response {
    let now = state.daemon.clock.now();
    let Some(from) = q.from.as_deref() else {
        return error(
            StatusCode::BAD_REQUEST,
            "from is required (?from=2026-01-01&to=2026-02-01)",
        );
    };
    let from = match instant("from", from) {
        Ok(t) => t,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let to = match q.to.as_deref().map(|t| instant("to", t)).transpose() {
        Ok(t) => t.unwrap_or(now),
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let ws = state.daemon.workspace();
    let built = tokio::task::spawn_blocking(move || {
        let key_path = ws
            .policy()
            .config
            .evidence
            .signing_key
            .as_deref()
            .map(|k| ws.resolve(k))
            .ok_or(None)?;
        let key = sign::load_signing_key(&key_path).map_err(Some)?;
        let made = evidence::build(
            &ws,
            &Request {
                from,
                to,
                now,
                key: &key,
                pdf: None,
            },
        )
        .map_err(Some)?;
        Ok::<_, Option<EvidenceError>>((
            made.name.clone(),
            pack::tar_bytes(&made.files, &made.name),
        ))
    })
    .await;
    match built {
        Ok(Ok((name, tar))) => (
            [
                (header::CONTENT_TYPE, "application/x-tar".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.tar\""),
                ),
            ],
            tar,
        )
            .into_response(),
        Ok(Err(None)) => error(
            StatusCode::CONFLICT,
            "the policy file names no [evidence] signing_key",
        ),
        Ok(Err(Some(EvidenceError::EmptyPeriod { .. }))) => {
            error(StatusCode::BAD_REQUEST, "from must be before to")
        }
        Ok(Err(Some(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The dashboard's button: last month's and this year's packs.
pub fn evidence_button(now: DateTime<Utc>) -> Markup {
    let (month, _) = evidence::monthly::previous_month(now);
    let year = format!("{}-01-01", now.format("%Y"));
    html! {
        form.evidence method="get" action="/api/evidence" {
            input type="hidden" name="from" value=(month.format("%Y-%m-%d").to_string());
            input type="hidden" name="to" value=(evidence::monthly::previous_month(now).1.format("%Y-%m-%d").to_string());
            button type="submit" { "Evidence pack: last month" }
        }
        a.evidence href=(format!("/api/evidence?from={year}")) { "Evidence pack: this year to date" }
    }
}
