//! DeployClaw web app: Leptos pages and components, server functions and the DTOs they share with the
//! browser, and (under the `ssr` feature only) the axum server around the platform core.
//!
//! The `hydrate` build compiles to WASM and must never pull in the core, sqlx, tokio or bollard: every
//! server-only dependency is optional and enabled by `ssr` alone.
#![deny(unsafe_code)]
// Leptos view types nest deeply; the optimised WASM build of the larger pages needs more than the default 128.
#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod components;
pub mod pages;
pub mod security;

#[cfg(feature = "ssr")]
pub mod server;

/// Entry point of the WASM bundle: attaches the reactive system to the server-rendered page.
#[cfg(feature = "hydrate")]
#[allow(unsafe_code)] // `#[wasm_bindgen]` exports an unmangled symbol
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
