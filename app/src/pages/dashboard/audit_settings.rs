//! The "Audit trail" card of the settings page: how long events are kept, and the SIEM destinations they are
//! forwarded to. Everyone on the team sees both; the server decides who may change them (hiding a form is
//! not a check).

use leptos::prelude::*;

use crate::api::audit_settings::{
    audit_settings, AddSiemDestination, AuditSettingsView, DeleteSiemDestination, DestinationRow, RetentionView,
    SetAuditRetention, SetSiemDestinationEnabled,
};
use crate::api::AppError;
use crate::components::{reset_on_success, ConfirmTwoFactor, ErrorNotice};

/// A timestamp as "2026-11-23 14:05 UTC".
fn short_time(rfc3339: &str) -> String {
    let (date, rest) = rfc3339.split_once('T').unwrap_or((rfc3339, ""));
    format!("{date} {} UTC", rest.get(..5).unwrap_or(""))
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "syslog_tcp" => "Syslog over TCP",
        "syslog_tls" => "Syslog over TLS",
        "https_json" => "HTTPS JSON",
        _ => "Unknown",
    }
}

fn days(n: u32) -> String {
    format!("{n} day{}", if n == 1 { "" } else { "s" })
}

#[component]
pub fn AuditTrailCard() -> impl IntoView {
    let retention = ServerAction::<SetAuditRetention>::new();
    let add = ServerAction::<AddSiemDestination>::new();
    let toggle = ServerAction::<SetSiemDestinationEnabled>::new();
    let delete = ServerAction::<DeleteSiemDestination>::new();
    // What the caller may change, read once: the forms below must not be rebuilt (and lose what was typed)
    // each time the lists reload.
    let access = Resource::new(|| (), |_| audit_settings());
    let settings = Resource::new(
        move || (retention.version().get(), add.version().get(), toggle.version().get(), delete.version().get()),
        |_| audit_settings(),
    );
    let results = move || {
        [
            retention.value().get().map(|r| r.map(|_| ())),
            add.value().get().map(|r| r.map(|_| ())),
            toggle.value().get().map(|r| r.map(|_| ())),
            delete.value().get(),
        ]
    };
    let needs_2fa = move || results().into_iter().any(|v| matches!(v, Some(Err(AppError::TwoFactorRequired))));
    let clear = move |_| {
        retention.value().set(None);
        add.value().set(None);
        toggle.value().set(None);
        delete.value().set(None);
    };
    let other_error = move || {
        results().into_iter().find_map(|v| match v {
            Some(Err(AppError::TwoFactorRequired)) | None | Some(Ok(())) => None,
            Some(Err(error)) => Some(view! { <ErrorNotice error /> }),
        })
    };
    view! {
        <section class="card" aria-labelledby="audit-trail-title" data-testid="audit-trail">
            <h2 id="audit-trail-title">"Audit trail"</h2>
            <p class="muted">
                "How long your account's audit events are kept, and the SIEM systems they are forwarded to. Every change here is itself recorded in your audit trail."
            </p>
            <Show when=needs_2fa>
                <ConfirmTwoFactor on_done=clear />
            </Show>
            {other_error}
            <h3 id="audit-retention-title">"Retention"</h3>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    settings
                        .get()
                        .map(|result| match result {
                            Ok(view) => view! { <RetentionSummary retention=view.retention /> }.into_any(),
                            Err(error) => view! { <ErrorNotice error /> }.into_any(),
                        })
                }}
            </Suspense>
            <Suspense fallback=|| ()>
                {move || {
                    access
                        .get()
                        .and_then(Result::ok)
                        .filter(|v| v.can_change_retention)
                        .map(|v| view! { <RetentionForm action=retention max_days=v.retention.max_days /> })
                }}
            </Suspense>
            <h3 id="siem-title">"SIEM forwarding"</h3>
            <p class="muted">
                "Each destination receives every event of your account, in order, at least once (a retry can repeat an event; each carries its id)."
            </p>
            <Suspense fallback=|| view! { <p class="muted">"Loading destinations…"</p> }>
                {move || {
                    settings
                        .get()
                        .map(|result| match result {
                            Ok(AuditSettingsView { destinations, can_manage_destinations, .. }) => {
                                if destinations.is_empty() {
                                    view! { <p class="muted" data-testid="no-destinations">"No destinations yet."</p> }.into_any()
                                } else {
                                    view! {
                                        <DestinationTable rows=destinations can_manage=can_manage_destinations toggle delete />
                                    }
                                        .into_any()
                                }
                            }
                            Err(_) => ().into_any(),
                        })
                }}
            </Suspense>
            <Suspense fallback=|| ()>
                {move || {
                    access
                        .get()
                        .and_then(Result::ok)
                        .filter(|v| v.can_manage_destinations)
                        .map(|_| view! { <AddDestinationForm add /> })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn RetentionSummary(retention: RetentionView) -> impl IntoView {
    let source =
        if retention.source == "client" { "your setting".to_string() } else { "the platform default".to_string() };
    let clamped = retention.client_days.filter(|d| *d != retention.days);
    view! {
        <p data-testid="audit-retention">
            "Events are kept for " <strong>{days(retention.days)}</strong> " (" {source} "). "
            {clamped.map(|d| format!("Your setting of {} is above the most your plan allows. ", days(d)))}
            "You can choose from 1 to " {days(retention.max_days)} "; the platform default is " {days(retention.default_days)} "."
        </p>
    }
}

#[component]
fn RetentionForm(action: ServerAction<SetAuditRetention>, max_days: u32) -> impl IntoView {
    let form = NodeRef::new();
    reset_on_success(action, form);
    let saved = move || {
        action.value().get().and_then(Result::ok).map(|c| {
            let text = if c.shortened {
                format!(
                    "Saved: events are now kept for {}. Events older than that are removed at the next retention run (daily); a signed checkpoint keeps your hash chain verifiable afterwards.",
                    days(c.retention.days),
                )
            } else {
                format!("Saved: events are now kept for {}.", days(c.retention.days))
            };
            view! { <p class="notice ok" role="status">{text}</p> }
        })
    };
    view! {
        <ActionForm action node_ref=form attr:class="stack-form" attr:aria-labelledby="audit-retention-title">
            <label for="audit-retention-days">"Keep events for (days)"</label>
            <input
                id="audit-retention-days"
                name="days"
                inputmode="numeric"
                pattern="[0-9]*"
                maxlength="5"
                placeholder="empty: the platform default"
                aria-describedby="audit-retention-help"
            />
            <p id="audit-retention-help" class="muted">
                {format!("A whole number from 1 to {max_days}, or empty for the platform default. ")}
                "Shortening it removes events older than the new period at the next retention run (daily), for good; a signed checkpoint of the last removed event keeps your hash chain verifiable."
            </p>
            <button type="submit" data-testid="save-retention" disabled=move || action.pending().get()>"Save retention"</button>
        </ActionForm>
        {saved}
    }
}

#[component]
fn DestinationTable(
    rows: Vec<DestinationRow>,
    can_manage: bool,
    toggle: ServerAction<SetSiemDestinationEnabled>,
    delete: ServerAction<DeleteSiemDestination>,
) -> impl IntoView {
    view! {
        <table class="table" aria-labelledby="siem-title">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Kind"</th>
                    <th scope="col">"Endpoint"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Delivered"</th>
                    <th scope="col">"Last error"</th>
                    {can_manage.then(|| view! { <th scope="col"><span class="visually-hidden">"Actions"</span></th> })}
                </tr>
            </thead>
            <tbody>
                {rows
                    .into_iter()
                    .map(|d| {
                        let (id_toggle, id_delete) = (d.id.clone(), d.id.clone());
                        let enabled = d.enabled;
                        let delivered = if d.delivered_up_to == 0 {
                            "Nothing yet".to_string()
                        } else {
                            format!("Up to event #{}", d.delivered_up_to)
                        };
                        let error = d.last_error.clone().map(|e| {
                            let at = d.last_error_at.as_deref().map(short_time).unwrap_or_default();
                            view! { <span>{e}</span> <br /> <span class="muted">{at}</span> }
                        });
                        let name = d.name.clone();
                        view! {
                            <tr data-testid="destination-row">
                                <td>{d.name.clone()}</td>
                                <td>
                                    {kind_label(&d.kind)}
                                    {d.custom_ca.then(|| view! { <br /> <span class="muted">"own CA"</span> })}
                                </td>
                                <td><code>{d.endpoint.clone()}</code></td>
                                <td>
                                    {if enabled {
                                        view! { <span class="badge ok">"Enabled"</span> }.into_any()
                                    } else {
                                        view! { <span class="badge">"Paused"</span> }.into_any()
                                    }}
                                </td>
                                <td>
                                    {delivered}
                                    {d.last_delivered_at.as_deref().map(|t| view! { <br /> <span class="muted">{short_time(t)}</span> })}
                                </td>
                                <td>{error.map(IntoAny::into_any).unwrap_or_else(|| view! { <span class="muted">"None"</span> }.into_any())}</td>
                                {can_manage
                                    .then(|| {
                                        let name2 = name.clone();
                                        view! {
                                            <td class="actions">
                                                <button
                                                    type="button"
                                                    class="button secondary small"
                                                    aria-label=format!("{} forwarding to {name}", if enabled { "Pause" } else { "Resume" })
                                                    on:click=move |_| {
                                                        toggle.dispatch(SetSiemDestinationEnabled { destination_id: id_toggle.clone(), enabled: !enabled });
                                                    }
                                                >
                                                    {if enabled { "Pause" } else { "Resume" }}
                                                </button>
                                                " "
                                                <button
                                                    type="button"
                                                    class="button secondary small"
                                                    aria-label=format!("Delete destination {name2}")
                                                    on:click=move |_| {
                                                        delete.dispatch(DeleteSiemDestination { destination_id: id_delete.clone() });
                                                    }
                                                >
                                                    "Delete"
                                                </button>
                                            </td>
                                        }
                                    })}
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn AddDestinationForm(add: ServerAction<AddSiemDestination>) -> impl IntoView {
    let form = NodeRef::new();
    reset_on_success(add, form);
    let kind = RwSignal::new("syslog_tls".to_string());
    Effect::new(move |_| {
        // The form's reset puts the select back to its default; follow it.
        if matches!(add.value().get(), Some(Ok(_))) {
            kind.set("syslog_tls".into());
        }
    });
    // Fields of the other kinds are hidden and disabled, so the browser does not send what they hold.
    let is_url = move || kind.get() == "https_json";
    let no_tls = move || kind.get() == "syslog_tcp";
    view! {
        <h3 id="siem-add-title">"Add a destination"</h3>
        <ActionForm action=add node_ref=form attr:class="stack-form wide" attr:aria-labelledby="siem-add-title" attr:autocomplete="off">
            <label for="siem-name">"Name"</label>
            <input id="siem-name" name="name" required maxlength="100" placeholder="Company SIEM" />
            <label for="siem-kind">"Kind"</label>
            <select id="siem-kind" name="kind" aria-describedby="siem-kind-help" on:change=move |ev| kind.set(event_target_value(&ev))>
                <option value="syslog_tls" selected=true>"Syslog over TLS"</option>
                <option value="syslog_tcp">"Syslog over TCP (unencrypted)"</option>
                <option value="https_json">"HTTPS JSON"</option>
            </select>
            <ul id="siem-kind-help" class="muted">
                <li>
                    <strong>"Syslog over TLS"</strong>
                    ": RFC 5424 messages, octet-counted (RFC 6587), encrypted with TLS. Syslog has no delivery acknowledgement: an event counts as delivered once written to the connection."
                </li>
                <li>
                    <strong>"Syslog over TCP"</strong>
                    ": the same without encryption, for a receiver on a trusted network. No delivery acknowledgement either: a receiver that fails just as events arrive can lose them."
                </li>
                <li>
                    <strong>"HTTPS JSON"</strong>
                    ": POSTs of JSON arrays of events. An event counts as delivered only when your endpoint answers 2xx; until then it is retried."
                </li>
            </ul>
            <div class="field-group" hidden=is_url>
                <label for="siem-host">"Host"</label>
                <input id="siem-host" name="host" maxlength="253" placeholder="siem.example.com" spellcheck="false" disabled=is_url />
                <label for="siem-port">"Port"</label>
                <input id="siem-port" name="port" inputmode="numeric" pattern="[0-9]*" maxlength="5" placeholder="6514" disabled=is_url />
            </div>
            <div class="field-group" hidden=move || !is_url()>
                <label for="siem-url">"URL"</label>
                <input
                    id="siem-url"
                    name="url"
                    type="url"
                    maxlength="2048"
                    placeholder="https://siem.example.com/ingest"
                    spellcheck="false"
                    aria-describedby="siem-url-help"
                    disabled=move || !is_url()
                />
                <p id="siem-url-help" class="muted">
                    "https:// only, without a user name or password. Treat it like a password if it holds a token: after saving, only its host is shown."
                </p>
            </div>
            <div class="field-group" hidden=no_tls>
                <label for="siem-ca">"CA certificate (optional, PEM)"</label>
                <textarea
                    id="siem-ca"
                    name="ca_pem"
                    rows="4"
                    spellcheck="false"
                    placeholder="-----BEGIN CERTIFICATE-----"
                    aria-describedby="siem-ca-help"
                    disabled=no_tls
                ></textarea>
                <p id="siem-ca-help" class="muted">
                    "Only if your receiver's certificate is issued by your own CA; public CAs are trusted already."
                </p>
            </div>
            <fieldset>
                <legend>"Start with"</legend>
                <label>
                    <input type="radio" name="start" value="now" checked=true />
                    " Events from now on"
                </label>
                <label>
                    <input type="radio" name="start" value="beginning" />
                    " Every stored event (the oldest first)"
                </label>
            </fieldset>
            <p class="muted">
                "Destinations must be reachable at a public address: loopback, private and link-local addresses are refused."
            </p>
            <button type="submit" data-testid="add-destination" disabled=move || add.pending().get()>"Add destination"</button>
        </ActionForm>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_naturally() {
        assert_eq!(days(1), "1 day");
        assert_eq!(days(90), "90 days");
        assert_eq!(kind_label("syslog_tcp"), "Syslog over TCP");
        assert_eq!(short_time("2026-11-23T14:05:09.123+00:00"), "2026-11-23 14:05 UTC");
    }
}
