//! The authorization table: every server function x {anonymous, member, owner, another client's owner,
//! platform admin}, called over HTTP the way the browser calls it. A new server function that is not in the
//! table fails `every_server_function_is_in_the_table`.

use std::collections::BTreeSet;

use deployclaw::db::users::Role;

use crate::support::{Browser, TestApp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Member,
    Owner,
    OtherOwner,
    PlatformAdmin,
}

use Who::*;

/// Run order: the owner last, so calls that change things (revoke, role change) see the others fail first.
const ACTORS: [Who; 5] = [Anonymous, Member, OtherOwner, PlatformAdmin, Owner];

struct World {
    app: TestApp,
    member: Browser,
    owner: Browser,
    other_owner: Browser,
    admin: Browser,
    /// A second session of the owner's, for revoke.
    owner_other_session: String,
    /// An agent of the owner's client, with credential `openai_key`.
    agent: String,
    /// A second agent of the owner's client, for delete.
    spare_agent: String,
    /// A SIEM destination of the owner's client.
    siem_destination: String,
}

impl World {
    async fn new() -> Self {
        let app = TestApp::spawn().await;
        let owner_user = app.user(None, "owner@acme.example", Role::Owner).await;
        let member_user = app.user(Some(owner_user.client_id), "member@acme.example", Role::Member).await;
        let other_user = app.user(None, "owner@globex.example", Role::Owner).await;
        let admin_user = deployclaw::identity::team::create_platform_admin(
            app.platform.db_for_tests(),
            &deployclaw::email::EmailAddress::parse("ops@deployclaw.example").unwrap(),
        )
        .await
        .unwrap();
        let fresh = chrono::Duration::seconds(5);
        let owner = app.sign_in_as(&owner_user, fresh).await;
        let second = app.sign_in_as(&owner_user, fresh).await;
        let handles = app.platform.sessions().list_for_user(owner_user.client_id, owner_user.id, None).await.unwrap();
        let second_id: tower_sessions::session::Id = second.cookie.split_once('=').unwrap().1.parse().unwrap();
        let second_handle = app.platform.sessions().handle_of(&second_id).await.unwrap().unwrap();
        assert!(handles.iter().any(|h| h.handle == second_handle));
        let ctx = deployclaw::context::RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: None };
        let actor = deployclaw::audit::Actor::User(owner_user.id);
        let agents = app.platform.agents();
        let name = |n: &str| deployclaw::db::agents::AgentName::parse(n).unwrap();
        let agent = agents.configure(actor, owner_user.client_id, name("bot"), "test-agent", &ctx).await.unwrap();
        let spare = agents.configure(actor, owner_user.client_id, name("spare"), "openclaw", &ctx).await.unwrap();
        let owner_call = |endpoint: &'static str, args: Vec<(&'static str, String)>| {
            let (app, cookie) = (&app, owner.cookie.clone());
            async move {
                let pairs: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let res = app.call(endpoint, Some(&cookie), &pairs).await;
                assert_eq!(res.status(), 200, "{endpoint}: {}", res.text().await.unwrap());
            }
        };
        owner_call(
            "set_credential",
            vec![("agent_id", agent.id.to_string()), ("name", "openai_key".into()), ("value", "sk-test-1".into())],
        )
        .await;
        let siem_destination = deployclaw::audit::siem::create(
            app.platform.db_for_tests(),
            owner_user.client_id,
            deployclaw::audit::siem::NewDestination {
                name: "Company SIEM".into(),
                kind: deployclaw::audit::siem::Kind::HttpsJson,
                endpoint: deployclaw::audit::siem::Endpoint::parse_url("https://siem.example.com/in").unwrap(),
                ca_pem: None,
                start: deployclaw::audit::siem::StartAt::Now,
            },
        )
        .await
        .unwrap()
        .id
        .to_string();
        Self {
            siem_destination,
            agent: agent.id.to_string(),
            spare_agent: spare.id.to_string(),
            member: app.sign_in_as(&member_user, fresh).await,
            other_owner: app.sign_in_as(&other_user, fresh).await,
            admin: app.sign_in_as(&admin_user, fresh).await,
            owner,
            owner_other_session: second_handle.0.to_string(),
            app,
        }
    }

    /// What `who` must never read in an answer: the ids, names and addresses of a client not theirs. (Operators
    /// are not checked: reading every client is their console's job.)
    fn not_theirs(&self, who: Who) -> Vec<String> {
        let acme = || {
            vec![
                self.owner.user.client_id.to_string(),
                self.owner.user.id.to_string(),
                self.owner.user.email.to_string(),
                self.member.user.id.to_string(),
                self.member.user.email.to_string(),
                self.agent.clone(),
                self.spare_agent.clone(),
                self.siem_destination.clone(),
                self.owner_other_session.clone(),
            ]
        };
        let globex = || {
            vec![
                self.other_owner.user.client_id.to_string(),
                self.other_owner.user.id.to_string(),
                self.other_owner.user.email.to_string(),
            ]
        };
        match who {
            Anonymous => acme().into_iter().chain(globex()).collect(),
            Member | Owner => globex(),
            OtherOwner => acme(),
            PlatformAdmin => Vec::new(),
        }
    }

    fn browser(&self, who: Who) -> Option<&Browser> {
        match who {
            Anonymous => None,
            Member => Some(&self.member),
            Owner => Some(&self.owner),
            OtherOwner => Some(&self.other_owner),
            PlatformAdmin => Some(&self.admin),
        }
    }
}

/// One row: a server function, its arguments for an actor, and the status each actor must get.
struct Row {
    endpoint: &'static str,
    args: fn(&World, Who) -> Vec<(String, String)>,
    expect: fn(Who) -> u16,
}

fn none(_: &World, _: Who) -> Vec<(String, String)> {
    Vec::new()
}

fn signed_in_ok(who: Who) -> u16 {
    if who == Anonymous {
        401
    } else {
        200
    }
}

/// The operator console: platform admins only; everyone else, anonymous included, is told it does not exist.
fn operators_only(who: Who) -> u16 {
    if who == PlatformAdmin {
        200
    } else {
        404
    }
}

fn table() -> Vec<Row> {
    vec![
        // Re-confirming the second factor: signed-in users only (a wrong code here).
        // First: the wrong email codes below lock 127.0.0.1 out of every factor for 15 minutes.
        Row {
            endpoint: "verify_totp",
            args: |_, _| vec![("code".into(), "000000".into())],
            expect: |who| if who == Anonymous { 401 } else { 400 },
        },
        // Public steps of signing in: the same answer for everyone.
        Row {
            endpoint: "request_sign_in_code",
            args: |_, who| vec![("email".into(), format!("{who:?}@new.example").to_lowercase())],
            expect: |_| 200,
        },
        Row {
            endpoint: "verify_sign_in_code",
            args: |_, _| vec![("email".into(), "nobody@new.example".into()), ("code".into(), "123456".into())],
            expect: |_| 400,
        },
        // Steps bound to a pending sign-in: no signed-in or anonymous session is at those stages.
        Row { endpoint: "complete_sign_up", args: |_, _| vec![("client_name".into(), "X".into())], expect: |_| 401 },
        Row { endpoint: "begin_totp_enrollment", args: none, expect: |_| 401 },
        Row {
            endpoint: "confirm_totp_enrollment",
            args: |_, _| vec![("code".into(), "123456".into())],
            expect: |_| 401,
        },
        Row {
            endpoint: "use_recovery_code",
            args: |_, _| vec![("code".into(), "AAAAA-AAAAA".into())],
            expect: |_| 401,
        },
        // The public security page's data: everyone.
        Row { endpoint: "security_facts", args: none, expect: |_| 200 },
        Row { endpoint: "me", args: none, expect: signed_in_ok },
        Row { endpoint: "platform_status", args: none, expect: signed_in_ok },
        Row { endpoint: "list_sessions", args: none, expect: signed_in_ok },
        Row { endpoint: "list_team", args: none, expect: signed_in_ok },
        Row { endpoint: "list_agents", args: none, expect: signed_in_ok },
        Row { endpoint: "list_templates", args: none, expect: signed_in_ok },
        Row {
            endpoint: "agent_detail",
            args: |w, _| vec![("agent_id".into(), w.agent.clone())],
            expect: |who| match who {
                Anonymous => 401,
                Member | Owner => 200,
                OtherOwner | PlatformAdmin => 404,
            },
        },
        Row {
            endpoint: "list_credentials",
            args: |w, _| vec![("agent_id".into(), w.agent.clone())],
            expect: |who| match who {
                Anonymous => 401,
                Member | Owner => 200,
                OtherOwner | PlatformAdmin => 404,
            },
        },
        Row {
            endpoint: "create_agent",
            args: |_, who| {
                vec![("name".into(), format!("bot-{who:?}").to_lowercase()), ("template".into(), "openclaw".into())]
            },
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                Owner | OtherOwner => 200,
            },
        },
        Row {
            endpoint: "set_credential",
            args: |w, _| {
                vec![
                    ("agent_id".into(), w.agent.clone()),
                    ("name".into(), "openai_key".into()),
                    ("value".into(), "sk-test-2".into()),
                ]
            },
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        Row {
            endpoint: "delete_credential",
            args: |w, _| vec![("agent_id".into(), w.agent.clone()), ("name".into(), "openai_key".into())],
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        Row {
            endpoint: "deploy_agent",
            args: |w, _| vec![("agent_id".into(), w.agent.clone())],
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        Row {
            endpoint: "restart_agent",
            args: |w, _| vec![("agent_id".into(), w.agent.clone())],
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        Row {
            endpoint: "update_agent_settings",
            args: |w, _| {
                vec![
                    ("agent_id".into(), w.agent.clone()),
                    ("memory_mib".into(), String::new()),
                    ("cpu_millis".into(), "500".into()),
                    ("environment".into(), "LOG_LEVEL=debug".into()),
                ]
            },
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        Row {
            endpoint: "update_agent_permissions",
            args: |w, _| {
                vec![
                    ("agent_id".into(), w.agent.clone()),
                    ("scopes".into(), "api:outbound".into()),
                    ("rate_limits".into(), String::new()),
                    ("allowed_domains".into(), "api.example.com".into()),
                    ("max_daily_token_spend_usd".into(), "1.00".into()),
                ]
            },
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        Row {
            endpoint: "stop_agent",
            args: |w, _| vec![("agent_id".into(), w.agent.clone())],
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        Row {
            endpoint: "delete_agent",
            args: |w, _| vec![("agent_id".into(), w.spare_agent.clone())],
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        // Before the role change below makes the member an admin.
        Row { endpoint: "audit_settings", args: none, expect: signed_in_ok },
        // Billing: everyone reads; only an owner goes to Stripe (here billing is off, so an owner gets 400).
        Row { endpoint: "billing_overview", args: none, expect: signed_in_ok },
        Row {
            endpoint: "start_checkout",
            args: |_, _| vec![("plan".into(), "team".into())],
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                Owner | OtherOwner => 400,
            },
        },
        Row {
            endpoint: "open_billing_portal",
            args: none,
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                Owner | OtherOwner => 400,
            },
        },
        Row {
            endpoint: "set_audit_retention",
            args: |_, _| vec![("days".into(), "30".into())],
            // Another client's owner sets their own client's retention (checked below).
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                Owner | OtherOwner => 200,
            },
        },
        Row {
            endpoint: "add_siem_destination",
            args: |_, who| {
                vec![
                    ("name".into(), format!("siem-{who:?}").to_lowercase()),
                    ("kind".into(), "https_json".into()),
                    ("url".into(), "https://siem.example.com/in".into()),
                    ("start".into(), "now".into()),
                ]
            },
            // Another client's owner adds one to their own client (checked below).
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                Owner | OtherOwner => 200,
            },
        },
        Row {
            endpoint: "set_siem_destination_enabled",
            args: |w, _| {
                vec![("destination_id".into(), w.siem_destination.clone()), ("enabled".into(), "false".into())]
            },
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        Row {
            endpoint: "delete_siem_destination",
            args: |w, _| vec![("destination_id".into(), w.siem_destination.clone())],
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        Row {
            endpoint: "revoke_session",
            args: |w, _| vec![("handle".into(), w.owner_other_session.clone())],
            expect: |who| match who {
                Anonymous => 401,
                Owner => 200,
                _ => 404,
            },
        },
        Row {
            endpoint: "invite_member",
            args: |_, who| {
                vec![
                    ("email".into(), format!("invitee-{who:?}@acme.example").to_lowercase()),
                    ("role".into(), "member".into()),
                ]
            },
            // Another client's owner may invite - into their own client only (checked below).
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                Owner | OtherOwner => 200,
            },
        },
        Row {
            endpoint: "change_member_role",
            args: |w, _| vec![("user_id".into(), w.member.user.id.to_string()), ("role".into(), "admin".into())],
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        Row { endpoint: "admin_list_clients", args: none, expect: operators_only },
        Row { endpoint: "admin_health", args: none, expect: operators_only },
        Row {
            endpoint: "admin_client",
            args: |w, _| vec![("client_id".into(), w.other_owner.user.client_id.to_string())],
            expect: operators_only,
        },
        Row {
            endpoint: "admin_rebuild_agent",
            args: |w, _| {
                vec![("client_id".into(), w.owner.user.client_id.to_string()), ("agent_id".into(), w.agent.clone())]
            },
            // The agent was stopped by an earlier row: the operator is told its next start is a fresh container.
            expect: |who| if who == PlatformAdmin { 400 } else { 404 },
        },
        // After every other row: it signs the member out.
        Row {
            endpoint: "reset_member_two_factor",
            args: |w, _| vec![("user_id".into(), w.member.user.id.to_string())],
            expect: |who| match who {
                Anonymous => 401,
                Member | PlatformAdmin => 403,
                OtherOwner => 404,
                Owner => 200,
            },
        },
        // Near the end: suspending the other client ends its owner's session (lifted right after).
        Row {
            endpoint: "admin_suspend_client",
            args: |w, _| {
                vec![
                    ("client_id".into(), w.other_owner.user.client_id.to_string()),
                    ("reason".into(), "authorization table".into()),
                ]
            },
            expect: operators_only,
        },
        Row {
            endpoint: "admin_unsuspend_client",
            args: |w, _| vec![("client_id".into(), w.other_owner.user.client_id.to_string())],
            expect: operators_only,
        },
        Row { endpoint: "sign_out", args: none, expect: |_| 200 },
        Row { endpoint: "sign_out_everywhere", args: none, expect: signed_in_ok },
    ]
}

#[tokio::test]
async fn every_server_function_is_in_the_table() {
    let registered: BTreeSet<String> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path.trim_start_matches("/api/fn/").to_string())
        .collect();
    let covered: BTreeSet<String> = table().iter().map(|r| r.endpoint.to_string()).collect();
    assert_eq!(registered, covered, "the authorization table must list exactly the registered server functions");
}

#[tokio::test]
async fn each_server_function_admits_exactly_who_it_should() {
    let world = World::new().await;
    let mut failures = Vec::new();
    for row in table() {
        for who in ACTORS {
            // Signing out ends the session: give those calls a session of their own.
            let own;
            let cookie = match (row.endpoint, world.browser(who)) {
                ("sign_out" | "sign_out_everywhere", Some(b)) => {
                    own = world.app.sign_in_as(&b.user, chrono::Duration::seconds(5)).await;
                    Some(own.cookie.as_str())
                }
                (_, b) => b.map(|b| b.cookie.as_str()),
            };
            let args = (row.args)(&world, who);
            let pairs: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let res = world.app.call(row.endpoint, cookie, &pairs).await;
            let status = res.status().as_u16();
            let want = (row.expect)(who);
            let body = res.text().await.unwrap_or_default();
            if status != want {
                failures.push(format!("{} as {who:?}: got {status}, want {want}: {body}", row.endpoint));
            }
            // Bodies too: an answer never carries another client's ids, names or addresses.
            if let Some(leak) = world.not_theirs(who).into_iter().find(|s| body.contains(s.as_str())) {
                failures.push(format!("{} as {who:?}: the answer ({status}) names {leak}: {body}", row.endpoint));
            }
        }
    }
    assert!(failures.is_empty(), "authorization table mismatches:\n{}", failures.join("\n"));

    // Every refusal of a signed-in caller - another client's record (404) or a role that does not allow it
    // (403) - is in the caller's own trail as `access.denied`, naming what was asked for; none in anyone else's.
    let db = world.app.platform.db_for_tests();
    let mut per_client: std::collections::BTreeMap<String, usize> = Default::default();
    for who in [OtherOwner, Member, PlatformAdmin, Owner] {
        let browser = world.browser(who).unwrap();
        let mut want: Vec<String> = table()
            .iter()
            .filter(|row| matches!((row.expect)(who), 403 | 404))
            // Calls made once the caller's session had ended (the member's by the reset of their second factor,
            // the other owner's by the suspension) are refusals of nobody signed in.
            .filter(|row| match who {
                Member => !matches!(row.endpoint, "admin_suspend_client" | "admin_unsuspend_client"),
                OtherOwner => row.endpoint != "admin_unsuspend_client",
                _ => true,
            })
            .map(|row| format!("/api/fn/{}", row.endpoint))
            .collect();
        *per_client.entry(browser.user.client_id.to_string()).or_default() += want.len();
        let events = deployclaw::audit::recent(db, browser.user.client_id, None, 500).await.unwrap();
        let mut got: Vec<String> = events
            .iter()
            .filter(|e| e.action_type == "access.denied" && e.actor_id == Some(browser.user.id.as_uuid()))
            .map(|e| {
                let reason = e.metadata.0["reason"].as_str().unwrap_or_default().to_string();
                assert!(matches!(reason.as_str(), "not_found" | "forbidden"), "{who:?}: {reason}");
                e.target.clone().unwrap_or_default()
            })
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{who:?}: one access.denied per refused call, in their own client's trail");
    }
    for (client, want) in per_client {
        let events = deployclaw::audit::recent(db, client.parse().unwrap(), None, 500).await.unwrap();
        let denials = events.iter().filter(|e| e.action_type == "access.denied").count();
        assert_eq!(denials, want, "client {client}: no refusal of anyone else's lands in this trail");
    }

    // What the allowed calls did stayed inside each caller's own client.
    let acme = deployclaw::db::users::list(db, world.owner.user.client_id).await.unwrap();
    let globex = deployclaw::db::users::list(db, world.other_owner.user.client_id).await.unwrap();
    assert!(acme.iter().any(|u| u.email.as_str() == "invitee-owner@acme.example"));
    assert!(globex.iter().any(|u| u.email.as_str() == "invitee-otherowner@acme.example"));
    assert!(!acme.iter().any(|u| u.email.as_str() == "invitee-member@acme.example"));
    let member = acme.iter().find(|u| u.id == world.member.user.id).unwrap();
    assert_eq!(member.role, Role::Admin, "only the owner's role change happened");
    let agents = deployclaw::db::agents::list(db, world.owner.user.client_id).await.unwrap();
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["bot", "bot-owner"],
        "the spare agent was deleted by the owner only; only the owner created one here"
    );
    let globex_agents = deployclaw::db::agents::list(db, world.other_owner.user.client_id).await.unwrap();
    assert_eq!(globex_agents.len(), 1, "the other owner created an agent in their own client");
    let acme_siem: Vec<String> = deployclaw::audit::siem::list(db, world.owner.user.client_id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(acme_siem, ["siem-owner"], "the owner deleted the first and added one; nobody else added any");
    let globex_siem = deployclaw::audit::siem::list(db, world.other_owner.user.client_id).await.unwrap();
    assert_eq!(globex_siem.len(), 1, "the other owner added a destination to their own client");
    let policy = (&world.app.platform.config().audit).into();
    for (client, want) in [
        (world.owner.user.client_id, Some(30)),
        (world.other_owner.user.client_id, Some(30)),
        (world.admin.user.client_id, None),
    ] {
        let setting = deployclaw::audit::settings::retention(db, &policy, client).await.unwrap();
        assert_eq!(setting.client_days, want, "retention of {client}");
    }
    // The owner's deploy really ran a container; remove it with its network and volume.
    let bot = agents.iter().find(|a| a.name == "bot").unwrap();
    assert!(bot.container_id.is_some(), "deployed by the owner");
    let ctx = deployclaw::context::RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: None };
    world.app.platform.agents().remove(deployclaw::audit::Actor::Platform, bot.client_id, bot.id, &ctx).await.unwrap();
    world.app.stop().await;
}

#[tokio::test]
async fn sensitive_changes_need_a_second_factor_from_the_last_15_minutes() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let stale = app.sign_in_as(&owner, chrono::Duration::minutes(16)).await;
    let res =
        app.call("invite_member", Some(&stale.cookie), &[("email", "new@acme.example"), ("role", "member")]).await;
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!("TwoFactorRequired"), "{body}");
    let fresh = app.sign_in_as(&owner, chrono::Duration::minutes(14)).await;
    let res =
        app.call("invite_member", Some(&fresh.cookie), &[("email", "new@acme.example"), ("role", "member")]).await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}
