//! The per-client hash chain over audit events, signed checkpoints and verification (work in progress).
