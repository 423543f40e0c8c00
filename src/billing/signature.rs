//! Stripe webhook signatures, verified here over the raw body (no SDK).
//!
//! Stripe signs `"{t}.{payload}"` with HMAC-SHA256 under the endpoint's signing secret and sends
//! `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]` (several `v1` while Stripe rolls the secret;
//! other schemes such as `v0` are ignored). We accept an event when any `v1` matches any configured secret
//! (several during our own rotation), compared in constant time, and its `t` is within
//! [`TOLERANCE_SECS`] of our clock either way: an old signature cannot be replayed after five minutes, and the
//! event id store ([`super::store`]) refuses a replay within them.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header Stripe signs deliveries with.
pub const HEADER: &str = "stripe-signature";
/// How far a signature's timestamp may be from our clock, in seconds (five minutes, as Stripe's libraries).
pub const TOLERANCE_SECS: i64 = 300;
/// The longest header we parse; real ones are under 300 bytes.
const MAX_HEADER_BYTES: usize = 4096;
/// The most `v1` signatures we compare in one header.
const MAX_SIGNATURES: usize = 8;

/// Why a delivery was refused. The messages are safe to return to the sender: they hold no secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header")]
    Malformed,
    #[error("no signature matches")]
    NoMatch,
    #[error("signature timestamp outside the tolerance")]
    OutsideTolerance,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], t: i64, payload: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(payload);
    m.finalize().into_bytes().into()
}

/// Parses `t=...,v1=...`: exactly one `t`, at least one well-formed `v1`.
fn parse(header: &str) -> Result<(i64, Vec<[u8; 32]>), SignatureError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::Malformed);
    }
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match k {
            "t" => {
                let digits = !v.is_empty() && v.len() <= 12 && v.bytes().all(|b| b.is_ascii_digit());
                if t.is_some() || !digits {
                    return Err(SignatureError::Malformed);
                }
                t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
            }
            "v1" => {
                let mut sig = [0u8; 32];
                hex::decode_to_slice(v, &mut sig).map_err(|_| SignatureError::Malformed)?;
                if v1.len() == MAX_SIGNATURES {
                    return Err(SignatureError::Malformed);
                }
                v1.push(sig);
            }
            _ => {}
        }
    }
    match (t, v1.is_empty()) {
        (Some(t), false) => Ok((t, v1)),
        _ => Err(SignatureError::Malformed),
    }
}

/// Verifies a delivery: `header` is the `Stripe-Signature` value, `payload` the raw body, `now` our clock in
/// unix seconds. Returns the signed timestamp.
pub fn verify(header: Option<&str>, payload: &[u8], secrets: &[SecretString], now: i64) -> Result<i64, SignatureError> {
    let (t, signatures) = parse(header.ok_or(SignatureError::Missing)?)?;
    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets {
        let expected = mac(secret.expose_secret().as_bytes(), t, payload);
        for sig in &signatures {
            matched |= expected.ct_eq(sig);
        }
    }
    if !bool::from(matched) {
        return Err(SignatureError::NoMatch);
    }
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(SignatureError::OutsideTolerance);
    }
    Ok(t)
}

/// The `Stripe-Signature` value Stripe would send for `payload` at `t` under `secret` (the local Stripe
/// stand-in and tests sign with it).
pub fn header_for(secret: &str, t: i64, payload: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret.as_bytes(), t, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret() -> String {
        format!("whsec_test_{}", uuid::Uuid::now_v7().simple())
    }

    #[test]
    fn a_signature_verifies_only_with_its_secret_time_and_body() {
        let s = secret();
        let body = br#"{"id":"evt_1"}"#;
        let now = 1_800_000_000;
        let h = header_for(&s, now, body);
        let secrets = [SecretString::from(s.clone())];
        assert_eq!(verify(Some(&h), body, &secrets, now + 10), Ok(now));
        assert_eq!(verify(Some(&h), b"{\"id\":\"evt_2\"}", &secrets, now), Err(SignatureError::NoMatch));
        assert_eq!(verify(Some(&h), body, &[SecretString::from(secret())], now), Err(SignatureError::NoMatch));
        assert_eq!(verify(Some(&h), body, &secrets, now + 301), Err(SignatureError::OutsideTolerance));
        assert_eq!(verify(Some(&h), body, &secrets, now - 301), Err(SignatureError::OutsideTolerance));
        assert_eq!(verify(None, body, &secrets, now), Err(SignatureError::Missing));
    }

    #[test]
    fn the_tolerance_is_exactly_five_minutes_either_way() {
        let s = secret();
        let secrets = [SecretString::from(s.clone())];
        let body = b"{}";
        let signed = 1_800_000_000;
        let h = header_for(&s, signed, body);
        // `now` is our clock at delivery, injected: the boundary is tested to the second.
        for now in [signed - TOLERANCE_SECS, signed, signed + TOLERANCE_SECS] {
            assert_eq!(verify(Some(&h), body, &secrets, now), Ok(signed), "at {}", now - signed);
        }
        for now in [signed - TOLERANCE_SECS - 1, signed + TOLERANCE_SECS + 1, signed + 3600, signed - 3600] {
            assert_eq!(
                verify(Some(&h), body, &secrets, now),
                Err(SignatureError::OutsideTolerance),
                "at {}",
                now - signed
            );
        }
    }

    #[test]
    fn any_v1_under_any_configured_secret_verifies() {
        let (old, new) = (secret(), secret());
        let body = b"{}";
        let t = 1_800_000_000;
        let stale = header_for(&secret(), t, body);
        let good = header_for(&new, t, body);
        let both = format!("{stale},v0=abc,{}", good.split(',').nth(1).unwrap());
        let secrets = [SecretString::from(old), SecretString::from(new)];
        assert_eq!(verify(Some(&both), body, &secrets, t), Ok(t));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let s = [SecretString::from(secret())];
        let sig = "v1=".to_string() + &"ab".repeat(32);
        for bad in ["", "t=", "t=abc,v1=00", "v1=00", "t=1", &format!("t=1,t=2,{sig}"), "t=1,v1=zz", "garbage"] {
            assert_eq!(verify(Some(bad), b"{}", &s, 1), Err(SignatureError::Malformed), "{bad:?}");
        }
        let many = format!("t=1,{}", [sig.as_str(); 9].join(","));
        assert_eq!(verify(Some(&many), b"{}", &s, 1), Err(SignatureError::Malformed));
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic_and_never_verify(header in ".{0,300}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let s = [SecretString::from("whsec_test_proptest_only".to_string())];
            prop_assert!(verify(Some(&header), &body, &s, 1_800_000_000).is_err());
        }
    }
}
