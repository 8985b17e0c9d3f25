//! [`Kernels`]: the table of distance kernels for one instruction set, chosen once per process,
//! with the checked entry points (pairs, batches over a [`VectorArena`], a checked [`Query`]) and
//! the batch scan that prefetches rows ahead.

#[cfg(target_arch = "aarch64")]
use crate::aarch64;
use crate::query::check_dimension;
#[cfg(target_arch = "x86_64")]
use crate::x86_64;
use crate::{
    CosineParts, DistanceError, Isa, Metric, Query, VectorArena, cosine_from_parts, dot_distance, scalar,
};
use std::fmt;
use std::sync::OnceLock;

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
            Metric::UnitDot => self.dot(a, b).map(dot_distance),
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
            Metric::UnitDot => dot_distance(self.dot_unchecked(values, row)),
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
            Metric::UnitDot => {
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
            for (index, cell) in out.iter_mut().enumerate() {
                if index + SEQUENTIAL_AHEAD < len {
                    prefetch_row(arena.row(index + SEQUENTIAL_AHEAD));
                }
                *cell = distance(arena.row(index), index);
            }
        }
        Some(ids) => {
            for (k, (cell, &id)) in out.iter_mut().zip(ids).enumerate() {
                if let Some(&ahead) = ids.get(k + PREFETCH_AHEAD) {
                    prefetch_row(arena.row(ahead as usize));
                }
                let index = id as usize;
                *cell = distance(arena.row(index), index);
            }
        }
    }
}

/// Asks the CPU to start loading every cache line of `row` into L1; a no-op off x86-64.
#[inline]
fn prefetch_row(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(crate::ROW_ALIGN / size_of::<f32>()) {
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
