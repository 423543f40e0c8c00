//! Retention: the one code path that deletes audit events, and only old ones.
//!
//! For each chain, retention finds the prefix of events older than the client's retention period, checks that
//! prefix ([`chain::verify_chain_upto`]: it never deletes the evidence of tampering), signs a retention
//! checkpoint of the prefix's last event, then deletes the prefix in batches through the privileged path: on
//! PostgreSQL as the role `deployclaw_audit_retention` (`SET LOCAL ROLE` inside the transaction), on SQLite
//! through a gate row that only this module writes. Either way the database admits the delete only for rows a
//! retention checkpoint covers, so `verify` continues the chain from that checkpoint afterwards.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::chain::{self, chain_key_sql, Chain, ChainHash, CheckpointKind};
use crate::audit::config::AuditConfig;
use crate::db::pool::Pool;
use crate::db::{on_pool, ClientId, Db, DbError};
use crate::keys::keyring::Keyring;

/// The PostgreSQL role that may delete audit rows (created by migration 07 or by an operator).
pub const RETENTION_ROLE: &str = "deployclaw_audit_retention";
/// Rows deleted per transaction.
const BATCH: i64 = 1000;
/// The longest retention anything may ask for (ten years).
pub const MAX_DAYS: u32 = 3650;

/// How long events are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// For clients without an override, and for platform events.
    pub default_days: u32,
    /// The most any client's override may keep.
    pub max_days: u32,
    /// The plans' retention limits, which lower `max_days` per client; `None`: no plan limits.
    pub plans: Option<PlanRetention>,
}

/// The retention limit each plan sets, by plan id; a plan not listed gets `other`. Filled by the platform from
/// its plan catalog (`plans::Catalog::retention_limits`): the audit trail knows no plans.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanRetention {
    pub by_plan: std::collections::BTreeMap<String, u32>,
    pub other: u32,
}

/// The audit settings alone: no plan limits.
impl From<&AuditConfig> for RetentionPolicy {
    fn from(c: &AuditConfig) -> Self {
        Self { default_days: c.retention_days, max_days: c.max_retention_days, plans: None }
    }
}

impl RetentionPolicy {
    /// Days to keep the events of a client on `plan` whose own setting is `override_days`: the override or the
    /// default, clamped to the platform maximum and to the plan's limit.
    pub fn days_for(&self, override_days: Option<u32>, plan: Option<&str>) -> u32 {
        override_days.unwrap_or(self.default_days).clamp(1, self.max_days_for(plan))
    }

    /// The most a client on `plan` may keep: the platform maximum, lowered by the plan's limit if it has one.
    pub fn max_days_for(&self, plan: Option<&str>) -> u32 {
        plan.and_then(|p| self.plan_max_retention_days(p)).map_or(self.max_days, |p| p.min(self.max_days)).max(1)
    }

    /// The retention limit of a billing plan, in days; `None`: the platform maximum applies.
    pub fn plan_max_retention_days(&self, plan: &str) -> Option<u32> {
        self.plans.as_ref().map(|r| r.by_plan.get(plan).copied().unwrap_or(r.other))
    }
}

/// Sets (or, with `None`, clears) how many days `client_id`'s events are kept; clamped when retention runs.
pub async fn set_client_retention(db: &Db, client_id: ClientId, days: Option<u32>) -> Result<(), DbError> {
    if days.is_some_and(|d| !(1..=MAX_DAYS).contains(&d)) {
        return Err(DbError::Invalid(format!("audit retention must be between 1 and {MAX_DAYS} days").into()));
    }
    let days = days.map(i64::from);
    let sql = "UPDATE clients SET audit_retention_days = $1 WHERE id = $2";
    let updated = on_pool!(db, |p| sqlx::query(sql).bind(days).bind(client_id).execute(p).await?.rows_affected());
    if updated == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// What one retention run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Events deleted, over all chains.
    pub deleted: u64,
    /// Retention checkpoints signed.
    pub checkpoints: u64,
    /// Chains left alone because the part to delete does not verify: the evidence is kept.
    pub refused: Vec<(Chain, String)>,
}

enum Rows {
    /// Chained rows up to this seq (a retention checkpoint covers them).
    UpTo(i64),
    /// Rows from before the chain existed, older than this time.
    UnchainedBefore(DateTime<Utc>),
}

/// Deletes every event older than its client's retention period as of `now`, chain by chain.
pub async fn run(
    db: &Db,
    keyring: &Keyring,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Result<RetentionReport, DbError> {
    let clients: Vec<(Uuid, Option<i64>, String)> = on_pool!(db, |p| sqlx::query_as(
        "SELECT id, CAST(audit_retention_days AS BIGINT), plan FROM clients ORDER BY id"
    )
    .fetch_all(p)
    .await?);
    let platform = (Uuid::nil(), None, String::new());
    let mut report = RetentionReport::default();
    for (key, override_days, plan) in std::iter::once(platform).chain(clients) {
        let chain = Chain::from_key(key);
        let override_days = override_days.and_then(|d| u32::try_from(d).ok());
        let plan = (!plan.is_empty()).then_some(plan.as_str());
        let cutoff = now - Duration::days(i64::from(policy.days_for(override_days, plan)));
        run_chain(db, keyring, chain, cutoff, &mut report).await?;
    }
    Ok(report)
}

async fn run_chain(
    db: &Db,
    keyring: &Keyring,
    chain: Chain,
    cutoff: DateTime<Utc>,
    report: &mut RetentionReport,
) -> Result<(), DbError> {
    let key_sql = chain_key_sql(db.backend());
    let key = chain.key();
    // The chained prefix older than the cutoff ends just before the first event at or after it.
    let first_kept_sql =
        format!("SELECT MIN(seq) FROM audit_logs WHERE {key_sql} = $1 AND seq IS NOT NULL AND created_at >= $2");
    let first_kept: Option<i64> =
        on_pool!(db, |p| sqlx::query_scalar(&first_kept_sql).bind(key).bind(cutoff).fetch_one(p).await?);
    let last_expired = match first_kept {
        Some(seq) => seq - 1,
        None => {
            let sql = format!("SELECT MAX(seq) FROM audit_logs WHERE {key_sql} = $1");
            let max: Option<i64> = on_pool!(db, |p| sqlx::query_scalar(&sql).bind(key).fetch_one(p).await?);
            max.unwrap_or(0)
        }
    };
    let anchored: Option<i64> = on_pool!(db, |p| sqlx::query_scalar(
        "SELECT MAX(seq) FROM audit_checkpoints WHERE kind = 'retention' AND chain_id = $1"
    )
    .bind(key)
    .fetch_one(p)
    .await?);
    let mut anchored = anchored.unwrap_or(0);

    if last_expired > anchored {
        let check = chain::verify_chain_upto(db, keyring, chain, last_expired).await?;
        if let Some(problem) = check.problem {
            report.refused.push((chain, problem.to_string()));
            return Ok(());
        }
        let hash_sql = format!("SELECT hash FROM audit_logs WHERE {key_sql} = $1 AND seq = $2");
        let hash: ChainHash =
            on_pool!(db, |p| sqlx::query_scalar(&hash_sql).bind(key).bind(last_expired).fetch_one(p).await?);
        chain::record_checkpoint(db, keyring, chain, last_expired, hash, CheckpointKind::Retention).await?;
        report.checkpoints += 1;
        anchored = last_expired;
    }
    // Up to the newest retention checkpoint: also what an interrupted earlier run left behind.
    if anchored > 0 {
        report.deleted += delete_all(db, chain, Rows::UpTo(anchored)).await?;
    }
    report.deleted += delete_all(db, chain, Rows::UnchainedBefore(cutoff)).await?;
    Ok(())
}

async fn delete_all(db: &Db, chain: Chain, rows: Rows) -> Result<u64, DbError> {
    let mut total = 0;
    loop {
        let n = delete_batch(db, chain, &rows).await?;
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Deletes up to [`BATCH`] rows in one transaction through the privileged path.
async fn delete_batch(db: &Db, chain: Chain, rows: &Rows) -> Result<u64, DbError> {
    let filter = match rows {
        Rows::UpTo(_) => "seq <= $2",
        Rows::UnchainedBefore(_) => "seq IS NULL AND created_at < $2",
    };
    let delete = format!(
        "DELETE FROM audit_logs WHERE id IN \
         (SELECT id FROM audit_logs WHERE {} = $1 AND {filter} ORDER BY id LIMIT $3)",
        chain_key_sql(db.backend())
    );
    macro_rules! delete {
        ($tx:expr) => {{
            let q = sqlx::query(&delete).bind(chain.key());
            let q = match rows {
                Rows::UpTo(seq) => q.bind(*seq),
                Rows::UnchainedBefore(t) => q.bind(*t),
            };
            q.bind(BATCH).execute(&mut *$tx).await?.rows_affected()
        }};
    }
    let deleted = match db.pool() {
        Pool::Sqlite(p) => {
            let mut tx = p.begin().await?;
            // A write first: the transaction holds SQLite's write lock from here on.
            sqlx::query("INSERT INTO audit_retention_gate (opened_at) VALUES ($1)")
                .bind(crate::db::now())
                .execute(&mut *tx)
                .await?;
            let n = delete!(tx);
            sqlx::query("DELETE FROM audit_retention_gate").execute(&mut *tx).await?;
            tx.commit().await?;
            n
        }
        Pool::Postgres(p) => {
            let mut tx = p.begin().await?;
            // Until the end of this transaction only: the pooled connection goes back as the application role.
            sqlx::query(&format!("SET LOCAL ROLE {RETENTION_ROLE}")).execute(&mut *tx).await?;
            let n = delete!(tx);
            tx.commit().await?;
            n
        }
    };
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_overrides_are_clamped_to_the_platform_maximum() {
        let policy = RetentionPolicy { default_days: 90, max_days: 365, plans: None };
        assert_eq!(policy.days_for(None, None), 90);
        assert_eq!(policy.days_for(Some(30), Some("trial")), 30);
        assert_eq!(policy.days_for(Some(3000), None), 365);
        assert_eq!(policy.days_for(Some(0), None), 1);
    }

    #[test]
    fn a_billed_plan_lowers_the_maximum() {
        let plans = PlanRetention { by_plan: [("trial".to_string(), 30), ("team".to_string(), 365)].into(), other: 30 };
        let billed = RetentionPolicy { default_days: 90, max_days: 3650, plans: Some(plans) };
        assert_eq!(billed.max_days_for(Some("trial")), 30);
        assert_eq!(billed.days_for(None, Some("trial")), 30, "the default is clamped to the plan");
        assert_eq!(billed.max_days_for(Some("team")), 365);
        assert_eq!(billed.max_days_for(None), 3650, "platform events");
        assert_eq!(billed.max_days_for(Some("removed-plan")), 30, "an unlisted plan: `other`");
        let unbilled = RetentionPolicy { plans: Some(PlanRetention { other: 3650, ..Default::default() }), ..billed };
        assert_eq!(unbilled.max_days_for(Some("trial")), 3650, "self-hosted: the platform maximum");
    }
}
