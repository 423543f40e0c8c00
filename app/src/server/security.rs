//! The plain routes around the public security page: the source view its links open, and
//! `/.well-known/security.txt` (RFC 9116).

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use deployclaw::Platform;
use serde::Deserialize;

use crate::security::sources::source;
use crate::security::REFERENCES;

/// The route of the source view (`/security/source/src/keys/envelope.rs`).
pub const SOURCE_ROUTE: &str = "/security/source/{*path}";
/// RFC 9116's location.
pub const SECURITY_TXT_PATH: &str = "/.well-known/security.txt";
/// How far ahead `Expires:` lies (RFC 9116 recommends less than a year).
pub const SECURITY_TXT_VALIDITY_DAYS: i64 = 180;

#[derive(Debug, Default, Deserialize)]
pub struct SourceQuery {
    /// `start-end`: the lines to highlight.
    lines: Option<String>,
}

/// `start-end` with `1 <= start <= end`.
fn parse_lines(text: &str) -> Option<(usize, usize)> {
    let (a, b) = text.split_once('-')?;
    let (a, b) = (a.trim().parse::<usize>().ok()?, b.trim().parse::<usize>().ok()?);
    (a >= 1 && a <= b).then_some((a, b))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML view of one referenced file: numbered lines with `L<n>` anchors, an `L<start>-L<end>` anchor
/// for every referenced range, and the requested range highlighted.
pub fn render_source(path: &str, text: &str, highlight: Option<(usize, usize)>, stylesheet: &str) -> String {
    let references: Vec<_> = REFERENCES.iter().filter(|r| r.path == path).collect();
    let mut anchors: BTreeSet<(usize, usize)> = references.iter().map(|r| (r.start as usize, r.end as usize)).collect();
    anchors.extend(highlight);
    let path_html = escape(path);
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"dark light\">\
         <title>{path_html} · DeployClaw source</title>\
         <link rel=\"icon\" type=\"image/svg+xml\" href=\"/favicon.svg\">\
         <link rel=\"stylesheet\" href=\"{stylesheet}\"></head>\n<body class=\"source-view\">\
         <a class=\"skip-link\" href=\"#source\">Skip to the code</a>\
         <header class=\"site-header\"><a href=\"/security\">&larr; Security and threat model</a></header>\
         <main id=\"main\"><h1><code>{path_html}</code></h1>\
         <p class=\"muted\">The file as compiled into this server. The security page references these lines:</p><ul>"
    );
    for r in &references {
        html.push_str(&format!(
            "<li><a href=\"{}\">{}-{}</a> {}</li>",
            escape(&r.href()),
            r.start,
            r.end,
            escape(r.title)
        ));
    }
    html.push_str("</ul><pre class=\"source\" id=\"source\" tabindex=\"0\"><code>");
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        for (start, end) in anchors.iter().filter(|(start, _)| *start == n) {
            html.push_str(&format!("<span class=\"range-anchor\" id=\"L{start}-L{end}\"></span>"));
        }
        let class = match highlight {
            Some((a, b)) if (a..=b).contains(&n) => "line hl",
            _ => "line",
        };
        html.push_str(&format!(
            "<span class=\"{class}\" id=\"L{n}\"><a class=\"ln\" href=\"#L{n}\" aria-hidden=\"true\" tabindex=\"-1\">{n}</a>{}</span>",
            escape(line)
        ));
    }
    html.push_str("</code></pre></main></body></html>\n");
    html
}

/// `GET /security/source/{path}`: exactly the files the security page references, nothing else (404).
pub async fn source_view(
    State(options): State<leptos::config::LeptosOptions>,
    Path(path): Path<String>,
    Query(query): Query<SourceQuery>,
) -> Response {
    let Some(text) = source(&path) else {
        return (StatusCode::NOT_FOUND, "Not found").into_response();
    };
    let highlight = query.lines.as_deref().and_then(parse_lines);
    let stylesheet = super::static_files::bundle_href(&options, "css");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], render_source(&path, text, highlight, &stylesheet))
        .into_response()
}

/// The text of security.txt for this deployment, valid for [`SECURITY_TXT_VALIDITY_DAYS`] from `now`.
pub fn security_txt(platform: &Platform, now: chrono::DateTime<chrono::Utc>) -> String {
    let public = &platform.config().server.public_url;
    let at = |path: &str| public.join(path).map(|u| u.to_string()).unwrap_or_else(|_| format!("{public}{path}"));
    let expires =
        (now + chrono::Duration::days(SECURITY_TXT_VALIDITY_DAYS)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!(
        "# Reporting security problems in DeployClaw: see the policy below.\n\
         Contact: {}\n\
         Expires: {expires}\n\
         Preferred-Languages: en\n\
         Canonical: {}\n\
         Policy: {}\n",
        platform.config().security.contact,
        at(".well-known/security.txt"),
        at("security"),
    )
}

/// `GET /.well-known/security.txt`.
pub async fn security_txt_route(State(platform): State<Platform>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], security_txt(&platform, chrono::Utc::now())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ranges_parse_only_when_ordered_and_positive() {
        assert_eq!(parse_lines("40-60"), Some((40, 60)));
        assert_eq!(parse_lines("7-7"), Some((7, 7)));
        for bad in ["", "40", "0-3", "9-2", "a-b", "-3", "1--2"] {
            assert_eq!(parse_lines(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_view_escapes_code_and_marks_the_range() {
        let html = render_source("x.rs", "fn a() {}\nlet s = \"<script>\";\nend", Some((2, 3)), "/pkg/x.css");
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("<span class=\"range-anchor\" id=\"L2-L3\"></span><span class=\"line hl\" id=\"L2\">"));
        assert!(html.contains("<span class=\"line\" id=\"L1\">"));
        assert!(html.contains("<span class=\"line hl\" id=\"L3\">"));
    }
}
