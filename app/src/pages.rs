//! Pages, one module per area.

pub mod dashboard;
mod landing;
mod not_found;
mod security;
pub mod sign_in;

pub use landing::{LandingPage, Pillar, PILLARS};
pub use not_found::NotFoundPage;
pub use security::{PublicHeader, SecurityPage};
