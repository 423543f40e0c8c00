//! Pages, one module per area.

pub mod dashboard;
mod landing;
mod not_found;
pub mod sign_in;

pub use landing::LandingPage;
pub use not_found::NotFoundPage;
