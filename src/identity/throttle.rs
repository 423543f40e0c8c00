//! A database-backed sliding-window throttle, so limits hold across restarts and across server replicas.
//!
//! Buckets are per IP (`ip:203.0.113.9`) and per account (`account:ada@example.com`). A request is refused
//! when any of its buckets already holds `max` events of the kind within the window; the answer says how long
//! to wait, never which bucket or factor tripped.

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

#[derive(Debug, Clone)]
pub struct Throttle {
    db: Db,
}

impl Throttle {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Ok when every bucket is under `limit` for `kind` at `now`; otherwise how long until the earliest
    /// bucket frees a slot.
    pub async fn check(
        &self,
        buckets: &[Bucket],
        kind: ThrottleKind,
        limit: Limit,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Throttled>, DbError> {
        let since = now - chrono::Duration::from_std(limit.window).expect("window fits");
        let mut wait = Duration::ZERO;
        for bucket in buckets {
            // The `max`-th newest event in the window: once it ages out, a slot frees up.
            let nth: Option<DateTime<Utc>> = on_pool!(self.db, |p| sqlx::query_scalar(
                "SELECT created_at FROM auth_throttle WHERE bucket = $1 AND kind = $2 AND created_at > $3 \
                 ORDER BY created_at DESC LIMIT 1 OFFSET $4"
            )
            .bind(bucket.as_str())
            .bind(kind)
            .bind(since)
            .bind(i64::from(limit.max) - 1)
            .fetch_optional(p)
            .await?);
            if let Some(at) = nth {
                let free_at = at + chrono::Duration::from_std(limit.window).expect("window fits");
                let remaining = (free_at - now).to_std().unwrap_or(Duration::ZERO);
                wait = wait.max(remaining.max(Duration::from_secs(1)));
            }
        }
        Ok(if wait.is_zero() { Ok(()) } else { Err(Throttled { retry_after: wait }) })
    }

    /// Records one event of `kind` in every bucket, and prunes events older than a day.
    pub async fn record(&self, buckets: &[Bucket], kind: ThrottleKind, now: DateTime<Utc>) -> Result<(), DbError> {
        let cutoff = now - chrono::Duration::from_std(RETENTION).expect("retention fits");
        on_pool!(self.db, |p| {
            let mut tx = p.begin().await?;
            for bucket in buckets {
                sqlx::query("INSERT INTO auth_throttle (bucket, kind, created_at) VALUES ($1, $2, $3)")
                    .bind(bucket.as_str())
                    .bind(kind)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM auth_throttle WHERE created_at < $1").bind(cutoff).execute(&mut *tx).await?;
            tx.commit().await?;
        });
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
