//! The core's layers (docs/architecture.md): every `crate::` path in `src/**` must point down the table, so the
//! core has no import cycle and a capability never reaches up to what composes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom to top. A module may use the modules of lower rows; modules in one row never use each other.
const LAYERS: &[&[&str]] = &[
    &["scrub", "net", "email"],
    &["config_error"],
    &["db"],
    &["context"],
    &["keys"],
    &["mail"],
    &["audit"],
    &["runtime"],
    &["plans"],
    &["identity"],
    &["vault"],
    &["gateway"],
    &["agents"],
    &["billing"],
    &["admin"],
    &["config"],
    &["platform"],
];

/// Inside a module, the same rule for its files (by their first path segment under the module).
const SUBLAYERS: &[(&str, &[&[&str]])] =
    &[("gateway", &[&["permissions", "token"], &["pricing"], &["config", "store"], &["llm"], &["proxy"]])];

fn rank(table: &[&[&str]], name: &str) -> Option<usize> {
    table.iter().position(|row| row.contains(&name))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first segment of every `crate::` and `super::`-free path in `code` (comments removed), with
/// `use crate::{a, b::c}` groups expanded: `["a", "b"]`.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let before = &rest[..i];
            rest = &rest[i + "crate::".len()..];
            if before.ends_with('$') || before.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue; // `$crate::` in a macro, or a path like `deployclaw_crate::`
            }
            if let Some(group) = rest.strip_prefix('{') {
                // A group may span lines: read on through the rest of the file.
                let from = code.lines().skip(n).collect::<Vec<_>>().join("\n");
                let start = from.find("crate::{").map(|i| i + "crate::{".len()).unwrap_or(0);
                let mut depth = 1;
                let mut item = String::new();
                for c in from[start..].chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        ',' if depth == 1 => {
                            found.push((n + 1, first_segment(&item)));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 1 {
                        item.push(c);
                    }
                }
                if !item.trim().is_empty() {
                    found.push((n + 1, first_segment(&item)));
                }
                let _ = group;
                break;
            }
            found.push((n + 1, first_segment(rest)));
        }
    }
    found.retain(|(_, s)| !s.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

#[test]
fn every_core_import_points_down_the_layer_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut checked = 0;
    let mut ups = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let parts: Vec<String> =
            relative.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
        let module = parts[0].as_str();
        if module == "lib" {
            continue;
        }
        let own = rank(LAYERS, module)
            .unwrap_or_else(|| panic!("{module} (src/{}) is not in the layer table", relative.display()));
        let code = std::fs::read_to_string(file).unwrap();
        for (line, target) in crate_paths(&code) {
            checked += 1;
            if target == module {
                continue;
            }
            let Some(theirs) = rank(LAYERS, &target) else { continue }; // a macro or an item of lib.rs
            if theirs >= own {
                ups.entry(format!("src/{}:{line}", relative.display())).or_insert(format!("{module} -> {target}"));
            }
        }
    }
    assert!(checked > 100, "the scan found the core's imports ({checked})");
    assert!(ups.is_empty(), "imports that point up or sideways in the layer table:\n{ups:#?}");
}

#[test]
fn inside_a_module_imports_point_down_its_own_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (module, table) in SUBLAYERS {
        let mut files = vec![src.join(format!("{module}.rs"))];
        rust_files(&src.join(module), &mut files);
        let mut ups = Vec::new();
        for file in &files {
            // The part a file belongs to: `gateway/llm/spend.rs` is part of `llm`.
            let Ok(inner) = file.strip_prefix(src.join(module)) else { continue }; // the module root sees all
            let name = first_segment(&inner.iter().next().unwrap().to_string_lossy());
            let own = rank(table, &name).unwrap_or_else(|| panic!("{module}/{name} is not in its table"));
            let code = std::fs::read_to_string(file).unwrap();
            let prefix = format!("crate::{module}::");
            for (n, line) in code.lines().enumerate() {
                let code_part = line.split("//").next().unwrap_or("");
                // `super::` in a file directly under the module names a sibling; deeper, it names the part.
                let siblings = inner.components().count() == 1;
                let supers = code_part.split("super::").skip(1).filter(|_| siblings);
                for part in code_part.split(&prefix).skip(1).chain(supers) {
                    let target = first_segment(part);
                    if let Some(theirs) = rank(table, &target) {
                        if target != name && theirs >= own {
                            ups.push(format!("{}:{}: {name} -> {target}", file.display(), n + 1));
                        }
                    }
                }
            }
        }
        assert!(ups.is_empty(), "{module}: imports against its table:\n{ups:#?}");
    }
}

#[test]
fn the_scan_sees_grouped_and_multi_line_imports() {
    let code = "use crate::{\n    audit::{self, Actor},\n    db::Db,\n};\n// use crate::billing::X;\nlet x = crate::vault::open();\n";
    let found: Vec<String> = crate_paths(code).into_iter().map(|(_, s)| s).collect();
    assert_eq!(found, ["audit", "db", "vault"]);
}
