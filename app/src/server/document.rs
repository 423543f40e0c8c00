//! The HTML document the server renders around the app. The hydration scripts carry the per-request CSP nonce
//! (provided as context), so no inline script runs without it; the stylesheet is linked under the name the build
//! gave it (content-hashed in release builds, see `static_files.rs`). The browser hydrates the body only.

use leptos::prelude::*;
use leptos_meta::MetaTags;

use crate::app::App;

pub fn shell(options: LeptosOptions) -> impl IntoView {
    let stylesheet = super::static_files::bundle_href(&options, "css");
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="dark light" />
                <link rel="stylesheet" id="leptos" href=stylesheet />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}
