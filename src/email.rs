//! Email addresses, parsed once at the boundary.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A syntactically plausible, normalised (trimmed, lower-cased) email address. Deliverability is proven by
/// the sign-in code, not by syntax; this only refuses what can never be an address.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(try_from = "String", into = "String")]
#[sqlx(transparent)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("enter an email address")]
    Empty,
    #[error("an email address is at most 254 characters")]
    TooLong,
    #[error("an email address looks like name@example.com")]
    Malformed,
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(EmailError::Malformed)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !(local_ok && domain_ok) {
            return Err(EmailError::Malformed);
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = EmailError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(e: EmailAddress) -> Self {
        e.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_and_accepts_ordinary_addresses() {
        let e = EmailAddress::parse("  Ada.Lovelace+dc@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "ada.lovelace+dc@example.com");
        assert_eq!(e.domain(), "example.com");
    }

    #[test]
    fn refuses_what_cannot_be_an_address() {
        for bad in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@exa mple.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-example.com",
            "a@example..com",
            "a@example.com\n",
        ] {
            if bad.trim() == bad || bad.trim().is_empty() {
                assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
            }
        }
        assert_eq!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(250))), Err(EmailError::TooLong));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_output_reparses(s in ".{0,300}") {
            if let Ok(e) = EmailAddress::parse(&s) {
                prop_assert_eq!(EmailAddress::parse(e.as_str()).unwrap(), e);
            }
        }
    }
}
