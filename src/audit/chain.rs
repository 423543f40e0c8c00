//! Tamper evidence for the audit trail: a hash chain per client, signed checkpoints of chain heads, and
//! verification ([`verify`]).
//!
//! Each client's events form one chain, and platform events (no client) form one more. Every event carries its
//! position in its chain (`seq`, from 1), the hash of the event before it (`prev_hash`, 32 zero bytes for the
//! first) and its own hash, `SHA-256(canonical_event || prev_hash)`. The canonical encoding
//! ([`CanonicalEvent::encode`]) is re-derived from what either database stores, byte by byte as written in
//! `docs/audit.md`. Checkpoints sign a chain's head with an Ed25519 key derived from the vault's master key, so
//! someone who can write the database but does not hold the master key cannot rewrite history that a checkpoint
//! covers without `verify` noticing.
//!
//! This module never updates or deletes an event; retention ([`super::retention`]) is the only deleting path.

use std::fmt;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hkdf::Hkdf;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::db::{on_pool, Backend, ClientId, Db, DbError};
use crate::keys::keyring::{KeyVersion, Keyring, MasterKey};

mod verify;
pub(crate) use verify::verify_chain_upto;
pub use verify::{verify, Break, BreakKind, ChainReport, Report};

/// Length of every hash in the chain (SHA-256).
pub const HASH_BYTES: usize = 32;

/// Domain separation: the first bytes of every canonical event (version 1 of the encoding).
const EVENT_DOMAIN: &[u8] = b"deployclaw.audit.event.v1\0";
/// Domain separation: the first bytes of every signed checkpoint message.
const CHECKPOINT_DOMAIN: &[u8] = b"deployclaw.audit.checkpoint.v1\0";
/// HKDF-SHA256 salt and info deriving the checkpoint signing key from a master key. Distinct from every other
/// derivation of the master key (the vault's per-client keys, the sign-in code MAC key).
const SIGNING_KEY_SALT: &[u8] = b"deployclaw audit checkpoint signing key";
const SIGNING_KEY_INFO: &[u8] = b"ed25519 v1";

/// A SHA-256 hash in the chain. Shown and serialised as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash(pub [u8; HASH_BYTES]);

impl ChainHash {
    /// The `prev_hash` of a chain's first event.
    pub const GENESIS: Self = Self([0; HASH_BYTES]);

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<DB: sqlx::Database> sqlx::Type<DB> for ChainHash
where
    Vec<u8>: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <Vec<u8> as sqlx::Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <Vec<u8> as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for ChainHash
where
    Vec<u8>: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <Vec<u8> as sqlx::Encode<'q, DB>>::encode(self.0.to_vec(), buf)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for ChainHash
where
    Vec<u8>: sqlx::Decode<'r, DB>,
{
    fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let bytes = <Vec<u8> as sqlx::Decode<'r, DB>>::decode(value)?;
        Self::from_slice(&bytes).ok_or_else(|| "an audit hash is not 32 bytes".into())
    }
}

/// One hash chain: a client's, or the platform's (events with no client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Chain {
    Platform,
    Client(ClientId),
}

impl Chain {
    pub fn of(client_id: Option<ClientId>) -> Self {
        client_id.map_or(Self::Platform, Self::Client)
    }

    /// The chain's key in the database: the client id, or the nil UUID for the platform chain.
    pub fn key(&self) -> Uuid {
        match self {
            Self::Platform => Uuid::nil(),
            Self::Client(id) => id.as_uuid(),
        }
    }

    pub fn from_key(key: Uuid) -> Self {
        if key.is_nil() {
            Self::Platform
        } else {
            Self::Client(key.into())
        }
    }

    pub fn client_id(&self) -> Option<ClientId> {
        match self {
            Self::Platform => None,
            Self::Client(id) => Some(*id),
        }
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Platform => f.write_str("platform"),
            Self::Client(id) => write!(f, "client {id}"),
        }
    }
}

/// The SQL expression giving a row's chain key; written exactly as in the unique index of the migrations so
/// that both databases use that index.
pub(crate) fn chain_key_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "coalesce(client_id, X'00000000000000000000000000000000')",
        Backend::Postgres => "COALESCE(client_id, '00000000-0000-0000-0000-000000000000'::uuid)",
    }
}

/// The fields of an event that its hash covers, as stored. The row id is not covered: the database assigns it
/// on insert, after the hash is computed; order within a chain is `seq`, and `verify` checks that ids follow it.
#[derive(Debug, Clone, Copy)]
pub struct CanonicalEvent<'a> {
    pub chain: Chain,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub actor_kind: &'a str,
    pub actor_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub action_type: &'a str,
    pub target: Option<&'a str>,
    pub ip_address: Option<&'a str>,
    pub metadata: &'a Value,
}

impl CanonicalEvent<'_> {
    /// The canonical encoding, version 1 (docs/audit.md): the domain tag, then each field in this order,
    /// integers big-endian, strings as a u32 byte length then UTF-8, optional fields as a 0/1 byte then the value,
    /// the metadata as canonical JSON ([`canonical_json`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(EVENT_DOMAIN);
        out.extend_from_slice(self.chain.key().as_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.created_at.timestamp_micros().to_be_bytes());
        put_str(&mut out, self.actor_kind);
        put_opt(&mut out, self.actor_id, |out, id| out.extend_from_slice(id.as_bytes()));
        put_opt(&mut out, self.agent_id, |out, id| out.extend_from_slice(id.as_bytes()));
        put_str(&mut out, self.action_type);
        put_opt(&mut out, self.target, put_str);
        put_opt(&mut out, self.ip_address, put_str);
        let mut json = Vec::with_capacity(64);
        canonical_json(self.metadata, &mut json);
        put_bytes(&mut out, &json);
        out
    }

    /// `SHA-256(canonical_event || prev_hash)`.
    pub fn hash(&self, prev_hash: &ChainHash) -> ChainHash {
        let mut sha = Sha256::new();
        sha.update(self.encode());
        sha.update(prev_hash.0);
        ChainHash(sha.finalize().into())
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("audit fields are far below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_opt<T>(out: &mut Vec<u8>, value: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put(out, v);
        }
    }
}

/// Canonical JSON: no whitespace; object keys sorted by their UTF-8 bytes; strings escaped only where JSON
/// requires (`"`, `\`, and control characters below U+0020 as `\u00xx`, lowercase); numbers by value
/// ([`canonical_number`]). PostgreSQL's JSONB reorders keys, drops whitespace and rewrites numbers
/// (`1e2` → `100`), so the encoding depends only on what both databases give back.
pub fn canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(canonical_number(&n.to_string()).as_bytes()),
        Value::String(s) => json_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_string(key, out);
                out.push(b':');
                canonical_json(item, out);
            }
            out.push(b'}');
        }
    }
}

fn json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// A JSON number by value: `[-]DIGITSeEXP` with no leading or trailing zeros in DIGITS (value = DIGITS × 10^EXP),
/// or `0`. So `100`, `100.0`, `1e2` and `1.00E+2` all give `1e2`, and `-0.0` gives `0`.
pub fn canonical_number(text: &str) -> String {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, mut exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    exp -= frac.len() as i64;
    let all = format!("{int}{frac}");
    let mut digits = all.trim_start_matches('0').to_string();
    if digits.is_empty() {
        return "0".into();
    }
    while digits.ends_with('0') {
        digits.pop();
        exp += 1;
    }
    format!("{}{digits}e{exp}", if negative { "-" } else { "" })
}

/// Why a checkpoint was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// The periodic signature of a chain head ([`checkpoint_all`]).
    Periodic,
    /// The last event retention deleted: the chain continues from it.
    Retention,
}

impl CheckpointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Periodic => "periodic",
            Self::Retention => "retention",
        }
    }
}

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Checkpoint {
    pub id: i64,
    pub chain_id: Uuid,
    pub seq: i64,
    pub head_hash: ChainHash,
    pub kind: String,
    pub key_version: i64,
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

pub(crate) const CHECKPOINT_COLUMNS: &str =
    "id, chain_id, seq, head_hash, kind, key_version, public_key, signature, created_at";

impl Checkpoint {
    /// The bytes the signature covers.
    pub fn message(&self) -> Vec<u8> {
        checkpoint_message(
            Chain::from_key(self.chain_id),
            self.seq,
            &self.head_hash,
            &self.kind,
            self.key_version,
            self.created_at,
        )
    }
}

/// The signed message of a checkpoint (docs/audit.md): domain tag, chain key (16 bytes), seq (i64), head hash
/// (32 bytes), kind (u32 length + UTF-8), key version (i64), time (i64 microseconds since the Unix epoch), all
/// big-endian.
fn checkpoint_message(
    chain: Chain,
    seq: i64,
    head: &ChainHash,
    kind: &str,
    key_version: i64,
    created_at: DateTime<Utc>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(CHECKPOINT_DOMAIN);
    out.extend_from_slice(chain.key().as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&head.0);
    put_str(&mut out, kind);
    out.extend_from_slice(&key_version.to_be_bytes());
    out.extend_from_slice(&created_at.timestamp_micros().to_be_bytes());
    out
}

/// The checkpoint signing key of one master key: HKDF-SHA256 of the master key with its own salt and info, used
/// as an Ed25519 seed. The seed is zeroized; the key zeroizes itself on drop.
fn signing_key(master: &MasterKey) -> SigningKey {
    let hk = Hkdf::<Sha256>::new(Some(SIGNING_KEY_SALT), master.expose());
    let mut seed = Zeroizing::new([0u8; 32]);
    hk.expand(SIGNING_KEY_INFO, seed.as_mut()).expect("32 bytes is a valid HKDF-SHA256 output length");
    SigningKey::from_bytes(&seed)
}

/// The public checkpoint key of each master key version in `keyring`: what `verify` trusts.
pub fn public_keys(keyring: &Keyring) -> Vec<(KeyVersion, VerifyingKey)> {
    keyring.versions().into_iter().filter_map(|v| keyring.get(v).map(|k| (v, signing_key(k).verifying_key()))).collect()
}

/// Whether `checkpoint` was signed by the key that `keyring` derives for its version. `None` when the keyring
/// no longer holds that version (retired): the checkpoint cannot be trusted, nor shown false.
pub(crate) fn checkpoint_signature_ok(checkpoint: &Checkpoint, keys: &[(KeyVersion, VerifyingKey)]) -> Option<bool> {
    let version = u32::try_from(checkpoint.key_version).ok().map(KeyVersion)?;
    let (_, key) = keys.iter().find(|(v, _)| *v == version)?;
    if checkpoint.public_key.as_slice() != key.as_bytes() {
        return Some(false);
    }
    let Ok(signature) = Signature::from_slice(&checkpoint.signature) else {
        return Some(false);
    };
    Some(key.verify(&checkpoint.message(), &signature).is_ok())
}

/// Signs and stores a checkpoint of `chain` at `seq` whose event hash is `head`, with the keyring's current key.
pub(crate) async fn record_checkpoint(
    db: &Db,
    keyring: &Keyring,
    chain: Chain,
    seq: i64,
    head: ChainHash,
    kind: CheckpointKind,
) -> Result<(), DbError> {
    let (version, master) = keyring.current();
    let key = signing_key(master);
    let created_at = crate::db::now();
    let key_version = i64::from(version.0);
    let signature = key.sign(&checkpoint_message(chain, seq, &head, kind.as_str(), key_version, created_at));
    let sql = "INSERT INTO audit_checkpoints (chain_id, seq, head_hash, kind, key_version, public_key, signature, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    on_pool!(db, |p| sqlx::query(sql)
        .bind(chain.key())
        .bind(seq)
        .bind(head)
        .bind(kind.as_str())
        .bind(key_version)
        .bind(key.verifying_key().as_bytes().to_vec())
        .bind(signature.to_bytes().to_vec())
        .bind(created_at)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

/// Checkpoints every chain whose head is not yet covered by a checkpoint signed with the keyring's current key
/// (its head moved, or the master key was rotated); returns how many it signed.
///
/// After a rotation it also re-signs each chain's newest retention checkpoint, if the old key (still in the
/// keyring) vouches for it: once the old key is retired, `verify` can still start the chain from there.
pub async fn checkpoint_all(db: &Db, keyring: &Keyring) -> Result<u64, DbError> {
    let current = i64::from(keyring.current().0 .0);
    let sql = "SELECT h.chain_id, h.seq, h.head FROM audit_chain_heads h WHERE NOT EXISTS \
               (SELECT 1 FROM audit_checkpoints c WHERE c.chain_id = h.chain_id AND c.seq >= h.seq AND c.key_version = $1) \
               ORDER BY h.chain_id";
    let moved: Vec<(Uuid, i64, ChainHash)> = on_pool!(db, |p| sqlx::query_as(sql).bind(current).fetch_all(p).await?);
    let mut signed = 0;
    for (key, seq, head) in moved {
        record_checkpoint(db, keyring, Chain::from_key(key), seq, head, CheckpointKind::Periodic).await?;
        signed += 1;
    }

    let sql = format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints c WHERE c.kind = 'retention' AND c.key_version <> $1 \
         AND NOT EXISTS (SELECT 1 FROM audit_checkpoints d WHERE d.chain_id = c.chain_id AND d.kind = 'retention' \
         AND (d.seq > c.seq OR (d.seq = c.seq AND d.id > c.id))) ORDER BY c.chain_id"
    );
    let stale: Vec<Checkpoint> = on_pool!(db, |p| sqlx::query_as(&sql).bind(current).fetch_all(p).await?);
    let keys = public_keys(keyring);
    for cp in stale {
        if checkpoint_signature_ok(&cp, &keys) == Some(true) {
            let chain = Chain::from_key(cp.chain_id);
            record_checkpoint(db, keyring, chain, cp.seq, cp.head_hash, CheckpointKind::Retention).await?;
            signed += 1;
        }
    }
    Ok(signed)
}

/// The most recent checkpoints of `chain`, newest first (for operators and tests).
pub async fn checkpoints(db: &Db, chain: Chain, limit: u32) -> Result<Vec<Checkpoint>, DbError> {
    let sql = format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE chain_id = $1 ORDER BY seq DESC, id DESC LIMIT $2"
    );
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Checkpoint>(&sql)
        .bind(chain.key())
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(p)
        .await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_canonical_by_value() {
        for (a, b) in [("100", "1e2"), ("100.0", "1e2"), ("1.00E+2", "1e2"), ("-0.0", "0"), ("0", "0")] {
            assert_eq!(canonical_number(a), b, "{a}");
        }
        assert_eq!(canonical_number("0.1"), "1e-1");
        assert_eq!(canonical_number("-12.50"), "-125e-1");
        assert_eq!(canonical_number("18446744073709551615"), "18446744073709551615e0");
        assert_eq!(canonical_number("10000000000000000000"), canonical_number("1e19"));
    }

    #[test]
    fn canonical_json_sorts_keys_and_ignores_layout() {
        let a: Value =
            serde_json::from_str(r#"{ "b": [1, 2.0, {"z": null, "a": true}], "a": "x\"\n\u00e9" }"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"x\"\n\u00e9","b":[1e0,2,{"a":true,"z":null}]}"#).unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        canonical_json(&a, &mut x);
        canonical_json(&b, &mut y);
        assert_eq!(x, y);
        assert_eq!(String::from_utf8(x).unwrap(), "{\"a\":\"x\\\"\\u000aé\",\"b\":[1e0,2e0,{\"a\":true,\"z\":null}]}");
    }

    fn event(metadata: &Value) -> CanonicalEvent<'_> {
        CanonicalEvent {
            chain: Chain::Platform,
            seq: 1,
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            actor_kind: "platform",
            actor_id: None,
            agent_id: None,
            action_type: "auth.code_requested",
            target: None,
            ip_address: None,
            metadata,
        }
    }

    #[test]
    fn every_field_changes_the_hash_and_fields_cannot_slide_into_each_other() {
        let meta = json!({"k": "v"});
        let base = event(&meta);
        let h = base.hash(&ChainHash::GENESIS);
        let other_meta = json!({"k": "w"});
        let variants = [
            CanonicalEvent { seq: 2, ..base },
            CanonicalEvent { chain: Chain::Client(ClientId::new()), ..base },
            CanonicalEvent { created_at: base.created_at + chrono::Duration::microseconds(1), ..base },
            CanonicalEvent { actor_kind: "admin", ..base },
            CanonicalEvent { actor_id: Some(Uuid::nil()), ..base },
            CanonicalEvent { agent_id: Some(Uuid::nil()), ..base },
            CanonicalEvent { action_type: "auth.code_sent", ..base },
            CanonicalEvent { target: Some(""), ..base },
            CanonicalEvent { ip_address: Some(""), ..base },
            CanonicalEvent { metadata: &other_meta, ..base },
        ];
        for v in variants {
            assert_ne!(v.hash(&ChainHash::GENESIS), h, "{v:?}");
        }
        assert_ne!(base.hash(&ChainHash([1; 32])), h, "the previous hash is covered");
        // Length prefixes: moving a byte from one string to the next changes the encoding.
        let a = CanonicalEvent { target: Some("ab"), ip_address: Some("c"), ..base };
        let b = CanonicalEvent { target: Some("a"), ip_address: Some("bc"), ..base };
        assert_ne!(a.encode(), b.encode());
    }

    /// Expected hashes computed independently (Python's hashlib, from the byte layout in docs/audit.md).
    #[test]
    fn known_answer_for_encoding_v1() {
        let client = ClientId::from(Uuid::parse_str("01930000-0000-7000-8000-000000000001").unwrap());
        let agent = Uuid::parse_str("01930000-0000-7000-8000-0000000000aa").unwrap();
        // Key order and number spelling as JSONB would give them back: the encoding does not care.
        let meta: Value = serde_json::from_str(r#"{"ratio": 0.50, "path": "/v1/chat", "n": 42}"#).unwrap();
        let first = CanonicalEvent {
            chain: Chain::Client(client),
            seq: 1,
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            actor_kind: "agent",
            actor_id: Some(agent),
            agent_id: Some(agent),
            action_type: "agent.http_request",
            target: Some("https://api.example/v1"),
            ip_address: Some("203.0.113.7"),
            metadata: &meta,
        };
        let h1 = first.hash(&ChainHash::GENESIS);
        assert_eq!(h1.to_hex(), "c9e8fa45c394a3019fdf3babf45534f665785a40b7490960fc3f18985a984164");
        let empty = json!({});
        let second = CanonicalEvent {
            seq: 2,
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_457).unwrap(),
            actor_kind: "platform",
            actor_id: None,
            agent_id: None,
            action_type: "agent.stopped",
            target: None,
            ip_address: None,
            metadata: &empty,
            ..first
        };
        assert_eq!(second.hash(&h1).to_hex(), "ee057387751631a5f88af817866a4d409b9c02850ab63cecfabf5896cc7b394c");
    }

    #[test]
    fn signing_keys_are_deterministic_per_master_key_and_distinct_between_them() {
        let one = MasterKey::from_bytes([1; 32]);
        let two = MasterKey::from_bytes([2; 32]);
        assert_eq!(signing_key(&one).verifying_key(), signing_key(&one).verifying_key());
        assert_ne!(signing_key(&one).verifying_key(), signing_key(&two).verifying_key());
        assert_ne!(signing_key(&one).verifying_key().as_bytes(), &[1; 32]);
    }
}
