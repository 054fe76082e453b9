//! The daemon's one HTTP server: the operators' dashboard and JSON API behind a bearer token, the
//! customers' status page and `/healthz` open to all, Prometheus metrics, optional TLS.
//!
//! Rules every route keeps: nothing changes state on GET; every state-changing request is a ledger
//! event naming its caller; responses carry no secret (no passphrase, key, token or DSN password)
//! because they are made from the cached view, whose sources never hold one; tokens are compared
//! in constant time and accepted only in the `Authorization` header (a browser signs in once and
//! keeps a session cookie, see [`Tokens`]); a state-changing request with a session cookie must
//! come from the dashboard's own pages; request logs name the method, the route and the status,
//! never a query string or a header.

mod api;
mod charts;
mod evidence;
mod incidents;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::daemon::Daemon;
use crate::tokens::Tokens;

/// The name of the cookie a browser keeps its session in (see [`Tokens::session`]).
pub const COOKIE: &str = "bulwark_session";

pub struct HttpState {
    pub daemon: Arc<Daemon>,
    pub tokens: Tokens,
    /// Served over TLS: cookies are marked Secure.
    pub tls: bool,
}

impl HttpState {
    pub fn new(daemon: Arc<Daemon>, tokens: Tokens, tls: bool) -> HttpState {
        HttpState {
            daemon,
            tokens,
            tls,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller(pub String);

pub fn router(state: Arc<HttpState>) -> Router {
    let private = Router::new()
        .route("/", get(pages::overview))
        .route("/datasets/{name}", get(pages::dataset))
        .route("/datasets/{name}/run", post(pages::run_now))
        .route("/ledger", get(pages::ledger))
        .route("/jobs", get(pages::jobs))
        .route("/api/status", get(api::status))
        .route("/api/datasets", get(api::datasets))
        .route("/api/datasets/{name}", get(api::dataset))
        .route("/api/datasets/{name}/run", post(api::run))
        .route("/api/ledger", get(api::ledger))
        .route("/api/jobs", get(api::jobs))
        .route("/api/events", get(api::events))
        .route("/api/evidence", get(evidence::pack))
        .route("/api/status-page", get(api::status_page))
        .route("/openapi.json", get(api::openapi))
        .route("/metrics", get(api::metrics))
        .route("/readyz", get(api::readyz))
        .route("/incidents", get(incidents::page))
        .route("/api/incidents", get(incidents::list).post(incidents::open))
        .route("/api/incidents/{id}", get(incidents::show))
        .route("/api/incidents/{id}/updates", post(incidents::update))
        .route("/api/incidents/{id}/resolve", post(incidents::resolve))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/status", get(pages::status_page))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .merge(private)
        .fallback(not_found)
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// What a request presents to prove who sends it.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer TOKEN` (the scheme in any case, as RFC 9110 has it).
    Bearer(String),
    /// The session cookie of a signed-in browser.
    Session(String),
}

/// The credential a request presents. A token anywhere else (a query string, say) is not one:
/// URLs end up in logs, histories and `Referer` headers.
pub fn presented(headers: &HeaderMap) -> Option<Credential> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return match v.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Some(Credential::Bearer(token.trim().to_string()))
            }
            _ => None,
        };
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(COOKIE)
                .and_then(|v| v.strip_prefix('='))
                .map(|v| Credential::Session(v.to_string()))
        })
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// Whether a browser sent this request from one of our own pages. Only cookie sessions need
/// this (another site cannot make a browser send a bearer token): `SameSite=Strict` keeps the
/// cookie off cross-site requests in current browsers, and this refuses what older ones send,
/// by the Fetch Metadata and `Origin` headers when present.
fn same_origin(headers: &HeaderMap) -> bool {
    let value = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    match (value("origin"), value("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .is_some_and(|o| o == host),
        (Some(_), None) => false,
    }
}

fn refusal(status: StatusCode, headers: &HeaderMap, message: &str) -> Response {
    let mut r = if wants_html(headers) {
        (status, pages::login_page(Some(message))).into_response()
    } else {
        api::error(status, message)
    };
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

async fn authenticate(
    State(state): State<Arc<HttpState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let credential = presented(req.headers());
    let holder = match &credential {
        Some(Credential::Bearer(t)) => state.tokens.holder(t),
        Some(Credential::Session(s)) => state.tokens.session_holder(s),
        None => None,
    };
    let Some(name) = holder.map(str::to_string) else {
        return refusal(
            StatusCode::UNAUTHORIZED,
            req.headers(),
            "a bearer token is required (Authorization: Bearer TOKEN)",
        );
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if !safe && matches!(credential, Some(Credential::Session(_))) && !same_origin(req.headers()) {
        return refusal(
            StatusCode::FORBIDDEN,
            req.headers(),
            "refused: the request did not come from this dashboard",
        );
    }
    req.extensions_mut().insert(Caller(name));
    next.run(req).await
}

async fn not_found(headers: HeaderMap) -> Response {
    if wants_html(&headers) {
        pages::not_found("No such page").into_response()
    } else {
        api::error(StatusCode::NOT_FOUND, "no such route")
    }
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".into());
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    tracing::debug!(target: "bulwark::http", %method, route, status = response.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    response
}

/// Pages load nothing from elsewhere; nothing is framed or sniffed.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Where the server listens, and with which certificate.
pub struct Listen {
    pub addr: SocketAddr,
    /// PEM certificate chain and private key files.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Serve until `shutdown` resolves. Returns the address actually bound (port 0 picks one) through
/// `bound` before serving.
pub async fn serve(
    state: Arc<HttpState>,
    listen: Listen,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(listen.addr)?;
    listener.set_nonblocking(true)?;
    let app = router(state);
    match listen.tls {
        None => {
            bound(listener.local_addr()?);
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some((cert, key)) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "cannot load the TLS certificate {} and key {}: {e}",
                            cert.display(),
                            key.display()
                        ),
                    )
                })?;
            // Ready only once the certificate is loaded: a client told the address may connect at once.
            bound(listener.local_addr()?);
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener, config)?
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
    }
}
