//! The sealed form of a secret, and the two operations on it.
//!
//! Format v1 (documented in `docs/vault.md`; a known-answer test pins it):
//! - per-client key = HKDF-SHA256(ikm = master key of `key_version`, salt = [`CLIENT_KEY_SALT`],
//!   info = the client's 16 UUID bytes), 32 bytes;
//! - AES-256-GCM with a fresh random 12-byte nonce per seal, 16-byte tag appended to the ciphertext;
//! - associated data = [`AAD_PREFIX`] || client id (16 bytes) || agent id (16 bytes) || name length (u16,
//!   big-endian) || name (UTF-8). A ciphertext moved to another client, agent or name fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use secrecy::SecretSlice;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::keyring::{KeyVersion, Keyring, MasterKey, KEY_BYTES};
use crate::db::{AgentId, ClientId, UserId};

/// HKDF salt for per-client data keys (format v1).
pub const CLIENT_KEY_SALT: &[u8] = b"deployclaw/vault/client-key/v1";
/// First bytes of the associated data (format v1, NUL-terminated).
pub const AAD_PREFIX: &[u8] = b"deployclaw/vault/v1\0";
/// First bytes of the associated data of a user's own secret (e.g. the TOTP seed), format v1.
pub const USER_SECRET_AAD_PREFIX: &[u8] = b"deployclaw/vault/user-secret/v1\0";
/// First byte of an envelope serialised into one column ([`Envelope::to_bytes`]).
pub const PACKED_FORMAT_V1: u8 = 1;
/// Length of a packed envelope's header: format byte and key version (u32 big-endian).
pub const PACKED_HEADER_BYTES: usize = 5;
/// AES-GCM nonce length.
pub const NONCE_BYTES: usize = 12;
/// AES-GCM tag length, appended to the ciphertext.
pub const TAG_BYTES: usize = 16;
/// Cipher name as shown on the security page.
pub const CIPHER: &str = "AES-256-GCM";

/// A sealed secret: which master key version, the nonce, and ciphertext with its tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    pub key_version: KeyVersion,
    pub nonce: [u8; NONCE_BYTES],
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope").field("key_version", &self.key_version).field("len", &self.ciphertext.len()).finish()
    }
}

/// What a sealed secret belongs to; bound into the associated data.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub client_id: ClientId,
    pub agent_id: AgentId,
    pub name: &'a str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("sealed with master key {0}, which is not in the keyring (retired or missing): restore that key, or set the credential again")]
    UnknownKeyVersion(KeyVersion),
    /// Wrong key, tampered bytes, or a ciphertext moved to another record. Deliberately not more specific.
    #[error("the credential could not be decrypted: it was tampered with, or belongs to another record")]
    Unauthentic,
    #[error("a credential name is at most 65535 bytes")]
    NameTooLong,
}

/// The associated data layout shared by every domain (format v1): `prefix` || client id (16 bytes) ||
/// owner id (16 bytes: agent or user) || name length (u16, big-endian) || name (UTF-8).
fn aad_v1(prefix: &[u8], client_id: ClientId, owner: &uuid::Uuid, name: &str) -> Result<Vec<u8>, EnvelopeError> {
    let name = name.as_bytes();
    let len = u16::try_from(name.len()).map_err(|_| EnvelopeError::NameTooLong)?;
    let mut aad = Vec::with_capacity(prefix.len() + 16 + 16 + 2 + name.len());
    aad.extend_from_slice(prefix);
    aad.extend_from_slice(client_id.as_uuid().as_bytes());
    aad.extend_from_slice(owner.as_bytes());
    aad.extend_from_slice(&len.to_be_bytes());
    aad.extend_from_slice(name);
    Ok(aad)
}

/// The associated data for `binding` (format v1).
pub fn associated_data(binding: Binding<'_>) -> Result<Vec<u8>, EnvelopeError> {
    aad_v1(AAD_PREFIX, binding.client_id, &binding.agent_id.as_uuid(), binding.name)
}

/// The associated data of user `user_id`'s secret `name` (format v1).
pub fn user_secret_associated_data(client_id: ClientId, user_id: UserId, name: &str) -> Result<Vec<u8>, EnvelopeError> {
    aad_v1(USER_SECRET_AAD_PREFIX, client_id, &user_id.as_uuid(), name)
}

/// Seals a user's own secret (not an agent credential) under the current key.
pub fn seal_user_secret(
    keyring: &Keyring,
    client_id: ClientId,
    user_id: UserId,
    name: &str,
    plaintext: &[u8],
) -> Result<Envelope, EnvelopeError> {
    let (version, master) = keyring.current();
    let aad = user_secret_associated_data(client_id, user_id, name)?;
    seal_aad(version, master, client_id, &aad, plaintext, fresh_nonce())
}

/// Opens a user's own secret sealed by [`seal_user_secret`] for the same client, user and name.
pub fn open_user_secret(
    keyring: &Keyring,
    client_id: ClientId,
    user_id: UserId,
    name: &str,
    envelope: &Envelope,
) -> Result<SecretSlice<u8>, EnvelopeError> {
    open_aad(keyring, client_id, &user_secret_associated_data(client_id, user_id, name)?, envelope)
}

impl Envelope {
    /// One-column form: format byte, key version (u32 big-endian), nonce, ciphertext with tag.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 4 + NONCE_BYTES + self.ciphertext.len());
        out.push(PACKED_FORMAT_V1);
        out.extend_from_slice(&self.key_version.0.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Reads [`Envelope::to_bytes`]; anything malformed is [`EnvelopeError::Unauthentic`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let header = PACKED_HEADER_BYTES + NONCE_BYTES;
        if bytes.len() < header + TAG_BYTES {
            return Err(EnvelopeError::Unauthentic);
        }
        let version = Self::packed_key_version(bytes).ok_or(EnvelopeError::Unauthentic)?;
        let nonce = bytes[PACKED_HEADER_BYTES..header].try_into().expect("12 bytes");
        Ok(Self { key_version: version, nonce, ciphertext: bytes[header..].to_vec() })
    }

    /// The key version of a packed envelope, read from its header alone (the rest may be absent).
    pub fn packed_key_version(bytes: &[u8]) -> Option<KeyVersion> {
        match bytes.get(..PACKED_HEADER_BYTES)? {
            [PACKED_FORMAT_V1, version @ ..] => Some(KeyVersion(u32::from_be_bytes(version.try_into().ok()?))),
            _ => None,
        }
    }

    /// The header every envelope packed under `version` starts with. Headers compare byte-wise in the
    /// order of their versions (big-endian), so a query can find envelopes sealed below a version by
    /// comparing their first [`PACKED_HEADER_BYTES`] with this, without parsing them.
    pub fn packed_header(version: KeyVersion) -> [u8; PACKED_HEADER_BYTES] {
        let [a, b, c, d] = version.0.to_be_bytes();
        [PACKED_FORMAT_V1, a, b, c, d]
    }
}

/// The per-client data key under `master` (zeroized on drop).
pub fn client_key(master: &MasterKey, client_id: ClientId) -> Zeroizing<[u8; KEY_BYTES]> {
    let hk = Hkdf::<Sha256>::new(Some(CLIENT_KEY_SALT), master.expose());
    let mut okm = Zeroizing::new([0u8; KEY_BYTES]);
    hk.expand(client_id.as_uuid().as_bytes(), okm.as_mut()).expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

fn cipher(master: &MasterKey, client_id: ClientId) -> Aes256Gcm {
    let key = client_key(master, client_id);
    Aes256Gcm::new_from_slice(key.as_ref()).expect("32-byte key")
}

fn fresh_nonce() -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    nonce
}

/// The one encryption: AES-256-GCM under the client's key for `version`, with `aad`.
fn seal_aad(
    version: KeyVersion,
    master: &MasterKey,
    client_id: ClientId,
    aad: &[u8],
    plaintext: &[u8],
    nonce: [u8; NONCE_BYTES],
) -> Result<Envelope, EnvelopeError> {
    let ciphertext = cipher(master, client_id)
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .map_err(|_| EnvelopeError::Unauthentic)?;
    Ok(Envelope { key_version: version, nonce, ciphertext })
}

/// The one decryption: fails unless the key version is known and nonce, ciphertext, tag and `aad` are
/// exactly those it was sealed with.
fn open_aad(
    keyring: &Keyring,
    client_id: ClientId,
    aad: &[u8],
    envelope: &Envelope,
) -> Result<SecretSlice<u8>, EnvelopeError> {
    let master = keyring.get(envelope.key_version).ok_or(EnvelopeError::UnknownKeyVersion(envelope.key_version))?;
    let plaintext = cipher(master, client_id)
        .decrypt(Nonce::from_slice(&envelope.nonce), Payload { msg: &envelope.ciphertext, aad })
        .map_err(|_| EnvelopeError::Unauthentic)?;
    Ok(SecretSlice::from(plaintext))
}

/// Seals `plaintext` for `binding` under the keyring's current key with a fresh random nonce.
pub fn seal(keyring: &Keyring, binding: Binding<'_>, plaintext: &[u8]) -> Result<Envelope, EnvelopeError> {
    let (version, master) = keyring.current();
    seal_with_nonce(version, master, binding, plaintext, fresh_nonce())
}

/// Sealing with a caller-chosen nonce: only for [`seal`] and the known-answer test. A nonce must never be
/// reused under one key.
pub(crate) fn seal_with_nonce(
    version: KeyVersion,
    master: &MasterKey,
    binding: Binding<'_>,
    plaintext: &[u8],
    nonce: [u8; NONCE_BYTES],
) -> Result<Envelope, EnvelopeError> {
    seal_aad(version, master, binding.client_id, &associated_data(binding)?, plaintext, nonce)
}

/// Opens `envelope` for `binding`. Fails unless the key version is known and the nonce, ciphertext, tag and
/// binding are exactly those it was sealed with.
pub fn open(keyring: &Keyring, binding: Binding<'_>, envelope: &Envelope) -> Result<SecretSlice<u8>, EnvelopeError> {
    open_aad(keyring, binding.client_id, &associated_data(binding)?, envelope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secrecy::ExposeSecret;

    fn keyring(versions: &[u32]) -> Keyring {
        Keyring::new(versions.iter().map(|v| (KeyVersion(*v), MasterKey::from_bytes([*v as u8; 32]))), "test").unwrap()
    }

    fn ids() -> (ClientId, AgentId) {
        (ClientId::new(), AgentId::new())
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let k = keyring(&[1]);
        let (c, a) = ids();
        let b = Binding { client_id: c, agent_id: a, name: "openai_key" };
        let e1 = seal(&k, b, b"sk-test-value").unwrap();
        let e2 = seal(&k, b, b"sk-test-value").unwrap();
        assert_ne!(e1.nonce, e2.nonce, "a fresh nonce per seal");
        assert_ne!(e1.ciphertext, e2.ciphertext);
        assert_eq!(e1.ciphertext.len(), b"sk-test-value".len() + TAG_BYTES);
        assert_eq!(open(&k, b, &e1).unwrap().expose_secret(), b"sk-test-value");
    }

    #[test]
    fn every_tampered_part_fails() {
        let k = keyring(&[1]);
        let (c, a) = ids();
        let b = Binding { client_id: c, agent_id: a, name: "token" };
        let e = seal(&k, b, b"secret value").unwrap();
        let mut nonce = e.clone();
        nonce.nonce[0] ^= 1;
        let mut body = e.clone();
        body.ciphertext[0] ^= 1;
        let mut tag = e.clone();
        *tag.ciphertext.last_mut().unwrap() ^= 0x80;
        let mut short = e.clone();
        short.ciphertext.truncate(3);
        for bad in [nonce, body, tag, short] {
            assert_eq!(open(&k, b, &bad).unwrap_err(), EnvelopeError::Unauthentic);
        }
    }

    #[test]
    fn a_ciphertext_moved_to_another_client_agent_or_name_fails() {
        let k = keyring(&[1]);
        let (c, a) = ids();
        let b = Binding { client_id: c, agent_id: a, name: "openai_key" };
        let e = seal(&k, b, b"value").unwrap();
        let (c2, a2) = ids();
        for other in [
            Binding { client_id: c2, ..b },
            Binding { agent_id: a2, ..b },
            Binding { name: "anthropic_key", ..b },
            Binding { name: "openai_ke", ..b },
        ] {
            assert_eq!(open(&k, other, &e).unwrap_err(), EnvelopeError::Unauthentic, "{other:?}");
        }
    }

    #[test]
    fn new_keys_seal_new_records_and_retired_keys_fail_clearly() {
        let (c, a) = ids();
        let b = Binding { client_id: c, agent_id: a, name: "n" };
        let old = seal(&keyring(&[1]), b, b"x").unwrap();
        let both = keyring(&[1, 2]);
        assert_eq!(seal(&both, b, b"x").unwrap().key_version, KeyVersion(2));
        assert_eq!(open(&both, b, &old).unwrap().expose_secret(), b"x", "old records still open");
        let retired = keyring(&[2]);
        let err = open(&retired, b, &old).unwrap_err();
        assert_eq!(err, EnvelopeError::UnknownKeyVersion(KeyVersion(1)));
        assert!(err.to_string().contains("v1") && err.to_string().contains("retired"));
        // Same bytes under a different key of the same version number: not authentic.
        let impostor = Keyring::new([(KeyVersion(1), MasterKey::from_bytes([9; 32]))], "t").unwrap();
        assert_eq!(open(&impostor, b, &old).unwrap_err(), EnvelopeError::Unauthentic);
    }

    /// Pins format v1. The expected bytes were computed independently with Python's `cryptography`
    /// (HKDF-SHA256 then AESGCM) from the same inputs; if this fails, stored credentials would no longer open.
    #[test]
    fn known_answer_for_format_v1() {
        let master = MasterKey::from_bytes(core::array::from_fn(|i| i as u8));
        let client: ClientId = "0192f3a0-0000-7000-8000-000000000001".parse().unwrap();
        let agent: AgentId = "0192f3a0-0000-7000-8000-000000000002".parse().unwrap();
        let b = Binding { client_id: client, agent_id: agent, name: "openai_key" };
        let nonce: [u8; 12] = core::array::from_fn(|i| 0xA0 + i as u8);
        let e = seal_with_nonce(KeyVersion(1), &master, b, b"sk-known-answer-plaintext", nonce).unwrap();
        assert_eq!(hex(client_key(&master, client).as_ref()), KAT_CLIENT_KEY);
        assert_eq!(hex(&associated_data(b).unwrap()), KAT_AAD);
        assert_eq!(hex(&e.ciphertext), KAT_CIPHERTEXT);
    }

    const KAT_CLIENT_KEY: &str = "1be734e1d9f50e1978e4c777172b961fae845114e00ba4e62cfa552dffa26ad1";
    const KAT_AAD: &str = "6465706c6f79636c61772f7661756c742f7631000192f3a00000700080000000000000010192f3a0000070008000000000000002000a6f70656e61695f6b6579";
    const KAT_CIPHERTEXT: &str = "73dd32364b5b113c8869c9270e0824e200922f1e40d22c82339f5bf554332989d2a84bc94369538d98";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn user_secrets_are_bound_to_their_user_and_never_open_as_agent_credentials() {
        let k = keyring(&[1]);
        let (c, _) = ids();
        let (u, u2) = (UserId::new(), UserId::new());
        let e = seal_user_secret(&k, c, u, "totp", b"seed").unwrap();
        assert_eq!(open_user_secret(&k, c, u, "totp", &e).unwrap().expose_secret(), b"seed");
        assert_eq!(open_user_secret(&k, c, u2, "totp", &e).unwrap_err(), EnvelopeError::Unauthentic);
        // Same UUID bytes as an agent id: a different domain prefix, so it still fails.
        let as_agent = Binding { client_id: c, agent_id: AgentId::from(u.as_uuid()), name: "totp" };
        assert_eq!(open(&k, as_agent, &e).unwrap_err(), EnvelopeError::Unauthentic);
        let packed = Envelope::from_bytes(&e.to_bytes()).unwrap();
        assert_eq!(packed, e);
        assert!(Envelope::from_bytes(&e.to_bytes()[..20]).is_err());
        let mut wrong_format = e.to_bytes();
        wrong_format[0] = 9;
        assert!(Envelope::from_bytes(&wrong_format).is_err());
    }

    #[test]
    fn packed_headers_sort_like_their_versions_and_name_them() {
        let k = keyring(&[1]);
        let packed = seal_user_secret(&k, ClientId::new(), UserId::new(), "totp", b"seed").unwrap().to_bytes();
        assert!(packed.starts_with(&Envelope::packed_header(KeyVersion(1))));
        assert_eq!(Envelope::packed_key_version(&packed), Some(KeyVersion(1)));
        assert!(packed.as_slice() < Envelope::packed_header(KeyVersion(2)).as_slice());
        for (lower, higher) in [(1, 2), (255, 256), (65_535, 65_536), (16_777_215, 16_777_216), (7, u32::MAX)] {
            let (lower, higher) = (KeyVersion(lower), KeyVersion(higher));
            assert!(Envelope::packed_header(lower) < Envelope::packed_header(higher), "{lower} < {higher}");
            assert_eq!(Envelope::packed_key_version(&Envelope::packed_header(higher)), Some(higher));
        }
        assert_eq!(Envelope::packed_key_version(&[PACKED_FORMAT_V1, 0, 0, 1]), None, "too short");
        assert_eq!(Envelope::packed_key_version(&[9, 0, 0, 0, 1]), None, "unknown format");
    }

    proptest! {
        #[test]
        fn any_plaintext_round_trips_and_any_bit_flip_fails(
            plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
            name in "[a-z][a-z0-9_]{0,40}",
            flip in any::<prop::sample::Index>(),
        ) {
            let k = keyring(&[1, 2]);
            let (c, a) = ids();
            let b = Binding { client_id: c, agent_id: a, name: &name };
            let e = seal(&k, b, &plaintext).unwrap();
            let opened = open(&k, b, &e).unwrap();
            prop_assert_eq!(opened.expose_secret(), &plaintext[..]);
            let mut bad = e.clone();
            let i = flip.index(bad.ciphertext.len());
            bad.ciphertext[i] ^= 1;
            prop_assert_eq!(open(&k, b, &bad).unwrap_err(), EnvelopeError::Unauthentic);
        }
    }
}
