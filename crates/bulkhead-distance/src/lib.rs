//! SIMD f32 distance kernels (dot, squared L2, cosine) and the aligned `VectorArena` they scan.
//!
//! # Implementations and dispatch
//!
//! Every kernel exists as a scalar reference (`scalar.rs`), AVX2+FMA (`x86_64/avx2.rs`), AVX-512F
//! (`x86_64/avx512.rs`) and NEON (`aarch64/neon.rs`). The best one the CPU supports is chosen once,
//! on first use, by runtime feature detection and cached in a [`OnceLock`] as a table of function
//! pointers ([`Kernels`]); [`active_isa`] reports which one runs. [`Kernels::for_isa`] and
//! [`available_isas`] give access to every implementation the CPU supports, for tests and
//! benchmarks.
//!
//! # Distance convention
//!
//! Smaller is closer, and every [`Metric`] distance is non-negative and never NaN for finite input
//! (the HNSW graph asserts on negative distances and panics on NaN):
//!
//! | metric              | distance                           | range                     |
//! |---------------------|------------------------------------|---------------------------|
//! | [`Metric::L2`]      | `Σ (aᵢ - bᵢ)²` (squared Euclidean) | `[0, ∞)`                  |
//! | [`Metric::Cosine`]  | `1 - a·b / (‖a‖·‖b‖)`              | clamped to `[0, 2]`       |
//! | [`Metric::UnitDot`] | `max(0, 1 - a·b)`                  | `[0, 2]` for unit vectors |
//!
//! `UnitDot` is meant for unit-norm vectors, where it equals cosine distance without the norms. For
//! vectors whose dot product exceeds 1 it clamps to 0, so all of them tie: use `Cosine` (or
//! normalise) for unnormalised data. The raw [`dot`] function returns the plain, unclamped dot
//! product.
//!
//! Cosine distance with a zero vector on either side is defined as `1.0` (as for orthogonal
//! vectors) rather than an error, so one zero row cannot fail a whole batch; the same value is
//! returned when the norms underflow or overflow `f32`. The result is clamped to `[0, 2]` because
//! rounding can push `a·b / (‖a‖·‖b‖)` slightly outside `[-1, 1]`.
//!
//! # Safety
//!
//! This is the one crate of the workspace that contains `unsafe` code: SIMD intrinsics (raw-pointer
//! loads) and the arena's aligned allocation. Every `unsafe` block carries a `// SAFETY:` comment
//! and every `unsafe fn` a `# Safety` section.
#![expect(
    unsafe_code,
    reason = "the one crate allowed SIMD intrinsics and raw allocation; see ARCHITECTURE.md"
)]

mod arena;
mod error;
mod kernels;
mod query;
mod scalar;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(test)]
mod tests;

use std::fmt;

pub use arena::{ROW_ALIGN, VectorArena};
pub use error::DistanceError;
pub use kernels::Kernels;
pub use query::Query;

/// An instruction set that a family of kernels is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// The portable scalar reference, available everywhere.
    Scalar,
    /// x86-64 AVX2 with FMA (256-bit vectors).
    Avx2Fma,
    /// x86-64 AVX-512 Foundation (512-bit vectors, masked loads).
    Avx512F,
    /// aarch64 Advanced SIMD (128-bit vectors).
    Neon,
}

impl Isa {
    /// Every instruction set this crate has kernels for, on any target, in order of preference
    /// (last best).
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2Fma, Isa::Avx512F, Isa::Neon];

    /// Returns the name used in logs and metrics: `"scalar"`, `"avx2+fma"`, `"avx512f"` or
    /// `"neon"`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Avx512F => "avx512f",
            Isa::Neon => "neon",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A distance function; smaller is closer (see the crate documentation for the exact definitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `1 - cos(a, b)`, clamped to `[0, 2]`; `1.0` if either vector is zero.
    Cosine,
    /// `max(0, 1 - a·b)`, meant for unit-norm vectors (a collection's `Dot` metric, which ranks by the
    /// raw inner product, is not this one).
    UnitDot,
    /// Squared Euclidean distance `Σ (aᵢ - bᵢ)²`.
    L2,
}

/// The three sums cosine distance is built from, accumulated in one pass over both vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CosineParts {
    /// `a·b`.
    pub(crate) ab: f32,
    /// `a·a`.
    pub(crate) aa: f32,
    /// `b·b`.
    pub(crate) bb: f32,
}

/// Turns `a·b`, `a·a` and `b·b` into a cosine distance in `[0, 2]` that is never NaN for finite
/// sums.
#[inline]
pub(crate) fn cosine_from_parts(ab: f32, aa: f32, bb: f32) -> f32 {
    let denominator = aa.sqrt() * bb.sqrt();
    // Zero vectors, and norms so small or large that the product underflows or overflows, are
    // defined to be at distance 1 (no information about the angle) instead of producing a NaN or an
    // infinity.
    if !(denominator > 0.0 && denominator.is_finite()) {
        return 1.0;
    }
    let distance = 1.0 - ab / denominator;
    if distance.is_nan() { 1.0 } else { distance.clamp(0.0, 2.0) }
}

/// Turns a dot product into the [`Metric::UnitDot`] distance `max(0, 1 - a·b)`.
#[inline]
pub(crate) fn dot_distance(dot: f32) -> f32 {
    // `f32::max` returns the other operand when one is NaN, so this is never NaN either.
    (1.0 - dot).max(0.0)
}

/// Returns the instruction set whose kernels the free functions of this crate use.
#[inline]
pub fn active_isa() -> Isa {
    Kernels::active().isa()
}

/// Returns every instruction set with kernels usable on the running CPU, scalar first.
pub fn available_isas() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|&isa| Kernels::for_isa(isa).is_some()).collect()
}

/// Returns the dot product `a·b` using the active kernels.
///
/// # Errors
///
/// [`DistanceError::DimensionMismatch`] if `a.len() != b.len()`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> Result<f32, DistanceError> {
    Kernels::active().dot(a, b)
}

/// Returns the squared Euclidean distance using the active kernels.
///
/// # Errors
///
/// [`DistanceError::DimensionMismatch`] if `a.len() != b.len()`.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> Result<f32, DistanceError> {
    Kernels::active().l2_squared(a, b)
}

/// Returns the cosine distance `1 - cos(a, b)` in `[0, 2]` (`1.0` if either is zero) using the
/// active kernels.
///
/// # Errors
///
/// [`DistanceError::DimensionMismatch`] if `a.len() != b.len()`.
#[inline]
pub fn cosine_distance(a: &[f32], b: &[f32]) -> Result<f32, DistanceError> {
    Kernels::active().cosine_distance(a, b)
}

/// Returns the `metric` distance between `a` and `b` using the active kernels.
///
/// # Errors
///
/// [`DistanceError::DimensionMismatch`] if `a.len() != b.len()`.
#[inline]
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> Result<f32, DistanceError> {
    Kernels::active().distance(metric, a, b)
}

/// Writes the `metric` distance from `query` to each row `ids[i]` of `arena` into `out[i]`, using
/// the active kernels. See [`Kernels::distances`].
///
/// # Errors
///
/// As [`Kernels::distances`].
#[inline]
pub fn distances(
    metric: Metric,
    query: &[f32],
    arena: &VectorArena,
    ids: &[u32],
    out: &mut [f32],
) -> Result<(), DistanceError> {
    Kernels::active().distances(metric, query, arena, ids, out)
}

/// Writes the `metric` distance from `query` to every row of `arena` into `out`, using the active
/// kernels.
///
/// # Errors
///
/// As [`Kernels::distances_all`].
#[inline]
pub fn distances_all(
    metric: Metric,
    query: &[f32],
    arena: &VectorArena,
    out: &mut [f32],
) -> Result<(), DistanceError> {
    Kernels::active().distances_all(metric, query, arena, out)
}
