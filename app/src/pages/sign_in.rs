//! The sign-in pages: email code, sign-up, authenticator enrolment, and the TOTP (or recovery code) step.
//! The server keeps each page behind the stage it belongs to (see `server/session.rs`).

mod email;
mod enroll;
mod sign_up;
mod verify;

pub use email::SignInPage;
pub use enroll::EnrollPage;
pub use sign_up::SignUpPage;
pub use verify::VerifyPage;
