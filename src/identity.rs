//! Identity: who is signing in, and the rules that keep guessing and spamming out.
//!
//! - [`sign_in`]: the passwordless first factor (one-time email codes from [`codes`]) and sign-up;
//! - [`two_factor`]: mandatory TOTP ([`totp`]), recovery codes ([`recovery`]), resets, and what a completed
//!   sign-in records ([`devices`], new-device alerts);
//! - [`session`]: the stages of a sign-in, the timing rules that end sessions, and their database store;
//! - [`team`]: roles within a client, and the platform's operators;
//! - [`throttle`]: the database-backed limit on sending and guessing, shared by every factor;
//! - [`argon`]: the bounded pool that does every argon2id hash, with its memory held once per worker.

pub mod argon;
pub mod codes;
pub mod config;
pub mod devices;
pub mod fresh;
pub mod recovery;
pub mod session;
pub mod sign_in;
pub mod team;
pub mod throttle;
pub mod totp;
pub mod two_factor;
