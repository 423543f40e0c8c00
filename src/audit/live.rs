//! The live audit stream: every appended event is announced, and a viewer follows its own tenant's events
//! with filters, a backfill on connect, and no gaps or duplicates across reconnects.
//!
//! Announcements carry only `(client, id)`; a viewer re-reads events from the database, scoped by its own
//! client id, so an announcement can never leak another tenant's event. On PostgreSQL a trigger announces each
//! insert with `NOTIFY` (delivered at commit, to every server process on the database); one `LISTEN`
//! connection per process forwards them into an in-process broadcast. On SQLite (one process) `append`
//! announces directly. A viewer never trusts announcements to be complete: each one (or a lag, or a
//! reconnect of the listener) makes it read everything after the last id it sent, in id order. Within one
//! client ids are handed out in commit order (the hash chain serialises a client's appends), so "after the last
//! id sent" neither skips nor repeats an event.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast;

use super::AuditEvent;
use crate::db::notify::{subscribe, Notice};
use crate::db::{on_pool, AgentId, AuditEventId, ClientId, Db, DbError};

pub use crate::db::notify::CHANNEL;
/// Events sent on connect when the viewer has seen none yet.
pub const BACKFILL: u32 = 100;
/// Rows read per catch-up query.
const BATCH: i64 = 500;

/// What a viewer wants to see. Every part is optional; all given parts must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub agent_id: Option<AgentId>,
    /// `agent.deployed` exactly, or every action of an area with a trailing dot: `agent.`.
    pub action: Option<String>,
    /// `user`, `agent`, `platform` or `admin`.
    pub actor_kind: Option<String>,
    pub from: Option<DateTime<Utc>>,
    /// Exclusive. A range that ends in the past is history: the stream ends after it.
    pub to: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the action, target or metadata.
    pub text: Option<String>,
}

impl Filter {
    /// Checks the parts that came from a person; the message says which one is wrong.
    pub fn validate(&self) -> Result<(), DbError> {
        let invalid = |m: &str| Err(DbError::Invalid(m.to_string().into()));
        if let Some(a) = &self.action {
            let ok = (1..=64).contains(&a.len())
                && a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
            if !ok {
                return invalid("the action filter looks like `agent.deployed`, or `agent.` for a whole area");
            }
        }
        if let Some(k) = &self.actor_kind {
            if !["user", "agent", "platform", "admin"].contains(&k.as_str()) {
                return invalid("the actor filter is one of user, agent, platform, admin");
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from >= to {
                return invalid("the time range ends before it starts");
            }
        }
        if self.text.as_ref().is_some_and(|t| t.chars().count() > 200) {
            return invalid("the search text is longer than 200 characters");
        }
        Ok(())
    }

    fn like_action(&self) -> Option<String> {
        self.action.as_ref().map(|a| match a.strip_suffix('.') {
            Some(area) => format!("{}.%", escape_like(area)),
            None => escape_like(a),
        })
    }

    fn like_text(&self) -> Option<String> {
        self.text.as_ref().filter(|t| !t.trim().is_empty()).map(|t| format!("%{}%", escape_like(&t.to_lowercase())))
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The viewer's query; the columns are [`super::EVENT_COLUMNS`].
const MATCHING_WHERE: &str = "FROM audit_logs WHERE client_id = $1 AND id > $2 \
     AND ($3 IS NULL OR agent_id = $3) \
     AND ($4 IS NULL OR action_type LIKE $4 ESCAPE '\\') \
     AND ($5 IS NULL OR actor_kind = $5) \
     AND ($6 IS NULL OR created_at >= $6) \
     AND ($7 IS NULL OR created_at < $7) \
     AND ($8 IS NULL OR lower(action_type || ' ' || COALESCE(target, '') || ' ' || CAST(metadata AS TEXT)) LIKE $8 ESCAPE '\\')";

/// Events of `client_id` matching `filter` with an id above `after`: the oldest `limit` in id order, or with
/// `newest` the newest `limit` (still returned in id order).
pub async fn matching(
    db: &Db,
    client_id: ClientId,
    filter: &Filter,
    after: Option<AuditEventId>,
    limit: i64,
    newest: bool,
) -> Result<Vec<AuditEvent>, DbError> {
    let order = if newest { "DESC" } else { "ASC" };
    let sql = format!("SELECT {} {MATCHING_WHERE} ORDER BY id {order} LIMIT $9", super::EVENT_COLUMNS);
    let (action, text) = (filter.like_action(), filter.like_text());
    let mut rows = on_pool!(db, |p| sqlx::query_as::<_, AuditEvent>(&sql)
        .bind(client_id)
        .bind(after.map(|a| a.0).unwrap_or(0))
        .bind(filter.agent_id)
        .bind(action.as_deref())
        .bind(filter.actor_kind.as_deref())
        .bind(filter.from)
        .bind(filter.to)
        .bind(text.as_deref())
        .bind(limit)
        .fetch_all(p)
        .await?);
    if newest {
        rows.reverse();
    }
    Ok(rows)
}

/// Follows `client_id`'s events matching `filter`: after `after` when the viewer is resuming, else the last
/// [`BACKFILL`]; then each new one as it is appended, in id order, each exactly once. The stream ends when the
/// range's end has passed, or after `max_duration` (the browser reconnects and resumes from the last id it
/// saw, which also re-checks its session), or when the receiver is dropped.
pub fn follow(
    db: Db,
    client_id: ClientId,
    filter: Filter,
    after: Option<AuditEventId>,
    max_duration: Duration,
) -> impl Stream<Item = Result<AuditEvent, DbError>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<AuditEvent, DbError>>(256);
    tokio::spawn(async move {
        // Subscribe before reading, so nothing appended in between is missed.
        let mut notices = subscribe(&db);
        let deadline = tokio::time::Instant::now() + max_duration;
        let mut last = after;
        let first = match after {
            Some(_) => catch_up(&db, client_id, &filter, &mut last, &tx).await,
            None => match matching(&db, client_id, &filter, None, i64::from(BACKFILL), true).await {
                Ok(rows) => send_all(rows, &mut last, &tx).await,
                Err(e) => Err(Some(e)),
            },
        };
        if !report(first, &tx).await {
            return;
        }
        if filter.to.is_some_and(|to| to <= crate::db::now()) {
            return; // history only
        }
        loop {
            let wake = tokio::time::timeout_at(deadline, notices.recv()).await;
            let relevant = match wake {
                Err(_) => return, // time's up; the browser resumes from `last`
                Ok(Ok(Notice::Appended { client_id: c, .. })) => c == Some(client_id),
                Ok(Ok(Notice::Resync)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => true,
                Ok(Err(broadcast::error::RecvError::Closed)) => return,
            };
            if relevant && !report(catch_up(&db, client_id, &filter, &mut last, &tx).await, &tx).await {
                return;
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// `Err(None)`: the viewer went away; `Err(Some(e))`: a database error to pass on.
type Sent = Result<(), Option<DbError>>;

async fn send_all(
    rows: Vec<AuditEvent>,
    last: &mut Option<AuditEventId>,
    tx: &tokio::sync::mpsc::Sender<Result<AuditEvent, DbError>>,
) -> Sent {
    for row in rows {
        *last = Some(row.id);
        tx.send(Ok(row)).await.map_err(|_| None)?;
    }
    Ok(())
}

async fn catch_up(
    db: &Db,
    client_id: ClientId,
    filter: &Filter,
    last: &mut Option<AuditEventId>,
    tx: &tokio::sync::mpsc::Sender<Result<AuditEvent, DbError>>,
) -> Sent {
    loop {
        let rows = matching(db, client_id, filter, *last, BATCH, false).await.map_err(Some)?;
        let full = rows.len() as i64 == BATCH;
        send_all(rows, last, tx).await?;
        if !full {
            return Ok(());
        }
    }
}

/// Passes a database error on to the viewer; false when the stream should end.
async fn report(sent: Sent, tx: &tokio::sync::mpsc::Sender<Result<AuditEvent, DbError>>) -> bool {
    match sent {
        Ok(()) => true,
        Err(None) => false,
        Err(Some(e)) => {
            let _ = tx.send(Err(e)).await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_and_become_escaped_patterns() {
        let f = Filter { action: Some("agent.".into()), text: Some("50%_off".into()), ..Filter::default() };
        assert!(f.validate().is_ok());
        assert_eq!(f.like_action().as_deref(), Some("agent.%"));
        assert_eq!(f.like_text().as_deref(), Some("%50\\%\\_off%"));
        let exact = Filter { action: Some("auth.code_sent".into()), ..Filter::default() };
        assert_eq!(exact.like_action().as_deref(), Some("auth.code\\_sent"), "'_' is not a wildcard");
        for bad in [
            Filter { action: Some("Agent Deployed".into()), ..Filter::default() },
            Filter { actor_kind: Some("root".into()), ..Filter::default() },
            Filter {
                from: Some(crate::db::now()),
                to: Some(crate::db::now() - chrono::Duration::hours(1)),
                ..Filter::default()
            },
            Filter { text: Some("x".repeat(201)), ..Filter::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
