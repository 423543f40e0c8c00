//! Pages, one module per area.

pub mod dashboard;
mod landing;
mod not_found;

pub use landing::LandingPage;
pub use not_found::NotFoundPage;
