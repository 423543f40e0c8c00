//! The fresh-second-factor proof sensitive actions require (DESIGN invariant 6).

use crate::db::ClientId;

/// Proof that a signed-in user of a client passed a second-factor check at most
/// [`FRESH_SECOND_FACTOR`](super::session::FRESH_SECOND_FACTOR) ago, required for sensitive changes (credentials,
/// billing, agents, team). Made only from a session's sign-in state; it is good only for that user's own client.
#[derive(Debug)]
pub struct FreshTwoFactor {
    client_id: ClientId,
}

impl FreshTwoFactor {
    /// The proof, when the session is signed in and its second factor is fresh at `now`.
    pub fn from_session(auth: &super::session::SessionAuth, now: chrono::DateTime<chrono::Utc>) -> Option<Self> {
        let (client_id, _) = auth.signed_in()?;
        auth.second_factor_is_fresh(now).then_some(Self { client_id })
    }

    /// Whether the proof was made for `client_id`: every capability that needs a fresh second factor checks it.
    pub fn covers(&self, client_id: ClientId) -> bool {
        self.client_id == client_id
    }
}
