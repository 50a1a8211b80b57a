//! agml's matrix products on AVX-512, rounding exactly as gemm's AVX2 + FMA kernel.
//!
//! gemm (without its `x86-v4` feature, which would change the numbers: its small products sum
//! across vector lanes) runs 8-lane AVX2 kernels on AVX-512 machines too, at half their
//! multiply-add width. Every output of a gemm product (on its main path) is one accumulator
//! that starts at 0 and takes one fused multiply-add per term in order, then is added to the
//! destination (or written); here likewise, 16 lanes at a time, so the results are bit for bit
//! gemm's on an AVX2 + FMA machine (tested below), whichever machine runs them.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;
use std::ops::Range;

use super::Threads;

/// Rows of a tile (one broadcast value each per term).
const MR: usize = 12;
/// Columns of a tile: two 16-lane vectors.
pub const NR: usize = 32;
/// Columns of a task.
const NC: usize = 256;

/// A strided matrix: element (r, c) at `values[offset + r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct Strided<'a> {
    pub values: &'a [f32],
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Strided<'a> {
    /// A row-major `_ x cols` matrix.
    fn row_major(values: &'a [f32], cols: usize) -> Self {
        Self {
            values,
            offset: 0,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of this matrix.
    fn t(self) -> Self {
        Self {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Panics unless every element of a `rows x cols` matrix is inside `values`.
    fn check(&self, rows: usize, cols: usize) {
        let last = self.offset + (rows - 1) * self.rs + (cols - 1) * self.cs;
        assert!(last < self.values.len(), "matrix outside its values");
    }

    /// The `rows x cols` matrix, row-major.
    pub fn to_row_major(self, rows: usize, cols: usize) -> Vec<f32> {
        let mut out = vec![0f32; rows * cols];
        // Blocks of 16 x 16 keep both sides' cache lines in use.
        for r0 in (0..rows).step_by(16) {
            for c0 in (0..cols).step_by(16) {
                for c in c0..(c0 + 16).min(cols) {
                    for r in r0..(r0 + 16).min(rows) {
                        out[r * cols + c] = self.values[self.offset + r * self.rs + c * self.cs];
                    }
                }
            }
        }
        out
    }
}

/// A right operand the products read panel by panel: `NR` columns at a time, term after term.
pub trait Panels: Sync {
    /// Writes the rows `terms` of the columns `cols` (at most `NR`) into `panel`, each term's
    /// `NR` values after the previous term's, 0 after the columns.
    ///
    /// # Safety
    /// The CPU has AVX-512F; the terms and columns lie inside the operand; `panel` holds
    /// `terms.len() * NR` values.
    unsafe fn pack(&self, terms: Range<usize>, cols: Range<usize>, panel: &mut [f32]);

    /// The panel of the columns from `first_col` (a multiple of `NR`), its first `k` terms,
    /// where it lies in memory already as [`Panels::pack`] would write it: the tiles read it
    /// in place.
    fn in_place(&self, _k: usize, _first_col: usize) -> Option<&[f32]> {
        None
    }
}

/// A right operand `k x n` copied once in the order the tiles read it: panel after panel of
/// `NR` columns, each term's `NR` values after the previous term's, zeros past the last column.
/// For an operand several products read whole.
pub struct PackedPanels {
    values: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedPanels {
    /// `rhs` (`k x n`) packed. Panics unless the CPU has AVX-512F.
    pub fn pack(rhs: &impl Panels, (k, n): (usize, usize)) -> Self {
        assert!(available(), "no AVX-512F");
        let mut values = vec![0f32; n.div_ceil(NR) * k * NR];
        for (panel, first_col) in values.chunks_mut(k * NR).zip((0..n).step_by(NR)) {
            // SAFETY: the CPU has AVX-512F (checked above); the panel holds k * NR values and
            // rhs the columns (the caller's k x n).
            unsafe { rhs.pack(0..k, first_col..(first_col + NR).min(n), panel) };
        }
        Self { values, k, n }
    }

    /// The operand from its term `first_term` on.
    pub fn from_term(&self, first_term: usize) -> PanelsFrom<'_> {
        assert!(first_term <= self.k, "term outside the operand");
        PanelsFrom {
            panels: self,
            first_term,
        }
    }
}

/// [`PackedPanels`] from one of its terms on, read in place.
#[derive(Clone, Copy)]
pub struct PanelsFrom<'a> {
    panels: &'a PackedPanels,
    first_term: usize,
}

impl PanelsFrom<'_> {
    /// Where the panel of the columns from `first_col` starts, at this operand's first term.
    fn start(&self, first_col: usize) -> usize {
        assert!(first_col.is_multiple_of(NR) && first_col < self.panels.n);
        (first_col / NR * self.panels.k + self.first_term) * NR
    }
}

impl Panels for PanelsFrom<'_> {
    unsafe fn pack(&self, terms: Range<usize>, cols: Range<usize>, panel: &mut [f32]) {
        // The panel holds the whole NR columns, zeros past the operand's last one.
        let panels = self.in_place(terms.end, cols.start).expect("packed panels");
        let len = terms.len() * NR;
        panel[..len].copy_from_slice(&panels[terms.start * NR..]);
    }

    fn in_place(&self, k: usize, first_col: usize) -> Option<&[f32]> {
        assert!(
            self.first_term + k <= self.panels.k,
            "terms outside the operand"
        );
        let start = self.start(first_col);
        Some(&self.panels.values[start..start + k * NR])
    }
}

/// A matrix with contiguous rows (`cs == 1`) packs its panels by copying them.
impl Panels for Strided<'_> {
    unsafe fn pack(&self, terms: Range<usize>, cols: Range<usize>, panel: &mut [f32]) {
        debug_assert_eq!(self.cs, 1);
        let rows = Strided {
            offset: self.offset + terms.start * self.rs,
            ..*self
        };
        // SAFETY: as this function's.
        unsafe { pack_panel(rows, terms.len(), cols.start, cols.len(), panel) }
    }
}

/// Whether [`product`] can run here and round as gemm does for a `m x n` product of `k`
/// terms: an AVX-512 CPU, and a product on gemm's main path. agml's products take it wherever
/// it does: faster than gemm's AVX2 kernel on CPUs that run 512-bit multiply-adds at full width
/// and on AMD's Zen 4, which splits them in two (docs/benchmarks.md).
pub fn applies(m: usize, n: usize, k: usize) -> bool {
    on_gemms_main_path(m, n, k) && available()
}

/// Whether gemm takes a `m x n` product of `k` terms on its main path, where each output is one
/// sum in order whatever the operands' layout; it sums products of at most 256 outputs, or of
/// one row or column, or of at most 2 terms, otherwise.
pub fn on_gemms_main_path(m: usize, n: usize, k: usize) -> bool {
    m >= 2 && n >= 2 && k >= 3 && m * n > 256
}

#[cfg(target_arch = "x86_64")]
fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn available() -> bool {
    false
}

/// The destination's pointer, shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct Destination(*mut f32);
// SAFETY: tasks write disjoint blocks of the destination (see `product`).
unsafe impl Send for Destination {}
unsafe impl Sync for Destination {}

/// `dst (+)= lhs rhs` for `dst` row-major `m x n`, lhs `m x k`, rhs `k x n`; `accumulate`:
/// add to dst. Panics unless [`applies`].
///
/// The tiles take 16 consecutive columns of the right operand per load and broadcast the left
/// operand's values from where they lie; a right operand whose rows are not contiguous gives
/// the transposed product (`dst^T = rhs^T lhs^T`) when lhs's columns are, else the smaller
/// operand is copied row-major first.
pub fn product(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    lhs: Strided,
    rhs: Strided,
    accumulate: bool,
    threads: Threads,
) {
    assert!(applies(m, n, k), "not an AVX-512 product");
    assert_eq!(dst.len(), m * n, "destination size");
    lhs.check(m, k);
    rhs.check(k, n);
    // Copying rhs (k x n values) or lhs (k x m) and adding the transposed product (m x n).
    let copied_rhs;
    let rhs_rows = if rhs.cs == 1 {
        Some(rhs)
    } else if lhs.rs != 1 && k * n <= k * m + m * n {
        copied_rhs = rhs.to_row_major(k, n);
        Some(Strided::row_major(&copied_rhs, n))
    } else {
        None
    };
    if let Some(rhs) = rhs_rows {
        let lhs = Left::Strided(lhs);
        return direct(dst, (m, n, k), lhs, &rhs, accumulate, threads);
    }
    let copied;
    let lhs_t = if lhs.rs == 1 {
        lhs.t()
    } else {
        copied = lhs.t().to_row_major(k, m);
        Strided::row_major(&copied, m)
    };
    let mut transposed = vec![0f32; n * m];
    direct(
        &mut transposed,
        (n, m, k),
        Left::Strided(rhs.t()),
        &lhs_t,
        false,
        threads,
    );
    // dst (+)= transposed^T, in blocks of 16 x 16: the same rounding as adding each sum where
    // it belongs.
    for i0 in (0..m).step_by(16) {
        for j0 in (0..n).step_by(16) {
            for i in i0..(i0 + 16).min(m) {
                let row = &mut dst[i * n..(i + 1) * n];
                for (j, value) in row.iter_mut().enumerate().take((j0 + 16).min(n)).skip(j0) {
                    let sum = transposed[j * m + i];
                    *value = if accumulate { *value + sum } else { sum };
                }
            }
        }
    }
}

/// `dst (+)= lhs rhs` for `dst` row-major `m x n`, lhs `m x k`, and a right operand `k x n`
/// that packs its own panels; `accumulate`: add to dst. Panics unless [`applies`].
pub fn product_of<P: Panels>(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    lhs: Left,
    rhs: &P,
    accumulate: bool,
    threads: Threads,
) {
    assert!(applies(m, n, k), "not an AVX-512 product");
    assert_eq!(dst.len(), m * n, "destination size");
    match lhs {
        Left::Strided(lhs) => lhs.check(m, k),
        Left::Tiles(tiles, first_term) => {
            assert!(
                tiles.m == m && first_term + k <= tiles.k,
                "packed operand's size"
            );
        }
    }
    direct(dst, (m, n, k), lhs, rhs, accumulate, threads);
}

/// A left operand as the tiles read it.
#[derive(Clone, Copy)]
pub enum Left<'a> {
    /// Where it lies; a task copies the rows of one with contiguous columns first.
    Strided(Strided<'a>),
    /// Packed once for several products, from its term `.1` on.
    Tiles(&'a Tiles, usize),
}

/// A left operand `m x k` as tiles of `MR` rows one after another, each term's `MR` values
/// after the previous term's (a short last tile's missing rows are 0).
pub struct Tiles {
    values: Vec<f32>,
    m: usize,
    k: usize,
}

impl Tiles {
    /// `lhs` (`m x k`, contiguous columns: `lhs.rs == 1`) packed, a task per tile. Panics
    /// unless the CPU has AVX-512F.
    pub fn pack(lhs: Strided, (m, k): (usize, usize)) -> Self {
        assert!(available(), "no AVX-512F");
        assert_eq!(lhs.rs, 1, "a left operand with contiguous columns");
        lhs.check(m, k);
        let mut values = vec![0f32; m.div_ceil(MR) * k * MR];
        values
            .par_chunks_mut(k * MR)
            .enumerate()
            .for_each(|(tile, to)| {
                let first_row = tile * MR;
                // SAFETY: lhs holds the tile's rows (checked above), `to` its k * MR values;
                // the CPU has AVX-512F (checked above).
                unsafe { pack_tile(lhs, first_row..(first_row + MR).min(m), k, to) }
            });
        Self { values, m, k }
    }

    /// Rows of the packed operand.
    pub fn rows(&self) -> usize {
        self.m
    }
}

/// [`product`] for a right operand with contiguous rows (`rhs.cs == 1`), in tasks of whole
/// `NC`-column blocks where there are enough of them.
fn direct<P: Panels>(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    lhs: Left,
    rhs: &P,
    accumulate: bool,
    threads: Threads,
) {
    // Tasks of whole columns (each panel packed once) where there are enough for the threads,
    // else of fewer rows as well; one task on one thread (a left operand copied into tiles is
    // then copied once).
    let parallel = threads == Threads::All && m * n * k >= 1 << 20;
    let (tasks, nc) = match parallel {
        true => (2 * rayon::current_num_threads(), NC),
        false => (1, n),
    };
    let col_blocks = n.div_ceil(nc);
    let row_blocks = tasks.div_ceil(col_blocks).min(m.div_ceil(MR));
    let mc = m.div_ceil(row_blocks).next_multiple_of(MR);
    let row_blocks = m.div_ceil(mc);
    let destination = Destination(dst.as_mut_ptr());
    let task = |index: usize| {
        let (rows, cols) = (index / col_blocks * mc, index % col_blocks * nc);
        let rows = rows..(rows + mc).min(m);
        let cols = cols..(cols + nc).min(n);
        // SAFETY: the block rows x cols of the m x n destination is this task's alone; the
        // operands hold m x k and k x n (checked by `product`).
        unsafe { block(destination, n, (rows, cols), k, lhs, rhs, accumulate) }
    };
    if !parallel {
        (0..row_blocks * col_blocks).for_each(task);
    } else {
        (0..row_blocks * col_blocks).into_par_iter().for_each(task);
    }
}

/// One task: the destination block `rows x cols`, column panel by column panel.
///
/// # Safety
/// `dst` points at a row-major matrix with `n` columns that holds the block, which no other
/// thread touches meanwhile; lhs holds the block's rows (k terms) and rhs its columns; the CPU
/// has AVX-512F (checked by [`applies`]).
unsafe fn block<P: Panels>(
    dst: Destination,
    n: usize,
    (rows, cols): (std::ops::Range<usize>, std::ops::Range<usize>),
    k: usize,
    lhs: Left,
    rhs: &P,
    accumulate: bool,
) {
    // The panel's rows one after another: its tiles read it from L1 and L2 in order, not at
    // the right operand's row stride (a page apart and more). Allocated at the first panel not
    // read in place.
    let mut panel = Vec::new();
    // A left operand with contiguous columns (a transposed matrix) has a term's values of a
    // tile side by side but its terms a row of the stored matrix apart, often pages: copied
    // tile by tile, term after term, its tiles read it in order (unless packed already).
    let mut packed;
    // Where row `first_row`'s tile starts: `base + (first_row - first) * per_row`, and the
    // tile's (row, term) strides.
    let (base, first, per_row, a_strides) = match lhs {
        Left::Strided(strided) if strided.rs == 1 && strided.cs > MR => {
            packed = vec![0f32; rows.len().div_ceil(MR) * k * MR];
            let tiles = packed.chunks_mut(k * MR).zip(rows.clone().step_by(MR));
            for (to, first_row) in tiles {
                // SAFETY: lhs holds the block's rows (k terms); the CPU has AVX-512F.
                unsafe { pack_tile(strided, first_row..(first_row + MR).min(rows.end), k, to) };
            }
            (packed.as_ptr(), rows.start, k, (1, MR))
        }
        // Tile i lies at i * MR * tiles.k, its term t at t * MR.
        Left::Tiles(tiles, first_term) => {
            let base = tiles.values.as_ptr().wrapping_add(first_term * MR);
            (base, 0, tiles.k, (1, MR))
        }
        Left::Strided(strided) => {
            let base = strided.values.as_ptr().wrapping_add(strided.offset);
            (base, 0, strided.rs, (strided.rs, strided.cs))
        }
    };
    for first_col in cols.clone().step_by(NR) {
        let width = NR.min(cols.end - first_col);
        let b = match rhs.in_place(k, first_col) {
            Some(b) => b.as_ptr(),
            None => {
                panel.resize(k * NR, 0.0);
                // SAFETY: the panel holds k rows of NR; rhs holds the block's columns of k
                // rows.
                unsafe { rhs.pack(0..k, first_col..first_col + width, &mut panel) };
                panel.as_ptr()
            }
        };
        for first_row in rows.clone().step_by(MR) {
            let height = MR.min(rows.end - first_row);
            let a = base.wrapping_add((first_row - first) * per_row);
            let tile = Tile {
                a,
                a_strides,
                b,
                b_rs: NR,
                dst: dst.0.wrapping_add(first_row * n + first_col),
                dst_rs: n,
                size: (height, width),
            };
            // SAFETY: the tile's rows, columns and terms lie inside the operands and the block.
            // A short last tile (64 rows are 5 tiles of 12 and one of 4) computes 4 or 8 rows.
            unsafe {
                match height.div_ceil(4) {
                    1 => tile_product::<4>(&tile, k, accumulate),
                    2 => tile_product::<8>(&tile, k, accumulate),
                    _ => tile_product::<MR>(&tile, k, accumulate),
                }
            }
        }
    }
}

/// Copies `width <= NR` columns from `first_col` on of the `k` rows of `rhs` (contiguous rows)
/// into `panel` (`k x NR`), zeros after them: two masked vector moves a row, where a
/// `copy_from_slice` would call memmove for every 128 bytes.
///
/// # Safety
/// rhs holds `k` rows with the columns `first_col..first_col + width`; `panel` holds `k * NR`
/// values; the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_panel(rhs: Strided, k: usize, first_col: usize, width: usize, panel: &mut [f32]) {
    assert!(panel.len() >= k * NR);
    let masks = masks(width);
    let from = rhs.values.as_ptr().wrapping_add(rhs.offset + first_col);
    for t in 0..k {
        let (from, to) = (
            from.wrapping_add(t * rhs.rs),
            panel.as_mut_ptr().wrapping_add(t * NR),
        );
        for (half, &mask) in masks.iter().enumerate() {
            // SAFETY: the masked load reads only the row's `width` columns; the store writes
            // the panel's row t.
            unsafe {
                let values = _mm512_maskz_loadu_ps(mask, from.wrapping_add(16 * half));
                _mm512_storeu_ps(to.add(16 * half), values);
            }
        }
    }
}

/// One tile of rows of `lhs` (`k` terms, contiguous columns: `lhs.rs == 1`) into `to`, each
/// term's `MR` values after the previous term's (rows past `rows` are left as they are).
///
/// # Safety
/// lhs holds the rows' `k` terms; the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_tile(lhs: Strided, rows: std::ops::Range<usize>, k: usize, to: &mut [f32]) {
    debug_assert_eq!(lhs.rs, 1);
    assert!(rows.len() <= MR && to.len() >= k * MR);
    let mask: __mmask16 = (1u16 << rows.len()) - 1;
    let from = lhs.values.as_ptr().wrapping_add(lhs.offset + rows.start);
    for t in 0..k {
        // SAFETY: the masked load reads the tile's rows of term t, the masked store writes
        // the term's MR values in `to`.
        unsafe {
            let values = _mm512_maskz_loadu_ps(mask, from.wrapping_add(t * lhs.cs));
            _mm512_mask_storeu_ps(to.as_mut_ptr().add(t * MR), (1 << MR) - 1, values);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack_tile(_: Strided, _: std::ops::Range<usize>, _: usize, _: &mut [f32]) {
    unreachable!("applies() is false off x86-64")
}

/// The lane masks of the two 16-lane halves of a tile or panel `width` columns wide.
#[cfg(target_arch = "x86_64")]
pub fn masks(width: usize) -> [__mmask16; 2] {
    let mask = |from: usize| -> __mmask16 {
        match width.saturating_sub(from) {
            0 => 0,
            w if w >= 16 => 0xffff,
            w => (1u16 << w) - 1,
        }
    };
    [mask(0), mask(16)]
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack_panel(_: Strided, _: usize, _: usize, _: usize, _: &mut [f32]) {
    unreachable!("applies() is false off x86-64")
}

/// One tile of at most `MR x NR` outputs and where its operands are.
struct Tile {
    /// The tile's first row of the left operand, and that operand's (row, column) strides.
    a: *const f32,
    a_strides: (usize, usize),
    /// The tile's first column of the right operand (contiguous rows), and its row stride.
    b: *const f32,
    b_rs: usize,
    /// The tile's corner in the row-major destination, and its row stride.
    dst: *mut f32,
    dst_rs: usize,
    /// (height <= MR, width <= NR).
    size: (usize, usize),
}

/// The tile (+)= its `k` terms: per output one fused multiply-add per term, in order, from 0;
/// `R >= height` rows computed.
///
/// # Safety
/// The tile's operands hold `height x k` and `k x width` values and its destination `height x
/// width`, at the tile's pointers and strides; the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_product<const R: usize>(tile: &Tile, k: usize, accumulate: bool) {
    let (height, width) = tile.size;
    debug_assert!(height <= R);
    let (a_rs, a_cs) = tile.a_strides;
    let masks = masks(width);
    // Rows past the tile's height repeat its last row (computed, never stored).
    let rows: [usize; R] = std::array::from_fn(|i| i.min(height - 1) * a_rs);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for t in 0..k {
        // SAFETY: masked loads read only the tile's columns of row t of the right operand, and
        // the broadcasts the tile's rows of column t of the left one.
        unsafe {
            let b = tile.b.wrapping_add(t * tile.b_rs);
            let b0 = _mm512_maskz_loadu_ps(masks[0], b);
            let b1 = _mm512_maskz_loadu_ps(masks[1], b.wrapping_add(16));
            let a = tile.a.wrapping_add(t * a_cs);
            for (acc, row) in acc.iter_mut().zip(rows) {
                let a = _mm512_set1_ps(*a.add(row));
                acc[0] = _mm512_fmadd_ps(a, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(a, b1, acc[1]);
            }
        }
    }
    for (i, acc) in acc.iter().enumerate().take(height) {
        for (half, (&mask, &acc)) in masks.iter().zip(acc).enumerate() {
            let at = tile.dst.wrapping_add(i * tile.dst_rs + 16 * half);
            // SAFETY: masked loads and stores touch only the tile's `width` columns of row i.
            unsafe {
                let value = if accumulate {
                    _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mask, at))
                } else {
                    acc
                };
                _mm512_mask_storeu_ps(at, mask, value);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_product<const R: usize>(_: &Tile, _: usize, _: bool) {
    unreachable!("applies() is false off x86-64")
}
