//! The source files the security page links to, embedded at compile time (server only). Exactly the files
//! named in `security/references.toml`: nothing else can be served, whatever path is asked for.

include!(concat!(env!("OUT_DIR"), "/security_sources.rs"));

/// The text of `path` if the security page references it (exact match; no normalisation).
pub fn source(path: &str) -> Option<&'static str> {
    SOURCES.iter().find(|(p, _)| *p == path).map(|(_, text)| *text)
}
