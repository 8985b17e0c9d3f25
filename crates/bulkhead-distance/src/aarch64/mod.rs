//! aarch64 kernels: NEON (`neon.rs`), selected by runtime detection.

pub(crate) mod neon;

/// Returns whether the running CPU supports NEON (always true on the `aarch64-*-linux` targets).
pub(crate) fn has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}
