//! Dashboard sessions: what a session has proven so far, and the timing rules that end it.
//!
//! A session is created only once the email code is accepted, and moves through [`Stage`]s: sign-up (new
//! address), TOTP enrolment (first sign-in) or the TOTP check, then signed in. The web layer stores a
//! [`SessionAuth`] under [`SESSION_KEY`] with tower-sessions and the [`store`] persists it in the database;
//! this module owns the rules - idle timeout, absolute lifetime, how long a pending sign-in may wait, and
//! when a second factor counts as fresh - so they are tested without a browser.

pub mod store;

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sign_in::VerifiedEmail;
use crate::context::RequestContext;
use crate::db::{ClientId, UserId};

/// A signed-in session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after its sign-in began, however active it is.
pub const ABSOLUTE_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Deploying, changing or deleting agents and credentials, billing and team changes need a second factor at
/// most this old; older, the user is asked for a TOTP code again.
pub const FRESH_SECOND_FACTOR: Duration = Duration::from_secs(15 * 60);
/// A sign-in that passed the email code must finish (sign-up, enrolment, TOTP) within this time.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Activity is written back at most this often, so idle tracking costs one write per minute, not per request.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// The key the web layer stores [`SessionAuth`] under.
pub const SESSION_KEY: &str = "auth";
/// Longest user agent kept (longer ones are cut).
pub const MAX_USER_AGENT_CHARS: usize = 512;

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).expect("session durations fit")
}

/// How far a sign-in has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// The email code was accepted for an address with no account: the user names their client next.
    SignUp { email: VerifiedEmail },
    /// The email code was accepted; the user has no authenticator yet and must set one up first.
    Enroll { client_id: ClientId, user_id: UserId },
    /// The email code was accepted; the TOTP code is next.
    TwoFactor { client_id: ClientId, user_id: UserId },
    /// Both factors passed.
    SignedIn { client_id: ClientId, user_id: UserId },
}

impl Stage {
    /// The user this stage belongs to, if an account exists yet.
    pub fn user(&self) -> Option<(ClientId, UserId)> {
        match *self {
            Stage::SignUp { .. } => None,
            Stage::Enroll { client_id, user_id }
            | Stage::TwoFactor { client_id, user_id }
            | Stage::SignedIn { client_id, user_id } => Some((client_id, user_id)),
        }
    }
}

/// Why a session is no longer valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    #[error("your session ended after 30 minutes without activity; please sign in again")]
    Idle,
    #[error("your session reached its 12-hour limit; please sign in again")]
    Lifetime,
    #[error("the sign-in was not finished in time; please start again")]
    PendingTooLong,
}

/// What a session has proven, stored in the session under [`SESSION_KEY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionAuth {
    pub stage: Stage,
    /// When the email code was accepted: the absolute lifetime counts from here.
    pub started_at: DateTime<Utc>,
    /// When a second factor (TOTP or recovery code) last passed.
    pub second_factor_at: Option<DateTime<Utc>>,
    pub last_seen_at: DateTime<Utc>,
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

fn clip_user_agent(ua: Option<&str>) -> Option<String> {
    ua.map(|ua| ua.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT_CHARS).collect())
}

impl SessionAuth {
    /// A session that just passed the email code.
    pub fn begin(stage: Stage, ctx: &RequestContext, now: DateTime<Utc>) -> Self {
        Self {
            stage,
            started_at: now,
            second_factor_at: None,
            last_seen_at: now,
            ip: ctx.ip,
            user_agent: clip_user_agent(ctx.user_agent.as_deref()),
        }
    }

    /// Moves to `stage` (sign-up done, enrolment needed, ...), without a second factor.
    pub fn advance(&mut self, stage: Stage, now: DateTime<Utc>) {
        self.stage = stage;
        self.last_seen_at = now;
    }

    /// Records a second factor that passed now: the session is signed in and its second factor fresh.
    pub fn second_factor_passed(&mut self, client_id: ClientId, user_id: UserId, now: DateTime<Utc>) {
        self.stage = Stage::SignedIn { client_id, user_id };
        self.second_factor_at = Some(now);
        self.last_seen_at = now;
    }

    /// Whether the session has ended at `now`, and why.
    pub fn ended(&self, now: DateTime<Utc>) -> Option<Ended> {
        if now - self.started_at > chrono(ABSOLUTE_LIFETIME) {
            return Some(Ended::Lifetime);
        }
        if !matches!(self.stage, Stage::SignedIn { .. }) && now - self.started_at > chrono(PENDING_LIFETIME) {
            return Some(Ended::PendingTooLong);
        }
        if now - self.last_seen_at > chrono(IDLE_TIMEOUT) {
            return Some(Ended::Idle);
        }
        None
    }

    /// The signed-in user, when both factors passed.
    pub fn signed_in(&self) -> Option<(ClientId, UserId)> {
        match self.stage {
            Stage::SignedIn { client_id, user_id } => Some((client_id, user_id)),
            _ => None,
        }
    }

    /// Whether the last second factor is recent enough for a sensitive change.
    pub fn second_factor_is_fresh(&self, now: DateTime<Utc>) -> bool {
        self.second_factor_at.is_some_and(|at| at <= now && now - at <= chrono(FRESH_SECOND_FACTOR))
    }

    /// Records activity when the last record is older than [`TOUCH_INTERVAL`]; returns whether it changed
    /// (and so must be saved).
    pub fn touch(&mut self, ctx: &RequestContext, now: DateTime<Utc>) -> bool {
        if now - self.last_seen_at < chrono(TOUCH_INTERVAL) {
            return false;
        }
        self.last_seen_at = now;
        self.ip = ctx.ip;
        self.user_agent = clip_user_agent(ctx.user_agent.as_deref());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext { ip: "203.0.113.7".parse().unwrap(), user_agent: Some("Firefox\u{7}".into()) }
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    fn signed_in() -> SessionAuth {
        let (client_id, user_id) = (ClientId::new(), UserId::new());
        let mut s = SessionAuth::begin(Stage::TwoFactor { client_id, user_id }, &ctx(), at(0));
        s.second_factor_passed(client_id, user_id, at(1));
        s
    }

    #[test]
    fn control_characters_are_dropped_from_the_user_agent() {
        assert_eq!(signed_in().user_agent.as_deref(), Some("Firefox"));
    }

    #[test]
    fn an_idle_session_ends_after_thirty_minutes() {
        let s = signed_in();
        assert_eq!(s.ended(at(31)), None);
        assert_eq!(s.ended(at(32)), Some(Ended::Idle));
    }

    #[test]
    fn activity_keeps_a_session_alive_but_not_past_twelve_hours() {
        let mut s = signed_in();
        for minute in (21..=701).step_by(20) {
            assert_eq!(s.ended(at(minute)), None, "ended at minute {minute}");
            assert!(s.touch(&ctx(), at(minute)));
        }
        assert_eq!(s.ended(at(12 * 60 + 1)), Some(Ended::Lifetime));
    }

    #[test]
    fn touching_is_rate_limited_to_once_a_minute() {
        let mut s = signed_in();
        assert!(!s.touch(&ctx(), at(1) + chrono::Duration::seconds(59)));
        assert!(s.touch(&ctx(), at(2)));
        assert_eq!(s.last_seen_at, at(2));
    }

    #[test]
    fn a_pending_sign_in_expires_after_fifteen_minutes() {
        let s =
            SessionAuth::begin(Stage::TwoFactor { client_id: ClientId::new(), user_id: UserId::new() }, &ctx(), at(0));
        assert_eq!(s.signed_in(), None);
        let mut touched = s.clone();
        touched.last_seen_at = at(15);
        assert_eq!(touched.ended(at(15)), None);
        assert_eq!(touched.ended(at(16)), Some(Ended::PendingTooLong));
    }

    #[test]
    fn the_second_factor_is_fresh_for_fifteen_minutes() {
        let s = signed_in();
        assert!(s.second_factor_is_fresh(at(16)));
        assert!(!s.second_factor_is_fresh(at(17)));
        let mut never = s.clone();
        never.second_factor_at = None;
        assert!(!never.second_factor_is_fresh(at(1)));
        assert!(!s.second_factor_is_fresh(at(0)), "a timestamp in the future is not trusted");
    }

    #[test]
    fn the_stored_form_is_tagged_and_round_trips() {
        let s = signed_in();
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["stage"]["stage"], "signed_in");
        assert_eq!(serde_json::from_value::<SessionAuth>(json).unwrap(), s);
    }
}
