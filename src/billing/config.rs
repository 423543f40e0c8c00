//! The `[billing]` configuration section: Stripe keys, webhook secrets, the API base, the grace period and
//! plan overrides. Parsed and validated here so `config.rs` only names the section.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config_error::ConfigError;
use crate::plans::{default_plans, Catalog, Plan, SELF_HOSTED, TRIAL};

/// Stripe's API.
pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";

/// Validated billing settings.
#[derive(Clone)]
pub struct BillingConfig {
    /// The Stripe secret key (`sk_...`); `None`: billing is off and every client gets self-hosted limits.
    pub stripe_secret_key: Option<SecretString>,
    /// Webhook signing secrets (`whsec_...`); several during a rotation, any one may sign.
    pub webhook_secrets: Vec<SecretString>,
    /// Stripe's API base URL (a local stand-in in tests).
    pub stripe_api_base: Url,
    /// How long a client whose payment failed keeps its agents running.
    pub grace_period: Duration,
    /// How often the grace deadlines are checked.
    pub enforcement_interval: Duration,
    /// The plans, built-in ones overridden by configuration.
    pub catalog: Catalog,
}

impl BillingConfig {
    pub fn enabled(&self) -> bool {
        self.stripe_secret_key.is_some()
    }

    /// Turns billing on with these Stripe settings (tests, and embedders that do not use the config file).
    pub fn enable(
        &mut self,
        stripe_secret_key: SecretString,
        webhook_secrets: Vec<SecretString>,
        stripe_api_base: Url,
    ) {
        self.stripe_secret_key = Some(stripe_secret_key);
        self.webhook_secrets = webhook_secrets;
        self.stripe_api_base = stripe_api_base;
        self.catalog = Catalog::new(self.catalog.plans().to_vec(), true);
    }
}

impl fmt::Debug for BillingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BillingConfig")
            .field("stripe_secret_key", &self.stripe_secret_key.as_ref().map(|_| "[redacted]"))
            .field("webhook_secrets", &format!("[{} redacted]", self.webhook_secrets.len()))
            .field("stripe_api_base", &self.stripe_api_base.as_str())
            .field("grace_period", &self.grace_period)
            .field("plans", &self.catalog.plans().iter().map(|p| p.id.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

/// The raw `[billing]` section as layers are merged.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBilling {
    #[serde(skip_serializing)]
    stripe_secret_key: Option<SecretString>,
    #[serde(skip_serializing)]
    webhook_secrets: Vec<SecretString>,
    stripe_api_base: String,
    grace_period_days: u32,
    enforcement_interval_secs: u64,
    /// Plans by id, starting from the built-in ones: a layer may change one field of a plan
    /// (`DEPLOYCLAW_BILLING__PLANS__TEAM__MAX_AGENTS=20`) or add a whole plan.
    plans: BTreeMap<String, Plan>,
}

impl Default for RawBilling {
    fn default() -> Self {
        Self {
            stripe_secret_key: None,
            webhook_secrets: Vec::new(),
            stripe_api_base: DEFAULT_STRIPE_API_BASE.into(),
            grace_period_days: 7,
            enforcement_interval_secs: 300,
            plans: default_plans().into_iter().map(|p| (p.id.clone(), p)).collect(),
        }
    }
}

impl fmt::Debug for RawBilling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawBilling")
            .field("stripe_secret_key", &self.stripe_secret_key.as_ref().map(|_| "[redacted]"))
            .field("webhook_secrets", &self.webhook_secrets.len())
            .field("stripe_api_base", &self.stripe_api_base)
            .finish_non_exhaustive()
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

/// Validates `[billing]`; errors name the key, never a secret's value.
pub fn validate(raw: &RawBilling) -> Result<BillingConfig, ConfigError> {
    let key = raw.stripe_secret_key.as_ref().filter(|k| !k.expose_secret().is_empty());
    if let Some(k) = key {
        let k = k.expose_secret();
        let shaped = (k.starts_with("sk_") || k.starts_with("rk_"))
            && k.len() <= 255
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !shaped {
            return Err(invalid("billing.stripe_secret_key", "must be a Stripe secret key (sk_... or rk_...)"));
        }
    }
    let secrets: Vec<SecretString> =
        raw.webhook_secrets.iter().filter(|s| !s.expose_secret().is_empty()).cloned().collect();
    for s in &secrets {
        let s = s.expose_secret();
        if !s.starts_with("whsec_") || s.len() < 16 || s.len() > 255 {
            return Err(invalid("billing.webhook_secrets", "each secret must be a Stripe signing secret (whsec_...)"));
        }
    }
    if key.is_some() && secrets.is_empty() {
        return Err(invalid(
            "billing.webhook_secrets",
            "billing is on (billing.stripe_secret_key is set) but no webhook signing secret is: Stripe's events \
             could not be verified",
        ));
    }
    let base =
        Url::parse(&raw.stripe_api_base).map_err(|e| invalid("billing.stripe_api_base", format!("not a URL: {e}")))?;
    let loopback = matches!(base.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(base.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        || base.host_str() == Some("localhost");
    if !(base.scheme() == "https" || (base.scheme() == "http" && loopback)) || base.query().is_some() {
        return Err(invalid(
            "billing.stripe_api_base",
            "must be an https:// URL (plain http only on loopback, for a local stand-in)",
        ));
    }
    if !(1..=60).contains(&raw.grace_period_days) {
        return Err(invalid("billing.grace_period_days", "must be between 1 and 60 days"));
    }
    if !(5..=86_400).contains(&raw.enforcement_interval_secs) {
        return Err(invalid("billing.enforcement_interval_secs", "must be between 5 and 86400 seconds"));
    }
    let mut plans = default_plans();
    for (id, plan) in &raw.plans {
        let plan = Plan { id: id.clone(), ..plan.clone() };
        plan.validate().map_err(|m| invalid("billing.plans", m))?;
        match plans.iter_mut().find(|p| p.id == *id) {
            Some(existing) => *existing = plan,
            None => plans.push(plan),
        }
    }
    for required in [TRIAL, SELF_HOSTED] {
        if plans.iter().any(|p| p.id == required && p.purchasable()) {
            return Err(invalid("billing.plans", format!("plan {required} cannot be sold (no stripe_price_id)")));
        }
    }
    let mut prices: Vec<&str> = plans.iter().filter_map(|p| p.stripe_price_id.as_deref()).collect();
    prices.sort_unstable();
    if prices.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("billing.plans", "two plans have the same stripe_price_id"));
    }
    Ok(BillingConfig {
        stripe_secret_key: key.cloned(),
        webhook_secrets: secrets,
        stripe_api_base: base,
        grace_period: Duration::from_secs(u64::from(raw.grace_period_days) * 86_400),
        enforcement_interval: Duration::from_secs(raw.enforcement_interval_secs),
        catalog: Catalog::new(plans, key.is_some()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_billing_off_with_the_built_in_plans() {
        let c = validate(&RawBilling::default()).unwrap();
        assert!(!c.enabled());
        assert_eq!(c.grace_period, Duration::from_secs(7 * 86_400));
        assert_eq!(c.stripe_api_base.as_str(), "https://api.stripe.com/");
        assert!(c.catalog.get("team").is_some());
    }

    #[test]
    fn secrets_are_checked_and_never_shown() {
        let key = format!("sk_test_{}", uuid::Uuid::now_v7().simple());
        let raw = RawBilling { stripe_secret_key: Some(key.clone().into()), ..RawBilling::default() };
        let err = validate(&raw).unwrap_err().to_string();
        assert!(err.contains("billing.webhook_secrets"), "{err}");
        let hook = format!("whsec_test_{}", uuid::Uuid::now_v7().simple());
        let raw = RawBilling { webhook_secrets: vec![hook.clone().into()], ..raw };
        let c = validate(&raw).unwrap();
        assert!(c.enabled() && c.catalog.billing_enabled());
        let shown = format!("{c:?} {raw:?}");
        assert!(!shown.contains(&key) && !shown.contains(&hook), "{shown}");
        let raw = RawBilling { stripe_secret_key: Some("pk_live_public".to_string().into()), ..raw };
        let err = validate(&raw).unwrap_err().to_string();
        assert!(err.contains("billing.stripe_secret_key") && !err.contains("pk_live_public"), "{err}");
    }

    #[test]
    fn the_api_base_is_https_or_loopback() {
        for (base, ok) in
            [("http://127.0.0.1:9999", true), ("https://stripe.internal", true), ("http://stripe.example", false)]
        {
            let raw = RawBilling { stripe_api_base: base.into(), ..RawBilling::default() };
            assert_eq!(validate(&raw).is_ok(), ok, "{base}");
        }
    }
}
