use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::Brand;

struct Pillar {
    title: &'static str,
    body: &'static str,
}

const PILLARS: &[Pillar] = &[
    Pillar {
        title: "Isolated by default",
        body: "Every agent runs in its own container on its own network: non-root, read-only filesystem, all capabilities dropped, memory, CPU and process limits from your plan.",
    },
    Pillar {
        title: "Keys you never hand to the agent",
        body: "Provider keys and OAuth tokens are sealed with AES-256-GCM under a key derived for your account alone. The gateway injects them per call; the agent never holds them.",
    },
    Pillar {
        title: "Permissions the platform enforces",
        body: "Outbound traffic leaves only through our egress gateway, which checks each agent's domain allowlist, per-scope rate limits and daily spend cap. A prompt-injected agent cannot talk its way past them.",
    },
    Pillar {
        title: "An audit trail nobody can quietly edit",
        body: "Every agent action, sign-in, credential use and operator access is appended to a hash-chained log you can watch live and verify yourself.",
    },
    Pillar {
        title: "No passwords to phish",
        body: "Sign in with a one-time code sent to your email, then your authenticator app. Two factors, always, for every account. Deploys and key changes ask for a fresh second factor.",
    },
    Pillar {
        title: "Honest about the gaps",
        body: "We publish each threat, its blast radius, our mitigation and whether it is handled, partial or a gap, with links to the code that implements it.",
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
