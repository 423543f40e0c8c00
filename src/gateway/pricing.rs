//! What a model call costs: the operator's price table (`[gateway.prices]`), in integer micro-dollars per
//! million tokens, and the cost of a call's token usage, always rounded up.
//!
//! A model that is not in the table is refused by the LLM gateway: it never forwards a call it could not
//! account for against the agent's daily cap.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::gateway::permissions::usd_to_micro;

/// The most one price may be, per million tokens (USD).
pub const MAX_USD_PER_MILLION_TOKENS: u64 = 10_000;
/// Longest model name in the table.
pub const MAX_MODEL_CHARS: usize = 128;

/// A model's prices per million tokens, in micro-dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrice {
    pub input_micro_usd_per_mtok: u64,
    pub output_micro_usd_per_mtok: u64,
}

/// Tokens one call used, as the provider reported them (or as estimated when it did not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Prompt tokens, including cached and cache-creation tokens (charged at the input price).
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl ModelPrice {
    /// Parses `"2.50"` style USD amounts per million tokens.
    pub fn parse(input: &str, output: &str) -> Result<Self, String> {
        Ok(Self { input_micro_usd_per_mtok: usd_per_mtok(input)?, output_micro_usd_per_mtok: usd_per_mtok(output)? })
    }

    /// What `usage` costs in micro-dollars, rounded up (a call is never free by rounding).
    pub fn cost(&self, usage: Usage) -> u64 {
        let total = u128::from(usage.input_tokens) * u128::from(self.input_micro_usd_per_mtok)
            + u128::from(usage.output_tokens) * u128::from(self.output_micro_usd_per_mtok);
        let micro = total.div_ceil(1_000_000);
        u64::try_from(micro).unwrap_or(u64::MAX)
    }
}

fn usd_per_mtok(s: &str) -> Result<u64, String> {
    let micro = usd_to_micro(s).map_err(|e| e.0)?;
    if micro > MAX_USD_PER_MILLION_TOKENS * 1_000_000 {
        return Err(format!("{s:?} is more than {MAX_USD_PER_MILLION_TOKENS} USD per million tokens"));
    }
    Ok(micro)
}

/// Model name -> price. A name matches its own entry, or the longest entry it extends after a `-`
/// (`gpt-4o-2024-08-06` is priced as `gpt-4o` unless it has its own line; `gpt-4o-mini` has its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceTable(BTreeMap<String, ModelPrice>);

impl PriceTable {
    pub fn new(entries: BTreeMap<String, ModelPrice>) -> Result<Self, String> {
        for name in entries.keys() {
            let ok = !name.is_empty()
                && name.chars().count() <= MAX_MODEL_CHARS
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '/'));
            if !ok {
                return Err(format!("{name:?} is not a model name (letters, digits, - . _ : /, at most 128)"));
            }
        }
        Ok(Self(entries))
    }

    /// Published list prices (USD per million tokens, input / output) of common models, as of 2026-11.
    /// Operators should review them: `[gateway.prices]` replaces this table entirely.
    pub fn defaults() -> Self {
        let rows: &[(&str, &str, &str)] = &[
            ("gpt-4o", "2.50", "10.00"),
            ("gpt-4o-mini", "0.15", "0.60"),
            ("gpt-4.1", "2.00", "8.00"),
            ("gpt-4.1-mini", "0.40", "1.60"),
            ("claude-sonnet-4", "3.00", "15.00"),
            ("claude-opus-4", "15.00", "75.00"),
            ("claude-3-5-haiku", "0.80", "4.00"),
        ];
        let entries = rows
            .iter()
            .map(|(name, i, o)| (name.to_string(), ModelPrice::parse(i, o).expect("the default prices parse")))
            .collect();
        Self::new(entries).expect("the default model names are valid")
    }

    /// The price for `model`, if the table knows it.
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        if let Some(p) = self.0.get(model) {
            return Some(*p);
        }
        self.0
            .iter()
            .filter(|(name, _)| {
                model.len() > name.len() && model.starts_with(name.as_str()) && model.as_bytes()[name.len()] == b'-'
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in / {} out", self.input_tokens, self.output_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(&str, &str, &str)]) -> PriceTable {
        PriceTable::new(rows.iter().map(|(n, i, o)| (n.to_string(), ModelPrice::parse(i, o).unwrap())).collect())
            .unwrap()
    }

    #[test]
    fn costs_are_exact_in_micro_dollars_and_round_up() {
        let p = ModelPrice::parse("2.50", "10.00").unwrap();
        assert_eq!(p.input_micro_usd_per_mtok, 2_500_000);
        // 1,000 in + 500 out = 0.0025 + 0.005 USD = 7,500 micro-dollars.
        assert_eq!(p.cost(Usage { input_tokens: 1000, output_tokens: 500 }), 7_500);
        // One token at 0.15 USD/M is 0.15 micro-dollars: charged as 1.
        let cheap = ModelPrice::parse("0.15", "0.60").unwrap();
        assert_eq!(cheap.cost(Usage { input_tokens: 1, output_tokens: 0 }), 1);
        assert_eq!(cheap.cost(Usage::default()), 0);
        // Huge counts saturate instead of wrapping.
        let huge = Usage { input_tokens: u64::MAX, output_tokens: u64::MAX };
        assert_eq!(p.cost(huge), u64::MAX);
    }

    #[test]
    fn bad_prices_are_refused() {
        for bad in ["", "-1", "1e3", "abc", "0.0000001", "10001"] {
            assert!(ModelPrice::parse(bad, "1").is_err(), "{bad:?}");
        }
        assert!(PriceTable::new([("has space".to_string(), ModelPrice::parse("1", "1").unwrap())].into()).is_err());
    }

    #[test]
    fn dated_snapshots_take_the_longest_matching_entry() {
        let t = table(&[("gpt-4o", "2.50", "10"), ("gpt-4o-mini", "0.15", "0.60"), ("claude-sonnet-4", "3", "15")]);
        assert_eq!(t.price("gpt-4o").unwrap().input_micro_usd_per_mtok, 2_500_000);
        assert_eq!(t.price("gpt-4o-2024-08-06").unwrap().input_micro_usd_per_mtok, 2_500_000);
        assert_eq!(t.price("gpt-4o-mini-2024-07-18").unwrap().input_micro_usd_per_mtok, 150_000);
        assert_eq!(t.price("claude-sonnet-4-20250514").unwrap().output_micro_usd_per_mtok, 15_000_000);
        assert!(t.price("gpt-4").is_none());
        assert!(t.price("gpt-4ox").is_none(), "a prefix counts only up to a '-'");
        assert!(t.price("").is_none());
    }

    #[test]
    fn the_default_table_parses() {
        assert!(PriceTable::defaults().len() >= 5);
    }
}
