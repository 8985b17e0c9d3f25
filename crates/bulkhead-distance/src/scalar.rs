//! Portable scalar reference kernels: the definition every SIMD implementation is tested against.
//!
//! These loops are deliberately plain: one accumulator, left-to-right order, no manual unrolling.
//! They are the readable specification of each kernel and the fallback on CPUs without a SIMD path.

use crate::CosineParts;

/// Returns the dot product `Σ aᵢ·bᵢ` over the common length of `a` and `b`.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len(), "callers check lengths");
    let mut sum = 0.0_f32;
    for (x, y) in a.iter().zip(b) {
        sum += x * y;
    }
    sum
}

/// Returns the squared Euclidean distance `Σ (aᵢ - bᵢ)²` over the common length of `a` and `b`.
pub(crate) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len(), "callers check lengths");
    let mut sum = 0.0_f32;
    for (x, y) in a.iter().zip(b) {
        let diff = x - y;
        sum += diff * diff;
    }
    sum
}

/// Returns the three sums `a·b`, `a·a` and `b·b` that cosine distance is built from.
pub(crate) fn cosine_parts(a: &[f32], b: &[f32]) -> CosineParts {
    debug_assert_eq!(a.len(), b.len(), "callers check lengths");
    let mut parts = CosineParts::default();
    for (x, y) in a.iter().zip(b) {
        parts.ab += x * y;
        parts.aa += x * x;
        parts.bb += y * y;
    }
    parts
}

// The scalar kernels are safe functions; these thin `unsafe fn` shims give them the same pointer
// type as the SIMD kernels so that one `Kernels` table can hold any implementation.

/// Scalar dot product with the kernel-table signature.
///
/// # Safety
///
/// Always safe to call; the signature is `unsafe` only to match the SIMD kernels. `a` and `b`
/// should have equal lengths (the shorter length is used otherwise).
pub(crate) unsafe fn dot_kernel(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b)
}

/// Scalar squared L2 with the kernel-table signature.
///
/// # Safety
///
/// Always safe to call; see [`dot_kernel`].
pub(crate) unsafe fn l2_squared_kernel(a: &[f32], b: &[f32]) -> f32 {
    l2_squared(a, b)
}

/// Scalar cosine parts with the kernel-table signature.
///
/// # Safety
///
/// Always safe to call; see [`dot_kernel`].
pub(crate) unsafe fn cosine_parts_kernel(a: &[f32], b: &[f32]) -> CosineParts {
    cosine_parts(a, b)
}
