//! [`Audit`]: the audit trail as a service, the way the web app and the background jobs reach it. It holds
//! the database and the checkpoint keys; every operation is one of the module's functions, so the rules stay
//! where they are written (and tested) and callers never need the database handle.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;

use super::export::ExportRequest;
use super::live::Filter;
use super::retention::{RetentionPolicy, RetentionReport};
use super::settings::{RetentionChange, RetentionSetting};
use super::siem::{Destination, DestinationId};
use super::{Actor, AuditEvent, NewEvent};
use crate::context::RequestContext;
use crate::db::{AuditEventId, ClientId, Db, DbError, UserId};
use crate::keys::keyring::Keyring;

#[derive(Clone)]
pub struct Audit {
    db: Db,
    keyring: Keyring,
    retention: RetentionPolicy,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").finish_non_exhaustive()
    }
}

impl Audit {
    /// The trail on `db`, checkpoints signed with `keyring`, events kept as `retention` says (the configured
    /// default lowered by each plan's limit).
    pub fn new(db: Db, keyring: Keyring, retention: RetentionPolicy) -> Self {
        Self { db, keyring, retention }
    }

    /// Appends one event to its client's chain (metadata scrubbed; see [`super::append`]).
    pub async fn append(&self, event: NewEvent) -> Result<AuditEventId, DbError> {
        super::append(&self.db, event).await
    }

    /// Records that `user` of `client` was refused `what` (the path they asked for): `reason` is `not_found` (another
    /// client's record, or none at all - the caller cannot tell which, the trail does not either) or `forbidden`
    /// (their role does not allow it). In the caller's own trail, never in the owner's of what was asked for.
    pub async fn access_denied(
        &self,
        client: ClientId,
        user: UserId,
        what: &str,
        reason: &'static str,
        ctx: &RequestContext,
    ) -> Result<AuditEventId, DbError> {
        let event = NewEvent::new(Some(client), Actor::User(user), super::ActionType::known("access.denied"))
            .target(what)
            .metadata(serde_json::json!({ "reason": reason }))
            .request(ctx);
        super::append(&self.db, event).await
    }

    /// The newest events of `client`, older than `before` when given; at most `limit` (capped at 500).
    pub async fn recent(
        &self,
        client: ClientId,
        before: Option<AuditEventId>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, DbError> {
        super::recent(&self.db, client, before, limit).await
    }

    /// The live stream of `client`'s events matching `filter` (see [`super::live::follow`]).
    pub fn follow(
        &self,
        client: ClientId,
        filter: Filter,
        after: Option<AuditEventId>,
        max_duration: Duration,
    ) -> impl Stream<Item = Result<AuditEvent, DbError>> + Send + 'static {
        super::live::follow(self.db.clone(), client, filter, after, max_duration)
    }

    /// Records the export, then streams it (see [`super::export::start`]).
    pub async fn export(
        &self,
        client: ClientId,
        actor: Actor,
        ctx: &RequestContext,
        request: ExportRequest,
    ) -> Result<impl Stream<Item = Result<Bytes, DbError>> + Send + 'static, DbError> {
        super::export::start(&self.db, client, actor, ctx, request).await
    }

    /// How long events are kept, by default and by each plan.
    pub fn retention_policy(&self) -> &RetentionPolicy {
        &self.retention
    }

    /// `client`'s retention: its own setting, the default and its plan's limit.
    pub async fn retention(&self, client: ClientId) -> Result<RetentionSetting, DbError> {
        super::settings::retention(&self.db, &self.retention, client).await
    }

    /// Changes `client`'s retention (`None`: back to the default); audited.
    pub async fn change_retention(
        &self,
        actor: Actor,
        client: ClientId,
        days: Option<u32>,
        ctx: &RequestContext,
    ) -> Result<RetentionChange, DbError> {
        super::settings::change_retention(&self.db, &self.retention, actor, client, days, ctx).await
    }

    /// `client`'s SIEM destinations.
    pub async fn destinations(&self, client: ClientId) -> Result<Vec<Destination>, DbError> {
        super::siem::list(&self.db, client).await
    }

    /// Removes one of `client`'s SIEM destinations; audited.
    pub async fn delete_destination(
        &self,
        actor: Actor,
        client: ClientId,
        id: DestinationId,
        ctx: &RequestContext,
    ) -> Result<(), DbError> {
        super::settings::delete_destination(&self.db, actor, client, id, ctx).await
    }

    /// Signs every chain head that moved since its last checkpoint; how many it signed.
    pub async fn checkpoint_all(&self) -> Result<u64, DbError> {
        super::chain::checkpoint_all(&self.db, &self.keyring).await
    }

    /// Deletes what is past its retention at `now` (through the one privileged path).
    pub async fn apply_retention(&self, now: DateTime<Utc>) -> Result<RetentionReport, DbError> {
        super::retention::run(&self.db, &self.keyring, &self.retention, now).await
    }
}
