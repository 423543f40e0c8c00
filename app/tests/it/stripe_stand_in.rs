//! A local stand-in for Stripe, on 127.0.0.1 port 0, speaking its wire format: form-encoded `POST`s with
//! `Authorization: Bearer sk_test_...`, answers that are Stripe-shaped JSON objects (or Stripe's error object),
//! a "hosted" Checkout page that completes the purchase by sending signed webhook events to our endpoint and
//! redirecting to the session's success URL, and events the test triggers (payment failed, paid, cancelled).
//! Only the calls DeployClaw makes are implemented.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};

/// What the stand-in saw and holds.
#[derive(Default)]
pub struct Recorded {
    /// Every API request: path and its form fields.
    pub requests: Vec<(String, HashMap<String, String>)>,
    /// Requests refused for a wrong or missing key.
    pub unauthorized: usize,
    sessions: HashMap<String, HashMap<String, String>>,
    customers: HashMap<String, String>,
    next: u32,
    /// The subscription made by the last completed checkout: (id, customer, client id, price).
    subscription: Option<(String, String, String, String)>,
    created: i64,
}

#[derive(Clone)]
pub struct StripeStandIn {
    pub base: String,
    pub key: String,
    pub webhook_secret: String,
    webhook_url: Arc<Mutex<Option<String>>>,
    pub seen: Arc<Mutex<Recorded>>,
    http: reqwest::Client,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": { "type": "invalid_request_error", "message": message } }))).into_response()
}

impl StripeStandIn {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let stand_in = Self {
            base: format!("http://{addr}"),
            key: format!("sk_test_{}", uuid::Uuid::now_v7().simple()),
            webhook_secret: format!("whsec_test_{}", uuid::Uuid::now_v7().simple()),
            webhook_url: Arc::default(),
            seen: Arc::new(Mutex::new(Recorded { created: chrono::Utc::now().timestamp(), ..Recorded::default() })),
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap(),
        };
        let router = Router::new()
            .route("/v1/customers", post(customers))
            .route("/v1/checkout/sessions", post(checkout_sessions))
            .route("/v1/billing_portal/sessions", post(portal_sessions))
            .route("/pay/{session}", get(pay))
            .with_state(stand_in.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        stand_in
    }

    /// Where events are delivered (our webhook endpoint).
    pub fn deliver_to(&self, url: String) {
        *self.webhook_url.lock().unwrap() = Some(url);
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let ok = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {}", self.key));
        if !ok {
            self.seen.lock().unwrap().unauthorized += 1;
        }
        ok
    }

    fn record(&self, path: &str, form: &HashMap<String, String>) -> u32 {
        let mut seen = self.seen.lock().unwrap();
        seen.requests.push((path.to_string(), form.clone()));
        seen.next += 1;
        seen.next
    }

    /// Sends one signed event, as Stripe does; returns our endpoint's status.
    pub async fn send_event(&self, kind: &str, object: Value) -> u16 {
        let (id, created) = {
            let mut seen = self.seen.lock().unwrap();
            seen.created += 1;
            seen.next += 1;
            (format!("evt_test_{}_{}", seen.next, uuid::Uuid::now_v7().simple()), seen.created)
        };
        let body = json!({ "id": id, "object": "event", "api_version": "2024-06-20", "type": kind,
                           "created": created, "livemode": false, "data": { "object": object } })
        .to_string();
        let header = deployclaw::billing::signature::header_for(
            &self.webhook_secret,
            chrono::Utc::now().timestamp(),
            body.as_bytes(),
        );
        let url = self.webhook_url.lock().unwrap().clone().expect("deliver_to was called");
        let res = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("stripe-signature", header)
            .body(body)
            .send()
            .await
            .unwrap();
        res.status().as_u16()
    }

    fn subscription_object(&self, status: &str) -> Value {
        let (id, customer, client, price) =
            self.seen.lock().unwrap().subscription.clone().expect("a checkout completed");
        json!({ "id": id, "object": "subscription", "customer": customer, "status": status,
                "metadata": { "deployclaw_client_id": client },
                "items": { "object": "list", "data": [{ "id": "si_test_1", "object": "subscription_item",
                    "price": { "id": price, "object": "price" },
                    "current_period_end": chrono::Utc::now().timestamp() + 30 * 86_400 }] } })
    }

    fn invoice(&self) -> Value {
        let (id, customer, ..) = self.seen.lock().unwrap().subscription.clone().expect("a checkout completed");
        json!({ "id": format!("in_test_{}", uuid::Uuid::now_v7().simple()), "object": "invoice", "customer": customer,
                "subscription": id })
    }

    /// The renewal payment fails (Stripe marks the subscription `past_due` and sends the failure).
    pub async fn fail_payment(&self) {
        assert_eq!(self.send_event("customer.subscription.updated", self.subscription_object("past_due")).await, 200);
        assert_eq!(self.send_event("invoice.payment_failed", self.invoice()).await, 200);
    }

    /// A payment succeeds again.
    pub async fn pay(&self) {
        assert_eq!(self.send_event("invoice.paid", self.invoice()).await, 200);
        assert_eq!(self.send_event("customer.subscription.updated", self.subscription_object("active")).await, 200);
    }

    /// The customer cancels in the portal; the subscription ends.
    pub async fn cancel(&self) {
        assert_eq!(self.send_event("customer.subscription.deleted", self.subscription_object("canceled")).await, 200);
    }
}

async fn customers(
    State(s): State<StripeStandIn>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !s.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
    }
    let Some(email) = form.get("email").cloned() else {
        return error(StatusCode::BAD_REQUEST, "Missing required param: email.");
    };
    let n = s.record("/v1/customers", &form);
    let id = format!("cus_test_{n}");
    s.seen.lock().unwrap().customers.insert(id.clone(), email.clone());
    Json(json!({ "id": id, "object": "customer", "email": email, "metadata": {} })).into_response()
}

async fn checkout_sessions(
    State(s): State<StripeStandIn>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !s.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
    }
    for required in ["mode", "customer", "line_items[0][price]", "success_url", "cancel_url"] {
        if !form.contains_key(required) {
            return error(StatusCode::BAD_REQUEST, &format!("Missing required param: {required}."));
        }
    }
    if !s.seen.lock().unwrap().customers.contains_key(&form["customer"]) {
        return error(StatusCode::BAD_REQUEST, "No such customer");
    }
    let n = s.record("/v1/checkout/sessions", &form);
    let id = format!("cs_test_{n}");
    s.seen.lock().unwrap().sessions.insert(id.clone(), form.clone());
    Json(json!({ "id": id, "object": "checkout.session", "mode": "subscription", "customer": form["customer"],
                 "client_reference_id": form.get("client_reference_id"), "url": format!("{}/pay/{id}", s.base) }))
    .into_response()
}

async fn portal_sessions(
    State(s): State<StripeStandIn>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !s.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
    }
    let n = s.record("/v1/billing_portal/sessions", &form);
    Json(json!({ "id": format!("bps_test_{n}"), "object": "billing_portal.session",
                 "url": format!("{}/portal/bps_test_{n}", s.base), "return_url": form.get("return_url") }))
    .into_response()
}

/// The hosted Checkout page: the customer "pays", Stripe sends the events, the browser goes to the success URL.
async fn pay(State(s): State<StripeStandIn>, Path(session): Path<String>) -> Response {
    let Some(form) = s.seen.lock().unwrap().sessions.get(&session).cloned() else {
        return error(StatusCode::NOT_FOUND, "No such checkout session");
    };
    let subscription = format!("sub_test_{}", uuid::Uuid::now_v7().simple());
    let client = form.get("client_reference_id").cloned().unwrap_or_default();
    s.seen.lock().unwrap().subscription =
        Some((subscription.clone(), form["customer"].clone(), client.clone(), form["line_items[0][price]"].clone()));
    let completed = json!({ "id": session, "object": "checkout.session", "mode": "subscription",
                            "client_reference_id": client, "customer": form["customer"],
                            "subscription": subscription, "payment_status": "paid", "status": "complete" });
    let a = s.send_event("checkout.session.completed", completed).await;
    let b = s.send_event("customer.subscription.created", s.subscription_object("active")).await;
    if (a, b) != (200, 200) {
        return error(StatusCode::BAD_GATEWAY, &format!("the webhook endpoint answered {a} and {b}"));
    }
    Redirect::to(&form["success_url"]).into_response()
}
