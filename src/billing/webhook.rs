//! Stripe events, read into [`Change`]s. Only the fields we use are read; anything else in the payload is
//! ignored, and an event type we do not handle is acknowledged without effect (Stripe stops retrying it).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::store::{Change, SubscriptionStatus};
use crate::db::ClientId;
use crate::plans::Catalog;

/// The largest webhook body read; a bigger one is refused (413) before it is read whole. Stripe's events are a
/// few KiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The metadata key that carries our client id on the subscriptions Checkout creates.
pub const CLIENT_METADATA_KEY: &str = "deployclaw_client_id";

/// The event types this platform acts on.
pub const HANDLED: &[&str] = &[
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.payment_failed",
    "invoice.paid",
];

/// The envelope of every Stripe event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds when Stripe created the event: the order of events about one object.
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: Value,
}

/// Why an event could not be read. Returned to Stripe as a 400 (it retries; a fixed bug then succeeds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the body is not a Stripe event")]
    NotAnEvent,
    #[error("the event's {0} is missing or malformed")]
    Field(&'static str),
}

/// Parses an event envelope; its id must look like Stripe's (`evt_...`).
pub fn parse(body: &[u8]) -> Result<Event, EventError> {
    let event: Event = serde_json::from_slice(body).map_err(|_| EventError::NotAnEvent)?;
    let id_ok = event.id.starts_with("evt_")
        && event.id.len() <= 255
        && event.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !id_ok || event.kind.is_empty() || event.kind.len() > 255 || !event.data.object.is_object() {
        return Err(EventError::NotAnEvent);
    }
    Ok(event)
}

fn text<'a>(o: &'a Value, key: &'static str) -> Result<&'a str, EventError> {
    let v = o.get(key).and_then(Value::as_str).ok_or(EventError::Field(key))?;
    if v.is_empty() || v.len() > 255 {
        return Err(EventError::Field(key));
    }
    Ok(v)
}

/// A field that is a Stripe id, or an expanded object with one.
fn id_of<'a>(o: &'a Value, key: &'static str) -> Result<&'a str, EventError> {
    match o.get(key) {
        Some(Value::Object(inner)) => inner.get("id").and_then(Value::as_str).ok_or(EventError::Field(key)),
        _ => text(o, key),
    }
}

fn timestamp(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.and_then(|s| DateTime::from_timestamp(s, 0))
}

/// What `event` asks to change; `Ok(None)` for types we do not act on.
pub fn change(
    event: &Event,
    catalog: &Catalog,
    grace: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Option<Change>, EventError> {
    let o = &event.data.object;
    Ok(Some(match event.kind.as_str() {
        "checkout.session.completed" => {
            let Some(client) = o.get("client_reference_id").and_then(Value::as_str) else {
                return Ok(None); // A session someone else made (payment links): not ours to act on.
            };
            let client: ClientId = client.parse().map_err(|_| EventError::Field("client_reference_id"))?;
            let subscription = o.get("subscription").filter(|v| !v.is_null()).map(|_| id_of(o, "subscription"));
            Change::Link {
                client,
                customer: id_of(o, "customer")?.to_string(),
                subscription: subscription.transpose()?.map(str::to_string),
            }
        }
        "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted" => {
            let status: SubscriptionStatus = match event.kind.as_str() {
                "customer.subscription.deleted" => SubscriptionStatus::Canceled,
                _ => text(o, "status")?.parse().map_err(|_| EventError::Field("status"))?,
            };
            let items = o.pointer("/items/data").and_then(Value::as_array);
            let first = items.and_then(|i| i.first());
            let price = first.and_then(|i| i.pointer("/price/id")).and_then(Value::as_str);
            // Newer API versions carry the period on the item, older ones on the subscription.
            let period_end = o
                .get("current_period_end")
                .and_then(Value::as_i64)
                .or_else(|| first.and_then(|i| i.get("current_period_end")).and_then(Value::as_i64));
            let hint = o.pointer(&format!("/metadata/{CLIENT_METADATA_KEY}")).and_then(Value::as_str);
            Change::Subscription {
                client_hint: hint.and_then(|h| h.parse().ok()),
                customer: id_of(o, "customer")?.to_string(),
                subscription: text(o, "id")?.to_string(),
                status,
                plan: price.and_then(|p| catalog.by_price(p)).map(|p| p.id.clone()),
                period_end: timestamp(period_end),
                at: event.created,
            }
        }
        "invoice.payment_failed" => Change::PaymentFailed {
            customer: id_of(o, "customer")?.to_string(),
            at: event.created,
            grace_until: now + grace,
        },
        "invoice.paid" => Change::PaymentSucceeded { customer: id_of(o, "customer")?.to_string(), at: event.created },
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::default_plans;
    use serde_json::json;

    fn event(kind: &str, object: Value) -> Event {
        parse(
            json!({ "id": "evt_1", "type": kind, "created": 1_800_000_000, "data": { "object": object } })
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn subscription_events_become_plan_changes() {
        let catalog = Catalog::new(default_plans(), true);
        let client = ClientId::new();
        let e = event(
            "customer.subscription.updated",
            json!({ "id": "sub_1", "customer": "cus_1", "status": "past_due",
                    "metadata": { "deployclaw_client_id": client.to_string() },
                    "items": { "data": [{ "price": { "id": "price_deployclaw_team" }, "current_period_end": 1_800_100_000 }] } }),
        );
        let now = Utc::now();
        let Some(Change::Subscription { client_hint, status, plan, period_end, at, .. }) =
            change(&e, &catalog, chrono::Duration::days(7), now).unwrap()
        else {
            panic!("not a subscription change");
        };
        assert_eq!(
            (client_hint, status, plan.as_deref(), at),
            (Some(client), SubscriptionStatus::PastDue, Some("team"), 1_800_000_000)
        );
        assert_eq!(period_end.unwrap().timestamp(), 1_800_100_000);
        let deleted =
            event("customer.subscription.deleted", json!({ "id": "sub_1", "customer": "cus_1", "status": "active" }));
        assert!(matches!(
            change(&deleted, &catalog, chrono::Duration::days(7), now).unwrap(),
            Some(Change::Subscription { status: SubscriptionStatus::Canceled, .. })
        ));
        let other = event("charge.refunded", json!({}));
        assert_eq!(change(&other, &catalog, chrono::Duration::days(7), now).unwrap(), None);
        let broken = event("invoice.paid", json!({ "customer": 42 }));
        assert_eq!(change(&broken, &catalog, chrono::Duration::days(7), now), Err(EventError::Field("customer")));
    }

    #[test]
    fn only_stripe_shaped_events_parse() {
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"id":"x","type":"a","created":1,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","type":"a","created":1,"data":{"object":[]}}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
