//! Typed identifiers. After the boundary, a `String` or a bare `Uuid` is never an id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// 8 hex digits for container, network and volume names: the *last* 8, which are random. (The
            /// first 8 of a UUIDv7 are its timestamp, the same for every id made within about a minute.)
            pub fn short(&self) -> String {
                self.0.simple().to_string()[24..].to_string()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
    };
}

uuid_id!(
    /// A customer (tenant): a company or a person. Every piece of tenant data is scoped by it.
    ClientId
);
uuid_id!(
    /// A dashboard user, belonging to one client.
    UserId
);
uuid_id!(
    /// A deployed OpenClaw agent, belonging to one client.
    AgentId
);
uuid_id!(
    /// A stored credential of one agent.
    CredentialId
);

/// An audit event's position in the log (monotonic, assigned by the database).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct AuditEventId(pub i64);

impl fmt::Display for AuditEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_are_time_ordered() {
        let a = ClientId::new();
        let b = ClientId::new();
        assert!(a < b, "v7 ids sort by creation time");
        assert_eq!(a.to_string().parse::<ClientId>().unwrap(), a);
        assert_eq!(a.short().len(), 8);
        assert!("not-a-uuid".parse::<AgentId>().is_err());
    }

    #[test]
    fn short_forms_of_ids_made_together_differ() {
        let shorts: std::collections::HashSet<String> = (0..1000).map(|_| AgentId::new().short()).collect();
        assert_eq!(shorts.len(), 1000, "the short form must come from the random bits, not the timestamp");
    }
}
