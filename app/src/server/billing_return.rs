//! `GET /billing/return`: where Stripe's hosted pages send the browser back to.
//!
//! Session cookies are `SameSite=Strict`, so the navigation from Stripe's site to ours arrives without one and the
//! dashboard would answer with the sign-in page. This page needs no session: it only moves the browser on to
//! the billing page with a same-origin navigation (a meta refresh, no script), which carries the cookie.

use axum::extract::Query;
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

/// Stripe's success, cancel and portal return URLs point here.
pub const PATH: &str = "/billing/return";

#[derive(Debug, Deserialize)]
pub struct Outcome {
    checkout: Option<String>,
    portal: Option<String>,
}

pub async fn billing_return(Query(outcome): Query<Outcome>) -> Response {
    // Only known values travel on: nothing from the query is echoed into the page.
    let next = match (outcome.checkout.as_deref(), outcome.portal.as_deref()) {
        (Some("success"), _) => "/dashboard/billing?checkout=success",
        (Some("cancelled"), _) => "/dashboard/billing?checkout=cancelled",
        (_, Some("returned")) => "/dashboard/billing?portal=returned",
        _ => "/dashboard/billing",
    };
    let mut res = Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={next}\"><title>Back to DeployClaw</title>\
         <link rel=\"icon\" type=\"image/svg+xml\" href=\"/favicon.svg\"></head>\
         <body><p><a href=\"{next}\">Continue to Billing</a></p></body></html>"
    ))
    .into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
