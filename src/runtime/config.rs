//! The container runtime's settings.

/// Where agents run.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The Docker-API socket (`unix:///...`); default: discovered (DOCKER_HOST, Docker's, Podman's).
    pub docker_host: Option<String>,
    /// The private IPv4 block agent networks are cut from, one /28 each.
    pub network_pool: crate::runtime::subnets::Pool,
    /// The built-in templates plus the operator's `[[runtime.templates]]`.
    pub templates: crate::runtime::hardening::Templates,
}
