//! Exact Euclidean k-nearest neighbours by blocked matrix products, streamed: each block of
//! queries is ranked against every reference and handed to a callback, so memory stays at
//! one block of distances per thread (never an n x n matrix).

use std::cmp::Ordering;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// Queries per block: a block holds QUERY_BLOCK x references distances (f32).
const QUERY_BLOCK: usize = 256;

/// Row-major `[rows, dim]` vectors.
#[derive(Debug, Clone, Copy)]
pub struct Vectors<'a> {
    pub data: &'a [f32],
    pub dim: usize,
}

impl<'a> Vectors<'a> {
    /// `data` as rows of `dim` values.
    pub fn new(data: &'a [f32], dim: usize) -> Self {
        assert!(
            dim > 0 && data.len().is_multiple_of(dim),
            "vectors must be [n, dim]"
        );
        Self { data, dim }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn squared_norms(&self) -> Vec<f32> {
        self.data
            .chunks(self.dim)
            .map(|r| r.iter().map(|v| v * v).sum())
            .collect()
    }
}

/// `out[b, n] = queries[b, d] . references[n, d]^T`.
fn dot_block(queries: &[f32], references: &[f32], dim: usize, out: &mut [f32]) {
    let (m, n) = (queries.len() / dim, references.len() / dim);
    assert_eq!(out.len(), m * n);
    // SAFETY: the three buffers hold m*dim, n*dim and m*n f32 values, and the strides below
    // address exactly those row-major layouts (rhs is `references` read transposed).
    unsafe {
        gemm(
            m,
            n,
            dim,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            queries.as_ptr(),
            1,
            dim as isize,
            references.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// For every query, its `depth(query)` nearest references in order (ties by index), as
/// `(squared distance, reference index)`; `exclude_self` drops reference i for query i
/// (leave-one-out). `visit(query, neighbours)` runs in parallel over query blocks; its results
/// come back in query order, so sums over them are deterministic.
pub fn map_neighbourhoods<T, F, D>(
    queries: Vectors,
    references: Vectors,
    exclude_self: bool,
    depth: D,
    visit: F,
) -> Vec<T>
where
    T: Send,
    F: Fn(usize, &[(f32, u32)]) -> T + Sync,
    D: Fn(usize) -> usize + Sync,
{
    assert_eq!(
        queries.dim, references.dim,
        "queries and references differ in dimension"
    );
    let dim = queries.dim;
    let n = references.len();
    let query_norms = queries.squared_norms();
    let reference_norms = references.squared_norms();
    let blocks: Vec<usize> = (0..queries.len()).step_by(QUERY_BLOCK).collect();
    let per_block: Vec<Vec<T>> = blocks
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::with_capacity(n)),
            |(dots, row): &mut (Vec<f32>, Vec<(f32, u32)>), start| {
                let end = (start + QUERY_BLOCK).min(queries.len());
                let mut results = Vec::with_capacity(end - start);
                dots.resize((end - start) * n, 0.0);
                dot_block(
                    &queries.data[start * dim..end * dim],
                    references.data,
                    dim,
                    dots,
                );
                for q in start..end {
                    let products = &dots[(q - start) * n..(q - start + 1) * n];
                    row.clear();
                    row.extend(
                        products
                            .iter()
                            .enumerate()
                            .filter(|&(j, _)| !(exclude_self && j == q))
                            .map(|(j, &p)| {
                                (
                                    (query_norms[q] + reference_norms[j] - 2.0 * p).max(0.0),
                                    j as u32,
                                )
                            }),
                    );
                    let keep = depth(q).min(row.len());
                    let order = |a: &(f32, u32), b: &(f32, u32)| {
                        a.0.partial_cmp(&b.0)
                            .unwrap_or(Ordering::Equal)
                            .then(a.1.cmp(&b.1))
                    };
                    if keep == 0 {
                        results.push(visit(q, &[]));
                        continue;
                    }
                    if keep < row.len() {
                        row.select_nth_unstable_by(keep - 1, order);
                        row.truncate(keep);
                    }
                    row.sort_unstable_by(order);
                    results.push(visit(q, row));
                }
                results
            },
        )
        .collect();
    per_block.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_products_match_a_naive_loop() {
        let (m, n, d) = (5, 7, 3);
        let q: Vec<f32> = (0..m * d).map(|i| (i as f32 * 0.37).sin()).collect();
        let r: Vec<f32> = (0..n * d).map(|i| (i as f32 * 0.91).cos()).collect();
        let mut out = vec![0.0; m * n];
        dot_block(&q, &r, d, &mut out);
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
}
