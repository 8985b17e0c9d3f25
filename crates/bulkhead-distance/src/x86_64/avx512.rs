//! AVX-512F kernels: 16 lanes, four independent FMA chains, masked loads for the tail.
//!
//! Each kernel walks both slices 64 floats at a time with four accumulators, so four FMA dependency
//! chains run in parallel and the loop is bound by the two 64-byte loads per FMA rather than by FMA
//! latency. A 16-float loop follows, then one masked load covers the last `len % 16` elements
//! without reading past the end of either slice. The horizontal reduction happens once, at the end.

use core::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_maskz_loadu_ps,
    _mm512_reduce_add_ps, _mm512_setzero_ps, _mm512_sub_ps,
};

use crate::CosineParts;

/// Floats per 512-bit register.
const LANES: usize = 16;
/// Floats consumed per iteration of the unrolled loop (four registers).
const BLOCK: usize = 4 * LANES;

/// Returns the mask that selects the first `rem` lanes, for `rem < 16`.
#[inline(always)]
fn tail_mask(rem: usize) -> __mmask16 {
    debug_assert!(rem < LANES);
    // `rem < 16`, so the shift cannot overflow and the result fits in 16 bits.
    ((1_u32 << rem) - 1) as __mmask16
}

/// Adds four accumulators pairwise, then sums the 16 lanes of the result.
#[inline]
#[target_feature(enable = "avx512f")]
fn hsum4(acc: [__m512; 4]) -> f32 {
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
}

/// Loads 16 floats from `p + i`.
///
/// # Safety
///
/// The CPU must support AVX-512F and `p + i .. p + i + 16` must lie inside one live allocation of
/// `f32`s.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load(p: *const f32, i: usize) -> __m512 {
    // SAFETY: the caller guarantees that the 16 floats starting at `p + i` are in bounds; the load
    // is unaligned, so no alignment is required.
    unsafe { _mm512_loadu_ps(p.add(i)) }
}

/// Loads the first `rem` floats from `p + i` and zeroes the other lanes.
///
/// # Safety
///
/// The CPU must support AVX-512F and `p + i .. p + i + rem` must lie inside one live allocation of
/// `f32`s, with `rem < 16`. Masked-off lanes are not accessed, so they may lie beyond the
/// allocation.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_tail(p: *const f32, i: usize, rem: usize) -> __m512 {
    // SAFETY: the caller guarantees that `p + i` is in bounds (or one past the end when `rem == 0`,
    // in which case the mask is empty and nothing is read), and masked loads never touch lanes
    // outside the mask.
    unsafe { _mm512_maskz_loadu_ps(tail_mask(rem), p.wrapping_add(i)) }
}

/// AVX-512F dot product.
///
/// # Safety
///
/// The CPU must support AVX-512F, and `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (for every block below): each load covers `i .. i + 16` (or `i .. n` for the tail)
    // with `i + 16 <= n` checked by the loop conditions, and both slices have length `n` by the
    // caller's contract.
    while i + BLOCK <= n {
        for (k, acc_k) in acc.iter_mut().enumerate() {
            let off = i + k * LANES;
            // SAFETY: `off + 16 <= i + BLOCK <= n`, see above.
            let (x, y) = unsafe { (load(pa, off), load(pb, off)) };
            *acc_k = _mm512_fmadd_ps(x, y, *acc_k);
        }
        i += BLOCK;
    }
    while i + LANES <= n {
        // SAFETY: `i + 16 <= n`, see above.
        let (x, y) = unsafe { (load(pa, i), load(pb, i)) };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
        i += LANES;
    }
    let rem = n - i;
    if rem > 0 {
        // SAFETY: `i + rem == n`, so the masked loads stay inside both slices.
        let (x, y) = unsafe { (load_tail(pa, i, rem), load_tail(pb, i, rem)) };
        acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
    }
    hsum4(acc)
}

/// AVX-512F squared Euclidean distance.
///
/// # Safety
///
/// The CPU must support AVX-512F, and `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + BLOCK <= n {
        for (k, acc_k) in acc.iter_mut().enumerate() {
            let off = i + k * LANES;
            // SAFETY: `off + 16 <= i + BLOCK <= n` and both slices have length `n`.
            let (x, y) = unsafe { (load(pa, off), load(pb, off)) };
            let diff = _mm512_sub_ps(x, y);
            *acc_k = _mm512_fmadd_ps(diff, diff, *acc_k);
        }
        i += BLOCK;
    }
    while i + LANES <= n {
        // SAFETY: `i + 16 <= n` and both slices have length `n`.
        let (x, y) = unsafe { (load(pa, i), load(pb, i)) };
        let diff = _mm512_sub_ps(x, y);
        acc[0] = _mm512_fmadd_ps(diff, diff, acc[0]);
        i += LANES;
    }
    let rem = n - i;
    if rem > 0 {
        // SAFETY: `i + rem == n`, so the masked loads stay inside both slices; masked-off lanes are
        // zero in both registers, so their difference adds nothing.
        let (x, y) = unsafe { (load_tail(pa, i, rem), load_tail(pb, i, rem)) };
        let diff = _mm512_sub_ps(x, y);
        acc[1] = _mm512_fmadd_ps(diff, diff, acc[1]);
    }
    hsum4(acc)
}

/// AVX-512F cosine parts (`a·b`, `a·a`, `b·b`) in one pass over both slices.
///
/// # Safety
///
/// The CPU must support AVX-512F, and `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn cosine_parts(a: &[f32], b: &[f32]) -> CosineParts {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // Twelve accumulators (three sums times four chains) fit easily in the 32 zmm registers.
    let mut ab = [_mm512_setzero_ps(); 4];
    let mut aa = [_mm512_setzero_ps(); 4];
    let mut bb = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + BLOCK <= n {
        for k in 0..4 {
            let off = i + k * LANES;
            // SAFETY: `off + 16 <= i + BLOCK <= n` and both slices have length `n`.
            let (x, y) = unsafe { (load(pa, off), load(pb, off)) };
            ab[k] = _mm512_fmadd_ps(x, y, ab[k]);
            aa[k] = _mm512_fmadd_ps(x, x, aa[k]);
            bb[k] = _mm512_fmadd_ps(y, y, bb[k]);
        }
        i += BLOCK;
    }
    while i + LANES <= n {
        // SAFETY: `i + 16 <= n` and both slices have length `n`.
        let (x, y) = unsafe { (load(pa, i), load(pb, i)) };
        ab[0] = _mm512_fmadd_ps(x, y, ab[0]);
        aa[0] = _mm512_fmadd_ps(x, x, aa[0]);
        bb[0] = _mm512_fmadd_ps(y, y, bb[0]);
        i += LANES;
    }
    let rem = n - i;
    if rem > 0 {
        // SAFETY: `i + rem == n`, so the masked loads stay inside both slices.
        let (x, y) = unsafe { (load_tail(pa, i, rem), load_tail(pb, i, rem)) };
        ab[1] = _mm512_fmadd_ps(x, y, ab[1]);
        aa[1] = _mm512_fmadd_ps(x, x, aa[1]);
        bb[1] = _mm512_fmadd_ps(y, y, bb[1]);
    }
    CosineParts { ab: hsum4(ab), aa: hsum4(aa), bb: hsum4(bb) }
}
