//! NEON kernels: 4 lanes, four independent FMA chains, a scalar loop for the last `len % 4`
//! elements.
//!
//! NEON has no masked load, so the tail (at most three elements) is finished with scalar fused
//! multiply-adds into a separate sum that joins the vector sum at the end.

use core::arch::aarch64::{float32x4_t, vaddq_f32, vaddvq_f32, vdupq_n_f32, vfmaq_f32, vld1q_f32, vsubq_f32};

use crate::CosineParts;

/// Floats per 128-bit register.
const LANES: usize = 4;
/// Floats consumed per iteration of the unrolled loop (four registers).
const BLOCK: usize = 4 * LANES;

/// Adds four accumulators pairwise, then sums the 4 lanes of the result.
#[inline]
#[target_feature(enable = "neon")]
fn hsum4(acc: [float32x4_t; 4]) -> f32 {
    vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])))
}

/// Loads 4 floats from `p + i`.
///
/// # Safety
///
/// The CPU must support NEON and `p + i .. p + i + 4` must lie inside one live allocation of
/// `f32`s.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load(p: *const f32, i: usize) -> float32x4_t {
    // SAFETY: the caller guarantees that the 4 floats starting at `p + i` are in bounds; `ld1` has
    // no alignment requirement beyond that of `f32`, which a slice pointer has.
    unsafe { vld1q_f32(p.add(i)) }
}

/// NEON dot product.
///
/// # Safety
///
/// The CPU must support NEON, and `a.len() == b.len()`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + BLOCK <= n {
        for (k, acc_k) in acc.iter_mut().enumerate() {
            let off = i + k * LANES;
            // SAFETY: `off + 4 <= i + BLOCK <= n` and both slices have length `n`.
            let (x, y) = unsafe { (load(pa, off), load(pb, off)) };
            *acc_k = vfmaq_f32(*acc_k, x, y);
        }
        i += BLOCK;
    }
    while i + LANES <= n {
        // SAFETY: `i + 4 <= n` and both slices have length `n`.
        let (x, y) = unsafe { (load(pa, i), load(pb, i)) };
        acc[0] = vfmaq_f32(acc[0], x, y);
        i += LANES;
    }
    let mut tail = 0.0_f32;
    for (x, y) in a[i..].iter().zip(&b[i..]) {
        tail = x.mul_add(*y, tail);
    }
    hsum4(acc) + tail
}

/// NEON squared Euclidean distance.
///
/// # Safety
///
/// The CPU must support NEON, and `a.len() == b.len()`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + BLOCK <= n {
        for (k, acc_k) in acc.iter_mut().enumerate() {
            let off = i + k * LANES;
            // SAFETY: `off + 4 <= i + BLOCK <= n` and both slices have length `n`.
            let (x, y) = unsafe { (load(pa, off), load(pb, off)) };
            let diff = vsubq_f32(x, y);
            *acc_k = vfmaq_f32(*acc_k, diff, diff);
        }
        i += BLOCK;
    }
    while i + LANES <= n {
        // SAFETY: `i + 4 <= n` and both slices have length `n`.
        let (x, y) = unsafe { (load(pa, i), load(pb, i)) };
        let diff = vsubq_f32(x, y);
        acc[0] = vfmaq_f32(acc[0], diff, diff);
        i += LANES;
    }
    let mut tail = 0.0_f32;
    for (x, y) in a[i..].iter().zip(&b[i..]) {
        let diff = x - y;
        tail = diff.mul_add(diff, tail);
    }
    hsum4(acc) + tail
}

/// NEON cosine parts (`a·b`, `a·a`, `b·b`) in one pass over both slices.
///
/// # Safety
///
/// The CPU must support NEON, and `a.len() == b.len()`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn cosine_parts(a: &[f32], b: &[f32]) -> CosineParts {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut ab = [vdupq_n_f32(0.0); 4];
    let mut aa = [vdupq_n_f32(0.0); 4];
    let mut bb = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + BLOCK <= n {
        for k in 0..4 {
            let off = i + k * LANES;
            // SAFETY: `off + 4 <= i + BLOCK <= n` and both slices have length `n`.
            let (x, y) = unsafe { (load(pa, off), load(pb, off)) };
            ab[k] = vfmaq_f32(ab[k], x, y);
            aa[k] = vfmaq_f32(aa[k], x, x);
            bb[k] = vfmaq_f32(bb[k], y, y);
        }
        i += BLOCK;
    }
    while i + LANES <= n {
        // SAFETY: `i + 4 <= n` and both slices have length `n`.
        let (x, y) = unsafe { (load(pa, i), load(pb, i)) };
        ab[0] = vfmaq_f32(ab[0], x, y);
        aa[0] = vfmaq_f32(aa[0], x, x);
        bb[0] = vfmaq_f32(bb[0], y, y);
        i += LANES;
    }
    let mut tail = CosineParts::default();
    for (x, y) in a[i..].iter().zip(&b[i..]) {
        tail.ab = x.mul_add(*y, tail.ab);
        tail.aa = x.mul_add(*x, tail.aa);
        tail.bb = y.mul_add(*y, tail.bb);
    }
    CosineParts { ab: hsum4(ab) + tail.ab, aa: hsum4(aa) + tail.aa, bb: hsum4(bb) + tail.bb }
}
