//! The daemon's one HTTP server: the operators' dashboard and JSON API behind a bearer token, the
//! customers' status page and `/healthz` open to all, Prometheus metrics, optional TLS.
//!
//! Rules every route keeps: nothing changes state on GET; every state-changing request is a ledger
//! event naming its caller; responses carry no secret (no passphrase, key, token or DSN password)
//! because they are made from the cached view, whose sources never hold one; tokens are compared
//! in constant time; request logs name the method, the route and the status, never a query string
//! or a header.

mod api;
mod charts;
mod evidence;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::daemon::Daemon;
use crate::tokens::Tokens;

/// The name of the cookie a browser session keeps its token in.
pub const COOKIE: &str = "bulwark_token";

pub struct HttpState {
    pub daemon: Arc<Daemon>,
    pub tokens: Tokens,
    /// Served over TLS: cookies are marked Secure.
    pub tls: bool,
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
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/status", get(pages::status_page))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .merge(private)
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The token a request presents: `Authorization: Bearer TOKEN`, or the session cookie.
pub fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

async fn authenticate(
    State(state): State<Arc<HttpState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let holder = presented(req.headers()).and_then(|t| state.tokens.holder(&t).map(str::to_string));
    match holder {
        Some(name) => {
            req.extensions_mut().insert(Caller(name));
            next.run(req).await
        }
        None if wants_html(req.headers()) => {
            let mut r = (StatusCode::UNAUTHORIZED, pages::login_page(true)).into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        None => {
            let mut r = api::error(
                StatusCode::UNAUTHORIZED,
                "a bearer token is required (Authorization: Bearer TOKEN)",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
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
    bound(listener.local_addr()?);
    let app = router(state);
    match listen.tls {
        None => {
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
