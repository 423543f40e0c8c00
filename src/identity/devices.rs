//! Devices a user has signed in from, so a sign-in from a new one can be reported.
//!
//! A device is the browser's user agent plus the network it came from (the IPv4 address, or the IPv6 /64):
//! a new browser or a new network counts as new. Only a SHA-256 fingerprint is stored.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::throttle::client_network;
use crate::context::RequestContext;
use crate::db::{on_pool, Db, DbError, UserId};

/// What a completed sign-in's device was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSeen {
    /// The user's first sign-in ever: nothing to compare with, nothing to alert.
    First,
    Known,
    /// Not seen before for this user: alert them.
    New,
}

fn fingerprint(ctx: &RequestContext) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"deployclaw/device/v1\0");
    h.update(ctx.user_agent.as_deref().unwrap_or("").as_bytes());
    h.update(b"\0");
    h.update(client_network(ctx.ip).as_bytes());
    h.finalize().to_vec()
}

/// Records that `user_id` completed a sign-in from `ctx`'s device and says whether it was new.
pub async fn remember(
    db: &Db,
    user_id: UserId,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<DeviceSeen, DbError> {
    let fp = fingerprint(ctx);
    Ok(on_pool!(db, |p| {
        let mut tx = p.begin().await?;
        let (total, this_one): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN fingerprint = $2 THEN 1 ELSE 0 END), 0) \
             FROM known_devices WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(&fp)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO known_devices (user_id, fingerprint, first_seen_at, last_seen_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (user_id, fingerprint) DO UPDATE SET last_seen_at = $3",
        )
        .bind(user_id)
        .bind(&fp)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        match (total, this_one) {
            (0, _) => DeviceSeen::First,
            (_, 0) => DeviceSeen::New,
            _ => DeviceSeen::Known,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(ip: &str, ua: &str) -> RequestContext {
        RequestContext { ip: ip.parse().unwrap(), user_agent: Some(ua.into()) }
    }

    #[test]
    fn a_device_is_the_browser_and_its_network() {
        assert_eq!(fingerprint(&ctx("2001:db8::1", "A")), fingerprint(&ctx("2001:db8::2", "A")));
        assert_ne!(fingerprint(&ctx("2001:db8::1", "A")), fingerprint(&ctx("2001:db8:0:1::1", "A")));
        assert_ne!(fingerprint(&ctx("203.0.113.1", "A")), fingerprint(&ctx("203.0.113.2", "A")));
        assert_ne!(fingerprint(&ctx("203.0.113.1", "A")), fingerprint(&ctx("203.0.113.1", "B")));
    }
}
