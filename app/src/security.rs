//! The public security page's data: primitives, source references, threats and what we do not do yet, all
//! generated at compile time from `security/references.toml` (see `app/build.rs`). The numbers on the page
//! come from the core's constants instead (`crate::api::security`).
//!
//! With `ssr`: [`sources`] holds the referenced files, and [`check`] proves every reference still points at
//! its code.

#[cfg(feature = "ssr")]
pub mod check;
#[cfg(feature = "ssr")]
pub mod sources;

/// How far a primitive or threat is dealt with, stated honestly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Handled,
    Partial,
    InProgress,
    Gap,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Self::Handled => "handled",
            Self::Partial => "partial",
            Self::InProgress => "in progress",
            Self::Gap => "gap",
        }
    }

    /// The badge class (`style/main.css`).
    pub fn class(self) -> &'static str {
        match self {
            Self::Handled => "badge ok",
            Self::Partial => "badge warn",
            Self::InProgress | Self::Gap => "badge bad",
        }
    }
}

/// One section of the page: a security primitive.
#[derive(Debug)]
pub struct Primitive {
    pub id: &'static str,
    pub title: &'static str,
    pub status: Status,
    pub summary: &'static str,
    /// Descriptive lines with no constant behind them.
    pub facts: &'static [(&'static str, &'static str)],
}

/// Where a primitive is implemented: `symbol` occurs within lines `start..=end` of `path`.
#[derive(Debug)]
pub struct Reference {
    pub id: &'static str,
    pub primitive: &'static str,
    pub title: &'static str,
    /// Relative to the repository root.
    pub path: &'static str,
    pub start: u32,
    pub end: u32,
    pub symbol: &'static str,
}

/// A row of the threat table.
#[derive(Debug)]
pub struct Threat {
    pub scenario: &'static str,
    pub blast_radius: &'static str,
    pub mitigation: &'static str,
    pub status: Status,
    /// Ids of [`Reference`]s.
    pub references: &'static [&'static str],
}

/// An item of "what we do not do yet".
#[derive(Debug)]
pub struct NotYet {
    pub item: &'static str,
    pub detail: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/security_data.rs"));

/// Where the source view of the referenced files lives.
pub const SOURCE_PREFIX: &str = "/security/source/";

impl Reference {
    /// `path:start-end`, as shown on the page.
    pub fn label(&self) -> String {
        format!("{}:{}-{}", self.path, self.start, self.end)
    }

    /// The anchor of the range in the source view.
    pub fn anchor(&self) -> String {
        format!("L{}-L{}", self.start, self.end)
    }

    /// The source view of this range: highlighted (`lines`) and scrolled to (`#L<start>-L<end>`).
    pub fn href(&self) -> String {
        format!("{SOURCE_PREFIX}{}?lines={}-{}#{}", self.path, self.start, self.end, self.anchor())
    }
}

/// The reference with this id.
pub fn reference(id: &str) -> Option<&'static Reference> {
    REFERENCES.iter().find(|r| r.id == id)
}

/// The references of one primitive, in file order.
pub fn references_of(primitive: &str) -> impl Iterator<Item = &'static Reference> + '_ {
    REFERENCES.iter().filter(move |r| r.primitive == primitive)
}
