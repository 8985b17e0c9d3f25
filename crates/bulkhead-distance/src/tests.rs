//! Unit tests for the kernels and the arena, run against every instruction set the CPU supports.

use proptest::prelude::*;

use crate::{
    DistanceError, Isa, Kernels, Metric, ROW_ALIGN, VectorArena, active_isa, available_isas, cosine_distance,
    distance, distances, distances_all, dot, l2_squared,
};

/// Every kernel table the running CPU supports, scalar first.
fn all_kernels() -> Vec<Kernels> {
    available_isas().into_iter().filter_map(Kernels::for_isa).collect()
}

/// The scalar reference table.
fn reference() -> Kernels {
    Kernels::for_isa(Isa::Scalar).expect("scalar kernels are always available")
}

/// Deterministic pseudo-random floats in `[-1, 1)` from a 64-bit linear congruential generator.
fn pseudo_random(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            // The top 24 bits give a float in [0, 1) exactly; the cast is lossless.
            ((state >> 40) as f32 / (1_u32 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The scale that bounds rounding error in a sum of products: `Σ |xᵢ·yᵢ|`, computed in f64.
fn abs_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x).abs() * f64::from(*y).abs()).sum()
}

/// The scale for squared L2: `Σ (xᵢ - yᵢ)²`, computed in f64.
fn abs_l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum()
}

/// Relative tolerance applied to the error scale of a sum of `n` products.
const REL_TOL: f64 = 1e-4;
/// Absolute tolerance for cosine distances, which live in `[0, 2]`.
const COS_TOL: f32 = 1e-4;

/// Asserts that every kernel agrees with the scalar reference on `a` and `b` within tolerance.
fn assert_matches_reference(kernels: &Kernels, a: &[f32], b: &[f32]) -> Result<(), TestCaseError> {
    let reference = reference();
    let isa = kernels.isa();
    let n = a.len();

    let got = kernels.dot(a, b).expect("equal lengths");
    let want = reference.dot(a, b).expect("equal lengths");
    let tol = REL_TOL * abs_dot(a, b) + 1e-6;
    prop_assert!(f64::from((got - want).abs()) <= tol, "{isa} dot n={n}: {got} vs {want}");

    let got = kernels.l2_squared(a, b).expect("equal lengths");
    let want = reference.l2_squared(a, b).expect("equal lengths");
    let tol = REL_TOL * abs_l2(a, b) + 1e-6;
    prop_assert!(f64::from((got - want).abs()) <= tol, "{isa} l2 n={n}: {got} vs {want}");
    prop_assert!(got >= 0.0, "{isa} l2 n={n} is negative: {got}");

    let got = kernels.cosine_distance(a, b).expect("equal lengths");
    let want = reference.cosine_distance(a, b).expect("equal lengths");
    prop_assert!((got - want).abs() <= COS_TOL, "{isa} cosine n={n}: {got} vs {want}");
    prop_assert!((0.0..=2.0).contains(&got), "{isa} cosine n={n} out of range: {got}");
    Ok(())
}

#[test]
fn isa_names_are_stable() {
    let names: Vec<String> = Isa::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["scalar", "avx2+fma", "avx512f", "neon"]);
}

#[test]
fn active_isa_is_the_best_available() {
    let available = available_isas();
    assert_eq!(available.first(), Some(&Isa::Scalar));
    assert_eq!(available.last(), Some(&active_isa()));
    assert_eq!(Kernels::active().isa(), active_isa());
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x86_detection_matches_std() {
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    assert_eq!(Kernels::for_isa(Isa::Avx512F).is_some(), avx512);
    assert_eq!(Kernels::for_isa(Isa::Avx2Fma).is_some(), avx2);
    assert!(Kernels::for_isa(Isa::Neon).is_none());
}

#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_runs_neon() {
    assert_eq!(active_isa(), Isa::Neon);
    assert!(Kernels::for_isa(Isa::Avx2Fma).is_none());
    assert!(Kernels::for_isa(Isa::Avx512F).is_none());
}

#[test]
fn known_answers() {
    let a = [1.0, 2.0, 3.0];
    let b = [4.0, -5.0, 6.0];
    for k in all_kernels() {
        assert_eq!(k.dot(&a, &b), Ok(12.0), "{}", k.isa());
        assert_eq!(k.l2_squared(&a, &b), Ok(9.0 + 49.0 + 9.0), "{}", k.isa());
        let want = 1.0 - 12.0 / (14.0_f32.sqrt() * 77.0_f32.sqrt());
        let got = k.cosine_distance(&a, &b).expect("equal lengths");
        assert!((got - want).abs() < 1e-6, "{}: {got} vs {want}", k.isa());
        assert_eq!(k.distance(Metric::UnitDot, &a, &b), Ok(0.0), "dot distance clamps 1 - 12 to 0");
        assert_eq!(k.distance(Metric::L2, &a, &b), Ok(67.0));
    }
    assert_eq!(dot(&a, &b), Ok(12.0));
    assert_eq!(l2_squared(&a, &b), Ok(67.0));
    assert!(cosine_distance(&a, &b).is_ok());
}

#[test]
fn length_mismatch_is_an_error() {
    let a = [1.0; 5];
    let b = [1.0; 4];
    let want = Err(DistanceError::DimensionMismatch { left: 5, right: 4 });
    for k in all_kernels() {
        assert_eq!(k.dot(&a, &b), want);
        assert_eq!(k.l2_squared(&a, &b), want);
        assert_eq!(k.cosine_distance(&a, &b), want);
        for metric in [Metric::Cosine, Metric::UnitDot, Metric::L2] {
            assert_eq!(k.distance(metric, &a, &b), want);
        }
    }
    assert_eq!(distance(Metric::L2, &b, &a), Err(DistanceError::DimensionMismatch { left: 4, right: 5 }));
}

#[test]
fn empty_vectors() {
    for k in all_kernels() {
        assert_eq!(k.dot(&[], &[]), Ok(0.0));
        assert_eq!(k.l2_squared(&[], &[]), Ok(0.0));
        assert_eq!(k.cosine_distance(&[], &[]), Ok(1.0), "zero-length vectors count as zero vectors");
    }
}

#[test]
fn every_dimension_up_to_2048_matches_the_reference() {
    for k in all_kernels() {
        for n in 1..=2048 {
            let a = pseudo_random(n, n as u64);
            let b = pseudo_random(n, n as u64 + 10_000);
            assert_matches_reference(&k, &a, &b).expect("matches the scalar reference");
        }
    }
}

#[test]
fn unaligned_slices_match_the_reference() {
    let a = pseudo_random(2100, 1);
    let b = pseudo_random(2100, 2);
    for k in all_kernels() {
        for offset_a in 0..4 {
            for offset_b in 0..4 {
                for n in [1, 7, 15, 16, 17, 63, 64, 65, 129, 384, 1000, 2048] {
                    let (a, b) = (&a[offset_a..offset_a + n], &b[offset_b..offset_b + n]);
                    assert_matches_reference(&k, a, b).expect("matches the scalar reference");
                }
            }
        }
    }
}

#[test]
fn cosine_is_clamped_and_never_nan() {
    for k in all_kernels() {
        for n in [1, 3, 16, 17, 100, 384, 1536, 2047] {
            for seed in 0..8 {
                let a = pseudo_random(n, seed + 100 * n as u64);
                let negated: Vec<f32> = a.iter().map(|x| -x).collect();
                let scaled: Vec<f32> = a.iter().map(|x| x * 1e3).collect();
                let same = k.cosine_distance(&a, &a).expect("equal lengths");
                assert!((0.0..1e-5).contains(&same), "{} identical n={n}: {same}", k.isa());
                let same = k.cosine_distance(&a, &scaled).expect("equal lengths");
                assert!((0.0..1e-5).contains(&same), "{} parallel n={n}: {same}", k.isa());
                let opposite = k.cosine_distance(&a, &negated).expect("equal lengths");
                assert!(opposite <= 2.0 && opposite > 2.0 - 1e-5, "{} opposite n={n}: {opposite}", k.isa());
            }
        }
    }
}

#[test]
fn cosine_with_a_zero_vector_is_one() {
    let zero = [0.0_f32; 33];
    let a = pseudo_random(33, 5);
    for k in all_kernels() {
        assert_eq!(k.cosine_distance(&zero, &a), Ok(1.0));
        assert_eq!(k.cosine_distance(&a, &zero), Ok(1.0));
        assert_eq!(k.cosine_distance(&zero, &zero), Ok(1.0));
    }
}

#[test]
fn cosine_with_extreme_magnitudes_is_not_nan() {
    // Squared norms underflow (1e-30² = 0 in f32) or overflow (1e30² = ∞); both are defined as 1.
    for k in all_kernels() {
        for magnitude in [1e-30_f32, 1e-23, 1e19, 1e30] {
            let a = vec![magnitude; 40];
            let d = k.cosine_distance(&a, &a).expect("equal lengths");
            assert!((0.0..=2.0).contains(&d), "{} magnitude {magnitude}: {d}", k.isa());
        }
    }
}

#[test]
fn dot_distance_is_one_minus_dot_clamped_at_zero() {
    let mut unit = vec![0.0_f32; 20];
    unit[3] = 1.0;
    let mut other = vec![0.0_f32; 20];
    other[4] = 1.0;
    for k in all_kernels() {
        assert_eq!(k.distance(Metric::UnitDot, &unit, &unit), Ok(0.0));
        assert_eq!(k.distance(Metric::UnitDot, &unit, &other), Ok(1.0));
        let negated: Vec<f32> = unit.iter().map(|x| -x).collect();
        assert_eq!(k.distance(Metric::UnitDot, &unit, &negated), Ok(2.0));
    }
}

#[test]
fn arena_rows_are_aligned_padded_and_readable() {
    for dim in [1, 15, 16, 17, 100, 384] {
        let mut arena = VectorArena::new(dim).expect("dim > 0");
        assert_eq!(arena.dim(), dim);
        assert_eq!(arena.stride() % 16, 0);
        assert!(arena.stride() >= dim && arena.stride() < dim + 16);
        let rows: Vec<Vec<f32>> = (0..37).map(|i| pseudo_random(dim, i)).collect();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(arena.push(row), Ok(u32::try_from(i).expect("small")));
        }
        assert_eq!(arena.len(), rows.len());
        assert!(!arena.is_empty());
        for (i, row) in rows.iter().enumerate() {
            let id = u32::try_from(i).expect("small");
            let stored = arena.get(id).expect("in range");
            assert_eq!(stored, row.as_slice());
            assert_eq!(stored.as_ptr() as usize % ROW_ALIGN, 0, "row {i} of dim {dim} is not aligned");
            let norm = arena.squared_norm(id).expect("in range");
            assert!((norm - reference().dot(row, row).expect("same")).abs() < 1e-4);
        }
        let padded = arena.as_padded_slice();
        assert_eq!(padded.len(), rows.len() * arena.stride());
        for chunk in padded.chunks(arena.stride()) {
            assert!(chunk[dim..].iter().all(|&x| x.to_bits() == 0), "padding is +0.0");
        }
        assert_eq!(arena.get(37), None);
        assert_eq!(arena.squared_norm(37), None);
        assert_eq!(arena.iter().count(), 37);
        let copy = arena.clone();
        assert!(copy.iter().eq(arena.iter()));
        assert_eq!(copy.get(0).expect("in range").as_ptr() as usize % ROW_ALIGN, 0);
    }
}

#[test]
fn arena_rejects_bad_vectors() {
    assert!(matches!(VectorArena::new(0), Err(DistanceError::ZeroDimension)));
    let mut arena = VectorArena::with_capacity(4, 2).expect("dim > 0");
    assert!(arena.capacity() >= 2);
    assert_eq!(arena.push(&[1.0; 3]), Err(DistanceError::DimensionMismatch { left: 3, right: 4 }));
    assert_eq!(arena.push(&[1.0, f32::NAN, 0.0, 0.0]), Err(DistanceError::NonFinite { index: 1 }));
    assert_eq!(arena.push(&[1.0, 0.0, f32::INFINITY, 0.0]), Err(DistanceError::NonFinite { index: 2 }));
    assert_eq!(arena.push(&[1e20; 4]), Err(DistanceError::NormOverflow));
    assert!(arena.is_empty(), "rejected vectors are not stored");
    assert!(matches!(
        VectorArena::with_capacity(1 << 20, usize::MAX / 2),
        Err(DistanceError::CapacityOverflow)
    ));
}

#[test]
fn batch_matches_pairwise() {
    let dim = 77;
    let mut arena = VectorArena::new(dim).expect("dim > 0");
    for i in 0..50 {
        arena.push(&pseudo_random(dim, i)).expect("valid row");
    }
    arena.push(&vec![0.0; dim]).expect("a zero row is valid");
    let query = pseudo_random(dim + 1, 999);
    let query = &query[1..]; // An unaligned query.
    let ids: Vec<u32> = (0..51).rev().step_by(3).collect();
    for k in all_kernels() {
        for metric in [Metric::Cosine, Metric::UnitDot, Metric::L2] {
            let mut out = vec![f32::NAN; ids.len()];
            k.distances(metric, query, &arena, &ids, &mut out).expect("valid batch");
            for (&id, &got) in ids.iter().zip(&out) {
                let row = arena.get(id).expect("in range");
                let want = k.distance(metric, query, row).expect("same dim");
                let tol = 1e-5 * want.abs().max(1.0);
                assert!((got - want).abs() <= tol, "{} {metric:?} id {id}: {got} vs {want}", k.isa());
            }
            let mut all = vec![f32::NAN; arena.len()];
            k.distances_all(metric, query, &arena, &mut all).expect("valid batch");
            for (&id, &got) in ids.iter().zip(&out) {
                assert_eq!(all[id as usize], got, "{} {metric:?} id {id}", k.isa());
            }
        }
    }
    let mut out = vec![0.0; 2];
    distances(Metric::L2, query, &arena, &[0, 1], &mut out).expect("valid batch");
    assert_eq!(out[0], l2_squared(query, arena.get(0).expect("in range")).expect("same dim"));
}

#[test]
fn batch_rejects_bad_input_without_writing() {
    let mut arena = VectorArena::new(8).expect("dim > 0");
    arena.push(&[1.0; 8]).expect("valid row");
    arena.push(&[2.0; 8]).expect("valid row");
    let query = [0.5; 8];
    let mut out = [-7.0; 2];
    assert_eq!(
        distances(Metric::L2, &query[..7], &arena, &[0, 1], &mut out),
        Err(DistanceError::DimensionMismatch { left: 7, right: 8 })
    );
    assert_eq!(
        distances(Metric::L2, &query, &arena, &[0], &mut out),
        Err(DistanceError::OutputLengthMismatch { expected: 1, actual: 2 })
    );
    assert_eq!(
        distances(Metric::UnitDot, &query, &arena, &[0, 2], &mut out),
        Err(DistanceError::IdOutOfRange { id: 2, len: 2 })
    );
    let mut bad_query = query;
    bad_query[5] = f32::NAN;
    assert_eq!(
        distances(Metric::Cosine, &bad_query, &arena, &[0, 1], &mut out),
        Err(DistanceError::NonFinite { index: 5 })
    );
    assert_eq!(
        distances_all(Metric::Cosine, &query, &arena, &mut out[..1]),
        Err(DistanceError::OutputLengthMismatch { expected: 2, actual: 1 })
    );
    assert_eq!(out, [-7.0; 2], "nothing is written on error");
}

/// Two vectors of the same random length in `1..=2048` and a start offset `0..4` for unaligned
/// slices.
fn vector_pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, usize)> {
    (1_usize..=2048, 0_usize..4).prop_flat_map(|(n, offset)| {
        (
            prop::collection::vec(-100.0_f32..100.0, n + offset),
            prop::collection::vec(-100.0_f32..100.0, n + offset),
            Just(offset),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_isa_matches_the_scalar_reference((a, b, offset) in vector_pair()) {
        for k in all_kernels() {
            assert_matches_reference(&k, &a[offset..], &b[offset..])?;
        }
    }

    #[test]
    fn cosine_of_a_vector_with_itself_is_near_zero((a, _b, offset) in vector_pair()) {
        let a = &a[offset..];
        prop_assume!(a.iter().any(|&x| x != 0.0));
        for k in all_kernels() {
            let d = k.cosine_distance(a, a).expect("equal lengths");
            prop_assert!((0.0..1e-5).contains(&d), "{}: {}", k.isa(), d);
        }
    }
}
