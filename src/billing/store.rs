//! The subscription mirror and the processed-event ledger (migration 11). Every webhook event is applied in one
//! transaction that first records its id: a second delivery of the same event (even at the same moment) finds the
//! id taken and changes nothing. Each client's effective plan (`clients.plan`, which every limit reads) is
//! recomputed from the mirror in the same transaction.

use chrono::{DateTime, Utc};

use crate::db::text_enum::text_enum;
use crate::db::{on_pool, ClientId, Db, DbError};
use crate::plans::TRIAL;

text_enum!(
    /// A Stripe subscription's status, mirrored (`none`: the client never subscribed).
    SubscriptionStatus {
        None = "none",
        Incomplete = "incomplete",
        IncompleteExpired = "incomplete_expired",
        Trialing = "trialing",
        Active = "active",
        PastDue = "past_due",
        Canceled = "canceled",
        Unpaid = "unpaid",
        Paused = "paused",
    }
);

impl SubscriptionStatus {
    /// Whether the subscribed plan's limits apply (a failed payment keeps them through the grace period).
    pub fn grants_plan(self) -> bool {
        matches!(self, Self::Active | Self::Trialing | Self::PastDue)
    }
}

/// One client's mirrored subscription.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Subscription {
    pub client_id: ClientId,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub status: SubscriptionStatus,
    /// The plan subscribed to (what the client pays for), whatever its status.
    pub plan: String,
    pub current_period_end: Option<DateTime<Utc>>,
    pub subscription_event_at: i64,
    pub payment_event_at: i64,
    /// Set by a failed payment: when the client's agents are stopped unless a payment succeeds first.
    pub grace_until: Option<DateTime<Utc>>,
    /// Set when the grace period ran out: the agents were stopped and the trial limits apply.
    pub suspended_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "client_id, stripe_customer_id, stripe_subscription_id, status, plan, current_period_end, \
                       subscription_event_at, payment_event_at, grace_until, suspended_at";

/// What a verified event asks to change, in our terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Checkout completed: the customer (and its new subscription) belong to `client`.
    Link { client: ClientId, customer: String, subscription: Option<String> },
    /// A subscription's state at `at` (the event's `created`).
    Subscription {
        client_hint: Option<ClientId>,
        customer: String,
        subscription: String,
        status: SubscriptionStatus,
        /// Our plan id for the subscription's price; `None` for a price no plan sells.
        plan: Option<String>,
        period_end: Option<DateTime<Utc>>,
        at: i64,
    },
    /// A payment failed at `at`: the grace period starts (if it has not already).
    PaymentFailed { customer: String, at: i64, grace_until: DateTime<Utc> },
    /// A payment succeeded at `at`: any grace period or suspension ends.
    PaymentSucceeded { customer: String, at: i64 },
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The event id was processed before: nothing changed.
    Duplicate,
    /// Recorded, no effect: no client could be matched, or the event is older than the state we hold.
    NoEffect { client: Option<ClientId>, reason: &'static str },
    Changed {
        client: ClientId,
        plan_before: String,
        plan_after: String,
        status: SubscriptionStatus,
        /// A grace period that started with this event.
        grace_started: Option<DateTime<Utc>>,
        /// A grace period or suspension that this event ended.
        grace_ended: bool,
    },
}

fn effective_plan(s: &Subscription) -> String {
    if s.suspended_at.is_none() && s.status.grants_plan() {
        s.plan.clone()
    } else {
        TRIAL.to_string()
    }
}

/// The mirror of `client`, if it ever started a checkout or subscribed.
pub async fn get(db: &Db, client: ClientId) -> Result<Option<Subscription>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM billing_subscriptions WHERE client_id = $1");
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Subscription>(&sql).bind(client).fetch_optional(p).await?))
}

/// Remembers the Stripe customer created for `client` (before its first checkout). Keeps an existing one.
pub async fn set_customer(db: &Db, client: ClientId, customer: &str) -> Result<String, DbError> {
    let now = crate::db::now();
    let sql = "INSERT INTO billing_subscriptions (client_id, stripe_customer_id, created_at, updated_at) \
               VALUES ($1, $2, $3, $3) ON CONFLICT (client_id) DO UPDATE SET \
               stripe_customer_id = COALESCE(billing_subscriptions.stripe_customer_id, excluded.stripe_customer_id) \
               RETURNING stripe_customer_id";
    let stored: Option<String> =
        on_pool!(db, |p| sqlx::query_scalar(sql).bind(client).bind(customer).bind(now).fetch_one(p).await?);
    stored.ok_or_else(|| DbError::Invalid("no Stripe customer stored".into()))
}

/// Whether `event_id` was processed.
pub async fn seen(db: &Db, event_id: &str) -> Result<bool, DbError> {
    let n: i64 = on_pool!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM billing_events WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(p)
        .await?);
    Ok(n > 0)
}

/// Records `event_id` and applies `change` (if any) in one transaction; see the module docs.
pub async fn apply(
    db: &Db,
    event_id: &str,
    event_type: &str,
    change: Option<Change>,
    now: DateTime<Utc>,
) -> Result<Applied, DbError> {
    let record = "INSERT INTO billing_events (event_id, event_type, processed_at) VALUES ($1, $2, $3) \
                  ON CONFLICT (event_id) DO NOTHING";
    let by_customer = "SELECT client_id FROM billing_subscriptions WHERE stripe_customer_id = $1";
    let ensure = "INSERT INTO billing_subscriptions (client_id, created_at, updated_at) VALUES ($1, $2, $2) \
                  ON CONFLICT (client_id) DO NOTHING";
    let read = format!("SELECT {COLUMNS} FROM billing_subscriptions WHERE client_id = $1");
    let write = "UPDATE billing_subscriptions SET stripe_customer_id = $1, stripe_subscription_id = $2, status = $3, \
                 plan = $4, current_period_end = $5, subscription_event_at = $6, payment_event_at = $7, \
                 grace_until = $8, suspended_at = $9, updated_at = $10 WHERE client_id = $11";
    let client_plan = "SELECT plan FROM clients WHERE id = $1";
    let set_plan = "UPDATE clients SET plan = $1, updated_at = $2 WHERE id = $3";
    let tag = "UPDATE billing_events SET client_id = $1 WHERE event_id = $2";
    Ok(on_pool!(db, |p| {
        let mut tx = p.begin().await?;
        let fresh =
            sqlx::query(record).bind(event_id).bind(event_type).bind(now).execute(&mut *tx).await?.rows_affected();
        if fresh == 0 {
            tx.rollback().await?;
            return Ok(Applied::Duplicate);
        }
        let Some(change) = change else {
            tx.commit().await?;
            return Ok(Applied::NoEffect { client: None, reason: "event type not handled" });
        };
        let customer = match &change {
            Change::Link { customer, .. }
            | Change::Subscription { customer, .. }
            | Change::PaymentFailed { customer, .. }
            | Change::PaymentSucceeded { customer, .. } => customer.clone(),
        };
        let known: Option<ClientId> = sqlx::query_scalar(by_customer).bind(&customer).fetch_optional(&mut *tx).await?;
        let hint = match &change {
            Change::Link { client, .. } => Some(*client),
            Change::Subscription { client_hint, .. } => *client_hint,
            _ => None,
        };
        let client = match (known, hint) {
            (Some(k), Some(h)) if k != h => {
                tx.commit().await?;
                return Ok(Applied::NoEffect { client: Some(k), reason: "the customer belongs to another client" });
            }
            (Some(k), _) => k,
            (None, Some(h)) => h,
            (None, None) => {
                tx.commit().await?;
                return Ok(Applied::NoEffect { client: None, reason: "no client has this Stripe customer" });
            }
        };
        let exists: Option<String> = sqlx::query_scalar(client_plan).bind(client).fetch_optional(&mut *tx).await?;
        let Some(plan_before) = exists else {
            tx.commit().await?;
            return Ok(Applied::NoEffect { client: None, reason: "the client does not exist" });
        };
        sqlx::query(ensure).bind(client).bind(now).execute(&mut *tx).await?;
        let mut s = sqlx::query_as::<_, Subscription>(&read).bind(client).fetch_one(&mut *tx).await?;
        if s.stripe_customer_id.as_deref().is_some_and(|c| c != customer) {
            tx.commit().await?;
            return Ok(Applied::NoEffect { client: Some(client), reason: "the client has another Stripe customer" });
        }
        s.stripe_customer_id = Some(customer);
        let mut grace_started = None;
        let mut grace_ended = false;
        match change {
            Change::Link { subscription, .. } => {
                if s.stripe_subscription_id.is_none() {
                    s.stripe_subscription_id = subscription;
                }
            }
            Change::Subscription { subscription, status, plan, period_end, at, .. } => {
                // Older than what we hold: Stripe delivered it late. The newer state stands.
                if at < s.subscription_event_at {
                    sqlx::query(tag).bind(client).bind(event_id).execute(&mut *tx).await?;
                    tx.commit().await?;
                    return Ok(Applied::NoEffect { client: Some(client), reason: "older than the state held" });
                }
                // An event about a subscription the client replaced changes nothing either.
                let current = s.stripe_subscription_id.as_deref();
                if current.is_some_and(|c| c != subscription) && s.status.grants_plan() && !status.grants_plan() {
                    sqlx::query(tag).bind(client).bind(event_id).execute(&mut *tx).await?;
                    tx.commit().await?;
                    return Ok(Applied::NoEffect { client: Some(client), reason: "about a replaced subscription" });
                }
                s.stripe_subscription_id = Some(subscription);
                s.status = status;
                s.plan = plan.unwrap_or_else(|| TRIAL.to_string());
                s.current_period_end = period_end;
                s.subscription_event_at = at;
                if !status.grants_plan() {
                    // Cancelled: nothing left to pay, nothing left to suspend.
                    grace_ended = s.grace_until.is_some() || s.suspended_at.is_some();
                    s.grace_until = None;
                    s.suspended_at = None;
                }
            }
            Change::PaymentFailed { at, grace_until, .. } => {
                if at < s.payment_event_at {
                    sqlx::query(tag).bind(client).bind(event_id).execute(&mut *tx).await?;
                    tx.commit().await?;
                    return Ok(Applied::NoEffect { client: Some(client), reason: "older than the state held" });
                }
                s.payment_event_at = at;
                if s.grace_until.is_none() && s.suspended_at.is_none() {
                    s.grace_until = Some(grace_until);
                    grace_started = Some(grace_until);
                }
            }
            Change::PaymentSucceeded { at, .. } => {
                if at < s.payment_event_at {
                    sqlx::query(tag).bind(client).bind(event_id).execute(&mut *tx).await?;
                    tx.commit().await?;
                    return Ok(Applied::NoEffect { client: Some(client), reason: "older than the state held" });
                }
                s.payment_event_at = at;
                grace_ended = s.grace_until.is_some() || s.suspended_at.is_some();
                s.grace_until = None;
                s.suspended_at = None;
            }
        }
        sqlx::query(write)
            .bind(&s.stripe_customer_id)
            .bind(&s.stripe_subscription_id)
            .bind(s.status)
            .bind(&s.plan)
            .bind(s.current_period_end)
            .bind(s.subscription_event_at)
            .bind(s.payment_event_at)
            .bind(s.grace_until)
            .bind(s.suspended_at)
            .bind(now)
            .bind(client)
            .execute(&mut *tx)
            .await?;
        let plan_after = effective_plan(&s);
        sqlx::query(set_plan).bind(&plan_after).bind(now).bind(client).execute(&mut *tx).await?;
        sqlx::query(tag).bind(client).bind(event_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Applied::Changed { client, plan_before, plan_after, status: s.status, grace_started, grace_ended }
    }))
}

/// Clients whose grace period ended by `now` and are not suspended yet.
pub async fn grace_expired(db: &Db, now: DateTime<Utc>) -> Result<Vec<ClientId>, DbError> {
    let sql = "SELECT client_id FROM billing_subscriptions \
               WHERE grace_until IS NOT NULL AND grace_until <= $1 AND suspended_at IS NULL ORDER BY client_id";
    Ok(on_pool!(db, |p| sqlx::query_scalar(sql).bind(now).fetch_all(p).await?))
}

/// Suspends `client` for non-payment if its grace period still ended by `now` (a payment may have arrived since
/// the list was read): the trial limits apply from here. True when this call suspended it.
pub async fn suspend(db: &Db, client: ClientId, now: DateTime<Utc>) -> Result<bool, DbError> {
    let mark = "UPDATE billing_subscriptions SET suspended_at = $1, updated_at = $1 \
                WHERE client_id = $2 AND grace_until IS NOT NULL AND grace_until <= $1 AND suspended_at IS NULL";
    let set_plan = "UPDATE clients SET plan = $1, updated_at = $2 WHERE id = $3";
    Ok(on_pool!(db, |p| {
        let mut tx = p.begin().await?;
        let n = sqlx::query(mark).bind(now).bind(client).execute(&mut *tx).await?.rows_affected();
        if n == 1 {
            sqlx::query(set_plan).bind(TRIAL).bind(now).bind(client).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        n == 1
    }))
}

/// Clients with a subscription record whose plan in effect is now `plan` (the trial: cancelled or suspended), for
/// the enforcement pass that retries stops that failed (a runtime that was down).
pub async fn clients_on_plan(db: &Db, plan: &str) -> Result<Vec<ClientId>, DbError> {
    let sql = "SELECT s.client_id FROM billing_subscriptions s JOIN clients c ON c.id = s.client_id \
               WHERE c.plan = $1 ORDER BY s.client_id";
    Ok(on_pool!(db, |p| sqlx::query_scalar(sql).bind(plan).fetch_all(p).await?))
}
