//! Walking a chain in order and reporting its first broken link. Reads in pages: memory does not grow with
//! the size of the log.

use std::fmt;

use ed25519_dalek::VerifyingKey;
use uuid::Uuid;

use super::{chain_key_sql, checkpoint_signature_ok, public_keys, Chain, ChainHash, Checkpoint, CHECKPOINT_COLUMNS};
use crate::audit::{AuditEvent, EVENT_COLUMNS};
use crate::db::{on_pool, AuditEventId, ClientId, Db, DbError};
use crate::keys::keyring::{KeyVersion, Keyring};

/// Rows read per query.
const PAGE: i64 = 500;

/// What `verify` found, chain by chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub chains: Vec<ChainReport>,
}

impl Report {
    /// True when no chain has a broken link.
    pub fn is_intact(&self) -> bool {
        self.chains.iter().all(|c| c.problem.is_none())
    }

    /// Chained events checked, over all chains.
    pub fn events(&self) -> u64 {
        self.chains.iter().map(|c| c.events).sum()
    }

    pub fn broken(&self) -> impl Iterator<Item = &ChainReport> {
        self.chains.iter().filter(|c| c.problem.is_some())
    }
}

/// One chain's result.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainReport {
    pub chain: Chain,
    /// Chained events checked (up to the first problem).
    pub events: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// Checkpoints whose signature verified and whose hash matched the chain.
    pub checkpoints: u64,
    /// Checkpoints signed with a master key version this keyring no longer holds: neither trusted nor refuted.
    pub untrusted_checkpoints: u64,
    /// Retention deleted the events up to this seq; the chain is checked from the signed retention checkpoint.
    pub retained_after: Option<i64>,
    /// Rows written before the chain existed (migration 07), outside the chain.
    pub unchained_events: u64,
    /// The first broken link, if any.
    pub problem: Option<Break>,
}

/// One line per chain, for operators: `client <id>: intact - ...` or `client <id>: BROKEN at seq ...`.
impl fmt::Display for ChainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(problem) = &self.problem {
            return write!(f, "{}: BROKEN {problem}", self.chain);
        }
        write!(f, "{}: intact - {} events", self.chain, self.events)?;
        if let (Some(first), Some(last)) = (self.first_seq, self.last_seq) {
            write!(f, " (seq {first}..{last})")?;
        }
        write!(f, ", {} signed checkpoints match", self.checkpoints)?;
        if let Some(seq) = self.retained_after {
            write!(f, ", events up to seq {seq} removed by retention (signed)")?;
        }
        if self.untrusted_checkpoints > 0 {
            write!(f, ", {} checkpoints signed with a retired key not checked", self.untrusted_checkpoints)?;
        }
        if self.unchained_events > 0 {
            write!(f, ", {} events from before the chain existed not covered", self.unchained_events)?;
        }
        Ok(())
    }
}

/// A broken link: where, and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Break {
    /// The chain position the problem was found at (`None` when it concerns no single event).
    pub seq: Option<i64>,
    /// The row id of the event at fault, when there is one.
    pub id: Option<AuditEventId>,
    pub kind: BreakKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BreakKind {
    /// The event's content no longer matches its stored hash: the row was edited.
    Edited { stored: ChainHash, computed: ChainHash },
    /// Positions are missing: the events were deleted (`found_seq` is `None` when they were at the end).
    Missing { expected_seq: i64, found_seq: Option<i64> },
    /// The event's `prev_hash` is not the previous event's hash: its predecessor was replaced or removed.
    Unlinked { expected: ChainHash, found: ChainHash },
    /// Row ids run against chain order: rows were reordered.
    Reordered { previous_id: AuditEventId },
    /// A signed checkpoint names another hash at this position: the chain was rewritten after it was signed
    /// (events forged and hashes recomputed by someone without the signing key).
    Rewritten { checkpoint_id: i64, signed: ChainHash, found: ChainHash },
    /// A checkpoint's signature or public key does not verify against the keyring.
    BadSignature { checkpoint_id: i64 },
    /// A row without a chain position was written after the chain started.
    Unchained,
    /// The chain head (the table appends go through) disagrees with the last event.
    HeadMismatch { head_seq: i64, head: ChainHash },
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.seq, self.id) {
            (Some(seq), Some(id)) => write!(f, "at seq {seq} (event id {id}): ")?,
            (Some(seq), None) => write!(f, "at seq {seq}: ")?,
            (None, Some(id)) => write!(f, "at event id {id}: ")?,
            (None, None) => {}
        }
        match &self.kind {
            BreakKind::Edited { stored, computed } => write!(
                f,
                "the event's content does not match its hash (edited row): stored {stored}, computed {computed}"
            ),
            BreakKind::Missing { expected_seq, found_seq: Some(found) } if *found == expected_seq + 1 => {
                write!(f, "event seq {expected_seq} is missing (deleted row): the next event found is seq {found}")
            }
            BreakKind::Missing { expected_seq, found_seq: Some(found) } => write!(
                f,
                "events seq {expected_seq}..{} are missing (deleted rows): the next event found is seq {found}",
                found - 1
            ),
            BreakKind::Missing { expected_seq, found_seq: None } => {
                write!(f, "events from seq {expected_seq} on are missing (deleted rows at the end of the chain)")
            }
            BreakKind::Unlinked { expected, found } => write!(
                f,
                "prev_hash does not match the previous event (deleted or replaced row): expected {expected}, found {found}"
            ),
            BreakKind::Reordered { previous_id } => {
                write!(f, "row ids run against chain order (reordered rows): the previous event has id {previous_id}")
            }
            BreakKind::Rewritten { checkpoint_id, signed, found } => write!(
                f,
                "signed checkpoint {checkpoint_id} says {signed} but the chain has {found} (chain rewritten after \
                 it was signed: forged rows)"
            ),
            BreakKind::BadSignature { checkpoint_id } => {
                write!(f, "checkpoint {checkpoint_id} has a bad signature (forged or altered checkpoint)")
            }
            BreakKind::Unchained => write!(f, "a row without a chain position was written after the chain started"),
            BreakKind::HeadMismatch { head_seq, head } => {
                write!(f, "the chain head (seq {head_seq}, {head}) does not match the last event")
            }
        }
    }
}

/// Walks the chain of `client` (or every chain: each client's and the platform's) in order and reports the first
/// broken link of each. Checkpoints are trusted only when signed by a key the keyring derives.
pub async fn verify(db: &Db, keyring: &Keyring, client: Option<ClientId>) -> Result<Report, DbError> {
    let keys = public_keys(keyring);
    let chains = match client {
        Some(id) => vec![Chain::Client(id)],
        None => list_chains(db).await?,
    };
    let mut reports = Vec::with_capacity(chains.len());
    for chain in chains {
        reports.push(verify_chain(db, &keys, chain, None).await?);
    }
    Ok(Report { chains: reports })
}

/// Verifies `chain` up to `upto` only (retention checks what it is about to delete).
pub(crate) async fn verify_chain_upto(
    db: &Db,
    keyring: &Keyring,
    chain: Chain,
    upto: i64,
) -> Result<ChainReport, DbError> {
    verify_chain(db, &public_keys(keyring), chain, Some(upto)).await
}

async fn list_chains(db: &Db) -> Result<Vec<Chain>, DbError> {
    let sql = format!(
        "SELECT {} AS k FROM audit_logs UNION SELECT chain_id FROM audit_chain_heads \
         UNION SELECT chain_id FROM audit_checkpoints ORDER BY 1",
        chain_key_sql(db.backend())
    );
    let keys: Vec<Uuid> = on_pool!(db, |p| sqlx::query_scalar(&sql).fetch_all(p).await?);
    Ok(keys.into_iter().map(Chain::from_key).collect())
}

async fn verify_chain(
    db: &Db,
    keys: &[(KeyVersion, VerifyingKey)],
    chain: Chain,
    upto: Option<i64>,
) -> Result<ChainReport, DbError> {
    let key_sql = chain_key_sql(db.backend());
    let key = chain.key();
    let mut report = ChainReport {
        chain,
        events: 0,
        first_seq: None,
        last_seq: None,
        checkpoints: 0,
        untrusted_checkpoints: 0,
        retained_after: None,
        unchained_events: 0,
        problem: None,
    };

    // The head first: an append commits its event and the head together, so every event up to the head's seq
    // is visible below. Events appended while we walk are beyond it and left for the next run.
    let head: Option<(i64, ChainHash)> =
        on_pool!(db, |p| sqlx::query_as("SELECT seq, head FROM audit_chain_heads WHERE chain_id = $1")
            .bind(key)
            .fetch_optional(p)
            .await?);
    let limit = upto.or(head.map(|(s, _)| s)).unwrap_or(i64::MAX);

    // The newest retention checkpoint this keyring vouches for; newer ones signed with a retired key are skipped.
    let anchor_sql = format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE kind = 'retention' AND chain_id = $1 AND seq <= $2 \
         ORDER BY seq DESC, id DESC LIMIT $3 OFFSET $4"
    );
    let mut anchor: Option<Checkpoint> = None;
    let mut offset = 0i64;
    'search: loop {
        let page: Vec<Checkpoint> = on_pool!(db, |p| sqlx::query_as(&anchor_sql)
            .bind(key)
            .bind(limit)
            .bind(PAGE)
            .bind(offset)
            .fetch_all(p)
            .await?);
        for cp in &page {
            match trust(cp, keys) {
                Trust::Trusted => {
                    report.retained_after = Some(cp.seq);
                    anchor = Some(cp.clone());
                    break 'search;
                }
                Trust::Bad(problem) => {
                    report.problem = Some(problem);
                    return Ok(report);
                }
                Trust::Untrusted => {}
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
        offset += PAGE;
    }

    let unchained_sql = format!("SELECT COUNT(*), MAX(id) FROM audit_logs WHERE {key_sql} = $1 AND seq IS NULL");
    let (unchained, last_unchained): (i64, Option<i64>) =
        on_pool!(db, |p| sqlx::query_as(&unchained_sql).bind(key).fetch_one(p).await?);
    report.unchained_events = unchained as u64;

    let events_sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_logs WHERE {key_sql} = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
    );
    let checkpoints_sql = format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE chain_id = $1 AND seq <= $2 \
         AND (seq > $3 OR (seq = $3 AND id > $4)) ORDER BY seq, id LIMIT $5"
    );
    let mut checkpoints = Pager::new();
    // (seq, hash, id) of the last event checked.
    let mut prev: Option<(i64, ChainHash, AuditEventId)> = None;
    let mut after = 0i64;
    let fail = |report: &mut ChainReport, seq, id, kind| {
        report.problem = Some(Break { seq, id, kind });
    };
    loop {
        let page: Vec<AuditEvent> = on_pool!(db, |p| sqlx::query_as(&events_sql)
            .bind(key)
            .bind(after)
            .bind(limit)
            .bind(PAGE)
            .fetch_all(p)
            .await?);
        let full = page.len() as i64 == PAGE;
        for event in &page {
            let (Some(seq), Some(prev_hash), Some(hash)) = (event.seq, event.prev_hash, event.hash) else {
                continue; // not reachable: the query asks for seq > n
            };
            let at = (Some(seq), Some(event.id));
            let expected_prev = match prev {
                None => {
                    if last_unchained.is_some_and(|u| u > event.id.0) {
                        fail(&mut report, None, last_unchained.map(AuditEventId), BreakKind::Unchained);
                        return Ok(report);
                    }
                    report.first_seq = Some(seq);
                    match &anchor {
                        _ if seq == 1 => ChainHash::GENESIS,
                        Some(a) if a.seq == seq - 1 => a.head_hash,
                        // Retention signed its checkpoint and was interrupted before deleting everything up
                        // to it: this link cannot be checked, the checkpoint is when the walk reaches it.
                        Some(a) if a.seq >= seq => prev_hash,
                        _ => {
                            let expected_seq = anchor.as_ref().map_or(1, |a| a.seq + 1);
                            fail(&mut report, at.0, at.1, BreakKind::Missing { expected_seq, found_seq: Some(seq) });
                            return Ok(report);
                        }
                    }
                }
                Some((prev_seq, prev_hash_expected, prev_id)) => {
                    if seq != prev_seq + 1 {
                        let kind = BreakKind::Missing { expected_seq: prev_seq + 1, found_seq: Some(seq) };
                        fail(&mut report, at.0, at.1, kind);
                        return Ok(report);
                    }
                    if event.id <= prev_id {
                        fail(&mut report, at.0, at.1, BreakKind::Reordered { previous_id: prev_id });
                        return Ok(report);
                    }
                    prev_hash_expected
                }
            };
            if prev_hash != expected_prev {
                fail(&mut report, at.0, at.1, BreakKind::Unlinked { expected: expected_prev, found: prev_hash });
                return Ok(report);
            }
            let computed = event.canonical().expect("a chained event").hash(&prev_hash);
            if computed != hash {
                fail(&mut report, at.0, at.1, BreakKind::Edited { stored: hash, computed });
                return Ok(report);
            }
            // Every checkpoint at this position must name this hash.
            loop {
                let from = report.first_seq.unwrap_or(1);
                let Some(cp) = checkpoints.peek(db, &checkpoints_sql, key, limit, from).await? else { break };
                if cp.seq > seq {
                    break;
                }
                let cp = checkpoints.take();
                match trust(&cp, keys) {
                    Trust::Bad(problem) => {
                        report.problem = Some(problem);
                        return Ok(report);
                    }
                    Trust::Untrusted => report.untrusted_checkpoints += 1,
                    Trust::Trusted if cp.head_hash != hash => {
                        let kind = BreakKind::Rewritten { checkpoint_id: cp.id, signed: cp.head_hash, found: hash };
                        fail(&mut report, at.0, at.1, kind);
                        return Ok(report);
                    }
                    Trust::Trusted => report.checkpoints += 1,
                }
            }
            report.events += 1;
            report.last_seq = Some(seq);
            prev = Some((seq, hash, event.id));
            after = seq;
        }
        if !full {
            break;
        }
    }

    // Nothing may be signed, or recorded as the head, beyond the last event.
    let last = prev.map(|(seq, _, _)| seq).or(report.retained_after).unwrap_or(0);
    let last_hash = prev.map(|(_, hash, _)| hash).or(anchor.as_ref().map(|a| a.head_hash));
    let from = report.first_seq.unwrap_or(last + 1);
    while checkpoints.peek(db, &checkpoints_sql, key, limit, from).await?.is_some() {
        let cp = checkpoints.take();
        match trust(&cp, keys) {
            Trust::Bad(problem) => {
                report.problem = Some(problem);
                return Ok(report);
            }
            Trust::Untrusted => report.untrusted_checkpoints += 1,
            Trust::Trusted => {
                let kind = BreakKind::Missing { expected_seq: last + 1, found_seq: None };
                report.problem = Some(Break { seq: Some(cp.seq), id: None, kind });
                return Ok(report);
            }
        }
    }
    if let (None, Some((head_seq, head))) = (upto, head) {
        if head_seq > last {
            let kind = BreakKind::Missing { expected_seq: last + 1, found_seq: None };
            report.problem = Some(Break { seq: Some(head_seq), id: None, kind });
        } else if last_hash != Some(head) {
            report.problem =
                Some(Break { seq: Some(head_seq), id: None, kind: BreakKind::HeadMismatch { head_seq, head } });
        }
    }
    Ok(report)
}

enum Trust {
    Trusted,
    /// Signed with a key version the keyring no longer holds.
    Untrusted,
    Bad(Break),
}

fn trust(cp: &Checkpoint, keys: &[(KeyVersion, VerifyingKey)]) -> Trust {
    match checkpoint_signature_ok(cp, keys) {
        Some(true) => Trust::Trusted,
        Some(false) => {
            Trust::Bad(Break { seq: Some(cp.seq), id: None, kind: BreakKind::BadSignature { checkpoint_id: cp.id } })
        }
        None => Trust::Untrusted,
    }
}

/// Checkpoints of one chain in (seq, id) order, a page at a time.
struct Pager {
    buffer: std::collections::VecDeque<Checkpoint>,
    after: Option<(i64, i64)>,
    exhausted: bool,
}

impl Pager {
    fn new() -> Self {
        Self { buffer: Default::default(), after: None, exhausted: false }
    }

    /// The next checkpoint at or after `from_seq`, without consuming it.
    async fn peek(
        &mut self,
        db: &Db,
        sql: &str,
        key: Uuid,
        limit: i64,
        from_seq: i64,
    ) -> Result<Option<&Checkpoint>, DbError> {
        if self.buffer.is_empty() && !self.exhausted {
            let (seq, id) = self.after.unwrap_or((from_seq, -1));
            let page: Vec<Checkpoint> = on_pool!(db, |p| sqlx::query_as(sql)
                .bind(key)
                .bind(limit)
                .bind(seq)
                .bind(id)
                .bind(PAGE)
                .fetch_all(p)
                .await?);
            self.exhausted = (page.len() as i64) < PAGE;
            self.buffer.extend(page);
        }
        Ok(self.buffer.front())
    }

    /// Consumes the checkpoint [`Pager::peek`] returned.
    fn take(&mut self) -> Checkpoint {
        let cp = self.buffer.pop_front().expect("peeked before taking");
        self.after = Some((cp.seq, cp.id));
        cp
    }
}
