//! Matrix products `dst (+)= lhs rhs` whose every output is the same on every x86-64 machine
//! with AVX2 + FMA and for every thread count: sums of more than [`MAX_TERMS`] terms run in
//! equal chunks gemm never splits, each chunk by [`avx512`]'s tiles where they round as gemm's
//! AVX2 kernel and are faster, by gemm otherwise. The convolutions (`model::ops::flex::im2col`)
//! and the evaluation's distances (`eval::knn`) take their products here.

use gemm::{Parallelism, gemm};

pub mod avx512;

/// A row-major matrix `rows x cols`, or the transpose of one stored row-major.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub values: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub transposed: bool,
}

impl<'a> View<'a> {
    pub fn new(values: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "matrix size");
        Self {
            values,
            rows,
            cols,
            transposed: false,
        }
    }

    /// The transpose of this matrix.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            transposed: !self.transposed,
            ..self
        }
    }

    /// This matrix from element `offset` on, for the AVX-512 products.
    pub fn strided(self, offset: usize) -> avx512::Strided<'a> {
        let (cs, rs) = self.strides();
        avx512::Strided {
            values: self.values,
            offset,
            rs: rs as usize,
            cs: cs as usize,
        }
    }

    /// This matrix stored row-major.
    pub fn to_row_major(self) -> Vec<f32> {
        self.strided(0).to_row_major(self.rows, self.cols)
    }

    /// (column stride, row stride).
    pub fn strides(&self) -> (isize, isize) {
        match self.transposed {
            false => (1, self.cols as isize),
            true => (self.rows as isize, 1),
        }
    }
}

/// Longest sum one gemm call takes: gemm splits longer ones into blocks sized from the L1
/// cache (512 terms at least, 1,024 on a 48 KiB L1), which would make the rounding depend on
/// the machine; split here into equal chunks of at most this many, they never are.
pub const MAX_TERMS: usize = 512;

/// `dst (+)= lhs rhs`, dst row-major `lhs.rows x rhs.cols`; `accumulate`: add to dst. The inner
/// dimension runs in chunks of at most [`MAX_TERMS`], each added to dst in turn, on AVX-512
/// where that rounds as gemm does and is faster, by gemm otherwise; on rayon's threads from a
/// million multiply-adds on.
pub fn product(dst: &mut [f32], lhs: View, rhs: View, accumulate: bool) {
    product_with(dst, lhs, rhs, accumulate, avx512::applies, Threads::All);
}

/// [`product`] on the calling thread only: for products inside a parallel loop.
pub fn product_on_this_thread(dst: &mut [f32], lhs: View, rhs: View, accumulate: bool) {
    product_with(dst, lhs, rhs, accumulate, avx512::applies, Threads::One);
}

/// The threads a product runs on (the same numbers either way).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// rayon's, for products of a million multiply-adds and more.
    All,
    /// The calling thread's.
    One,
}

/// [`product`], on AVX-512 for the chunks where `avx512(m, n, terms)`.
pub fn product_by(
    dst: &mut [f32],
    lhs: View,
    rhs: View,
    accumulate: bool,
    avx512: fn(usize, usize, usize) -> bool,
) {
    product_with(dst, lhs, rhs, accumulate, avx512, Threads::All);
}

fn product_with(
    dst: &mut [f32],
    lhs: View,
    rhs: View,
    accumulate: bool,
    avx512: fn(usize, usize, usize) -> bool,
    threads: Threads,
) {
    let (m, n, k) = (lhs.rows, rhs.cols, lhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions");
    assert_eq!(dst.len(), m * n, "destination size");
    let ((lhs_cs, lhs_rs), (rhs_cs, rhs_rs)) = (lhs.strides(), rhs.strides());
    let chunk = chunk_len(k);
    for start in (0..k.max(1)).step_by(chunk) {
        let terms = chunk.min(k - start);
        let accumulate = accumulate || start > 0;
        if avx512(m, n, terms) {
            avx512::product(
                dst,
                (m, n, terms),
                lhs.strided(start * lhs_cs as usize),
                rhs.strided(start * rhs_rs as usize),
                accumulate,
                threads,
            );
            continue;
        }
        // SAFETY: each view's values hold exactly rows x cols elements (checked in View::new)
        // and the strides address them row-major or transposed; the chunk's first column of
        // lhs and row of rhs are `start` < k (or the pointers are unused when k is 0); dst
        // holds m x n (checked above).
        unsafe {
            gemm(
                m,
                n,
                terms,
                dst.as_mut_ptr(),
                1,
                n as isize,
                accumulate,
                lhs.values.as_ptr().offset(start as isize * lhs_cs),
                lhs_cs,
                lhs_rs,
                rhs.values.as_ptr().offset(start as isize * rhs_rs),
                rhs_cs,
                rhs_rs,
                1.0,
                1.0,
                false,
                false,
                false,
                match threads {
                    Threads::All => parallelism(m * n * k),
                    Threads::One => Parallelism::None,
                },
            );
        }
    }
}

/// Terms of each chunk but the last of a sum of `k` terms (see [`MAX_TERMS`]).
pub fn chunk_len(k: usize) -> usize {
    k.div_ceil(k.div_ceil(MAX_TERMS).max(1)).max(1)
}

/// Terms of the last (shortest) chunk of a sum of `k` terms.
pub fn last_chunk_len(k: usize) -> usize {
    let chunk = chunk_len(k);
    k - (k.max(1) - 1) / chunk * chunk
}

/// Whether every chunk of a product `m x n` of `k` terms takes the AVX-512 tiles: then its
/// operands may be read in whatever layout suits the tiles (on gemm's main path each output is
/// the same sum in order whatever the layout).
pub fn all_on_avx512(m: usize, n: usize, k: usize) -> bool {
    avx512::applies(m, n, chunk_len(k)) && avx512::applies(m, n, last_chunk_len(k))
}

/// Whether two results are the same bits, value for value.
#[cfg(test)]
pub(crate) fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Threads for a product of `work` multiply-adds: one below a million (waking rayon's threads
/// costs more than they save there), all above.
fn parallelism(work: usize) -> Parallelism {
    if work < 1 << 20 {
        Parallelism::None
    } else {
        Parallelism::Rayon(0)
    }
}

/// `dst (+)= lhs rhs` for an `m x k` left operand, on AVX-512 in the chunks of [`product`], the
/// operands of the chunk from term `start` on given by `chunk(start)`; `accumulate`: add to
/// dst.
pub fn product_in_chunks<'a, P: avx512::Panels>(
    dst: &mut [f32],
    (m, k): (usize, usize),
    accumulate: bool,
    threads: Threads,
    chunk: impl Fn(usize) -> (avx512::Left<'a>, P),
) {
    let n = dst.len() / m;
    let chunk_terms = chunk_len(k);
    for start in (0..k).step_by(chunk_terms) {
        let terms = chunk_terms.min(k - start);
        let (lhs, rhs) = chunk(start);
        let accumulate = accumulate || start > 0;
        avx512::product_of(dst, (m, n, terms), lhs, &rhs, accumulate, threads);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(count: usize, salt: usize) -> Vec<f32> {
        (0..count)
            .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.0) - 1.0)
            .collect()
    }

    /// The `rows x cols` matrix `values` (row-major), stored transposed when `transposed`.
    fn stored(values: &[f32], rows: usize, cols: usize, transposed: bool) -> Vec<f32> {
        match transposed {
            false => values.to_vec(),
            true => (0..cols * rows)
                .map(|i| values[(i % rows) * cols + i / rows])
                .collect(),
        }
    }

    fn view(values: &[f32], rows: usize, cols: usize, transposed: bool) -> View<'_> {
        match transposed {
            false => View::new(values, rows, cols),
            true => View::new(values, cols, rows).t(),
        }
    }

    #[test]
    fn avx512_products_are_bit_for_bit_gemms() {
        if !avx512::applies(64, 64, 64) {
            eprintln!("SKIPPED avx512_products_are_bit_for_bit_gemms: this CPU has no AVX-512F");
            return;
        }
        let never = |_: usize, _: usize, _: usize| false;
        // Full and partial tiles and blocks, one to three chunks, sequential and parallel.
        let shapes = [
            (12, 32, 3),
            (13, 33, 7),
            (64, 100, 147),
            (97, 257, 576),
            (200, 70, 1100),
            (5, 300, 40),
        ];
        for (m, n, k) in shapes {
            let (a, b) = (values(m * k, m), values(k * n, n));
            for (lhs_t, rhs_t) in [(false, false), (true, false), (false, true), (true, true)] {
                let (a_stored, b_stored) = (stored(&a, m, k, lhs_t), stored(&b, k, n, rhs_t));
                let (lhs, rhs) = (view(&a_stored, m, k, lhs_t), view(&b_stored, k, n, rhs_t));
                for accumulate in [false, true] {
                    let start = values(m * n, 9);
                    let (mut fast, mut reference) = (start.clone(), start);
                    product_by(&mut fast, lhs, rhs, accumulate, avx512::applies);
                    product_by(&mut reference, lhs, rhs, accumulate, never);
                    assert!(
                        same_bits(&fast, &reference),
                        "{m}x{n}x{k}, lhs transposed {lhs_t}, rhs transposed {rhs_t}, \
                         accumulate {accumulate}"
                    );
                }
            }
        }
    }

    #[test]
    fn long_sums_run_in_equal_chunks_of_at_most_512_terms() {
        // k = 1,100: three chunks of 367, 367 and 366 terms, on every machine.
        let (m, n, k) = (5, 7, 1100);
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        let chunks = [0..367, 367..734, 734..1100];
        for (lhs_t, rhs_t) in [(false, false), (true, false), (false, true), (true, true)] {
            let (a_stored, b_stored) = (stored(&a, m, k, lhs_t), stored(&b, k, n, rhs_t));
            let mut got = vec![0f32; m * n];
            product(
                &mut got,
                view(&a_stored, m, k, lhs_t),
                view(&b_stored, k, n, rhs_t),
                false,
            );
            // The same chunks as separate products, added in order.
            let mut chunked = vec![0f32; m * n];
            for (c, terms) in chunks.iter().enumerate() {
                let a_chunk: Vec<f32> = (0..m)
                    .flat_map(|i| a[i * k..][terms.clone()].to_vec())
                    .collect();
                let b_chunk = b[terms.start * n..terms.end * n].to_vec();
                let len = terms.len();
                product(
                    &mut chunked,
                    view(&stored(&a_chunk, m, len, lhs_t), m, len, lhs_t),
                    view(&stored(&b_chunk, len, n, rhs_t), len, n, rhs_t),
                    c > 0,
                );
            }
            assert_eq!(
                got, chunked,
                "lhs transposed {lhs_t}, rhs transposed {rhs_t}"
            );
            for (index, value) in got.iter().enumerate() {
                let (i, j) = (index / n, index % n);
                let exact: f64 = (0..k)
                    .map(|t| f64::from(a[i * k + t]) * f64::from(b[t * n + j]))
                    .sum();
                assert!((f64::from(*value) - exact).abs() <= 1e-4 * exact.abs().max(1.0));
            }
        }
    }
}
