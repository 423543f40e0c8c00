//! What one container may be given: the bounds every agent's memory and CPU settings, and every plan's
//! limits, are checked against.

/// The most memory an agent may ask for (plans may allow less).
pub const MAX_MEMORY_MIB: u32 = 8192;
/// CPU in thousandths of a core: the least an agent may ask for.
pub const MIN_CPU_MILLIS: u32 = 100;
/// CPU in thousandths of a core: the most an agent may ask for (plans may allow less).
pub const MAX_CPU_MILLIS: u32 = 4000;
/// CPU in thousandths of a core when an agent asks for nothing.
pub const DEFAULT_CPU_MILLIS: u32 = 1000;
