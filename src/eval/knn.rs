//! Exact Euclidean k-nearest neighbours by blocked matrix products, streamed: each tile of
//! queries is ranked against the references a tile at a time and handed to a callback, so
//! memory stays at one tile of distances and the tile's neighbour lists per thread (never an
//! n x n matrix).
//!
//! Leave-one-out (queries = references) needs only half the products: the distance matrix is
//! symmetric, so each tile above the diagonal is computed once and feeds the neighbour lists
//! of its rows and of its columns ([`map_self_neighbourhoods`]).

use std::sync::Mutex;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

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
pub(crate) fn dot_block(queries: &[f32], references: &[f32], dim: usize, out: &mut [f32]) {
    scaled_products(queries, references, dim, out, 0.0, 1.0);
}

/// `out = keep * out + scale * a . b^T` for row-major `a` `[m, dim]` and `b` `[n, dim]` (out is
/// not read when `keep` is 0).
fn scaled_products(a: &[f32], b: &[f32], dim: usize, out: &mut [f32], keep: f32, scale: f32) {
    let (m, n) = (a.len() / dim, b.len() / dim);
    assert_eq!(out.len(), m * n);
    // SAFETY: the three buffers hold m*dim, n*dim and m*n f32 values, and the strides below
    // address exactly those row-major layouts (rhs is `b` read transposed).
    unsafe {
        gemm(
            m,
            n,
            dim,
            out.as_mut_ptr(),
            1,
            n as isize,
            keep != 0.0,
            a.as_ptr(),
            1,
            dim as isize,
            b.as_ptr(),
            dim as isize,
            1,
            keep,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// For every query, its `depth(query)` nearest references in order (ties by index), as
/// `(squared distance, reference index)`; `exclude_self` drops reference i for query i
/// (leave-one-out). `visit(query, neighbours)` runs in parallel over query tiles; its results
/// come back in query order, so sums over them are deterministic.
///
/// Each tile of queries is ranked against the references one tile at a time: a tile of
/// distances is one matrix product, and only the distances under a query's current cut are
/// looked at individually.
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
    let tiles: Vec<usize> = (0..queries.len()).step_by(TILE).collect();
    let per_tile: Vec<Vec<T>> = tiles
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new()),
            |(tile, mask): &mut (Vec<f32>, Vec<u64>), start| {
                let rows = start..(start + TILE).min(queries.len());
                let mut lists = TileLists::new(
                    rows.clone()
                        .map(|q| depth(q).min(n - usize::from(exclude_self && q < n)))
                        .collect(),
                );
                for first in (0..n).step_by(TILE) {
                    let cols = first..(first + TILE).min(n);
                    let w = cols.len();
                    tile.resize(rows.len() * w, 0.0);
                    distance_block(
                        &queries.data[rows.start * dim..rows.end * dim],
                        &query_norms[rows.clone()],
                        &references.data[cols.start * dim..cols.end * dim],
                        &reference_norms[cols.clone()],
                        dim,
                        tile,
                    );
                    for (r, q) in rows.clone().enumerate() {
                        let skip = (exclude_self && cols.contains(&q)).then(|| q - first);
                        lists.offer_row(r, &tile[r * w..(r + 1) * w], first, skip, mask);
                    }
                }
                rows.enumerate()
                    .map(|(r, q)| visit(q, &lists.finish(r)))
                    .collect()
            },
        )
        .collect();
    per_tile.into_iter().flatten().collect()
}

/// Points per tile (a tile holds TILE^2 distances).
const TILE: usize = 512;
/// The symmetric search keeps up to twice each query's depth of candidates; above this many
/// bytes of candidates in all it falls back to [`map_neighbourhoods`], which holds one query
/// tile's lists at a time (bounded memory).
const SELF_CANDIDATE_BYTES: usize = 1 << 30;

/// The `depth` nearest candidates seen so far, for every query of a tile: a buffer of up to
/// 2 x depth per query, cut back to the best `depth` when full. The cut distances sit in one
/// array so a whole run of candidates is rejected by one vectorised comparison.
struct TileLists {
    depth: Vec<usize>,
    cut: Vec<f32>,
    items: Vec<Vec<u64>>,
}

/// A candidate as one integer whose order is (distance, index): a non-negative float's bits
/// order as the float does, so selecting and sorting compare integers.
fn candidate_key(distance: f32, index: u32) -> u64 {
    // Clamped at +0.0 (rounding can make a distance slightly negative, and -0.0's bits would
    // sort last), as the row-by-row search clamps.
    let distance = if distance > 0.0 { distance } else { 0.0 };
    (u64::from(distance.to_bits()) << 32) | u64::from(index)
}

fn key_distance(key: u64) -> f32 {
    f32::from_bits((key >> 32) as u32)
}

impl TileLists {
    fn new(depth: Vec<usize>) -> Self {
        let n = depth.len();
        Self {
            // A query without neighbours to find rejects everything.
            cut: depth
                .iter()
                .map(|&d| {
                    if d == 0 {
                        f32::NEG_INFINITY
                    } else {
                        f32::INFINITY
                    }
                })
                .collect(),
            depth,
            items: vec![Vec::new(); n],
        }
    }

    #[inline]
    fn offer(&mut self, query: usize, distance: f32, index: u32) {
        // Equal to the cut may still win on index; `shrink` settles it.
        if distance > self.cut[query] {
            return;
        }
        let items = &mut self.items[query];
        items.push(candidate_key(distance, index));
        if items.len() >= 2 * self.depth[query].max(32) {
            self.shrink(query);
        }
    }

    fn shrink(&mut self, query: usize) {
        let (depth, items) = (self.depth[query], &mut self.items[query]);
        if items.len() > depth {
            items.select_nth_unstable(depth - 1);
            items.truncate(depth);
            self.cut[query] = key_distance(items[depth - 1]);
        }
    }

    /// Offers row `distances` (to candidates `first..`) to query `query`.
    fn offer_row(
        &mut self,
        query: usize,
        distances: &[f32],
        first: usize,
        skip: Option<usize>,
        mask: &mut Vec<u64>,
    ) {
        // The mask is taken at the cut before the row; `offer` re-checks against the cut as it
        // tightens.
        below(distances, Cuts::One(self.cut[query]), mask);
        for candidate in set_bits(mask) {
            if Some(candidate) != skip {
                self.offer(query, distances[candidate], (first + candidate) as u32);
            }
        }
    }

    /// Offers candidate `index` at `distances[c]` to query c of this tile, for every c.
    fn offer_column(&mut self, distances: &[f32], index: u32, mask: &mut Vec<u64>) {
        below(distances, Cuts::Each(&self.cut[..distances.len()]), mask);
        for query in set_bits(mask) {
            self.offer(query, distances[query], index);
        }
    }

    fn finish(&mut self, query: usize) -> Vec<(f32, u32)> {
        self.shrink(query);
        let mut items = std::mem::take(&mut self.items[query]);
        items.sort_unstable();
        items
            .into_iter()
            .map(|key| (key_distance(key), key as u32))
            .collect()
    }
}

/// The cut(s) a row of distances is compared with: one for all, or one per value.
#[derive(Clone, Copy)]
enum Cuts<'a> {
    One(f32),
    Each(&'a [f32]),
}

/// Bit j of `mask` (in 64-bit words) is set when `values[j] <= cut` (never for NaN). Most
/// distances lose against the cut, so the scan is one vector comparison per 8 values and the
/// winners are visited through the set bits.
fn below(values: &[f32], cuts: Cuts, mask: &mut Vec<u64>) {
    mask.clear();
    mask.resize(values.len().div_ceil(64), 0);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { below_avx2(values, cuts, mask) };
        return;
    }
    below_scalar(values, cuts, mask, 0);
}

/// [`below`] for `values[from..]`.
fn below_scalar(values: &[f32], cuts: Cuts, mask: &mut [u64], from: usize) {
    for (j, &v) in values.iter().enumerate().skip(from) {
        let cut = match cuts {
            Cuts::One(cut) => cut,
            Cuts::Each(cuts) => cuts[j],
        };
        mask[j / 64] |= u64::from(v <= cut) << (j % 64);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn below_avx2(values: &[f32], cuts: Cuts, mask: &mut [u64]) {
    use std::arch::x86_64::{_CMP_LE_OQ, _mm256_cmp_ps, _mm256_movemask_ps, _mm256_set1_ps};
    let full = values.len() / 8 * 8;
    let load = |slice: &[f32], at: usize| {
        let lanes: &[f32; 8] = slice[at..at + 8].try_into().expect("8 lanes");
        // SAFETY: an unaligned load of 8 f32 from a reference to 8 f32.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(lanes.as_ptr()) }
    };
    for at in (0..full).step_by(8) {
        let cut = match cuts {
            Cuts::One(cut) => _mm256_set1_ps(cut),
            Cuts::Each(cuts) => load(cuts, at),
        };
        // Ordered, non-signalling <=: false for NaN, as the scalar comparison.
        let bits = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(load(values, at), cut));
        mask[at / 64] |= u64::from(bits as u8) << (at % 64);
    }
    below_scalar(values, cuts, mask, full);
}

/// The indices of the set bits of `mask`, in increasing order.
fn set_bits(mask: &[u64]) -> impl Iterator<Item = usize> + '_ {
    mask.iter().enumerate().flat_map(|(w, &word)| {
        let mut bits = word;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let k = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                w * 64 + k
            })
        })
    })
}

/// `out[i, j] = |a_i - b_j|^2` for row-major `a` (m rows) and `b` (n rows), from their squared
/// norms: the norms are written first and the product is subtracted inside the gemm.
fn distance_block(
    a: &[f32],
    a_norms: &[f32],
    b: &[f32],
    b_norms: &[f32],
    dim: usize,
    out: &mut [f32],
) {
    let (m, n) = (a_norms.len(), b_norms.len());
    assert_eq!(out.len(), m * n);
    for (row, &na) in out.chunks_mut(n).zip(a_norms) {
        for (o, &nb) in row.iter_mut().zip(b_norms) {
            *o = na + nb;
        }
    }
    scaled_products(a, b, dim, out, 1.0, -2.0);
}

/// Leave-one-out neighbourhoods of `points` against themselves: the same answer as
/// `map_neighbourhoods(points, points, true, depth, visit)`, from half the products.
pub fn map_self_neighbourhoods<T, F, D>(points: Vectors, depth: D, visit: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize, &[(f32, u32)]) -> T + Sync,
    D: Fn(usize) -> usize + Sync,
{
    let n = points.len();
    let depths: Vec<usize> = (0..n).map(|q| depth(q).min(n.saturating_sub(1))).collect();
    let candidate_bytes: usize = depths.iter().map(|d| 2 * d.max(&32) * 8).sum();
    if candidate_bytes > SELF_CANDIDATE_BYTES {
        return map_neighbourhoods(points, points, true, |q| depths[q], visit);
    }
    let dim = points.dim;
    let norms = points.squared_norms();
    let tiles: Vec<usize> = (0..n).step_by(TILE).collect();
    let rows_of = |tile: usize| tiles[tile]..(tiles[tile] + TILE).min(n);
    let lists: Vec<Mutex<TileLists>> = (0..tiles.len())
        .map(|t| Mutex::new(TileLists::new(depths[rows_of(t)].to_vec())))
        .collect();
    let pairs: Vec<(usize, usize)> = (0..tiles.len())
        .flat_map(|a| (a..tiles.len()).map(move |b| (a, b)))
        .collect();
    pairs.into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(tile, mask): &mut (Vec<f32>, Vec<u64>), (a, b)| {
            let (rows, cols) = (rows_of(a), rows_of(b));
            let w = cols.len();
            tile.resize(rows.len() * w, 0.0);
            distance_block(
                &points.data[rows.start * dim..rows.end * dim],
                &norms[rows.clone()],
                &points.data[cols.start * dim..cols.end * dim],
                &norms[cols.clone()],
                dim,
                tile,
            );
            {
                let mut row_lists = lists[a].lock().expect("neighbour lists");
                for r in 0..rows.len() {
                    // On the diagonal tile a query skips itself.
                    let skip = (a == b).then_some(r);
                    row_lists.offer_row(r, &tile[r * w..(r + 1) * w], cols.start, skip, mask);
                }
            }
            if a != b {
                let mut col_lists = lists[b].lock().expect("neighbour lists");
                for (r, i) in rows.clone().enumerate() {
                    col_lists.offer_column(&tile[r * w..(r + 1) * w], i as u32, mask);
                }
            }
        },
    );
    lists
        .into_par_iter()
        .enumerate()
        .map(|(t, lists)| {
            let start = tiles[t];
            let mut lists = lists.into_inner().expect("neighbour lists");
            (0..lists.depth.len())
                .map(|k| {
                    let found = lists.finish(k);
                    visit(start + k, &found)
                })
                .collect::<Vec<T>>()
        })
        .collect::<Vec<Vec<T>>>()
        .into_iter()
        .flatten()
        .collect()
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
}
