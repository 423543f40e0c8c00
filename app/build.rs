//! Turns `security/references.toml` (the public security page's data: primitives, source references,
//! threats, what we do not do yet) into Rust statics, so the page has no hand-typed copy of it. With the
//! `ssr` feature it also embeds every referenced source file, which `/security/source/<path>` serves.
//!
//! Structural mistakes (an unknown status, a duplicate id, a threat naming a reference that does not exist)
//! stop the build here; whether each reference still points at its code is checked by the tests
//! (`deployclaw_app::security::check`).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Data {
    primitive: Vec<Primitive>,
    reference: Vec<Reference>,
    threat: Vec<Threat>,
    not_yet: Vec<NotYet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Primitive {
    id: String,
    title: String,
    status: String,
    summary: String,
    #[serde(default)]
    facts: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reference {
    id: String,
    primitive: String,
    title: String,
    path: String,
    start: u32,
    end: u32,
    symbol: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Threat {
    scenario: String,
    blast_radius: String,
    mitigation: String,
    status: String,
    references: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotYet {
    item: String,
    detail: String,
}

fn status(s: &str, what: &str) -> &'static str {
    match s {
        "handled" => "Status::Handled",
        "partial" => "Status::Partial",
        "in-progress" => "Status::InProgress",
        "gap" => "Status::Gap",
        other => {
            panic!("security/references.toml: {what} has status {other:?}; use handled, partial, in-progress or gap")
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("the app crate lives in the workspace").to_path_buf();
    let data_path = root.join("security/references.toml");
    // Relative to this package (cargo resolves it against the package root at every build), never absolute:
    // two checkouts sharing one target directory share this script's fingerprint, and an absolute path would
    // keep watching the other checkout's file.
    println!("cargo:rerun-if-changed=../security/references.toml");
    println!("cargo:rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(&data_path).unwrap_or_else(|e| panic!("{}: {e}", data_path.display()));
    let data: Data = toml::from_str(&text).unwrap_or_else(|e| panic!("security/references.toml: {e}"));

    let mut ids = BTreeSet::new();
    for p in &data.primitive {
        assert!(ids.insert(p.id.clone()), "security/references.toml: duplicate primitive id {:?}", p.id);
    }
    let primitives = ids;
    let mut ids = BTreeSet::new();
    for r in &data.reference {
        assert!(ids.insert(r.id.clone()), "security/references.toml: duplicate reference id {:?}", r.id);
        assert!(
            primitives.contains(&r.primitive),
            "security/references.toml: reference {:?} names unknown primitive {:?}",
            r.id,
            r.primitive
        );
        let path = Path::new(&r.path);
        assert!(
            path.is_relative() && path.components().all(|c| matches!(c, std::path::Component::Normal(_))),
            "security/references.toml: reference {:?} path {:?} must be relative to the repository, without `..`",
            r.id,
            r.path
        );
    }
    for t in &data.threat {
        for id in &t.references {
            assert!(
                ids.contains(id),
                "security/references.toml: threat {:?} names unknown reference {id:?}",
                t.scenario
            );
        }
    }

    let mut out = String::new();
    out.push_str("/// The page's sections, in order.\npub static PRIMITIVES: &[Primitive] = &[\n");
    for p in &data.primitive {
        let facts: Vec<String> = p.facts.iter().map(|(k, v)| format!("({k:?}, {v:?})")).collect();
        writeln!(
            out,
            "    Primitive {{ id: {:?}, title: {:?}, status: {}, summary: {:?}, facts: &[{}] }},",
            p.id,
            p.title,
            status(&p.status, &p.id),
            p.summary,
            facts.join(", ")
        )
        .unwrap();
    }
    out.push_str("];\n\n/// Where each primitive is implemented.\npub static REFERENCES: &[Reference] = &[\n");
    for r in &data.reference {
        writeln!(
            out,
            "    Reference {{ id: {:?}, primitive: {:?}, title: {:?}, path: {:?}, start: {}, end: {}, symbol: {:?} }},",
            r.id, r.primitive, r.title, r.path, r.start, r.end, r.symbol
        )
        .unwrap();
    }
    out.push_str("];\n\n/// The threat table.\npub static THREATS: &[Threat] = &[\n");
    for t in &data.threat {
        writeln!(
            out,
            "    Threat {{ scenario: {:?}, blast_radius: {:?}, mitigation: {:?}, status: {}, references: &{:?} }},",
            t.scenario,
            t.blast_radius,
            t.mitigation,
            status(&t.status, &t.scenario),
            t.references
        )
        .unwrap();
    }
    out.push_str("];\n\n/// What we do not do yet.\npub static NOT_YET: &[NotYet] = &[\n");
    for n in &data.not_yet {
        writeln!(out, "    NotYet {{ item: {:?}, detail: {:?} }},", n.item, n.detail).unwrap();
    }
    out.push_str("];\n");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out_dir.join("security_data.rs"), out).expect("write security_data.rs");

    // The referenced files themselves, only for the server (the browser bundle never serves source).
    let mut sources = String::from(
        "/// Every file the data names, by its repository path.\npub static SOURCES: &[(&str, &str)] = &[\n",
    );
    if std::env::var_os("CARGO_FEATURE_SSR").is_some() {
        let paths: BTreeSet<&str> = data.reference.iter().map(|r| r.path.as_str()).collect();
        for path in paths {
            let file = root.join(path);
            println!("cargo:rerun-if-changed=../{path}");
            writeln!(sources, "    ({path:?}, include_str!({:?})),", file.display().to_string()).unwrap();
        }
    }
    sources.push_str("];\n");
    std::fs::write(out_dir.join("security_sources.rs"), sources).expect("write security_sources.rs");
}
