//! Static files of the built site (the WASM bundle, its JS and CSS under `/pkg/`, public assets), served so that
//! a browser downloads each byte once and as few bytes as possible.
//!
//! - Precompressed: the release build writes `.br` and `.gz` beside every file (`cargo leptos build
//!   --precompress`); the variant is chosen by `Accept-Encoding` (brotli, then gzip, then the plain file), and
//!   every answer says `Vary: Accept-Encoding`.
//! - Hashed names (`deployclaw.<content hash>.wasm`, from cargo-leptos `hash-files`) never change content:
//!   `Cache-Control: public, max-age=31536000, immutable`, so a returning browser does not even ask.
//! - Everything else is revalidated (`Cache-Control: no-cache`) and answered `304 Not Modified` when the
//!   browser's `ETag` (`If-None-Match`) or date (`If-Modified-Since`) still matches.
//!
//! Dynamic answers (pages, server functions) are never compressed here: see `docs/performance.md` (BREACH).

use std::path::Path;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// The URL of the bundle's `ext` file (`css`, `js`, `wasm`) as this build named it: with cargo-leptos
/// `hash-files`, `/pkg/<name>.<hash>.<ext>` from `hash.txt` beside the server binary (where Leptos reads it
/// too), else `/pkg/<name>.<ext>`. Read once.
pub fn bundle_href(options: &leptos::config::LeptosOptions, ext: &str) -> String {
    static HASHES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    let hashes = HASHES.get_or_init(|| {
        let file = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join(options.hash_file.as_ref())));
        let text =
            file.filter(|_| options.hash_files).and_then(|f| std::fs::read_to_string(f).ok()).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(kind, hash)| (kind.trim().to_string(), hash.trim().to_string()))
            .collect()
    });
    let name = &options.output_name;
    let pkg = &options.site_pkg_dir;
    match hashes.iter().find(|(kind, _)| kind == ext) {
        Some((_, hash)) => format!("/{pkg}/{name}.{hash}.{ext}"),
        None => format!("/{pkg}/{name}.{ext}"),
    }
}

/// One year: what browsers accept as "forever" for immutable assets.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Revalidate before each use (cheap: a `304` without a body).
pub const REVALIDATE: &str = "no-cache";

/// Whether `path` names a content-hashed bundle file: `/pkg/<name>.<hash>.<js|wasm|css>`, the hash being
/// cargo-leptos's (base64url MD5, 22 characters).
pub fn is_hashed_asset(path: &str) -> bool {
    let Some(file) = path.strip_prefix("/pkg/") else { return false };
    if file.contains('/') {
        return false;
    }
    let mut parts = file.rsplitn(3, '.');
    let (Some(ext), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next()) else { return false };
    matches!(ext, "js" | "wasm" | "css")
        && !stem.is_empty()
        && hash.len() >= 16
        && hash.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The file at `uri`'s path under `site_root`, if there is one (`None`: not a static file, or not GET/HEAD).
/// Takes the request's parts, not the request: its body is never needed.
pub async fn serve(site_root: &Path, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let path = uri.path().to_string();
    // Only what choosing and revalidating a file needs goes to the file server.
    let mut file_req = http::Request::builder().method(method.clone()).uri(uri.clone());
    for name in [header::ACCEPT_ENCODING, header::IF_MODIFIED_SINCE, header::IF_UNMODIFIED_SINCE, header::RANGE] {
        if let Some(v) = headers.get(&name) {
            file_req = file_req.header(name, v);
        }
    }
    let file_req = file_req.body(Body::empty()).ok()?;
    let res = ServeDir::new(site_root)
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(false)
        .oneshot(file_req)
        .await
        .ok()?
        .into_response();
    if matches!(res.status(), StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) {
        return None;
    }
    Some(with_cache_headers(&path, headers.get(header::IF_NONE_MATCH), res))
}

/// Adds `Cache-Control`, `Vary` and an `ETag` (size, modification time and encoding of what is sent), and turns
/// a `200` whose `ETag` the browser already holds into a `304`.
fn with_cache_headers(path: &str, if_none_match: Option<&HeaderValue>, mut res: Response) -> Response {
    let cache = if is_hashed_asset(path) { IMMUTABLE } else { REVALIDATE };
    let etag = etag(&res);
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let Some(etag) = etag else { return res };
    h.insert(header::ETAG, etag.clone());
    let matches = if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag));
    if res.status() == StatusCode::OK && matches {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        for name in [header::ETAG, header::CACHE_CONTROL, header::VARY, header::LAST_MODIFIED] {
            if let Some(v) = res.headers().get(&name) {
                not_modified.headers_mut().insert(name, v.clone());
            }
        }
        return not_modified;
    }
    res
}

/// `"<length>-<modified seconds>-<encoding>"` in hex, from the answer's own headers (as nginx does, without
/// reading the file); `None` for answers that are not a whole file.
fn etag(res: &Response) -> Option<HeaderValue> {
    if res.status() != StatusCode::OK && res.status() != StatusCode::NOT_MODIFIED {
        return None;
    }
    let h = res.headers();
    let len: u64 = h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()?;
    let modified = h.get(header::LAST_MODIFIED)?.to_str().ok()?;
    let modified = httpdate_seconds(modified)?;
    let encoding = h.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    HeaderValue::from_str(&format!("\"{len:x}-{modified:x}-{encoding}\"")).ok()
}

/// Seconds since the epoch of an HTTP date (`Last-Modified`).
fn httpdate_seconds(text: &str) -> Option<u64> {
    u64::try_from(chrono::DateTime::parse_from_rfc2822(text).ok()?.timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_hashed_bundle_files_are_immutable() {
        for hashed in [
            "/pkg/deployclaw.hF3kQ9xY2mN8pL4tR6vW1z.wasm",
            "/pkg/deployclaw.a1B2c3D4e5F6g7H8i9J0kL.js",
            "/pkg/deployclaw.Z_-9Zz_-9Zz_-9Zz_-9Zz_.css",
        ] {
            assert!(is_hashed_asset(hashed), "{hashed}");
        }
        for plain in [
            "/pkg/deployclaw.wasm",
            "/pkg/deployclaw.js",
            "/favicon.svg",
            "/pkg/sub/deployclaw.hF3kQ9xY2mN8pL4tR6vW1z.wasm",
            "/pkg/deployclaw.hF3kQ9xY2mN8pL4tR6vW1z.html",
            "/pkg/.hF3kQ9xY2mN8pL4tR6vW1z.js",
            "/pkg/deployclaw.short.js",
            "/pkg/deployclaw.has space in it!!!.js",
        ] {
            assert!(!is_hashed_asset(plain), "{plain}");
        }
    }

    #[test]
    fn http_dates_become_seconds() {
        assert_eq!(httpdate_seconds("Thu, 01 Jan 1970 00:01:40 GMT"), Some(100));
        assert_eq!(httpdate_seconds("not a date"), None);
    }
}
