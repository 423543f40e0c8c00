//! An agent's spend on model calls per UTC day (`agent_spend`), always scoped by its client. Counters only:
//! no prompt or completion text is ever stored.

use chrono::NaiveDate;

use crate::db::{on_pool, AgentId, ClientId, Db, DbError};
use crate::gateway::pricing::Usage;

/// Budget alert thresholds, in percent of the daily cap, lowest first.
pub const ALERT_PERCENTS: [u8; 3] = [50, 80, 100];

/// One agent's counters for one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DaySpend {
    pub spent_micro_usd: u64,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The highest alert already sent for the day (0, 50, 80 or 100).
    pub alerted_percent: u8,
}

/// The UTC day now.
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub async fn day(db: &Db, client_id: ClientId, agent_id: AgentId, day: NaiveDate) -> Result<DaySpend, DbError> {
    let sql = "SELECT spent_micro_usd, calls, input_tokens, output_tokens, alerted_percent FROM agent_spend \
               WHERE client_id = $1 AND agent_id = $2 AND day = $3";
    let row: Option<(i64, i64, i64, i64, i32)> =
        on_pool!(db, |p| sqlx::query_as(sql).bind(client_id).bind(agent_id).bind(day).fetch_optional(p).await?);
    Ok(row
        .map(|(s, c, i, o, a)| DaySpend {
            spent_micro_usd: to_u64(s),
            calls: to_u64(c),
            input_tokens: to_u64(i),
            output_tokens: to_u64(o),
            alerted_percent: u8::try_from(a).unwrap_or(0),
        })
        .unwrap_or_default())
}

/// Adds one call to the day's counters and returns the day's new total spend. One statement, so concurrent
/// calls never lose an addition.
pub async fn add(
    db: &Db,
    client_id: ClientId,
    agent_id: AgentId,
    day: NaiveDate,
    cost_micro_usd: u64,
    usage: Usage,
) -> Result<u64, DbError> {
    // A single call is capped far below i64::MAX so that sums cannot overflow the column.
    const MAX_ONE_CALL: u64 = 1 << 50;
    let sql =
        "INSERT INTO agent_spend (agent_id, client_id, day, spent_micro_usd, calls, input_tokens, output_tokens, \
               updated_at) VALUES ($1, $2, $3, $4, 1, $5, $6, $7) \
               ON CONFLICT (agent_id, day) DO UPDATE SET \
               spent_micro_usd = agent_spend.spent_micro_usd + excluded.spent_micro_usd, \
               calls = agent_spend.calls + 1, \
               input_tokens = agent_spend.input_tokens + excluded.input_tokens, \
               output_tokens = agent_spend.output_tokens + excluded.output_tokens, \
               updated_at = excluded.updated_at \
               WHERE agent_spend.client_id = excluded.client_id \
               RETURNING spent_micro_usd";
    let total: Option<i64> = on_pool!(db, |p| sqlx::query_scalar(sql)
        .bind(agent_id)
        .bind(client_id)
        .bind(day)
        .bind(to_i64(cost_micro_usd.min(MAX_ONE_CALL)))
        .bind(to_i64(usage.input_tokens.min(MAX_ONE_CALL)))
        .bind(to_i64(usage.output_tokens.min(MAX_ONE_CALL)))
        .bind(crate::db::now())
        .fetch_optional(p)
        .await?);
    total.map(to_u64).ok_or(DbError::NotFound)
}

/// Marks alert `percent` as sent for the day; `true` only for the one caller that moved the mark (so each
/// alert goes out once, even with several gateway processes).
pub async fn claim_alert(
    db: &Db,
    client_id: ClientId,
    agent_id: AgentId,
    day: NaiveDate,
    percent: u8,
) -> Result<bool, DbError> {
    let sql = "UPDATE agent_spend SET alerted_percent = $1 \
               WHERE client_id = $2 AND agent_id = $3 AND day = $4 AND alerted_percent < $1";
    let n = on_pool!(db, |p| sqlx::query(sql)
        .bind(i32::from(percent))
        .bind(client_id)
        .bind(agent_id)
        .bind(day)
        .execute(p)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// The highest threshold that `spent` has reached against `cap` (0 when none, or when there is no cap).
pub fn reached_percent(spent: u64, cap: u64) -> u8 {
    if cap == 0 {
        return 0;
    }
    ALERT_PERCENTS
        .iter()
        .rev()
        .copied()
        .find(|p| u128::from(spent) * 100 >= u128::from(cap) * u128::from(*p))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_reached_at_exactly_their_share() {
        assert_eq!(reached_percent(0, 100), 0);
        assert_eq!(reached_percent(49, 100), 0);
        assert_eq!(reached_percent(50, 100), 50);
        assert_eq!(reached_percent(79, 100), 50);
        assert_eq!(reached_percent(80, 100), 80);
        assert_eq!(reached_percent(100, 100), 100);
        assert_eq!(reached_percent(u64::MAX, 100), 100);
        assert_eq!(reached_percent(5, 0), 0, "no cap, no alerts (every call is refused anyway)");
        assert_eq!(reached_percent(1, 3), 0);
        assert_eq!(reached_percent(2, 3), 50);
    }
}
