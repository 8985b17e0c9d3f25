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
//! | metric            | distance                          | range                       |
//! |-------------------|-----------------------------------|-----------------------------|
//! | [`Metric::L2`]     | `Σ (aᵢ - bᵢ)²` (squared Euclidean) | `[0, ∞)`                    |
//! | [`Metric::Cosine`] | `1 - a·b / (‖a‖·‖b‖)`             | clamped to `[0, 2]`         |
//! | [`Metric::Dot`]    | `max(0, 1 - a·b)`                 | `[0, 2]` for unit vectors   |
//!
//! `Dot` is meant for unit-norm vectors, where it equals cosine distance without the norms. For
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
mod scalar;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::OnceLock;

pub use arena::{ROW_ALIGN, VectorArena};
pub use error::DistanceError;

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
    /// `max(0, 1 - a·b)`, meant for unit-norm vectors.
    Dot,
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
fn cosine_from_parts(ab: f32, aa: f32, bb: f32) -> f32 {
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

/// Turns a dot product into the [`Metric::Dot`] distance `max(0, 1 - a·b)`.
#[inline]
fn dot_distance(dot: f32) -> f32 {
    // `f32::max` returns the other operand when one is NaN, so this is never NaN either.
    (1.0 - dot).max(0.0)
}

/// Kernel signature: both slices must have equal lengths and the CPU must support the kernel's ISA.
type ScalarKernel = unsafe fn(&[f32], &[f32]) -> f32;
/// Kernel signature for the fused cosine pass, with the same contract as [`ScalarKernel`].
type CosineKernel = unsafe fn(&[f32], &[f32]) -> CosineParts;

/// A table of kernels for one instruction set that the running CPU supports.
///
/// A `Kernels` value can only be obtained from [`Kernels::active`] or [`Kernels::for_isa`], both of
/// which check the CPU first, so calling its kernels is always sound.
#[derive(Clone, Copy)]
pub struct Kernels {
    isa: Isa,
    dot: ScalarKernel,
    l2_squared: ScalarKernel,
    cosine_parts: CosineKernel,
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels").field("isa", &self.isa).finish_non_exhaustive()
    }
}

/// The kernels chosen on first use.
static ACTIVE: OnceLock<Kernels> = OnceLock::new();

impl Kernels {
    /// Returns the best kernels for the running CPU, detected once and cached.
    #[inline]
    pub fn active() -> &'static Kernels {
        ACTIVE.get_or_init(|| Isa::ALL.iter().rev().find_map(|&isa| Kernels::for_isa(isa)).unwrap_or(SCALAR))
    }

    /// Returns the kernels for `isa` if this build contains them and the running CPU supports them.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        match isa {
            Isa::Scalar => Some(SCALAR),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma if x86_64::has_avx2_fma() => Some(Kernels {
                isa,
                dot: x86_64::avx2::dot,
                l2_squared: x86_64::avx2::l2_squared,
                cosine_parts: x86_64::avx2::cosine_parts,
            }),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512F if x86_64::has_avx512f() => Some(Kernels {
                isa,
                dot: x86_64::avx512::dot,
                l2_squared: x86_64::avx512::l2_squared,
                cosine_parts: x86_64::avx512::cosine_parts,
            }),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon if aarch64::has_neon() => Some(Kernels {
                isa,
                dot: aarch64::neon::dot,
                l2_squared: aarch64::neon::l2_squared,
                cosine_parts: aarch64::neon::cosine_parts,
            }),
            _ => None,
        }
    }

    /// Returns the instruction set these kernels are written for.
    #[inline]
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Returns the dot product `a·b`.
    ///
    /// # Errors
    ///
    /// [`DistanceError::DimensionMismatch`] if `a.len() != b.len()`.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> Result<f32, DistanceError> {
        check_lengths(a, b)?;
        Ok(self.dot_unchecked(a, b))
    }

    /// Returns the squared Euclidean distance `Σ (aᵢ - bᵢ)²`.
    ///
    /// # Errors
    ///
    /// [`DistanceError::DimensionMismatch`] if `a.len() != b.len()`.
    #[inline]
    pub fn l2_squared(&self, a: &[f32], b: &[f32]) -> Result<f32, DistanceError> {
        check_lengths(a, b)?;
        let n = a.len();
        // SAFETY: `self` was built by `for_isa`, which checked that the CPU supports `self.isa`,
        // and both slices have length `n`.
        Ok(unsafe { (self.l2_squared)(&a[..n], &b[..n]) })
    }

    /// Returns the cosine distance `1 - cos(a, b)`, clamped to `[0, 2]`, or `1.0` if either vector
    /// is zero.
    ///
    /// # Errors
    ///
    /// [`DistanceError::DimensionMismatch`] if `a.len() != b.len()`.
    #[inline]
    pub fn cosine_distance(&self, a: &[f32], b: &[f32]) -> Result<f32, DistanceError> {
        check_lengths(a, b)?;
        let n = a.len();
        // SAFETY: as in `l2_squared`: supported ISA, equal lengths.
        let parts = unsafe { (self.cosine_parts)(&a[..n], &b[..n]) };
        Ok(cosine_from_parts(parts.ab, parts.aa, parts.bb))
    }

    /// Returns the `metric` distance between `a` and `b`.
    ///
    /// # Errors
    ///
    /// [`DistanceError::DimensionMismatch`] if `a.len() != b.len()`.
    #[inline]
    pub fn distance(&self, metric: Metric, a: &[f32], b: &[f32]) -> Result<f32, DistanceError> {
        match metric {
            Metric::Cosine => self.cosine_distance(a, b),
            Metric::Dot => self.dot(a, b).map(dot_distance),
            Metric::L2 => self.l2_squared(a, b),
        }
    }

    /// Returns the `metric` distance from `query` to row `id` of `arena`, one row at a time (no
    /// prefetching: for scattered rows, where the hardware prefetcher does better). Cosine uses the
    /// row's stored squared norm and `query_squared_norm` (`query·query`, computed once by the
    /// caller), so it costs one dot product, as in [`distances`](Self::distances).
    ///
    /// # Errors
    ///
    /// [`DistanceError::DimensionMismatch`] if `query.len() != arena.dim()`;
    /// [`DistanceError::IdOutOfRange`] if `id` is not below `arena.len()`.
    #[inline]
    pub fn distance_to_row(
        &self,
        metric: Metric,
        query: &Query<'_>,
        arena: &VectorArena,
        id: u32,
    ) -> Result<f32, DistanceError> {
        let row = arena.get(id).ok_or(DistanceError::IdOutOfRange { id, len: arena.len() })?;
        let values = query.values;
        if values.len() != row.len() {
            return Err(DistanceError::DimensionMismatch { left: values.len(), right: row.len() });
        }
        Ok(match metric {
            Metric::Cosine => {
                let norm = arena.squared_norms()[id as usize];
                cosine_from_parts(self.dot_unchecked(values, row), query.squared_norm, norm)
            }
            Metric::Dot => dot_distance(self.dot_unchecked(values, row)),
            Metric::L2 => self.l2_squared_unchecked(values, row),
        })
    }

    /// As [`distances`](Self::distances), for a [`Query`] checked once: only its dimension is
    /// compared with the arena's.
    ///
    /// # Errors
    ///
    /// As [`distances`](Self::distances), less the non-finite query.
    pub fn query_distances(
        &self,
        metric: Metric,
        query: &Query<'_>,
        arena: &VectorArena,
        ids: &[u32],
        out: &mut [f32],
    ) -> Result<(), DistanceError> {
        check_dimension(query, arena)?;
        if out.len() != ids.len() {
            return Err(DistanceError::OutputLengthMismatch { expected: ids.len(), actual: out.len() });
        }
        if let Some(&id) = ids.iter().find(|&&id| usize::try_from(id).map_or(true, |i| i >= arena.len())) {
            return Err(DistanceError::IdOutOfRange { id, len: arena.len() });
        }
        self.fill(metric, query, arena, Some(ids), out);
        Ok(())
    }

    /// As [`distances_all`](Self::distances_all), for a [`Query`] checked once.
    ///
    /// # Errors
    ///
    /// As [`distances_all`](Self::distances_all), less the non-finite query.
    pub fn query_distances_all(
        &self,
        metric: Metric,
        query: &Query<'_>,
        arena: &VectorArena,
        out: &mut [f32],
    ) -> Result<(), DistanceError> {
        check_dimension(query, arena)?;
        if out.len() != arena.len() {
            return Err(DistanceError::OutputLengthMismatch { expected: arena.len(), actual: out.len() });
        }
        self.fill(metric, query, arena, None, out);
        Ok(())
    }

    /// Writes the `metric` distance from `query` to each row `ids[i]` of `arena` into `out[i]`.
    ///
    /// Everything is checked before anything is computed, so on error `out` is untouched. Cosine
    /// uses the squared norms the arena stored at `push`, so it costs one dot product per row.
    ///
    /// # Errors
    ///
    /// [`DistanceError::DimensionMismatch`] if `query.len() != arena.dim()`;
    /// [`DistanceError::OutputLengthMismatch`] if `out.len() != ids.len()`;
    /// [`DistanceError::IdOutOfRange`] for the first id not below `arena.len()`;
    /// [`DistanceError::NonFinite`] if the query contains NaN or an infinity.
    pub fn distances(
        &self,
        metric: Metric,
        query: &[f32],
        arena: &VectorArena,
        ids: &[u32],
        out: &mut [f32],
    ) -> Result<(), DistanceError> {
        self.query_distances(metric, &self.query(query)?, arena, ids, out)
    }

    /// Writes the `metric` distance from `query` to every row of `arena` into `out`, in row order.
    ///
    /// # Errors
    ///
    /// As [`distances`](Self::distances), with `out.len()` compared against `arena.len()`.
    pub fn distances_all(
        &self,
        metric: Metric,
        query: &[f32],
        arena: &VectorArena,
        out: &mut [f32],
    ) -> Result<(), DistanceError> {
        self.query_distances_all(metric, &self.query(query)?, arena, out)
    }

    /// `values` checked as a query ([`Query::new`]), with its squared norm from these kernels.
    ///
    /// # Errors
    ///
    /// As [`Query::new`].
    pub fn query<'a>(&self, values: &'a [f32]) -> Result<Query<'a>, DistanceError> {
        if let Some(index) = values.iter().position(|x| !x.is_finite()) {
            return Err(DistanceError::NonFinite { index });
        }
        let squared_norm = self.dot_unchecked(values, values);
        if !squared_norm.is_finite() {
            return Err(DistanceError::NormOverflow);
        }
        Ok(Query { values, squared_norm })
    }

    /// Computes one distance per row: the rows `ids` (all below `arena.len()`), or every row if `None`.
    #[inline]
    fn fill(
        &self,
        metric: Metric,
        query: &Query<'_>,
        arena: &VectorArena,
        ids: Option<&[u32]>,
        out: &mut [f32],
    ) {
        let (query, query_norm) = (query.values, query.squared_norm);
        // One `match` per batch rather than per row: each arm instantiates `scan` with its own closure.
        match metric {
            Metric::Cosine => {
                let norms = arena.squared_norms();
                scan(arena, ids, out, |row, index| {
                    cosine_from_parts(self.dot_unchecked(query, row), query_norm, norms[index])
                });
            }
            Metric::Dot => {
                scan(arena, ids, out, |row, _| dot_distance(self.dot_unchecked(query, row)));
            }
            Metric::L2 => {
                scan(arena, ids, out, |row, _| self.l2_squared_unchecked(query, row));
            }
        }
    }

    /// Squared L2 over the common prefix of `a` and `b` (callers have already checked the lengths).
    #[inline]
    fn l2_squared_unchecked(&self, a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        let n = a.len().min(b.len());
        // SAFETY: `self` was built by `for_isa`, which checked that the CPU supports `self.isa`, and
        // both slices are cut to the same length `n`.
        unsafe { (self.l2_squared)(&a[..n], &b[..n]) }
    }

    /// Dot product over the common prefix of `a` and `b` (callers have already checked the
    /// lengths).
    #[inline]
    pub(crate) fn dot_unchecked(&self, a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        let n = a.len().min(b.len());
        // SAFETY: `self` was built by `for_isa`, which checked that the CPU supports `self.isa`,
        // and both slices are cut to the same length `n`.
        unsafe { (self.dot)(&a[..n], &b[..n]) }
    }
}

/// How many ids ahead of the current one a batch prefetches: enough to cover a DRAM access (~100 ns)
/// at a few tens of nanoseconds per row.
const PREFETCH_AHEAD: usize = 4;
/// How many rows ahead a full scan prefetches. The hardware prefetcher already streams rows from
/// memory; this only hides the L2-to-L1 latency at the start of each row.
const SEQUENTIAL_AHEAD: usize = 2;

/// Applies `distance(row, index)` to the rows `ids` (or every row) of `arena`, writing into `out`.
///
/// With explicit ids the rows are usually scattered (HNSW neighbour lists, filtered scans), so the row
/// `PREFETCH_AHEAD` positions ahead is prefetched; a full scan prefetches `SEQUENTIAL_AHEAD` rows
/// ahead.
#[inline]
fn scan(arena: &VectorArena, ids: Option<&[u32]>, out: &mut [f32], distance: impl Fn(&[f32], usize) -> f32) {
    match ids {
        None => {
            let len = out.len();
            for (index, slot) in out.iter_mut().enumerate() {
                if index + SEQUENTIAL_AHEAD < len {
                    prefetch_row(arena.row(index + SEQUENTIAL_AHEAD));
                }
                *slot = distance(arena.row(index), index);
            }
        }
        Some(ids) => {
            for (k, (slot, &id)) in out.iter_mut().zip(ids).enumerate() {
                if let Some(&ahead) = ids.get(k + PREFETCH_AHEAD) {
                    prefetch_row(arena.row(ahead as usize));
                }
                let index = id as usize;
                *slot = distance(arena.row(index), index);
            }
        }
    }
}

/// Asks the CPU to start loading every cache line of `row` into L1; a no-op off x86-64.
#[inline]
fn prefetch_row(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(ROW_ALIGN / size_of::<f32>()) {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: `prefetch` is a hint that never faults or changes memory, and the pointer is inside
        // `row` anyway; SSE is part of the x86-64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// The scalar reference table, which needs no CPU check.
const SCALAR: Kernels = Kernels {
    isa: Isa::Scalar,
    dot: scalar::dot_kernel,
    l2_squared: scalar::l2_squared_kernel,
    cosine_parts: scalar::cosine_parts_kernel,
};

/// Rejects slices of different lengths.
#[inline]
fn check_lengths(a: &[f32], b: &[f32]) -> Result<(), DistanceError> {
    if a.len() == b.len() {
        Ok(())
    } else {
        Err(DistanceError::DimensionMismatch { left: a.len(), right: b.len() })
    }
}

/// Rejects a query of another dimension than the arena's.
fn check_dimension(query: &Query<'_>, arena: &VectorArena) -> Result<(), DistanceError> {
    if query.values.len() != arena.dim() {
        return Err(DistanceError::DimensionMismatch { left: query.values.len(), right: arena.dim() });
    }
    Ok(())
}

/// A query vector checked once: every element finite, its squared norm `q·q` computed and finite.
/// The batch and per-row calls that take one ([`Kernels::query_distances`],
/// [`Kernels::query_distances_all`], [`Kernels::distance_to_row`]) compare only its dimension, so a
/// search that scores many rows, over several segments, checks its query once.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    values: &'a [f32],
    squared_norm: f32,
}

impl<'a> Query<'a> {
    /// Checks `values` as a query with the active kernels (see [`Kernels::query`]).
    ///
    /// # Errors
    ///
    /// [`DistanceError::NonFinite`] for a NaN or infinite element; [`DistanceError::NormOverflow`]
    /// if `q·q` overflows.
    pub fn new(values: &'a [f32]) -> Result<Query<'a>, DistanceError> {
        Kernels::active().query(values)
    }

    /// The query's values.
    pub fn values(&self) -> &'a [f32] {
        self.values
    }

    /// Its dimension.
    pub fn dim(&self) -> usize {
        self.values.len()
    }

    /// `q·q`, computed once.
    pub fn squared_norm(&self) -> f32 {
        self.squared_norm
    }
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
