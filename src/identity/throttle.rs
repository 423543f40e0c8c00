//! A database-backed sliding-window throttle, so limits hold across restarts and across server replicas.
//!
//! Buckets are per client address (`ip:203.0.113.9`, an IPv6 /64) and per account (`account:ada@example.com`).
//! A request is refused when any of its buckets already holds `max` events of the kind within the window; the
//! answer says how long to wait, never which bucket or factor tripped. One address's bucket never blocks
//! another address.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::db::text_enum::text_enum;
use crate::db::{on_pool, Db, DbError};
use crate::email::EmailAddress;

text_enum!(
    /// What is being counted.
    ThrottleKind {
        /// A sign-in code was sent.
        CodeSent = "code_sent",
        /// A wrong code (email or TOTP).
        Failure = "failure",
    }
);

/// `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

/// Failed sign-in attempts: 5 per 15 minutes per IP and per account.
pub const FAILURES: Limit = Limit { max: 5, window: Duration::from_secs(15 * 60) };
/// Codes sent: 5 per 15 minutes per address and per IP.
pub const CODE_SENDS: Limit = Limit { max: 5, window: Duration::from_secs(15 * 60) };
/// Events older than this are pruned.
const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// A throttle bucket key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket(String);

impl Bucket {
    pub fn ip(ip: IpAddr) -> Self {
        Self(format!("ip:{}", client_network(ip)))
    }

    pub fn account(email: &EmailAddress) -> Self {
        Self(format!("account:{email}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The network a client address stands for: the IPv4 address itself, or the IPv6 /64 (one host usually holds
/// a whole /64). Throttling and known devices both count clients this way.
pub fn client_network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many attempts; try again in {} minute(s)", .retry_after.as_secs().div_ceil(60).max(1))]
pub struct Throttled {
    pub retry_after: Duration,
}

/// Events [`Throttle::take`] recorded, to be given back with [`Throttle::refund`] when the attempt turned out
/// to be a success.
#[derive(Debug)]
#[must_use = "an attempt that succeeded must be refunded"]
pub struct Taken {
    ids: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct Throttle {
    db: Db,
}

impl Throttle {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Counts one event of `kind` in every bucket, if each bucket is under `limit` at `now`; otherwise records
    /// nothing and says how long until the earliest bucket frees a slot.
    ///
    /// Check and record are one step: takes of the same bucket are serialised (PostgreSQL: a transaction-scoped
    /// advisory lock per bucket, taken in a fixed order; SQLite: the database's single write lock, taken by the
    /// transaction's first statement), so no number of parallel requests gets more than `max` through. Attempts
    /// whose outcome is not known yet (a code to check) are taken *before* they are evaluated and refunded when
    /// they succeed, so a burst of guesses costs at most `max` evaluations.
    pub async fn take(
        &self,
        buckets: &[Bucket],
        kind: ThrottleKind,
        limit: Limit,
        now: DateTime<Utc>,
    ) -> Result<Result<Taken, Throttled>, DbError> {
        let window = chrono::Duration::from_std(limit.window).expect("window fits");
        let since = now - window;
        let cutoff = now - chrono::Duration::from_std(RETENTION).expect("retention fits");
        let mut keys: Vec<&str> = buckets.iter().map(Bucket::as_str).collect();
        keys.sort_unstable();
        keys.dedup();
        let postgres = self.db.backend() == crate::db::Backend::Postgres;
        let outcome = on_pool!(self.db, |p| {
            let mut tx = p.begin().await?;
            if postgres {
                for key in &keys {
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7406))")
                        .bind(*key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            // A write first: on SQLite this takes the write lock, before anything is read.
            sqlx::query("DELETE FROM auth_throttle WHERE created_at < $1").bind(cutoff).execute(&mut *tx).await?;
            let mut wait = Duration::ZERO;
            for key in &keys {
                // The `max`-th newest event in the window: once it ages out, a slot frees up.
                let nth: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT created_at FROM auth_throttle WHERE bucket = $1 AND kind = $2 AND created_at > $3 \
                     ORDER BY created_at DESC LIMIT 1 OFFSET $4",
                )
                .bind(*key)
                .bind(kind)
                .bind(since)
                .bind(i64::from(limit.max) - 1)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(at) = nth {
                    let remaining = (at + window - now).to_std().unwrap_or(Duration::ZERO);
                    wait = wait.max(remaining.max(Duration::from_secs(1)));
                }
            }
            let mut ids = Vec::new();
            if wait.is_zero() {
                for key in &keys {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO auth_throttle (bucket, kind, created_at) VALUES ($1, $2, $3) RETURNING id",
                    )
                    .bind(*key)
                    .bind(kind)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    ids.push(id);
                }
            }
            tx.commit().await?;
            if wait.is_zero() {
                Ok(Taken { ids })
            } else {
                Err(Throttled { retry_after: wait })
            }
        });
        Ok(outcome)
    }

    /// Gives back what [`Throttle::take`] counted: the attempt succeeded.
    pub async fn refund(&self, taken: Taken) -> Result<(), DbError> {
        for id in taken.ids {
            on_pool!(self.db, |p| sqlx::query("DELETE FROM auth_throttle WHERE id = $1")
                .bind(id)
                .execute(p)
                .await?
                .rows_affected());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64() {
        let a = Bucket::ip("2001:db8:1:2::1".parse().unwrap());
        let b = Bucket::ip("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = Bucket::ip("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(Bucket::ip("203.0.113.9".parse().unwrap()).as_str(), "ip:203.0.113.9");
    }

    #[test]
    fn the_message_rounds_up_to_whole_minutes() {
        assert_eq!(
            Throttled { retry_after: Duration::from_secs(61) }.to_string(),
            "too many attempts; try again in 2 minute(s)"
        );
        assert_eq!(
            Throttled { retry_after: Duration::from_secs(5) }.to_string(),
            "too many attempts; try again in 1 minute(s)"
        );
    }
}
