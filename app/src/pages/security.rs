//! The public security page (`/security`): trust boundaries, each security primitive with its parameters and
//! source references, the threat table, and what we do not do yet. The texts and references come from
//! `security/references.toml` (compiled in, see `crate::security`); the numbers come from the core's
//! constants through [`security_facts`], so neither can drift from the code.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::security::{security_facts, Parameter, SecurityFactsView};
use crate::components::{Brand, ErrorNotice};
use crate::security::{reference, references_of, Primitive, Status, NOT_YET, PRIMITIVES, REFERENCES, THREATS};

/// The trust-boundary diagram: static, accessible SVG (`role="img"`, `<title>`, `<desc>`).
const DIAGRAM: &str = include_str!("security/diagram.svg");

/// The site header shared by the public pages.
#[component]
pub fn PublicHeader() -> impl IntoView {
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="site-header">
            <Brand />
            <nav aria-label="Site">
                <a href="/#how-it-works">"How it works"</a>
                <a href="/security">"Security"</a>
                <a href="/dashboard" rel="external" class="button small">"Open dashboard"</a>
            </nav>
        </header>
    }
}

#[component]
pub fn SecurityPage() -> impl IntoView {
    let facts = Resource::new(|| (), |_| security_facts());
    view! {
        <Title text="Security and threat model" />
        <PublicHeader />
        <main id="main" class="security">
            <Intro />
            <Architecture />
            <section id="primitives" aria-labelledby="primitives-title">
                <h2 id="primitives-title">"Security primitives"</h2>
                <p class="muted">
                    "Each parameter below is read from the constant the code enforces; each source link opens the lines that implement it."
                </p>
                <Suspense fallback=|| view! { <p class="muted">"Loading the parameters…"</p> }>
                    {move || {
                        facts
                            .get()
                            .map(|result| match result {
                                Ok(facts) => view! { <Primitives facts /> }.into_any(),
                                Err(error) => view! { <ErrorNotice error /> }.into_any(),
                            })
                    }}
                </Suspense>
            </section>
            <Threats />
            <NotYetList />
            <SourceIndex />
        </main>
        <footer class="site-footer">
            <p>"DeployClaw · self-hostable · built in Rust · " <a href="/.well-known/security.txt">"security.txt"</a></p>
        </footer>
    }
}

#[component]
fn Intro() -> impl IntoView {
    view! {
        <section class="hero" aria-labelledby="security-title">
            <p class="eyebrow">"Security and threat model"</p>
            <h1 id="security-title">"What protects your agents, and what does not yet."</h1>
            <p class="lead">
                "This page is generated from the code it describes. Every claim links to the lines that implement it, every number is read from the constant the platform enforces, and a test fails the build when a reference stops pointing at its code. Where something is partial or missing, we say so."
            </p>
            <nav aria-label="On this page" class="toc">
                <a href="#architecture">"Trust boundaries"</a>
                <a href="#primitives">"Primitives"</a>
                <a href="#threats">"Threat model"</a>
                <a href="#not-yet">"Not yet"</a>
                <a href="#sources">"Source files"</a>
            </nav>
        </section>
    }
}

#[component]
fn Architecture() -> impl IntoView {
    view! {
        <section id="architecture" aria-labelledby="architecture-title">
            <h2 id="architecture-title">"Trust boundaries"</h2>
            <figure class="diagram">
                <div class="diagram-frame" inner_html=DIAGRAM></div>
                <figcaption class="muted">
                    "Agents are treated as untrusted: each has its own container, network and volume, and its only route out is the egress gateway. The platform server holds the keys; the database holds only ciphertexts and hashes. Stripe is drawn dashed because billing is still being built."
                </figcaption>
            </figure>
        </section>
    }
}

fn status_badge(status: Status) -> impl IntoView {
    view! { <span class=status.class() data-status=status.label()>{status.label()}</span> }
}

#[component]
fn Primitives(facts: SecurityFactsView) -> impl IntoView {
    let SecurityFactsView { contact, parameters } = facts;
    view! {
        <div class="primitive-list">
            {PRIMITIVES
                .iter()
                .map(|p| {
                    let params: Vec<Parameter> = parameters.iter().filter(|x| x.primitive == p.id).cloned().collect();
                    view! { <PrimitiveCard primitive=p params /> }
                })
                .collect_view()}
        </div>
        <Disclosure contact />
    }
}

#[component]
fn PrimitiveCard(primitive: &'static Primitive, params: Vec<Parameter>) -> impl IntoView {
    let references: Vec<_> = references_of(primitive.id).collect();
    let title_id = format!("{}-title", primitive.id);
    let labelled_by = title_id.clone();
    view! {
        <article class="card primitive" id=primitive.id aria-labelledby=labelled_by>
            <div class="card-title-row">
                <h3 id=title_id>{primitive.title}</h3>
                {status_badge(primitive.status)}
            </div>
            <p>{primitive.summary}</p>
            <dl class="params">
                {params
                    .into_iter()
                    .map(|p| {
                        let key = p.label.clone();
                        view! {
                            <div data-param=key>
                                <dt>{p.label}</dt>
                                <dd>{p.value}</dd>
                            </div>
                        }
                    })
                    .collect_view()}
                {primitive
                    .facts
                    .iter()
                    .map(|(k, v)| {
                        view! {
                            <div>
                                <dt>{*k}</dt>
                                <dd>{*v}</dd>
                            </div>
                        }
                    })
                    .collect_view()}
            </dl>
            <h4>"Source"</h4>
            {if references.is_empty() {
                view! { <p class="muted">"No source reference yet: this is not in the release."</p> }.into_any()
            } else {
                view! {
                    <ul class="source-refs">
                        {references
                            .into_iter()
                            .map(|r| {
                                view! {
                                    <li>
                                        <a href=r.href() class="source-link" rel="external">
                                            <code>{r.label()}</code>
                                        </a>
                                        " "
                                        <span class="muted">{r.title}</span>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                }
                    .into_any()
            }}
        </article>
    }
}

#[component]
fn Disclosure(contact: String) -> impl IntoView {
    let shown = contact.strip_prefix("mailto:").unwrap_or(&contact).to_string();
    view! {
        <section id="report" class="card disclosure" aria-labelledby="report-title">
            <h3 id="report-title">"Reporting a vulnerability"</h3>
            <p>
                "Write to " <a href=contact.clone() data-testid="security-contact">{shown}</a>
                " with enough detail to reproduce the problem. Please test only against your own account and data. The same address is published in "
                <a href="/.well-known/security.txt">"security.txt"</a> "."
            </p>
        </section>
    }
}

#[component]
fn Threats() -> impl IntoView {
    view! {
        <section id="threats" aria-labelledby="threats-title">
            <h2 id="threats-title">"Threat model"</h2>
            <p class="muted">
                {status_badge(Status::Handled)} " mitigated as far as we know · " {status_badge(Status::Partial)}
                " mitigated with named gaps · " {status_badge(Status::Gap)} " not mitigated yet"
            </p>
            <div class="table-scroll">
                <table class="table threats">
                    <caption class="visually-hidden">"Threat scenarios with blast radius, mitigation and status"</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Scenario"</th>
                            <th scope="col">"Blast radius"</th>
                            <th scope="col">"Mitigation"</th>
                            <th scope="col">"Status"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {THREATS
                            .iter()
                            .map(|t| {
                                view! {
                                    <tr>
                                        <th scope="row">{t.scenario}</th>
                                        <td>{t.blast_radius}</td>
                                        <td>
                                            {t.mitigation}
                                            <span class="threat-refs">
                                                {t
                                                    .references
                                                    .iter()
                                                    .filter_map(|id| reference(id))
                                                    .map(|r| {
                                                        view! {
                                                            " "
                                                            <a href=r.href() rel="external" title=r.title>
                                                                <code>{r.label()}</code>
                                                            </a>
                                                        }
                                                    })
                                                    .collect_view()}
                                            </span>
                                        </td>
                                        <td>{status_badge(t.status)}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}

#[component]
fn NotYetList() -> impl IntoView {
    view! {
        <section id="not-yet" aria-labelledby="not-yet-title">
            <h2 id="not-yet-title">"What we do not do yet"</h2>
            <dl class="not-yet">
                {NOT_YET
                    .iter()
                    .map(|n| {
                        view! {
                            <div>
                                <dt>{n.item}</dt>
                                <dd>{n.detail}</dd>
                            </div>
                        }
                    })
                    .collect_view()}
            </dl>
        </section>
    }
}

/// Every referenced file once, with its ranges: where to start reading.
#[component]
fn SourceIndex() -> impl IntoView {
    let mut paths: Vec<&'static str> = REFERENCES.iter().map(|r| r.path).collect();
    paths.sort_unstable();
    paths.dedup();
    view! {
        <section id="sources" aria-labelledby="sources-title">
            <h2 id="sources-title">"Audit it yourself"</h2>
            <p class="muted">"The files this page points into, served from this build."</p>
            <ul class="source-index">
                {paths
                    .into_iter()
                    .map(|path| {
                        let ranges: Vec<_> = REFERENCES.iter().filter(|r| r.path == path).collect();
                        view! {
                            <li>
                                <code>{path}</code>
                                " "
                                {ranges
                                    .into_iter()
                                    .map(|r| {
                                        view! {
                                            " "
                                            <a href=r.href() rel="external" title=r.title>
                                                {format!("{}-{}", r.start, r.end)}
                                            </a>
                                        }
                                    })
                                    .collect_view()}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}
