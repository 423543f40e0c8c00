//! Settings: where you are signed in (with revoke and "sign out everywhere"), your team, and your audit trail's
//! retention and SIEM forwarding.

use leptos::prelude::*;
use leptos_meta::Title;

use super::audit_settings::AuditTrailCard;
use crate::api::account::{
    list_sessions, list_team, ChangeMemberRole, InviteMember, MemberRow, ResetMemberTwoFactor, RevokeSession,
    SessionRow, SignOutEverywhere,
};
use crate::api::AppError;
use crate::components::{action_error, reset_on_success, ConfirmTwoFactor, ErrorNotice, PageHeader};

#[component]
pub fn SettingsPage() -> impl IntoView {
    view! {
        <Title text="Settings" />
        <PageHeader
            title="Settings"
            lead="Where you are signed in, who is on your team, and how your audit trail is kept and forwarded. Sessions end after 30 minutes without activity and after 12 hours at most."
        />
        <SessionsCard />
        <TeamCard />
        <AuditTrailCard />
    }
}

/// A timestamp as "2026-11-23 14:05 UTC".
fn short_time(rfc3339: &str) -> String {
    let (date, rest) = rfc3339.split_once('T').unwrap_or((rfc3339, ""));
    format!("{date} {} UTC", rest.get(..5).unwrap_or(""))
}

#[component]
fn SessionsCard() -> impl IntoView {
    let revoke = ServerAction::<RevokeSession>::new();
    let everywhere = ServerAction::<SignOutEverywhere>::new();
    let sessions = Resource::new(move || revoke.version().get(), |_| list_sessions());
    Effect::new(move |_| {
        if let Some(Ok(_)) = everywhere.value().get() {
            // This session ended too: the server answers the next page with the sign-in page.
            let _ = window().location().set_href("/sign-in");
        }
    });
    let revoke_error = action_error(revoke);
    let everywhere_error = action_error(everywhere);
    view! {
        <section class="card" aria-labelledby="sessions-title" data-testid="sessions">
            <div class="card-title-row">
                <h2 id="sessions-title">"Active sessions"</h2>
                <button
                    type="button"
                    class="button secondary small"
                    data-testid="sign-out-everywhere"
                    disabled=move || everywhere.pending().get()
                    on:click=move |_| {
                        everywhere.dispatch(SignOutEverywhere {});
                    }
                >
                    "Sign out everywhere"
                </button>
            </div>
            <p class="muted">"If you do not recognise a session, revoke it and tell your account owner."</p>
            {revoke_error}
            {everywhere_error}
            <Suspense fallback=|| view! { <p class="muted">"Loading sessions…"</p> }>
                {move || {
                    sessions
                        .get()
                        .map(|result| match result {
                            Ok(rows) => view! { <SessionTable rows revoke /> }.into_any(),
                            Err(error) => view! { <ErrorNotice error /> }.into_any(),
                        })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn SessionTable(rows: Vec<SessionRow>, revoke: ServerAction<RevokeSession>) -> impl IntoView {
    view! {
        <table class="table">
            <thead>
                <tr>
                    <th scope="col">"Device"</th>
                    <th scope="col">"IP address"</th>
                    <th scope="col">"Signed in"</th>
                    <th scope="col">"Last active"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {rows
                    .into_iter()
                    .map(|s| {
                        let handle = s.handle.clone();
                        view! {
                            <tr data-testid="session-row">
                                <td class="device">{s.device}</td>
                                <td>{s.ip}</td>
                                <td>{short_time(&s.signed_in_at)}</td>
                                <td>{short_time(&s.last_seen_at)}</td>
                                <td>
                                    {if s.current {
                                        view! { <span class="badge ok">"This browser"</span> }.into_any()
                                    } else {
                                        view! {
                                            <button
                                                type="button"
                                                class="button secondary small"
                                                on:click=move |_| {
                                                    revoke.dispatch(RevokeSession { handle: handle.clone() });
                                                }
                                            >
                                                "Revoke"
                                            </button>
                                        }
                                            .into_any()
                                    }}
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn TeamCard() -> impl IntoView {
    let invite = ServerAction::<InviteMember>::new();
    let change = ServerAction::<ChangeMemberRole>::new();
    let reset = ServerAction::<ResetMemberTwoFactor>::new();
    let team =
        Resource::new(move || (invite.version().get(), change.version().get(), reset.version().get()), |_| list_team());
    // A sensitive change that needs a fresh second factor: ask for it, then the user repeats the change.
    let needs_2fa = move || {
        [invite.value().get(), change.value().get(), reset.value().get()]
            .into_iter()
            .any(|v| matches!(v, Some(Err(AppError::TwoFactorRequired))))
    };
    let clear = move |_| {
        invite.value().set(None);
        change.value().set(None);
        reset.value().set(None);
    };
    let other_error = move || {
        [invite.value().get(), change.value().get(), reset.value().get()].into_iter().find_map(|v| match v {
            Some(Err(AppError::TwoFactorRequired)) | None | Some(Ok(())) => None,
            Some(Err(error)) => Some(view! { <ErrorNotice error /> }),
        })
    };
    view! {
        <section class="card" aria-labelledby="team-title" data-testid="team">
            <h2 id="team-title">"Team"</h2>
            <p class="muted">
                "Owners manage everything; admins manage the team and agents; members use agents. Everyone signs in with an email code and an authenticator."
            </p>
            <Show when=needs_2fa>
                <ConfirmTwoFactor on_done=clear />
            </Show>
            {other_error}
            <Suspense fallback=|| view! { <p class="muted">"Loading the team…"</p> }>
                {move || {
                    team.get()
                        .map(|result| match result {
                            Ok(view) => {
                                let can_manage = view.can_manage;
                                view! {
                                    <TeamTable members=view.members can_change_roles=view.can_change_roles can_manage change reset />
                                    {can_manage.then(|| view! { <InviteForm invite /> })}
                                }
                                    .into_any()
                            }
                            Err(error) => view! { <ErrorNotice error /> }.into_any(),
                        })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn TeamTable(
    members: Vec<MemberRow>,
    can_change_roles: bool,
    can_manage: bool,
    change: ServerAction<ChangeMemberRole>,
    reset: ServerAction<ResetMemberTwoFactor>,
) -> impl IntoView {
    view! {
        <table class="table">
            <thead>
                <tr>
                    <th scope="col">"Email"</th>
                    <th scope="col">"Role"</th>
                    <th scope="col">"Two-factor"</th>
                    <th scope="col">"Last sign-in"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {members
                    .into_iter()
                    .map(|m| {
                        let (id_role, id_reset) = (m.id.clone(), m.id.clone());
                        let role_cell = if can_change_roles && !m.is_me {
                            view! {
                                <select
                                    aria-label=format!("Role of {}", m.email)
                                    on:change=move |ev| {
                                        change.dispatch(ChangeMemberRole { user_id: id_role.clone(), role: event_target_value(&ev) });
                                    }
                                >
                                    {["owner", "admin", "member"]
                                        .into_iter()
                                        .map(|r| view! { <option value=r selected=m.role == r>{r}</option> })
                                        .collect_view()}
                                </select>
                            }
                                .into_any()
                        } else {
                            view! { <span>{m.role.clone()}</span> }.into_any()
                        };
                        view! {
                            <tr data-testid="member-row">
                                <td>{m.email.clone()} {m.is_me.then(|| view! { " " <span class="badge">"you"</span> })}</td>
                                <td>{role_cell}</td>
                                <td>{if m.two_factor { "On" } else { "Not set up yet" }}</td>
                                <td>{m.last_sign_in.as_deref().map(short_time).unwrap_or_else(|| "Never".into())}</td>
                                <td>
                                    {(can_manage && m.can_reset && m.two_factor)
                                        .then(|| {
                                            view! {
                                                <button
                                                    type="button"
                                                    class="button secondary small"
                                                    on:click=move |_| {
                                                        reset.dispatch(ResetMemberTwoFactor { user_id: id_reset.clone() });
                                                    }
                                                >
                                                    "Reset two-factor"
                                                </button>
                                            }
                                        })}
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn InviteForm(invite: ServerAction<InviteMember>) -> impl IntoView {
    let form = NodeRef::new();
    reset_on_success(invite, form);
    view! {
        <ActionForm action=invite node_ref=form attr:class="inline-form">
            <label for="invite-email">"Add a team member"</label>
            <input id="invite-email" name="email" type="email" placeholder="name@company.com" required maxlength="254" />
            <label for="invite-role" class="visually-hidden">"Role"</label>
            <select id="invite-role" name="role">
                <option value="member" selected=true>"member"</option>
                <option value="admin">"admin"</option>
                <option value="owner">"owner"</option>
            </select>
            <button type="submit" disabled=move || invite.pending().get()>"Add"</button>
        </ActionForm>
        <p class="muted">"They get an email telling them to sign in; they set up their own authenticator at first sign-in."</p>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_short_and_say_utc() {
        assert_eq!(super::short_time("2026-11-23T14:05:09.123+00:00"), "2026-11-23 14:05 UTC");
    }
}
