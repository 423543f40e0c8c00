//! The axum router: Leptos pages and server functions, health probes, static files, and the layers every
//! request passes through (request id, tracing, body limit, panic catcher, security headers).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{Request, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use axum::Router;
use deployclaw::Platform;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use super::document::shell;
use super::headers::{provide_request_nonce, security_headers, HeaderPolicy};
use super::session::{same_origin_only, session_guard, session_layer, OwnOrigin};
use crate::app::App;

/// Largest request body we accept anywhere (server functions, later webhooks); bigger gets 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Router state: what handlers and server functions can reach.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub platform: Platform,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(s: &AppState) -> Self {
        s.leptos_options.clone()
    }
}

impl FromRef<AppState> for Platform {
    fn from_ref(s: &AppState) -> Self {
        s.platform.clone()
    }
}

/// The site layout compiled into the binary (see the comment in `Leptos.toml`).
pub const SITE_LAYOUT: &str = include_str!("../../../Leptos.toml");

/// The Leptos site options: bundle name and pkg dir from `Leptos.toml`; site root and address from our
/// configuration.
pub fn leptos_options(platform: &Platform) -> Result<LeptosOptions, std::io::Error> {
    let server = &platform.config().server;
    let layout = leptos::config::get_config_from_str(SITE_LAYOUT)
        .map_err(|e| std::io::Error::other(format!("Leptos.toml: {e}")))?;
    // A release build names the bundle by content (cargo-leptos `hash-files`) and writes the names to
    // `hash.txt` beside this binary, where Leptos reads them when it renders the page head.
    let hash_file = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join(HASH_FILE)));
    let hashed = hash_file.as_deref().is_some_and(std::path::Path::is_file);
    Ok(LeptosOptions::builder()
        .output_name(layout.output_name)
        .site_root(server.site_root.to_string_lossy().into_owned())
        .site_pkg_dir(layout.site_pkg_dir)
        .site_addr(server.addr)
        .hash_files(hashed)
        .hash_file(HASH_FILE.into())
        .build())
}

/// Where cargo-leptos writes the hashed bundle names, relative to the server binary.
pub const HASH_FILE: &str = "hash.txt";

/// Builds the whole application router around `platform`.
pub fn build_router(platform: Platform) -> Result<Router, std::io::Error> {
    let leptos_options = leptos_options(&platform)?;
    let routes = generate_route_list(App);
    let state = AppState { leptos_options: leptos_options.clone(), platform: platform.clone() };
    let policy = HeaderPolicy { hsts: platform.config().server.is_tls() };
    let own_origin = OwnOrigin(platform.config().server.public_origin().into());

    let context = {
        let platform = platform.clone();
        move || {
            provide_context(platform.clone());
            provide_request_nonce();
        }
    };

    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // HEAD is refused rather than answered by the GET handler: it would record an export nobody received.
        .route(
            super::audit_export::PATH,
            get(super::audit_export::export_audit).head(|| async { StatusCode::METHOD_NOT_ALLOWED }),
        )
        .route(crate::api::audit::STREAM_PATH, get(super::audit_stream::stream_audit))
        .route(super::security::SECURITY_TXT_PATH, get(super::security::security_txt_route))
        .route(super::security::SOURCE_ROUTE, get(super::security::source_view))
        .route(super::billing_webhook::PATH, axum::routing::post(super::billing_webhook::receive))
        .route(super::billing_return::PATH, get(super::billing_return::billing_return))
        .leptos_routes_with_context(&state, routes, context.clone(), {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback({
            // Static files first (precompressed, cached: static_files.rs); anything else is a page, which for
            // an unknown path renders the app's "not found".
            let pages = leptos_axum::file_and_error_handler_with_context::<AppState, _>(context, shell);
            move |uri: Uri, State(state): State<AppState>, req: Request<Body>| {
                let pages = pages.clone();
                async move {
                    let root = std::path::PathBuf::from(state.leptos_options.site_root.as_ref());
                    let (parts, body) = req.into_parts();
                    match super::static_files::serve(&root, &parts.method, &parts.uri, &parts.headers).await {
                        Some(file) => file,
                        None => pages(uri, State(state), Request::from_parts(parts, body)).await,
                    }
                }
            }
        })
        .with_state(state)
        // Innermost: a server function's body is read only once the session and origin checks passed.
        .layer(axum::middleware::from_fn(super::fn_requests::check))
        .layer(axum::middleware::from_fn_with_state(platform.clone(), session_guard))
        .layer(session_layer(&platform))
        .layer(axum::middleware::from_fn_with_state(own_origin, same_origin_only))
        .layer(axum::middleware::from_fn_with_state(policy, security_headers))
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("a request handler panicked");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
        }))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<Body>| {
                    let request_id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("-")
                        .to_string();
                    tracing::info_span!("request", %request_id, method = %req.method(), uri = %req.uri())
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_millis() as u64, "response");
                })
                .on_failure(DefaultOnFailure::new().level(Level::WARN)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
    Ok(router)
}

/// Liveness: the process is up and answering. Never touches the database.
async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "ok": true, "status": "live" }))
}

/// Readiness: the database answers and its schema matches this binary. 503 otherwise, with the reason.
async fn readyz(State(platform): State<Platform>) -> Response {
    let readiness = platform.readiness().await;
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(readiness)).into_response()
}

#[cfg(test)]
mod tests {
    use super::SITE_LAYOUT;

    fn value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key)?.trim_start().strip_prefix('='))
            .map(|v| v.trim().trim_matches('"'))
    }

    /// cargo-leptos builds the site from Cargo.toml's metadata; the server finds it through Leptos.toml.
    #[test]
    fn leptos_toml_agrees_with_the_cargo_leptos_build_settings() {
        let cargo = include_str!("../../../Cargo.toml");
        let build = &cargo[cargo.find("[[workspace.metadata.leptos]]").expect("cargo-leptos section")..];
        for key in ["output-name", "site-root", "site-pkg-dir"] {
            assert_eq!(value(SITE_LAYOUT, key), value(build, key), "{key} differs between Leptos.toml and Cargo.toml");
            assert!(value(SITE_LAYOUT, key).is_some(), "{key} missing from Leptos.toml");
        }
    }
}
