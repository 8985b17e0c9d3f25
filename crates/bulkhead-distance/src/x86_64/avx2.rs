//! AVX2+FMA kernels: 8 lanes, four independent FMA chains, `vmaskmovps` loads for the tail.
//!
//! The structure mirrors `avx512.rs`: a loop over 32 floats with four accumulators, an 8-float
//! loop, and one masked load for the last `len % 8` elements, so nothing is ever read past the end
//! of a slice.

use core::arch::x86_64::{
    __m256, __m256i, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps, _mm256_add_ps,
    _mm256_castps256_ps128, _mm256_cmpgt_epi32, _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps,
    _mm256_maskload_ps, _mm256_set1_epi32, _mm256_setr_epi32, _mm256_setzero_ps, _mm256_sub_ps,
};

use crate::CosineParts;

/// Floats per 256-bit register.
const LANES: usize = 8;
/// Floats consumed per iteration of the unrolled loop (four registers).
const BLOCK: usize = 4 * LANES;

/// Returns a lane mask whose first `rem` lanes have their sign bit set, for `rem < 8`.
#[inline]
#[target_feature(enable = "avx2")]
fn tail_mask(rem: usize) -> __m256i {
    debug_assert!(rem < LANES);
    // `rem < 8`, so the conversion to `i32` is lossless.
    let rem = _mm256_set1_epi32(rem as i32);
    _mm256_cmpgt_epi32(rem, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// Sums the 8 lanes of `v`.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256) -> f32 {
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    let single = _mm_add_ss(pair, _mm_shuffle_ps::<0b01>(pair, pair));
    _mm_cvtss_f32(single)
}

/// Adds four accumulators pairwise, then sums the 8 lanes of the result.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum4(acc: [__m256; 4]) -> f32 {
    hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
}

/// Loads 8 floats from `p + i`.
///
/// # Safety
///
/// The CPU must support AVX2 and `p + i .. p + i + 8` must lie inside one live allocation of
/// `f32`s.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load(p: *const f32, i: usize) -> __m256 {
    // SAFETY: the caller guarantees that the 8 floats starting at `p + i` are in bounds; the load
    // is unaligned, so no alignment is required.
    unsafe { _mm256_loadu_ps(p.add(i)) }
}

/// Loads the first `rem` floats from `p + i` and zeroes the other lanes.
///
/// # Safety
///
/// The CPU must support AVX2 and `p + i .. p + i + rem` must lie inside one live allocation of
/// `f32`s, with `rem < 8`. Masked-off lanes are not accessed and cannot fault, so they may lie
/// beyond the allocation.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_tail(p: *const f32, i: usize, rem: usize) -> __m256 {
    // SAFETY: the caller guarantees that the first `rem` floats at `p + i` are in bounds (with `rem
    // == 0` the mask is empty and nothing is read), and `vmaskmovps` does not access masked-off
    // lanes.
    unsafe { _mm256_maskload_ps(p.wrapping_add(i), tail_mask(rem)) }
}

/// AVX2+FMA dot product.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA, and `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + BLOCK <= n {
        for (k, acc_k) in acc.iter_mut().enumerate() {
            let off = i + k * LANES;
            // SAFETY: `off + 8 <= i + BLOCK <= n` and both slices have length `n`.
            let (x, y) = unsafe { (load(pa, off), load(pb, off)) };
            *acc_k = _mm256_fmadd_ps(x, y, *acc_k);
        }
        i += BLOCK;
    }
    while i + LANES <= n {
        // SAFETY: `i + 8 <= n` and both slices have length `n`.
        let (x, y) = unsafe { (load(pa, i), load(pb, i)) };
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += LANES;
    }
    let rem = n - i;
    if rem > 0 {
        // SAFETY: `i + rem == n`, so the masked loads stay inside both slices.
        let (x, y) = unsafe { (load_tail(pa, i, rem), load_tail(pb, i, rem)) };
        acc[1] = _mm256_fmadd_ps(x, y, acc[1]);
    }
    hsum4(acc)
}

/// AVX2+FMA squared Euclidean distance.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA, and `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + BLOCK <= n {
        for (k, acc_k) in acc.iter_mut().enumerate() {
            let off = i + k * LANES;
            // SAFETY: `off + 8 <= i + BLOCK <= n` and both slices have length `n`.
            let (x, y) = unsafe { (load(pa, off), load(pb, off)) };
            let diff = _mm256_sub_ps(x, y);
            *acc_k = _mm256_fmadd_ps(diff, diff, *acc_k);
        }
        i += BLOCK;
    }
    while i + LANES <= n {
        // SAFETY: `i + 8 <= n` and both slices have length `n`.
        let (x, y) = unsafe { (load(pa, i), load(pb, i)) };
        let diff = _mm256_sub_ps(x, y);
        acc[0] = _mm256_fmadd_ps(diff, diff, acc[0]);
        i += LANES;
    }
    let rem = n - i;
    if rem > 0 {
        // SAFETY: `i + rem == n`, so the masked loads stay inside both slices; masked-off lanes are
        // zero in both registers, so their difference adds nothing.
        let (x, y) = unsafe { (load_tail(pa, i, rem), load_tail(pb, i, rem)) };
        let diff = _mm256_sub_ps(x, y);
        acc[1] = _mm256_fmadd_ps(diff, diff, acc[1]);
    }
    hsum4(acc)
}

/// AVX2+FMA cosine parts (`a·b`, `a·a`, `b·b`) in one pass over both slices.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA, and `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn cosine_parts(a: &[f32], b: &[f32]) -> CosineParts {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // Twelve accumulators plus the two loaded registers use 14 of the 16 ymm registers, so nothing
    // spills.
    let mut ab = [_mm256_setzero_ps(); 4];
    let mut aa = [_mm256_setzero_ps(); 4];
    let mut bb = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + BLOCK <= n {
        for k in 0..4 {
            let off = i + k * LANES;
            // SAFETY: `off + 8 <= i + BLOCK <= n` and both slices have length `n`.
            let (x, y) = unsafe { (load(pa, off), load(pb, off)) };
            ab[k] = _mm256_fmadd_ps(x, y, ab[k]);
            aa[k] = _mm256_fmadd_ps(x, x, aa[k]);
            bb[k] = _mm256_fmadd_ps(y, y, bb[k]);
        }
        i += BLOCK;
    }
    while i + LANES <= n {
        // SAFETY: `i + 8 <= n` and both slices have length `n`.
        let (x, y) = unsafe { (load(pa, i), load(pb, i)) };
        ab[0] = _mm256_fmadd_ps(x, y, ab[0]);
        aa[0] = _mm256_fmadd_ps(x, x, aa[0]);
        bb[0] = _mm256_fmadd_ps(y, y, bb[0]);
        i += LANES;
    }
    let rem = n - i;
    if rem > 0 {
        // SAFETY: `i + rem == n`, so the masked loads stay inside both slices.
        let (x, y) = unsafe { (load_tail(pa, i, rem), load_tail(pb, i, rem)) };
        ab[1] = _mm256_fmadd_ps(x, y, ab[1]);
        aa[1] = _mm256_fmadd_ps(x, x, aa[1]);
        bb[1] = _mm256_fmadd_ps(y, y, bb[1]);
    }
    CosineParts { ab: hsum4(ab), aa: hsum4(aa), bb: hsum4(bb) }
}
