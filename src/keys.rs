//! Key material: the versioned master keys (from the environment or an owner-only file, never the database) and
//! the AES-256-GCM envelope every secret at rest is sealed in. Used by the vault (credentials), identity (TOTP
//! seeds, sign-in code keys) and the audit trail (checkpoint signing). Knows no capability above it.

pub mod envelope;
pub mod keyring;
