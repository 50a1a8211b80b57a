use super::*;
use crate::products::{product_by, same_bits};

#[test]
fn blocked_products_match_a_naive_loop() {
    let (m, n, d) = (5, 7, 3);
    let q: Vec<f32> = (0..m * d).map(|i| (i as f32 * 0.37).sin()).collect();
    let r: Vec<f32> = (0..n * d).map(|i| (i as f32 * 0.91).cos()).collect();
    let mut out = vec![0.0; m * n];
    dot(&Left::new(&q, d), &Right::new(&r, d), &mut out);
    for i in 0..m {
        for j in 0..n {
            let naive: f32 = (0..d).map(|k| q[i * d + k] * r[j * d + k]).sum();
            assert!((out[i * n + j] - naive).abs() < 1e-5);
        }
    }
}

#[test]
fn neighbours_are_sorted_exclude_self_and_respect_depth() {
    // 600 points on a line (more than one block of queries).
    let points: Vec<f32> = (0..600).map(|i| i as f32).collect();
    let v = Vectors::new(&points, 1);
    let seen = map_neighbourhoods(
        v,
        v,
        true,
        |q| if q == 0 { 0 } else { 3 },
        |_, nb| nb.iter().map(|&(_, j)| j).collect::<Vec<u32>>(),
    );
    assert!(seen[0].is_empty());
    assert_eq!(seen[300], vec![299, 301, 298]);
    assert_eq!(seen[599], vec![598, 597, 596]);
    let gallery: Vec<f32> = vec![10.0, 0.5, 3.0];
    let g = Vectors::new(&gallery, 1);
    let q = Vectors::new(&[0.0f32, 2.9], 1);
    let got = map_neighbourhoods(q, g, false, |_| 2, |q, nb| (q, nb.to_vec()));
    assert_eq!(got[0].1.iter().map(|n| n.1).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(got[1].1.iter().map(|n| n.1).collect::<Vec<_>>(), vec![2, 1]);
    assert!((got[1].1[0].0 - 0.01).abs() < 1e-5);
}

#[test]
fn the_vector_mask_equals_the_scalar_one() {
    // 203 values (a partial word and a partial vector), NaN and infinities among them.
    let values: Vec<f32> = (0..203)
        .map(|i| match i % 17 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            _ => ((i * 7919) % 101) as f32 * 0.1,
        })
        .collect();
    let cuts: Vec<f32> = (0..203).map(|i| ((i * 31) % 97) as f32 * 0.1).collect();
    for case in [
        Cuts::One(5.0),
        Cuts::One(f32::NEG_INFINITY),
        Cuts::One(f32::INFINITY),
        Cuts::Each(&cuts),
    ] {
        let mut fast = Vec::new();
        below(&values, case, &mut fast);
        let mut slow = vec![0u64; fast.len()];
        below_scalar(&values, case, &mut slow, 0);
        assert_eq!(fast, slow);
        // Each vector variant this CPU can run, not only the one `below` picks.
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let mut variant = vec![0u64; fast.len()];
            if has!("avx2") {
                // SAFETY: the CPU has AVX2.
                unsafe { below_avx2(&values, case, &mut variant) };
                assert_eq!(variant, slow, "AVX2");
            }
            if has!("avx512f") {
                variant.fill(0);
                // SAFETY: the CPU has AVX-512F.
                unsafe { below_avx512(&values, case, &mut variant) };
                assert_eq!(variant, slow, "AVX-512");
            } else {
                eprintln!(
                    "the_vector_mask_equals_the_scalar_one: no AVX-512F, its variant untested"
                );
            }
        }
        let expected: Vec<usize> = (0..values.len())
            .filter(|&j| {
                values[j]
                    <= match case {
                        Cuts::One(c) => c,
                        Cuts::Each(c) => c[j],
                    }
            })
            .collect();
        assert_eq!(set_bits(&fast).collect::<Vec<_>>(), expected);
    }
}

#[test]
fn the_symmetric_search_finds_the_same_neighbours() {
    // 1,300 points (three tiles, the last partial) in 5-D with many equal distances.
    let n = 1300;
    let points: Vec<f32> = (0..n * 5).map(|i| ((i * 7919) % 13) as f32 * 0.5).collect();
    let v = Vectors::new(&points, 5);
    let depth = |q: usize| [0, 1, 7, 40, 200][q % 5];
    let list = |_: usize, nb: &[(f32, u32)]| nb.to_vec();
    let rows = map_neighbourhoods(v, v, true, depth, list);
    let half = map_self_neighbourhoods(v, depth, list);
    assert_eq!(rows.len(), half.len());
    for (q, (a, b)) in rows.iter().zip(&half).enumerate() {
        let ids = |l: &[(f32, u32)]| l.iter().map(|x| x.1).collect::<Vec<_>>();
        assert_eq!(ids(a), ids(b), "query {q}");
        for (x, y) in a.iter().zip(b) {
            assert!((x.0 - y.0).abs() <= 1e-4 * x.0.max(1.0), "query {q}");
        }
    }
}

#[test]
fn the_avx512_tiles_give_gemms_distances_bit_for_bit() {
    if !all_on_avx512(TILE, TILE, 512) {
        eprintln!(
            "SKIPPED the_avx512_tiles_give_gemms_distances_bit_for_bit: this CPU takes \
             gemm's products (no AVX-512F)"
        );
        return;
    }
    let never = |_: usize, _: usize, _: usize| false;
    // Two whole tiles and a partial one, or a last tile of one point (off gemm's main
    // path); one chunk of terms, two (700), and a sum of 3.
    for (count, dim) in [(1100, 3), (1100, 64), (513, 512), (1100, 700)] {
        let values: Vec<f32> = (0..count * dim)
            .map(|i| ((i * 7919 % 2003) as f32 / 1001.0 - 1.0) * 0.25)
            .collect();
        let tiled = Tiled::new(Vectors::new(&values, dim)).with_panels();
        let starts: Vec<usize> = (0..count).step_by(TILE).collect();
        for &a in &starts {
            let rows = a..(a + TILE).min(count);
            let left = tiled.left(rows.clone());
            assert!(left.packed.is_some());
            for &b in &starts {
                let cols = b..(b + TILE).min(count);
                assert!(tiled.right(cols.clone()).panels.is_some());
                let mut fast = vec![0f32; rows.len() * cols.len()];
                distance_block(
                    (&tiled, rows.clone(), &left),
                    (&tiled, cols.clone()),
                    &mut fast,
                );
                // gemm's products of the rows, combined with the norms as distance_block
                // does.
                let mut gemms = fast.clone();
                let (a_rows, b_rows) = (tiled.rows(rows.clone()), tiled.rows(cols.clone()));
                let (a_rows, b_rows) = (
                    View::new(a_rows, rows.len(), dim),
                    View::new(b_rows, cols.len(), dim),
                );
                product_by(&mut gemms, a_rows, b_rows.t(), false, never);
                for (index, product) in gemms.iter_mut().enumerate() {
                    let (i, j) = (rows.start + index / cols.len(), b + index % cols.len());
                    *product = (tiled.norms[i] + tiled.norms[j]) - 2.0 * *product;
                }
                assert!(
                    same_bits(&fast, &gemms),
                    "{count} x {dim}, tiles at {a} and {b}"
                );
            }
        }
    }
}

#[test]
fn empty_operands_multiply_to_nothing() {
    let some: Vec<f32> = (0..3 * 600).map(|i| i as f32).collect();
    let mut out = Vec::new();
    dot(&Left::new(&[], 600), &Right::new(&some, 600), &mut out);
    dot(&Left::new(&some, 600), &Right::new(&[], 600), &mut out);
    assert!(out.is_empty());
}
