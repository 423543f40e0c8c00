//! The app: its head tags, the router, and the route table. (The document around it is rendered by the server:
//! `server/document.rs`.)

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, Title};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::{path, SsrMode};

use crate::pages::dashboard::{
    AdminClientPage, AdminPage, AgentDetailPage, AgentsPage, AuditPage, BillingPage, CredentialsPage, DashboardLayout,
    OverviewPage, SettingsPage,
};
use crate::pages::sign_in::{EnrollPage, SignInPage, SignUpPage, VerifyPage};
use crate::pages::{LandingPage, NotFoundPage, SecurityPage};

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg" />
        <Meta
            name="description"
            content="Deploy OpenClaw AI agents into isolated, locked-down containers with an encrypted vault, enforced permissions and a tamper-evident audit trail."
        />
        <Title formatter=|text: String| {
            if text.is_empty() { "DeployClaw".to_string() } else { format!("{text} · DeployClaw") }
        } />
        <Router>
            <Routes fallback=NotFoundPage>
                <Route path=path!("/") view=LandingPage />
                // Rendered whole on the server (its parameters resolved first), so the page is complete without WASM.
                <Route path=path!("/security") view=SecurityPage ssr=SsrMode::Async />
                <Route path=path!("/sign-in") view=SignInPage />
                <Route path=path!("/sign-up") view=SignUpPage />
                <Route path=path!("/sign-in/enroll") view=EnrollPage />
                <Route path=path!("/sign-in/verify") view=VerifyPage />
                <ParentRoute path=path!("/dashboard") view=DashboardLayout>
                    <Route path=path!("") view=OverviewPage />
                    <Route path=path!("agents") view=AgentsPage />
                    <Route path=path!("agents/:id") view=AgentDetailPage />
                    <Route path=path!("credentials") view=CredentialsPage />
                    <Route path=path!("audit") view=AuditPage />
                    <Route path=path!("billing") view=BillingPage />
                    <Route path=path!("settings") view=SettingsPage />
                    <Route path=path!("admin") view=AdminPage />
                    <Route path=path!("admin/clients/:id") view=AdminClientPage />
                </ParentRoute>
            </Routes>
        </Router>
    }
}
