//! The `deployclaw` server binary.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> std::process::ExitCode {
    deployclaw_app::server::main().await
}
