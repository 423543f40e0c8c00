//! Announcements of appended audit events to this process's viewers: an in-process broadcast, fed on
//! PostgreSQL by one `LISTEN` connection per process (a trigger sends `NOTIFY` at commit, to every server
//! process on the database), and on SQLite (one process) by `announce` directly. The database layer owns the
//! channel; what an event is, and who may see it, is the audit module's business (`audit::live`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use super::pool::Pool;
use super::{AuditEventId, ClientId, Db};

/// The PostgreSQL notification channel (see the `audit_live` migration).
pub const CHANNEL: &str = "deployclaw_audit";

/// Something happened in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Appended {
        client_id: Option<ClientId>,
        id: AuditEventId,
    },
    /// Announcements may have been missed (the listener reconnected): every viewer catches up.
    Resync,
}

/// One per database handle: the broadcast viewers subscribe to, and (PostgreSQL) the listener feeding it.
#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<Notice>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self { tx: broadcast::channel(1024).0, listener: Mutex::new(None) }
    }
}

impl Hub {
    /// Stops the PostgreSQL listener (before the pool closes: it holds one of its connections).
    pub(crate) fn stop(&self) {
        if let Some(task) = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// Announces an appended event to this process's viewers (SQLite; PostgreSQL announces through its trigger).
pub fn announce(db: &Db, client_id: Option<ClientId>, id: AuditEventId) {
    if matches!(db.pool(), Pool::Sqlite(_)) {
        let _ = db.hub().tx.send(Notice::Appended { client_id, id });
    }
}

/// Subscribes to announcements, starting this process's PostgreSQL listener on first use.
pub fn subscribe(db: &Db) -> broadcast::Receiver<Notice> {
    let hub = db.hub();
    let rx = hub.tx.subscribe();
    if let Pool::Postgres(pool) = db.pool() {
        let mut listener = hub.listener.lock().unwrap_or_else(|e| e.into_inner());
        if listener.as_ref().is_none_or(|t| t.is_finished()) {
            *listener = Some(tokio::spawn(listen(pool.clone(), Arc::downgrade(hub))));
        }
    }
    rx
}

/// Forwards `NOTIFY deployclaw_audit` into the hub; reconnects with a pause (1 s doubling to 30 s) and then
/// tells every viewer to catch up. Ends when the hub is gone.
async fn listen(pool: sqlx::PgPool, hub: std::sync::Weak<Hub>) {
    let mut pause = Duration::from_secs(1);
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    pause = Duration::from_secs(1);
                    let Some(h) = hub.upgrade() else { return };
                    let _ = h.tx.send(Notice::Resync);
                    drop(h);
                    loop {
                        let next = listener.try_recv().await;
                        let Some(h) = hub.upgrade() else { return };
                        match next {
                            Ok(Some(n)) => {
                                if let Some(notice) = parse(n.payload()) {
                                    let _ = h.tx.send(notice);
                                }
                            }
                            // The connection dropped; the next call reconnects. Anything sent meanwhile is lost.
                            Ok(None) => {
                                let _ = h.tx.send(Notice::Resync);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "audit listener failed; reconnecting");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot LISTEN for audit events; retrying"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot connect the audit listener; retrying"),
        }
        if hub.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// `"<client uuid>:<id>"`, or `":<id>"` for a platform event.
fn parse(payload: &str) -> Option<Notice> {
    let (client, id) = payload.split_once(':')?;
    let id = AuditEventId(id.parse().ok()?);
    let client_id = if client.is_empty() { None } else { Some(client.parse().ok()?) };
    Some(Notice::Appended { client_id, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_parse() {
        let c = ClientId::new();
        assert_eq!(parse(&format!("{c}:42")), Some(Notice::Appended { client_id: Some(c), id: AuditEventId(42) }));
        assert_eq!(parse(":7"), Some(Notice::Appended { client_id: None, id: AuditEventId(7) }));
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse("x:1"), None);
    }
}
