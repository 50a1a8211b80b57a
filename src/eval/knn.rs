//! Exact Euclidean k-nearest neighbours by blocked matrix products, streamed: each tile of
//! queries is ranked against the references a tile at a time and handed to a callback, so
//! memory stays at one tile of distances and the tile's neighbour lists per thread (never an
//! n x n matrix), and on AVX-512 one copy of the references packed for the products.
//!
//! Leave-one-out (queries = references) needs only half the products: the distance matrix is
//! symmetric, so each tile above the diagonal is computed once and feeds the neighbour lists
//! of its rows and of its columns ([`map_self_neighbourhoods`]).

use std::ops::Range;
use std::sync::Mutex;

use crate::products::{
    Threads, View, all_on_avx512, avx512, product_in_chunks, product_on_this_thread,
};
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

/// Row-major vectors as the left operand (`a` in `a . b^T`) of products with one right operand
/// or several: copied once into the AVX-512 tiles' order where they take the products.
pub(crate) struct Left<'a> {
    rows: View<'a>,
    packed: Option<avx512::Tiles>,
}

impl<'a> Left<'a> {
    /// `rows`, `dim` values each.
    pub(crate) fn new(rows: &'a [f32], dim: usize) -> Self {
        let (rows, packed) = operand(rows, dim, |transposed, count| {
            avx512::Tiles::pack(transposed.t().strided(0), (count, dim))
        });
        Self { rows, packed }
    }
}

/// Row-major vectors as the right operand (`b` in `a . b^T`) of products with one left operand
/// or several: copied once in the order the AVX-512 tiles read a right operand (transposed,
/// `dim x rows`, in panels) where they take the products.
pub(crate) struct Right<'a> {
    rows: View<'a>,
    panels: Option<avx512::PackedPanels>,
}

impl<'a> Right<'a> {
    /// `rows`, `dim` values each.
    pub(crate) fn new(rows: &'a [f32], dim: usize) -> Self {
        let (rows, panels) = operand(rows, dim, |transposed, count| {
            avx512::PackedPanels::pack(&transposed.strided(0), (dim, count))
        });
        Self { rows, panels }
    }
}

/// `rows` as a `count x dim` matrix, and `pack(their transpose, count)` where the AVX-512
/// tiles take the products.
fn operand<'a, T>(
    rows: &'a [f32],
    dim: usize,
    pack: impl FnOnce(View, usize) -> T,
) -> (View<'a>, Option<T>) {
    let count = rows.len() / dim;
    let rows = View::new(rows, count, dim);
    let packed = (count > 0 && on_avx512(dim))
        .then(|| pack(View::new(&rows.t().to_row_major(), dim, count), count));
    (rows, packed)
}

/// Whether the AVX-512 tiles take this CPU's products of [`TILE`] x [`TILE`] vectors of `dim`
/// values: then operands are packed for them.
fn on_avx512(dim: usize) -> bool {
    all_on_avx512(TILE, TILE, dim)
}

/// `out[i, j] = a_i . b_j`, rounded the same on every machine ([`crate::products`]): from the
/// packed operands where the AVX-512 tiles take the product (the same sums), the rows
/// otherwise.
pub(crate) fn dot(a: &Left, b: &Right, out: &mut [f32]) {
    let (m, n, dim) = (a.rows.rows, b.rows.rows, a.rows.cols);
    assert_eq!(b.rows.cols, dim, "operands differ in dimension");
    assert_eq!(out.len(), m * n, "destination size");
    match (&a.packed, &b.panels) {
        (Some(packed), Some(panels)) if all_on_avx512(m, n, dim) => {
            product_in_chunks(out, (m, dim), false, Threads::One, |start| {
                (avx512::Left::Tiles(packed, start), panels.from_term(start))
            });
        }
        _ => product_on_this_thread(out, a.rows, b.rows.t(), false),
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
    let (count, n) = (queries.len(), references.len());
    let (queries, references) = (Tiled::new(queries), Tiled::new(references).with_panels());
    let tiles: Vec<usize> = (0..count).step_by(TILE).collect();
    let per_tile: Vec<Vec<T>> = tiles
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new()),
            |(tile, mask): &mut (Vec<f32>, Vec<u64>), start| {
                let rows = start..(start + TILE).min(count);
                let mut lists = TileLists::new(
                    rows.clone()
                        .map(|q| depth(q).min(n - usize::from(exclude_self && q < n)))
                        .collect(),
                );
                let left = queries.left(rows.clone());
                for first in (0..n).step_by(TILE) {
                    let cols = first..(first + TILE).min(n);
                    let w = cols.len();
                    tile.resize(rows.len() * w, 0.0);
                    let a = (&queries, rows.clone(), &left);
                    distance_block(a, (&references, cols.clone()), tile);
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
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked above).
        unsafe { below_avx512(values, cuts, mask) };
        return;
    }
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

/// [`below`] by one AVX-512 comparison per 16 values, straight into a mask register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn below_avx512(values: &[f32], cuts: Cuts, mask: &mut [u64]) {
    use std::arch::x86_64::{_CMP_LE_OQ, _mm512_cmp_ps_mask, _mm512_loadu_ps, _mm512_set1_ps};
    let full = values.len() / 16 * 16;
    let load = |slice: &[f32], at: usize| {
        let lanes: &[f32; 16] = slice[at..at + 16].try_into().expect("16 lanes");
        // SAFETY: an unaligned load of 16 f32 from a reference to 16 f32.
        unsafe { _mm512_loadu_ps(lanes.as_ptr()) }
    };
    for at in (0..full).step_by(16) {
        let cut = match cuts {
            Cuts::One(cut) => _mm512_set1_ps(cut),
            Cuts::Each(cuts) => load(cuts, at),
        };
        // Ordered, non-signalling <=: false for NaN, as the scalar comparison.
        let bits = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(load(values, at), cut);
        mask[at / 64] |= u64::from(bits) << (at % 64);
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

/// Points as the distance products read them, tile by tile of [`TILE`]: as right operands
/// (packed once) where `with_panels`, as left operands tile by tile ([`Tiled::left`]).
struct Tiled<'a> {
    points: Vectors<'a>,
    norms: Vec<f32>,
    right: Vec<Right<'a>>,
}

impl<'a> Tiled<'a> {
    fn new(points: Vectors<'a>) -> Self {
        Self {
            norms: points.squared_norms(),
            points,
            right: Vec::new(),
        }
    }

    /// These points with each tile a right operand.
    fn with_panels(self) -> Self {
        let (points, dim) = (self.points, self.points.dim);
        let starts: Vec<usize> = (0..points.len()).step_by(TILE).collect();
        let right = starts
            .into_par_iter()
            .map(|start| Right::new(self.rows(start..(start + TILE).min(points.len())), dim))
            .collect();
        Self { right, ..self }
    }

    /// The values of the points `range`.
    fn rows(&self, range: Range<usize>) -> &'a [f32] {
        let dim = self.points.dim;
        &self.points.data[range.start * dim..range.end * dim]
    }

    /// The points `range` (a whole tile) as a left operand.
    fn left(&self, range: Range<usize>) -> Left<'a> {
        Left::new(self.rows(range), self.points.dim)
    }

    /// The whole tile `range` (from a multiple of [`TILE`] to its end) as a right operand.
    fn right(&self, range: Range<usize>) -> &Right<'a> {
        let right = &self.right[range.start / TILE];
        assert_eq!(right.rows.rows, range.len(), "a whole tile");
        right
    }
}

/// `out[i, j] = |a_i - b_j|^2` for the points `rows` of `a` and `cols` of `b`, from their
/// squared norms: `(|a_i|^2 + |b_j|^2) - 2 a_i . b_j`, one rounding after the product (as
/// gemm's `dst + beta * product` with the norms in dst: multiplying by 2 is exact).
fn distance_block(
    (a, rows, left): (&Tiled, Range<usize>, &Left),
    (b, cols): (&Tiled, Range<usize>),
    out: &mut [f32],
) {
    dot(left, b.right(cols.clone()), out);
    let (a_norms, b_norms) = (&a.norms[rows], &b.norms[cols]);
    for (row, &na) in out.chunks_mut(b_norms.len()).zip(a_norms) {
        for (o, &nb) in row.iter_mut().zip(b_norms) {
            *o = (na + nb) - 2.0 * *o;
        }
    }
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
    let tiled = Tiled::new(points).with_panels();
    let tiles: Vec<usize> = (0..n).step_by(TILE).collect();
    let rows_of = |tile: usize| tiles[tile]..(tiles[tile] + TILE).min(n);
    let lists: Vec<Mutex<TileLists>> = (0..tiles.len())
        .map(|t| Mutex::new(TileLists::new(depths[rows_of(t)].to_vec())))
        .collect();
    // Tile a's row of products holds tiles.len() - a of them: tasks of rows a and len - 1 - a
    // are all the same size.
    let last = tiles.len() - 1;
    (0..tiles.len().div_ceil(2)).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(tile, mask): &mut (Vec<f32>, Vec<u64>), task| {
            let mut rows_of_task = vec![task, last - task];
            rows_of_task.dedup();
            for a in rows_of_task {
                let rows = rows_of(a);
                let left = tiled.left(rows.clone());
                for b in a..tiles.len() {
                    let cols = rows_of(b);
                    let w = cols.len();
                    tile.resize(rows.len() * w, 0.0);
                    distance_block((&tiled, rows.clone(), &left), (&tiled, cols.clone()), tile);
                    {
                        let mut row_lists = lists[a].lock().expect("neighbour lists");
                        for r in 0..rows.len() {
                            // On the diagonal tile a query skips itself.
                            let skip = (a == b).then_some(r);
                            let distances = &tile[r * w..(r + 1) * w];
                            row_lists.offer_row(r, distances, cols.start, skip, mask);
                        }
                    }
                    if a != b {
                        let mut col_lists = lists[b].lock().expect("neighbour lists");
                        for (r, i) in rows.clone().enumerate() {
                            col_lists.offer_column(&tile[r * w..(r + 1) * w], i as u32, mask);
                        }
                    }
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
mod tests;
