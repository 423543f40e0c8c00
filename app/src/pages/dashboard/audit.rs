//! The audit trail, live: the most recent events, then each new one as it happens (server-sent events),
//! with filters, pause and resume. The browser keeps the last id it showed; reconnecting - by itself after a
//! network blip, or on resume - continues after it, so nothing is missed or shown twice.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::agents::list_agents;
use crate::api::audit::{export_url, AuditRow, StreamQuery};
use crate::components::PageHeader;

/// Rows kept on the page; older ones are in the export.
pub const MAX_ROWS: usize = 500;

/// Where the connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum StreamState {
    Connecting,
    Live,
    Reconnecting,
    Paused,
    /// The range ended in the past: everything in it is shown.
    History,
    /// The stream stopped for good, with the reason.
    Stopped(String),
}

impl StreamState {
    fn label(&self) -> String {
        match self {
            StreamState::Connecting => "Connecting…".into(),
            StreamState::Live => "Live".into(),
            StreamState::Reconnecting => "Reconnecting…".into(),
            StreamState::Paused => "Paused".into(),
            StreamState::History => "Showing the whole range".into(),
            StreamState::Stopped(why) => why.clone(),
        }
    }
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
/// Adds `row` at the top unless it was already shown (ids only grow); keeps at most [`MAX_ROWS`].
pub fn push_newest(rows: &mut Vec<AuditRow>, row: AuditRow) -> bool {
    if rows.first().is_some_and(|top| top.id >= row.id) {
        return false;
    }
    rows.insert(0, row);
    rows.truncate(MAX_ROWS);
    true
}

fn actor_label(row: &AuditRow) -> String {
    let short =
        |id: &Option<String>| id.as_deref().map(|i| i.get(i.len().saturating_sub(8)..).unwrap_or(i).to_string());
    match row.actor.as_str() {
        "admin" => "DeployClaw operator".into(),
        "platform" => "DeployClaw".into(),
        kind => match short(&row.actor_id) {
            Some(id) => format!("{kind} …{id}"),
            None => kind.to_string(),
        },
    }
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let rows = RwSignal::new(Vec::<AuditRow>::new());
    let live = RwSignal::new(StreamState::Connecting);
    let paused = RwSignal::new(false);
    let applied = RwSignal::new(StreamQuery::default());
    let agents = Resource::new(|| (), |_| list_agents());
    // The filter form, applied with the button.
    let (agent, action, actor, from, to, text) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    #[cfg(feature = "hydrate")]
    browser::follow(rows, live, paused, applied);
    let apply = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let opt = |s: RwSignal<String>| Some(s.get_untracked()).filter(|v| !v.trim().is_empty());
        rows.set(Vec::new());
        applied.set(StreamQuery {
            agent: opt(agent),
            action: opt(action),
            actor: opt(actor),
            from: opt(from).map(|v| local_to_utc(&v)),
            to: opt(to).map(|v| local_to_utc(&v)),
            q: opt(text),
            after: None,
        });
    };
    let toggle = move |_| paused.update(|p| *p = !*p);
    view! {
        <Title text="Audit" />
        <PageHeader
            title="Audit"
            lead="Everything your agents and your team did, in order: sign-ins, deployments, credential use, outbound calls and any operator access to your account. New events appear as they happen."
        />
        <Filters agents agent action actor from to text apply />
        <Events rows live paused applied toggle />
    }
}

/// The filter form; applied with its button.
#[component]
#[allow(clippy::too_many_arguments)]
fn Filters(
    agents: Resource<Result<Vec<crate::api::agents::AgentRow>, crate::api::AppError>>,
    agent: RwSignal<String>,
    action: RwSignal<String>,
    actor: RwSignal<String>,
    from: RwSignal<String>,
    to: RwSignal<String>,
    text: RwSignal<String>,
    apply: impl Fn(leptos::ev::SubmitEvent) + 'static,
) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="audit-filters-title">
            <h2 id="audit-filters-title">"Filters"</h2>
            <form class="filter-form" on:submit=apply data-testid="audit-filters">
                <label>
                    "Agent"
                    <select bind:value=agent>
                        <option value="">"All"</option>
                        <Suspense>
                            {move || {
                                agents
                                    .get()
                                    .and_then(Result::ok)
                                    .map(|list| {
                                        list.into_iter()
                                            .map(|a| view! { <option value=a.id>{a.name}</option> })
                                            .collect_view()
                                    })
                            }}
                        </Suspense>
                    </select>
                </label>
                <label>
                    "Action"
                    <input bind:value=action list="audit-areas" placeholder="agent. or agent.deployed" maxlength="64" />
                    <datalist id="audit-areas">
                        <option value="agent." />
                        <option value="auth." />
                        <option value="credential." />
                        <option value="audit." />
                        <option value="admin." />
                    </datalist>
                </label>
                <label>
                    "Who"
                    <select bind:value=actor>
                        <option value="">"Anyone"</option>
                        <option value="user">"Your team"</option>
                        <option value="agent">"Agents"</option>
                        <option value="platform">"DeployClaw"</option>
                        <option value="admin">"DeployClaw operators"</option>
                    </select>
                </label>
                <label>"From" <input type="datetime-local" bind:value=from /></label>
                <label>"Until" <input type="datetime-local" bind:value=to /></label>
                <label>"Contains" <input type="search" bind:value=text maxlength="200" placeholder="support-bot" /></label>
                <button type="submit" class="button" data-testid="apply-filters">"Apply"</button>
            </form>
        </section>
    }
    .into_any()
}

/// The live state, pause, downloads and the events themselves.
#[component]
fn Events(
    rows: RwSignal<Vec<AuditRow>>,
    live: RwSignal<StreamState>,
    paused: RwSignal<bool>,
    applied: RwSignal<StreamQuery>,
    toggle: impl Fn(leptos::ev::MouseEvent) + 'static,
) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="audit-events-title">
            <div class="live-bar">
                <h2 id="audit-events-title">"Events"</h2>
                <span
                    class=move || if live.get() == StreamState::Live { "badge ok" } else { "badge" }
                    role="status"
                    data-testid="live-state"
                >
                    {move || live.get().label()}
                </span>
                <button type="button" class="button secondary small" on:click=toggle data-testid="pause">
                    {move || if paused.get() { "Resume" } else { "Pause" }}
                </button>
            </div>
            <p class="downloads">
                "Download the filtered range (agent and time; the last 30 days when no time is set): "
                <a href=move || export_url("jsonl", &applied.get(), now_ms()) data-testid="export-jsonl" download>"JSON Lines"</a>
                " · "
                <a href=move || export_url("csv", &applied.get(), now_ms()) data-testid="export-csv" download>"CSV"</a>
            </p>
            <p class="muted small">
                "Newest first; the page keeps the last " {MAX_ROWS} " events. The record is append-only and hash-chained per account: an edited, deleted or reordered entry is detectable."
            </p>
            <Show
                when=move || !rows.with(Vec::is_empty)
                fallback=|| view! { <p class="muted" data-testid="audit-empty">"No events match yet. They appear here as they happen."</p> }
            >
                <table class="table audit" data-testid="audit-events">
                    <thead>
                        <tr>
                            <th scope="col">"When (UTC)"</th>
                            <th scope="col">"Who"</th>
                            <th scope="col">"What"</th>
                            <th scope="col">"Target"</th>
                            <th scope="col">"Details"</th>
                        </tr>
                    </thead>
                    <tbody>
                        <For each=move || rows.get() key=|r| r.id let:row>
                            <EventRow row />
                        </For>
                    </tbody>
                </table>
            </Show>
        </section>
    }
    .into_any()
}

#[component]
fn EventRow(row: AuditRow) -> impl IntoView {
    let when = row.at.replace('T', " ").trim_end_matches('Z').to_string();
    let who = actor_label(&row);
    let operator = row.actor == "admin";
    let details = (row.metadata != "{}").then(|| row.metadata.clone());
    view! {
        <tr data-testid="audit-row" class:operator=operator>
            <td>
                <time datetime=row.at.clone()>{when}</time>
                {row.seq.map(|seq| {
                    let title = row.hash.clone().map(|h| format!("hash {h}")).unwrap_or_default();
                    view! { <br /><span class="muted small" title=title>{format!("#{seq}")}</span> }
                })}
            </td>
            <td>{who}</td>
            <td><code>{row.action.clone()}</code></td>
            <td>{row.target.clone().unwrap_or_default()}</td>
            <td>
                {row.ip.clone().map(|ip| view! { <span class="muted small">{format!("from {ip}")}</span> })}
                {details.map(|d| view! { <details><summary>"metadata"</summary><pre class="small">{d}</pre></details> })}
            </td>
        </tr>
    }
}

/// Milliseconds since the epoch, on whichever side renders.
fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A `datetime-local` value (the browser's local time) as RFC 3339 UTC; unchanged outside the browser.
fn local_to_utc(value: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(value));
        if !date.get_time().is_nan() {
            return String::from(date.to_iso_string());
        }
    }
    value.to_string()
}

#[cfg(feature = "hydrate")]
pub(crate) mod browser {
    //! The EventSource: opened when the filters change or the viewer resumes, closed on pause and when the
    //! page goes away.

    use leptos::prelude::*;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{EventSource, MessageEvent};

    use super::{push_newest, StreamState};
    use crate::api::audit::{AuditRow, StreamQuery};

    /// An open stream; closing it and dropping the callbacks go together.
    struct Connection {
        source: EventSource,
        _callbacks: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    }

    impl Drop for Connection {
        fn drop(&mut self) {
            self.source.close();
        }
    }

    /// Calls `changed` soon after any audit event of `agent` arrives - every state change of an agent is
    /// audited - so its page refreshes at once instead of at its next poll. Bursts (the backfill on connect)
    /// collapse into one call. The stream closes with the page.
    pub fn watch_agent(agent: String, changed: impl Fn() + Clone + 'static) {
        let url = StreamQuery { agent: Some(agent), ..StreamQuery::default() }.url();
        let Ok(source) = EventSource::new(&url) else { return };
        let pending = std::rc::Rc::new(std::cell::Cell::new(false));
        let on_event = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            if pending.replace(true) {
                return;
            }
            let (pending, changed) = (pending.clone(), changed.clone());
            set_timeout(
                move || {
                    pending.set(false);
                    changed();
                },
                std::time::Duration::from_millis(300),
            );
        });
        let _ = source.add_event_listener_with_callback("audit", on_event.as_ref().unchecked_ref());
        let connection = StoredValue::new_local(Some(Connection { source, _callbacks: vec![on_event] }));
        on_cleanup(move || connection.set_value(None));
    }

    pub fn follow(
        rows: RwSignal<Vec<AuditRow>>,
        live: RwSignal<StreamState>,
        paused: RwSignal<bool>,
        applied: RwSignal<StreamQuery>,
    ) {
        let connection = StoredValue::new_local(None::<Connection>);
        on_cleanup(move || connection.set_value(None));
        Effect::new(move |_| {
            let query = applied.get();
            let paused = paused.get();
            connection.set_value(None);
            if paused {
                live.set(StreamState::Paused);
                return;
            }
            // Continue after the newest row shown (none after new filters: the rows were cleared).
            let after = rows.with_untracked(|r| r.first().map(|r| r.id));
            let url = StreamQuery { after, ..query }.url();
            let Ok(source) = EventSource::new(&url) else {
                live.set(StreamState::Stopped("Your browser cannot open the live stream.".into()));
                return;
            };
            live.set(StreamState::Connecting);
            let on_event = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
                let Some(data) = e.dyn_ref::<MessageEvent>().and_then(|m| m.data().as_string()) else { return };
                if let Ok(row) = serde_json::from_str::<AuditRow>(&data) {
                    rows.update(|r| {
                        push_newest(r, row);
                    });
                }
                live.set(StreamState::Live);
            });
            let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| live.set(StreamState::Live));
            let source_for_errors = source.clone();
            let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                // CONNECTING: the browser retries by itself, resuming with Last-Event-ID.
                if source_for_errors.ready_state() == EventSource::CONNECTING {
                    live.set(StreamState::Reconnecting);
                } else {
                    live.set(StreamState::Stopped(
                        "The live stream stopped. Reload the page, or sign in again.".into(),
                    ));
                }
            });
            let source_for_end = source.clone();
            let on_end = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                source_for_end.close();
                live.set(StreamState::History);
            });
            let source_for_problem = source.clone();
            let on_problem = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
                source_for_problem.close();
                let why = e.dyn_ref::<MessageEvent>().and_then(|m| m.data().as_string());
                live.set(StreamState::Stopped(why.unwrap_or_else(|| "The live stream stopped.".into())));
            });
            let listen = |name: &str, f: &Closure<dyn FnMut(web_sys::Event)>| {
                let _ = source.add_event_listener_with_callback(name, f.as_ref().unchecked_ref());
            };
            listen("audit", &on_event);
            listen("open", &on_open);
            listen("error", &on_error);
            listen("end", &on_end);
            listen("problem", &on_problem);
            connection.set_value(Some(Connection {
                source,
                _callbacks: vec![on_event, on_open, on_error, on_end, on_problem],
            }));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> AuditRow {
        AuditRow {
            id,
            at: "2026-11-23T10:00:00.000Z".into(),
            actor: "platform".into(),
            actor_id: None,
            action: "agent.deployed".into(),
            target: None,
            agent_id: None,
            ip: None,
            metadata: "{}".into(),
            seq: Some(id),
            hash: None,
        }
    }

    #[test]
    fn rows_are_newest_first_without_repeats_and_bounded() {
        let mut rows = Vec::new();
        assert!(push_newest(&mut rows, row(1)));
        assert!(push_newest(&mut rows, row(2)));
        assert!(!push_newest(&mut rows, row(2)), "a repeat is dropped");
        assert!(!push_newest(&mut rows, row(1)), "an older one is dropped");
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 1]);
        for id in 3..=(MAX_ROWS as i64 + 10) {
            push_newest(&mut rows, row(id));
        }
        assert_eq!(rows.len(), MAX_ROWS);
        assert_eq!(rows[0].id, MAX_ROWS as i64 + 10);
    }

    #[test]
    fn operators_are_named_as_such() {
        let mut r = row(1);
        r.actor = "admin".into();
        assert_eq!(actor_label(&r), "DeployClaw operator");
        r.actor = "user".into();
        r.actor_id = Some("01a20925-bc71-75f4-b0fe-e10acc4e19b6".into());
        assert_eq!(actor_label(&r), "user …cc4e19b6");
    }
}
