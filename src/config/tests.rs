//! The configuration's loading, layering and validation, key by key.

use super::*;

use figment::Jail;

/// Loads with exactly `pairs` as the environment's configuration variables. `Jail` serialises tests
/// that touch the process environment and restores it afterwards.
#[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
fn load_file(file: ConfigFile, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut result = None;
    Jail::expect_with(|jail| {
        for (k, _) in std::env::vars() {
            if k.starts_with(ENV_PREFIX) || k == "DATABASE_URL" {
                std::env::remove_var(&k);
            }
        }
        for (k, v) in pairs {
            jail.set_env(k, v);
        }
        result = Some(Config::load(file.clone()));
        Ok(())
    });
    result.expect("jail ran")
}

fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load_file(ConfigFile::None, pairs)
}

#[test]
fn defaults_are_the_embedded_sqlite_platform_on_loopback() {
    let c = load(&[]).unwrap();
    assert_eq!(c.mode, Mode::Embedded);
    assert_eq!(c.server.addr, "127.0.0.1:3000".parse().unwrap());
    assert_eq!(c.server.public_url.as_str(), "http://127.0.0.1:3000/");
    assert!(matches!(&c.database.target, DatabaseTarget::Sqlite { path } if path == Path::new("data/deployclaw.db")));
    assert!(!c.server.is_tls());
}

#[test]
fn file_then_env_layers_override_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[server]\naddr = \"127.0.0.1:4000\"\nshutdown_grace_secs = 5\n[log]\nformat = \"json\"\n")
        .unwrap();
    let c = load_file(
        ConfigFile::Path(file),
        &[("DEPLOYCLAW_SERVER__ADDR", "127.0.0.1:5000"), ("DEPLOYCLAW_TEST_POSTGRES_URL", "ignored")],
    )
    .unwrap();
    assert_eq!(c.server.addr.port(), 5000, "env wins over file");
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(5), "file wins over defaults");
    assert_eq!(c.log.format, LogFormat::Json);
    assert!(c.sources.iter().any(|s| s.contains("DEPLOYCLAW_SERVER__ADDR")));
}

#[test]
fn bad_values_name_their_key() {
    let err = load(&[("DEPLOYCLAW_SERVER__ADDR", "not-an-address")]).unwrap_err().to_string();
    assert!(err.contains("server.addr"), "{err}");
    let err = load(&[("DEPLOYCLAW_DATABASE__MAX_CONNECTIONS", "lots")]).unwrap_err().to_string();
    assert!(err.contains("database.max_connections"), "{err}");
    let err = load(&[("DEPLOYCLAW_LOG__FORMAT", "xml")]).unwrap_err().to_string();
    assert!(err.contains("log.format"), "{err}");
    let err = load(&[("DEPLOYCLAW_SERVER__PUBLIC_URL", "ftp://example.com")]).unwrap_err().to_string();
    assert!(err.contains("server.public_url"), "{err}");
}

#[test]
fn mail_defaults_to_an_outbox_under_the_data_dir_and_checks_its_keys() {
    let c = load(&[("DEPLOYCLAW_DATA_DIR", "/srv/dc")]).unwrap();
    assert!(
        matches!(&c.mail.transport, crate::mail::MailTransport::Outbox { dir } if dir == Path::new("/srv/dc/outbox"))
    );
    let err = load(&[("DEPLOYCLAW_MAIL__FROM", "nobody")]).unwrap_err().to_string();
    assert!(err.contains("mail.from"), "{err}");
    let err = load(&[("DEPLOYCLAW_MAIL__SMTP_URL", "http://mail")]).unwrap_err().to_string();
    assert!(err.contains("mail.smtp_url"), "{err}");
}

#[test]
fn unknown_keys_are_rejected_so_typos_do_not_pass_silently() {
    let err = load(&[("DEPLOYCLAW_SERVER__ADRR", "127.0.0.1:1")]).unwrap_err().to_string();
    assert!(err.contains("adrr"), "{err}");
}

#[test]
fn bad_file_names_the_file() {
    let err = load_file(ConfigFile::Path("/nonexistent/deployclaw.toml".into()), &[]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/deployclaw.toml"));
}

#[test]
fn database_url_selects_postgres_and_is_never_printed() {
    let c = load(&[("DATABASE_URL", "postgres://app:s3cr3tpw@db.example:5432/deployclaw")]).unwrap();
    assert_eq!(c.database.target.backend_name(), "postgres");
    let shown = format!("{c:?}\n{}", c.summary());
    assert!(!shown.contains("s3cr3tpw"), "password leaked: {shown}");
    assert!(shown.contains("db.example:5432/deployclaw"));
}

#[test]
fn unsupported_database_schemes_are_refused_without_echoing_the_url() {
    let err = load(&[("DATABASE_URL", "mysql://root:pw123456@x/y")]).unwrap_err().to_string();
    assert!(err.contains("database.url") && err.contains("mysql"), "{err}");
    assert!(!err.contains("pw123456"));
    let err = load(&[("DATABASE_URL", "sqlite::memory:")]).unwrap_err().to_string();
    assert!(err.contains("database.url"), "{err}");
}

#[test]
fn production_mode_refuses_plain_http_and_implicit_sqlite() {
    let err = load(&[("DEPLOYCLAW_MODE", "production")]).unwrap_err().to_string();
    assert!(err.contains("server.public_url"), "{err}");
    let err = load(&[
        ("DEPLOYCLAW_MODE", "production"),
        ("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example"),
        ("DEPLOYCLAW_SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("database.url"), "{err}");
    let err = load(&[
        ("DEPLOYCLAW_MODE", "production"),
        ("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example"),
        ("DEPLOYCLAW_SERVER__TRUSTED_PROXIES", "127.0.0.1"),
        ("DATABASE_URL", "postgres://u@db/x"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("mail.smtp_url"), "{err}");
    let ok = load(&[
        ("DEPLOYCLAW_MODE", "production"),
        ("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example"),
        ("DEPLOYCLAW_SERVER__TRUSTED_PROXIES", "127.0.0.1"),
        ("DATABASE_URL", "postgres://u@db/x"),
        ("DEPLOYCLAW_MAIL__SMTP_URL", "smtps://mailer:M41lPass@smtp.example:465"),
    ])
    .unwrap();
    assert!(!format!("{ok:?}\n{}", ok.summary()).contains("M41lPass"), "SMTP password never shown");
    assert!(ok.server.is_tls());
    assert_eq!(ok.server.public_origin(), "https://deployclaw.example");
}

#[test]
fn production_behind_https_needs_built_in_tls_or_a_trusted_proxy_and_says_both() {
    let production = [
        ("DEPLOYCLAW_MODE", "production"),
        ("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example"),
        ("DATABASE_URL", "postgres://u@db/x"),
        ("DEPLOYCLAW_MAIL__SMTP_URL", "smtps://mailer@smtp.example:465"),
    ];
    let err = load(&production).unwrap_err().to_string();
    for setting in ["server.trusted_proxies", "server.tls_cert_file", "server.tls_key_file"] {
        assert!(err.contains(setting), "the refusal names {setting}: {err}");
    }
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = production.to_vec();
        pairs.extend_from_slice(extra);
        load(&pairs)
    };
    let tls = with(&[
        ("DEPLOYCLAW_SERVER__TLS_CERT_FILE", "/etc/deployclaw/cert.pem"),
        ("DEPLOYCLAW_SERVER__TLS_KEY_FILE", "/etc/deployclaw/key.pem"),
    ])
    .unwrap();
    let files = tls.server.tls.expect("built-in TLS");
    assert_eq!(
        (files.cert.to_str(), files.key.to_str()),
        (Some("/etc/deployclaw/cert.pem"), Some("/etc/deployclaw/key.pem"))
    );
    assert!(tls.server.trusted_proxies.is_empty());
    // Half a TLS setting is refused, naming the missing half.
    let err = with(&[("DEPLOYCLAW_SERVER__TLS_CERT_FILE", "/etc/deployclaw/cert.pem")]).unwrap_err().to_string();
    assert!(err.contains("server.tls_key_file"), "{err}");
    // A proxy list from the environment is one comma-separated string.
    let proxied = with(&[("DEPLOYCLAW_SERVER__TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::/32,192.0.2.7")]).unwrap();
    let blocks: Vec<String> = proxied.server.trusted_proxies.blocks().iter().map(|b| b.to_string()).collect();
    assert_eq!(blocks, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]);
    assert!(proxied.server.trusted_proxies.trusts("::ffff:10.9.9.9".parse().unwrap()));
    for (bad, why) in [("10.0.0.1/8", "network address"), ("0.0.0.0/0", "every address"), ("proxy.internal", "CIDR")] {
        let err = with(&[("DEPLOYCLAW_SERVER__TRUSTED_PROXIES", bad)]).unwrap_err().to_string();
        assert!(err.contains("server.trusted_proxies") && err.contains(why), "{bad}: {err}");
    }
    let err = with(&[
        ("DEPLOYCLAW_SERVER__TRUSTED_PROXIES", "127.0.0.1"),
        ("DEPLOYCLAW_SERVER__CLIENT_ADDRESS_HEADER", "x-real-ip"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.client_address_header"), "{err}");
}

#[test]
fn built_in_tls_makes_the_default_public_url_https_and_refuses_an_http_one() {
    let c =
        load(&[("DEPLOYCLAW_SERVER__TLS_CERT_FILE", "c.pem"), ("DEPLOYCLAW_SERVER__TLS_KEY_FILE", "k.pem")]).unwrap();
    assert_eq!(c.server.public_url.as_str(), "https://127.0.0.1:3000/");
    let err = load(&[
        ("DEPLOYCLAW_SERVER__TLS_CERT_FILE", "c.pem"),
        ("DEPLOYCLAW_SERVER__TLS_KEY_FILE", "k.pem"),
        ("DEPLOYCLAW_SERVER__PUBLIC_URL", "http://127.0.0.1:3000"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.public_url") && err.contains("https"), "{err}");
}

#[test]
fn the_documented_example_file_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deployclaw.example.toml");
    let c = load_file(ConfigFile::Path(example), &[]).expect("deployclaw.example.toml loads");
    assert_eq!(c.server.addr.port(), 3000);
    assert!(c.sources.iter().any(|s| s.contains("deployclaw.example.toml")));
}

#[test]
fn plain_http_is_only_for_loopback_and_the_code_ttl_is_capped() {
    for url in ["http://localhost:3000", "http://127.0.0.1:3000", "http://[::1]:3000"] {
        let c = load(&[("DEPLOYCLAW_SERVER__PUBLIC_URL", url)]).unwrap();
        assert!(!c.server.secure_cookies(), "{url}");
    }
    let err = load(&[("DEPLOYCLAW_SERVER__PUBLIC_URL", "http://deployclaw.example")]).unwrap_err().to_string();
    assert!(err.contains("server.public_url") && err.contains("loopback"), "{err}");
    let err = load(&[("DEPLOYCLAW_SERVER__ADDR", "192.0.2.10:3000")]).unwrap_err().to_string();
    assert!(err.contains("server.public_url"), "{err}");
    let c = load(&[("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example")]).unwrap();
    assert!(c.server.secure_cookies());

    assert_eq!(load(&[]).unwrap().auth.code_ttl, Duration::from_secs(600));
    assert_eq!(load(&[("DEPLOYCLAW_AUTH__CODE_TTL_MINUTES", "15")]).unwrap().auth.code_ttl.as_secs(), 900);
    for bad in ["0", "16"] {
        let err = load(&[("DEPLOYCLAW_AUTH__CODE_TTL_MINUTES", bad)]).unwrap_err().to_string();
        assert!(err.contains("auth.code_ttl_minutes"), "{err}");
    }
}

#[test]
fn the_agent_network_pool_is_a_private_block() {
    let c = load(&[]).unwrap();
    assert_eq!(c.runtime.network_pool.blocks, 4096);
    let c = load(&[("DEPLOYCLAW_RUNTIME__NETWORK_POOL", "172.20.0.0/20")]).unwrap();
    assert_eq!(c.runtime.network_pool.blocks, 256);
    for bad in ["8.8.0.0/16", "10.0.0.0/30", "10.1.2.3/16", "nonsense"] {
        let err = load(&[("DEPLOYCLAW_RUNTIME__NETWORK_POOL", bad)]).unwrap_err().to_string();
        assert!(err.contains("runtime.network_pool"), "{bad}: {err}");
    }
    let err = load(&[("DEPLOYCLAW_RUNTIME__DOCKER_HOST", "tcp://10.0.0.1:2375")]).unwrap_err().to_string();
    assert!(err.contains("runtime.docker_host"), "{err}");
}

#[test]
fn siem_destinations_are_public_only_unless_switched_on() {
    assert!(!load(&[]).unwrap().siem.allow_private_destinations);
    let c = load(&[("DEPLOYCLAW_SIEM__ALLOW_PRIVATE_DESTINATIONS", "true")]).unwrap();
    assert!(c.siem.allow_private_destinations);
    let err = load(&[("DEPLOYCLAW_SIEM__ALLOW_PRIVATE_DESTINATIONS", "maybe")]).unwrap_err().to_string();
    assert!(err.contains("siem.allow_private_destinations"), "{err}");
}

#[test]
fn production_refuses_the_switches_that_open_the_platforms_own_network() {
    let production = [
        ("DEPLOYCLAW_MODE", "production"),
        ("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example"),
        ("DEPLOYCLAW_SERVER__TRUSTED_PROXIES", "127.0.0.1"),
        ("DATABASE_URL", "postgres://u@db/x"),
        ("DEPLOYCLAW_MAIL__SMTP_URL", "smtps://smtp.example:465"),
    ];
    assert!(load(&production).is_ok());
    for (key, value, named) in [
        ("DEPLOYCLAW_GATEWAY__TEST_UPSTREAMS", r#"["127.0.0.1:9000"]"#, "gateway.test_upstreams"),
        ("DEPLOYCLAW_SIEM__ALLOW_PRIVATE_DESTINATIONS", "true", "siem.allow_private_destinations"),
    ] {
        let mut env = production.to_vec();
        env.push((key, value));
        let err = load(&env).unwrap_err().to_string();
        assert!(err.contains(named), "{key}: {err}");
        // Embedded mode (tests, a trial on one machine) keeps them.
        assert!(load(&[(key, value)]).is_ok(), "{key} in embedded mode");
    }
}

#[test]
fn gateway_test_upstreams_are_exact_addresses_and_empty_by_default() {
    let c = load(&[]).unwrap();
    assert!(c.gateway.test_upstreams.is_empty());
    let c = load(&[("DEPLOYCLAW_GATEWAY__TEST_UPSTREAMS", "[\"127.0.0.1:4000\"]")]).unwrap();
    assert_eq!(c.gateway.test_upstreams, vec!["127.0.0.1:4000".parse().unwrap()]);
    for bad in ["[\"127.0.0.0/8\"]", "[\"127.0.0.1\"]", "[\"127.0.0.1:0\"]", "[\"0.0.0.0:80\"]", "[\"localhost:80\"]"] {
        let err = load(&[("DEPLOYCLAW_GATEWAY__TEST_UPSTREAMS", bad)]).unwrap_err().to_string();
        assert!(err.contains("gateway.test_upstreams"), "{bad}: {err}");
    }
    let err = load(&[("DEPLOYCLAW_GATEWAY__IDLE_TIMEOUT_SECS", "1")]).unwrap_err().to_string();
    assert!(err.contains("gateway.idle_timeout_secs"), "{err}");
}

#[test]
fn operators_add_templates_from_the_file_and_bad_ones_name_the_key() {
    let c = load(&[]).unwrap();
    assert_eq!(c.runtime.templates.all().len(), 2, "the built-in templates");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    let template = "[[runtime.templates]]\nid = \"my-agent\"\nname = \"My agent\"\n\
                    image = \"registry.example.com/team/agent:1.2\"\ncommand = [\"/app/agent\"]\nport = 8080\n\
                    health_path = \"/healthz\"\nstate_dir = \"/data\"\nmemory_mib = 512\nmin_memory_mib = 256\n\
                    user = \"1000:1000\"\n";
    std::fs::write(&file, template).unwrap();
    let c = load_file(ConfigFile::Path(file.clone()), &[]).unwrap();
    let t = c.runtime.templates.get("my-agent").expect("the operator's template");
    assert_eq!((t.image.as_str(), t.port), ("registry.example.com/team/agent:1.2", 8080));
    std::fs::write(&file, template.replace("1000:1000", "0:0")).unwrap();
    let err = load_file(ConfigFile::Path(file), &[]).unwrap_err().to_string();
    assert!(err.contains("runtime.templates") && err.contains("uid:gid"), "{err}");
}

#[test]
fn provider_urls_are_https_or_loopback_and_prices_come_from_the_file() {
    let c = load(&[]).unwrap();
    assert_eq!(c.gateway.openai_base_url.as_str(), "https://api.openai.com/");
    assert_eq!(c.gateway.anthropic_base_url.as_str(), "https://api.anthropic.com/");
    assert!(c.gateway.prices.price("gpt-4o").is_some(), "a built-in price table");
    let c = load(&[("DEPLOYCLAW_GATEWAY__OPENAI_BASE_URL", "http://127.0.0.1:4010")]).unwrap();
    assert_eq!(c.gateway.openai_base_url.port(), Some(4010));
    for bad in [
        "http://api.openai.com",
        "ftp://127.0.0.1",
        "https://user:pw@api.example.com",
        "https://x.example/?k=1",
        "nope",
    ] {
        let err = load(&[("DEPLOYCLAW_GATEWAY__OPENAI_BASE_URL", bad)]).unwrap_err().to_string();
        assert!(err.contains("gateway.openai_base_url"), "{bad}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[gateway.prices]\n\"my-model\" = { input = \"1.25\", output = \"5\" }\n").unwrap();
    let c = load_file(ConfigFile::Path(file.clone()), &[]).unwrap();
    assert_eq!(c.gateway.prices.len(), 1, "the file's table replaces the built-in one");
    assert_eq!(c.gateway.prices.price("my-model").unwrap().input_micro_usd_per_mtok, 1_250_000);
    std::fs::write(&file, "[gateway.prices]\n\"my-model\" = { input = \"-1\", output = \"5\" }\n").unwrap();
    let err = load_file(ConfigFile::Path(file), &[]).unwrap_err().to_string();
    assert!(err.contains("gateway.prices") && err.contains("my-model"), "{err}");
}

#[test]
fn audit_retention_and_checkpoint_intervals_are_bounded() {
    let c = load(&[]).unwrap();
    assert_eq!(c.audit.retention_days, 90);
    assert_eq!(c.audit.checkpoint_interval, Duration::from_secs(300));
    assert_eq!(c.audit.retention_interval, Duration::from_secs(86_400));
    let c =
        load(&[("DEPLOYCLAW_AUDIT__RETENTION_DAYS", "30"), ("DEPLOYCLAW_AUDIT__MAX_RETENTION_DAYS", "365")]).unwrap();
    assert_eq!((c.audit.retention_days, c.audit.max_retention_days), (30, 365));
    for (key, bad) in [
        ("DEPLOYCLAW_AUDIT__RETENTION_DAYS", "0"),
        ("DEPLOYCLAW_AUDIT__RETENTION_DAYS", "3651"),
        ("DEPLOYCLAW_AUDIT__MAX_RETENTION_DAYS", "0"),
        ("DEPLOYCLAW_AUDIT__CHECKPOINT_INTERVAL_SECS", "1"),
        ("DEPLOYCLAW_AUDIT__RETENTION_INTERVAL_SECS", "5"),
    ] {
        let err = load(&[(key, bad)]).unwrap_err().to_string();
        let name = key.trim_start_matches("DEPLOYCLAW_").replace("__", ".").to_ascii_lowercase();
        assert!(err.contains(&name), "{key}={bad}: {err}");
    }
    let err = load(&[("DEPLOYCLAW_AUDIT__MAX_RETENTION_DAYS", "30")]).unwrap_err().to_string();
    assert!(err.contains("audit.retention_days"), "a default above the maximum is refused: {err}");
}

#[test]
fn wildcard_bind_gets_a_loopback_public_url_by_default() {
    let c = load(&[("DEPLOYCLAW_SERVER__ADDR", "0.0.0.0:8080")]).unwrap();
    assert_eq!(c.server.public_url.as_str(), "http://127.0.0.1:8080/");
}

#[test]
fn the_security_contact_defaults_to_the_public_host_and_must_be_a_uri() {
    assert_eq!(load(&[]).unwrap().security.contact, "mailto:security@127.0.0.1");
    let c = load(&[("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example.com")]).unwrap();
    assert_eq!(c.security.contact, "mailto:security@deployclaw.example.com");
    let c = load(&[("DEPLOYCLAW_SECURITY__CONTACT", "https://example.com/report")]).unwrap();
    assert_eq!(c.security.contact, "https://example.com/report");
    for bad in ["security@example.com", "ftp://example.com/x", "javascript:alert(1)"] {
        let err = load(&[("DEPLOYCLAW_SECURITY__CONTACT", bad)]).unwrap_err().to_string();
        assert!(err.contains("security.contact"), "{bad}: {err}");
    }
}

// Billing's settings, through the whole loader (environment layers included).
#[test]
#[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
fn one_field_of_a_built_in_plan_can_be_overridden() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("DEPLOYCLAW_BILLING__PLANS__TEAM__MAX_AGENTS", "20");
        jail.set_env("DEPLOYCLAW_BILLING__PLANS__TEAM__STRIPE_PRICE_ID", "price_mine");
        let c = Config::load(ConfigFile::None).expect("loads");
        let team = c.billing.catalog.get("team").unwrap();
        assert_eq!((team.max_agents, team.memory_mib_per_agent), (20, 4096));
        assert_eq!(team.stripe_price_id.as_deref(), Some("price_mine"));
        jail.set_env("DEPLOYCLAW_BILLING__PLANS__TEAM__MEMORY_MIB_PER_AGENT", "512");
        let err = Config::load(ConfigFile::None).unwrap_err().to_string();
        assert!(err.contains("billing.plans") && err.contains("memory_mib_per_agent"), "{err}");
        Ok(())
    });
}
