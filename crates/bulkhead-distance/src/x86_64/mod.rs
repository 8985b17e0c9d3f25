//! x86-64 kernels: AVX2+FMA (`avx2.rs`) and AVX-512F (`avx512.rs`), selected by runtime detection.

pub(crate) mod avx2;
pub(crate) mod avx512;

/// Returns whether the running CPU supports both AVX2 and FMA.
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Returns whether the running CPU supports AVX-512F.
pub(crate) fn has_avx512f() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}
