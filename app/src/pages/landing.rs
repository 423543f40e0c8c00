use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::Brand;
use crate::security::PRIMITIVES;

/// One claim of the landing page. Each names the section of /security (a primitive) that shows how it is done,
/// with the code behind it; the page shows that section's status next to the claim, so a claim can never look
/// more finished than /security says it is. Tests: `pages::landing_claims_point_at_security_sections_and_show_their_status`
/// and `pages::the_landing_page_names_exactly_the_keys_the_gateway_keeps_from_agents`.
pub struct Pillar {
    pub title: &'static str,
    pub body: &'static str,
    /// The id of a primitive in `security/references.toml` (its section on /security), or `threats` (the
    /// threat model).
    pub primitive: &'static str,
}

pub const PILLARS: &[Pillar] = &[
    Pillar {
        title: "Isolated by default",
        body: "Every agent runs in its own container on its own network: non-root, read-only filesystem, all capabilities dropped, memory and CPU limits from your plan and a fixed process limit.",
        primitive: "isolation",
    },
    Pillar {
        title: "Model keys you never hand to the agent",
        body: "Every credential is sealed with AES-256-GCM under a key derived for your account alone. Your model provider keys (openai_api_key, anthropic_api_key) stay with the gateway, which adds them to each model call: the agent never holds them. Other credentials, such as OAuth tokens, are given to the agent when it starts.",
        primitive: "credentials",
    },
    Pillar {
        title: "Permissions the platform enforces",
        body: "Outbound traffic leaves only through our egress gateway, which checks each agent's domain allowlist, its rate limits per scope and its daily spend cap. A prompt-injected agent cannot talk its way past them.",
        primitive: "egress",
    },
    Pillar {
        title: "An audit trail nobody can quietly edit",
        body: "Every agent connection and model call, sign-in, credential use and operator access is appended to a hash-chained log you can watch live and verify yourself.",
        primitive: "audit",
    },
    Pillar {
        title: "No passwords to phish",
        body: "Sign in with a one-time code sent to your email, then your authenticator app. Two factors, always, for every account. Deploys and key changes ask for a fresh second factor.",
        primitive: "auth",
    },
    Pillar {
        title: "Honest about the gaps",
        body: "We publish each threat, its blast radius, our mitigation and whether it is handled, partial or a gap, with links to the code that implements it.",
        primitive: "threats",
    },
];

const STEPS: &[(&str, &str)] = &[
    ("Sign in", "Email code, then your authenticator. Nothing else to remember."),
    ("Add your keys", "Store provider keys for an agent. You see names, never values."),
    ("Set its limits", "Choose what the agent may reach, how often, and what it may spend per day."),
    (
        "Deploy and watch",
        "The agent starts in its own hardened container; its every action streams into your audit log.",
    ),
];

/// The public landing page: what DeployClaw is, for a visitor deciding whether to trust it.
#[component]
pub fn LandingPage() -> impl IntoView {
    view! {
        <Title text="Secure hosting for OpenClaw agents" />
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="site-header">
            <Brand />
            <nav aria-label="Site">
                <a href="#how-it-works">"How it works"</a>
                <a href="/security">"Security"</a>
                <a href="/dashboard" rel="external" class="button small">"Open dashboard"</a>
            </nav>
        </header>
        <main id="main" class="landing">
            <section class="hero" aria-labelledby="hero-title">
                <p class="eyebrow">"Managed OpenClaw, security first"</p>
                <h1 id="hero-title">"Deploy AI agents you can actually trust with your keys."</h1>
                <p class="lead">
                    "DeployClaw runs your OpenClaw agents in isolated, locked-down containers. Your provider keys stay in an encrypted vault, every outbound call passes a gateway that enforces the limits you set, and everything your agents do lands in an audit trail you can verify."
                </p>
                <div class="cta-row">
                    <a href="/dashboard" rel="external" class="button">"Open the dashboard"</a>
                    <a href="#how-it-works" class="button secondary">"See how it works"</a>
                </div>
            </section>

            <section class="pillars" aria-labelledby="pillars-title">
                <h2 id="pillars-title">"What you get"</h2>
                <ul class="card-grid">
                    {PILLARS
                        .iter()
                        .map(|p| {
                            view! {
                                <li class="card">
                                    <h3>{p.title}</h3>
                                    <p>{p.body}</p>
                                    <PillarEvidence primitive=p.primitive title=p.title />
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </section>

            <section id="how-it-works" class="steps" aria-labelledby="steps-title">
                <h2 id="steps-title">"How it works"</h2>
                <ol class="step-list">
                    {STEPS
                        .iter()
                        .map(|(title, body)| {
                            view! {
                                <li>
                                    <h3>{*title}</h3>
                                    <p>{*body}</p>
                                </li>
                            }
                        })
                        .collect_view()}
                </ol>
            </section>
        </main>
        <footer class="site-footer">
            <p>
                "DeployClaw · self-hostable · built in Rust · " <a href="/security">"Security and threat model"</a>
            </p>
        </footer>
    }
}

/// "How" link to the claim's section of /security, with that section's status badge.
#[component]
fn PillarEvidence(primitive: &'static str, title: &'static str) -> impl IntoView {
    let status = PRIMITIVES.iter().find(|p| p.id == primitive).map(|p| p.status);
    view! {
        <p class="pillar-evidence">
            <a href=format!("/security#{primitive}") aria-label=format!("{title}: how, with the code")>
                "How, with the code"
            </a>
            {status.map(|s| view! { " " <span class=s.class()>{s.label()}</span> })}
        </p>
    }
}
