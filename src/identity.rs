//! Identity: who is signing in, and the rules that keep guessing and spamming out.
//!
//! This slice holds the passwordless first factor - one-time email codes ([`codes`]) - and the
//! database-backed throttle ([`throttle`]) that limits sending and guessing them per address and per IP.
//! TOTP, sessions and roles build on it.

pub mod codes;
pub mod recovery;
pub mod sign_in;
pub mod throttle;
pub mod totp;
