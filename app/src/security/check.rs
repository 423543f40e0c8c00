//! Proof that the security page still describes the code: every reference's file exists, its line range
//! is inside the file, and its symbol occurs within that range; every primitive has a reference (only one
//! still in progress may have none yet).

use std::path::Path;

use super::{Reference, Status, PRIMITIVES, REFERENCES};

/// What is wrong with `reference` given the text of its file; `None` when the file does not exist.
pub fn check_reference(reference: &Reference, text: Option<&str>) -> Result<(), String> {
    let at = format!("reference {:?} ({})", reference.id, reference.label());
    let text = text.ok_or_else(|| format!("{at}: the file does not exist"))?;
    let lines: Vec<&str> = text.lines().collect();
    let (start, end) = (reference.start as usize, reference.end as usize);
    if start < 1 || start > end || end > lines.len() {
        return Err(format!("{at}: the range is not within the file's {} lines", lines.len()));
    }
    if reference.symbol.trim().is_empty() {
        return Err(format!("{at}: the symbol is empty"));
    }
    let range = lines[start - 1..end].join("\n");
    if !range.contains(reference.symbol) {
        let found = lines.iter().position(|l| l.contains(reference.symbol));
        let hint = match found {
            Some(i) => format!("; it is now at line {}", i + 1),
            None => "; it is not in the file at all".to_string(),
        };
        return Err(format!("{at}: {:?} is not within lines {start}-{end}{hint}", reference.symbol));
    }
    Ok(())
}

/// Every problem with the page's references, read from the repository at `root`.
pub fn check_all(root: &Path) -> Vec<String> {
    let mut problems: Vec<String> = REFERENCES
        .iter()
        .filter_map(|r| {
            let text = std::fs::read_to_string(root.join(r.path)).ok();
            check_reference(r, text.as_deref()).err()
        })
        .collect();
    problems.extend(primitives_without_references());
    problems
}

/// Primitives that link to no code although they claim to be (at least partly) implemented.
pub fn primitives_without_references() -> Vec<String> {
    PRIMITIVES
        .iter()
        .filter(|p| p.status != Status::InProgress && super::references_of(p.id).next().is_none())
        .map(|p| format!("primitive {:?} has no source reference", p.id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "//! A module.\n\n/// Builds it.\npub fn aad() -> Vec<u8> {\n    Vec::new()\n}\n";

    fn entry(start: u32, end: u32, symbol: &'static str) -> Reference {
        Reference { id: "test", primitive: "credentials", title: "test", path: "x.rs", start, end, symbol }
    }

    #[test]
    fn a_reference_whose_range_holds_its_symbol_passes() {
        assert_eq!(check_reference(&entry(3, 6, "fn aad"), Some(FILE)), Ok(()));
        assert_eq!(check_reference(&entry(4, 4, "fn aad"), Some(FILE)), Ok(()));
    }

    #[test]
    fn a_wrong_line_range_fails_and_says_where_the_symbol_went() {
        let err = check_reference(&entry(1, 3, "fn aad"), Some(FILE)).unwrap_err();
        assert!(err.contains("not within lines 1-3") && err.contains("now at line 4"), "{err}");
    }

    #[test]
    fn ranges_outside_the_file_or_backwards_fail() {
        for (start, end) in [(0, 2), (5, 4), (4, 7), (100, 200)] {
            let err = check_reference(&entry(start, end, "fn aad"), Some(FILE)).unwrap_err();
            assert!(err.contains("not within the file's 6 lines"), "{start}-{end}: {err}");
        }
    }

    #[test]
    fn a_missing_file_or_symbol_fails() {
        assert!(check_reference(&entry(1, 2, "fn aad"), None).unwrap_err().contains("does not exist"));
        let err = check_reference(&entry(1, 6, "fn associated_data"), Some(FILE)).unwrap_err();
        assert!(err.contains("not in the file at all"), "{err}");
        assert!(check_reference(&entry(1, 6, " "), Some(FILE)).unwrap_err().contains("empty"));
    }

    #[test]
    fn every_primitive_except_work_in_progress_has_a_reference() {
        assert_eq!(primitives_without_references(), Vec::<String>::new());
    }
}
