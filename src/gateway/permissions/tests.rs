//! Permissions: parsing, normalising, matching and the limits of each field.

use super::*;
use proptest::prelude::*;

fn host(s: &str) -> HostName {
    HostName::parse(s).unwrap()
}

#[test]
fn host_names_are_normalised() {
    assert_eq!(host("  API.Example.COM. ").as_str(), "api.example.com");
    assert_eq!(host("bücher.example").as_str(), "xn--bcher-kva.example");
    assert_eq!(host("xn--bcher-kva.example").as_str(), "xn--bcher-kva.example");
    assert_eq!(host("a-b.c1.io").as_str(), "a-b.c1.io");
}

#[test]
fn ip_literals_ports_paths_and_junk_are_refused() {
    for bad in [
        "",
        "127.0.0.1",
        "[::1]",
        "::1",
        "169.254.169.254",
        "127.1",
        "0x7f000001",
        "2130706433",
        "1.2.3.4.5",
        "example.com:443",
        "example.com/path",
        "https://example.com",
        "user@example.com",
        "localhost",
        "com",
        "exa mple.com",
        "-a.example.com",
        "a_b.example.com",
        "a..example.com",
    ] {
        assert!(HostName::parse(bad).is_err(), "{bad:?} accepted");
        assert!(DomainPattern::parse(bad).is_err(), "{bad:?} accepted as a pattern");
    }
    let long = format!("{}.com", "a.".repeat(126));
    assert!(long.len() > 253);
    assert!(HostName::parse(&long).is_err());
}

#[test]
fn wildcards_need_a_real_domain_and_match_only_below_it() {
    for bad in ["*", "*.", "*.com", "*.*.example.com", "a.*.example.com", "*example.com", "**.example.com"] {
        assert!(DomainPattern::parse(bad).is_err(), "{bad:?} accepted");
    }
    let p = DomainPattern::parse("*.Example.com.").unwrap();
    assert_eq!(p.to_string(), "*.example.com");
    assert!(p.matches(&host("api.example.com")));
    assert!(p.matches(&host("a.b.example.com")));
    assert!(!p.matches(&host("example.com")), "the wildcard does not cover the base name");
    assert!(!p.matches(&host("badexample.com")));
    assert!(!p.matches(&host("example.com.evil.io")));
    let exact = DomainPattern::parse("api.example.com").unwrap();
    assert!(exact.matches(&host("API.example.com.")));
    assert!(!exact.matches(&host("x.api.example.com")));
}

#[test]
fn usd_amounts_parse_into_micro_dollars() {
    assert_eq!(MicroUsd::parse_usd("12.5").unwrap().micro(), 12_500_000);
    assert_eq!(MicroUsd::parse_usd("$0.000001").unwrap().micro(), 1);
    assert_eq!(MicroUsd::parse_usd("7").unwrap().micro(), 7_000_000);
    assert_eq!(MicroUsd::parse_usd(".5").unwrap().micro(), 500_000);
    assert_eq!(MicroUsd::parse_usd("12.5").unwrap().to_string(), "12.50");
    assert_eq!(MicroUsd::parse_usd("0.125").unwrap().to_string(), "0.125");
    for bad in ["", ".", "-1", "1e3", "1.0000001", "abc", "1,5", "100001"] {
        assert!(MicroUsd::parse_usd(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn rate_limits_are_validated() {
    assert!(RateLimit::new(10, 100).is_ok());
    assert!(RateLimit::new(10, 10).is_ok());
    assert!(RateLimit::new(10, 9).is_err(), "per day below per hour");
    assert!(RateLimit::new(0, 10).is_err());
    assert!(RateLimit::new(1, MAX_PER_DAY + 1).is_err());
}

#[test]
fn a_document_is_parsed_stored_and_read_back() {
    let input = PermissionsInput {
        scopes: vec!["api:outbound".into(), "email:read".into()],
        rate_limits: BTreeMap::from([("api:outbound".into(), RateLimit { max_per_hour: 5, max_per_day: 50 })]),
        allowed_domains: vec!["API.openai.com".into(), "*.example.com".into(), " ".into()],
        max_daily_token_spend_usd: "2.50".into(),
    };
    let p = Permissions::parse(&input).unwrap();
    assert!(p.has(Scope::ApiOutbound) && !p.has(Scope::EmailSend));
    assert_eq!(p.rate_limit(Scope::ApiOutbound), RateLimit { max_per_hour: 5, max_per_day: 50 });
    assert_eq!(p.rate_limit(Scope::EmailRead), RateLimit::DEFAULT);
    assert!(p.allows_host(&host("api.openai.com")) && p.allows_host(&host("x.example.com")));
    assert!(!p.allows_host(&host("example.org")));
    let stored = p.to_stored();
    assert_eq!(stored["max_daily_token_spend_micro_usd"], 2_500_000);
    assert_eq!(Permissions::from_stored(&stored), p);
    assert_eq!(Permissions::parse(&p.to_input()).unwrap(), p);
}

#[test]
fn bad_documents_name_the_field_and_unreadable_stored_ones_deny_all() {
    let err = |i: PermissionsInput| Permissions::parse(&i).unwrap_err().0;
    assert!(err(PermissionsInput { scopes: vec!["root".into()], ..Default::default() }).starts_with("scopes:"));
    assert!(err(PermissionsInput { allowed_domains: vec!["10.0.0.1".into()], ..Default::default() })
        .starts_with("allowed domains:"));
    assert!(err(PermissionsInput {
        rate_limits: BTreeMap::from([("api:outbound".into(), RateLimit { max_per_hour: 1, max_per_day: 1 })]),
        ..Default::default()
    })
    .contains("not a granted scope"));
    assert!(err(PermissionsInput { max_daily_token_spend_usd: "lots".into(), ..Default::default() })
        .starts_with("max daily token spend:"));
    assert_eq!(Permissions::from_stored(&serde_json::json!({})), Permissions::deny_all());
    assert_eq!(Permissions::from_stored(&serde_json::json!({"scopes": ["sudo"]})), Permissions::deny_all());
    assert_eq!(
        Permissions::from_stored(&serde_json::json!({"allowed_domains": ["*"], "scopes": ["api:outbound"]})),
        Permissions::deny_all()
    );
}

#[test]
fn the_dashboard_form_is_read_leniently_and_checked_strictly() {
    let input = PermissionsInput::from_form(
        "api:outbound, email:read",
        "api:outbound 10 100\n\n",
        "api.example.com\n*.example.org, x.io",
        " 3.5 ",
    )
    .unwrap();
    let p = Permissions::parse(&input).unwrap();
    assert_eq!(p.scopes.len(), 2);
    assert_eq!(p.allowed_domains.len(), 3);
    assert_eq!(p.rate_limit(Scope::ApiOutbound), RateLimit { max_per_hour: 10, max_per_day: 100 });
    assert_eq!(p.max_daily_token_spend_micro_usd.micro(), 3_500_000);
    assert!(PermissionsInput::from_form("", "api:outbound 10", "", "").unwrap_err().0.contains("line 1"));
    assert!(PermissionsInput::from_form("", "api:outbound ten 100", "", "").is_err());
}

#[test]
fn changes_are_reported_by_name() {
    let before = Permissions::parse(&PermissionsInput {
        scopes: vec!["api:outbound".into()],
        allowed_domains: vec!["a.example.com".into()],
        ..Default::default()
    })
    .unwrap();
    let after = Permissions::parse(&PermissionsInput {
        scopes: vec!["email:read".into(), "api:outbound".into()],
        rate_limits: BTreeMap::from([("api:outbound".into(), RateLimit { max_per_hour: 1, max_per_day: 2 })]),
        allowed_domains: vec!["b.example.com".into()],
        max_daily_token_spend_usd: "1".into(),
    })
    .unwrap();
    let c = after.changes_from(&before);
    assert_eq!(c.scopes_added, vec!["email:read"]);
    assert!(c.scopes_removed.is_empty());
    assert_eq!(c.domains_added, vec!["b.example.com"]);
    assert_eq!(c.domains_removed, vec!["a.example.com"]);
    assert_eq!(c.rate_limits_changed, vec!["api:outbound"]);
    assert!(c.spend_cap_changed);
    assert!(after.changes_from(&after).is_empty());
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
}

fn name() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..4), "[a-z][a-z0-9]{1,5}").prop_map(|(ls, tld)| {
        let mut s = ls.join(".");
        s.push('.');
        s.push_str(&tld);
        s
    })
}

proptest! {
    #[test]
    fn parsing_never_panics_and_is_idempotent(s in "\\PC{0,80}") {
        if let Ok(h) = HostName::parse(&s) {
            prop_assert_eq!(HostName::parse(h.as_str()).unwrap(), h.clone());
            prop_assert!(h.as_str().len() <= MAX_DOMAIN_CHARS);
            prop_assert!(h.as_str().parse::<IpAddr>().is_err());
        }
        if let Ok(p) = DomainPattern::parse(&s) {
            prop_assert_eq!(DomainPattern::parse(&p.to_string()).unwrap(), p);
        }
    }

    #[test]
    fn case_and_trailing_dots_do_not_matter(n in name()) {
        let upper = format!(" {}. ", n.to_ascii_uppercase());
        prop_assert_eq!(HostName::parse(&upper).unwrap(), HostName::parse(&n).unwrap());
    }

    #[test]
    fn a_wildcard_matches_exactly_the_names_below_it(base in name(), sub in label(), other in name()) {
        let p = DomainPattern::parse(&format!("*.{base}")).unwrap();
        let below = host(&format!("{sub}.{base}"));
        prop_assert!(p.matches(&below));
        prop_assert!(!p.matches(&host(&base)));
        let o = host(&other);
        prop_assert_eq!(p.matches(&o), o.as_str().ends_with(&format!(".{base}")));
        // Glued on without a dot is a different domain.
        let glued = host(&format!("{sub}{base}"));
        prop_assert!(!p.matches(&glued));
    }

    #[test]
    fn ip_literals_are_never_names(a in any::<u32>(), b in any::<u128>()) {
        let v4 = std::net::Ipv4Addr::from(a).to_string();
        let v6 = std::net::Ipv6Addr::from(b).to_string();
        prop_assert!(HostName::parse(&v4).is_err());
        prop_assert!(HostName::parse(&v6).is_err());
        let bracketed = format!("[{}]", v6);
        let wildcard = format!("*.{}", v4);
        prop_assert!(HostName::parse(&bracketed).is_err());
        prop_assert!(DomainPattern::parse(&wildcard).is_err());
    }
}
