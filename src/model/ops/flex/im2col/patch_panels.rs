//! The patch matrix read in place: on AVX-512 the products gather each panel of it (forward)
//! or of its transpose (weight gradient) from the images as their tiles need it, instead of
//! the matrix being written out (all of a block's output positions times `in_channels * kh *
//! kw`: 19 MB for ResNet's first layer at 64 pixels) and read back. The panels hold the same
//! values, and the AVX-512 products sum alike whatever the layout, so the results are the same
//! bits.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use std::ops::Range;

use super::ConvGeometry;
use crate::products::avx512::{NR, Panels, masks};

/// The patch matrix `[in_channels * kh * kw, images * ho * wo]` of a block of images
/// (`[images, in_channels, h, w]`), or (`transposed`) its transpose, from its row `first_term`
/// on. Transposed it is the weight gradient's right operand, its columns in burn's weight order.
#[derive(Clone, Copy)]
pub(super) struct PatchPanels<'a> {
    pub geometry: &'a ConvGeometry,
    pub block: &'a [f32],
    pub transposed: bool,
    pub first_term: usize,
}

impl PatchPanels<'_> {
    /// Per column of a panel (at most [`NR`]): where its image starts in the block, and the
    /// input row and column under the kernel's first tap (negative in the padding).
    fn columns(&self, cols: Range<usize>) -> [[i32; NR]; 3] {
        let g = self.geometry;
        let [ho, wo] = g.output();
        let plane = g.input[0] * g.input[1];
        let mut columns = [[0i32; NR]; 3];
        for (lane, col) in cols.enumerate() {
            let (image, position) = (col / (ho * wo), col % (ho * wo));
            let (oy, ox) = (position / wo, position % wo);
            columns[0][lane] = (image * g.in_channels * plane) as i32;
            columns[1][lane] = (oy * g.stride[0]) as i32 - g.padding[0] as i32;
            columns[2][lane] = (ox * g.stride[1]) as i32 - g.padding[1] as i32;
        }
        columns
    }
}

impl Panels for PatchPanels<'_> {
    #[cfg(target_arch = "x86_64")]
    unsafe fn pack(&self, terms: Range<usize>, cols: Range<usize>, panel: &mut [f32]) {
        // Gathers index the block with 32-bit offsets, and only inside the matrix.
        assert!(self.block.len() <= i32::MAX as usize, "block too large");
        assert!(panel.len() >= terms.len() * NR && cols.len() <= NR);
        let terms = self.first_term + terms.start..self.first_term + terms.end;
        let (image_len, _, positions) = self.geometry.lengths();
        let shape = [
            self.geometry.patch(),
            self.block.len() / image_len * positions,
        ];
        let [rows, columns] = match self.transposed {
            false => shape,
            true => [shape[1], shape[0]],
        };
        assert!(
            terms.end <= rows && cols.end <= columns,
            "panel outside the matrix"
        );
        // SAFETY: as this function's.
        unsafe {
            match self.transposed {
                false => self.pack_taps(terms, cols, panel),
                true => self.pack_positions(terms, cols, panel),
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn pack(&self, _: Range<usize>, _: Range<usize>, _: &mut [f32]) {
        unreachable!("the AVX-512 products run on x86-64 only")
    }
}

#[cfg(target_arch = "x86_64")]
impl PatchPanels<'_> {
    /// [`Panels::pack`] of the patch matrix: a term is an input channel's kernel tap, a column
    /// an output position.
    #[target_feature(enable = "avx512f")]
    unsafe fn pack_taps(&self, terms: Range<usize>, cols: Range<usize>, panel: &mut [f32]) {
        let g = self.geometry;
        let ([h, w], [kh, kw]) = (g.input, g.kernel);
        let plane = (h * w) as i32;
        let [image, row, col] = self.columns(cols.clone()).map(|lanes| {
            // SAFETY: 2 x 16 lanes of NR = 32 values.
            unsafe { [0, 16].map(|half| _mm512_loadu_si512(lanes[half..].as_ptr().cast())) }
        });
        let lanes = masks(cols.len());
        // Per tap: each column's offset in its image's first channel, and whether it lies
        // inside the image (not in the padding, not past the panel's width).
        let taps: Vec<[(__m512i, __mmask16); 2]> = (0..kh * kw)
            .map(|tap| {
                let (i, j) = (
                    (tap / kw * g.dilation[0]) as i32,
                    (tap % kw * g.dilation[1]) as i32,
                );
                std::array::from_fn(|half| {
                    let y = _mm512_add_epi32(row[half], _mm512_set1_epi32(i));
                    let x = _mm512_add_epi32(col[half], _mm512_set1_epi32(j));
                    let inside = |v, size| {
                        _mm512_cmpge_epi32_mask(v, _mm512_setzero_si512())
                            & _mm512_cmplt_epi32_mask(v, _mm512_set1_epi32(size as i32))
                    };
                    let offset = _mm512_add_epi32(
                        image[half],
                        _mm512_add_epi32(_mm512_mullo_epi32(y, _mm512_set1_epi32(w as i32)), x),
                    );
                    (offset, lanes[half] & inside(y, h) & inside(x, w))
                })
            })
            .collect();
        let base = self.block.as_ptr();
        for (term, row) in terms.enumerate() {
            let (channel, tap) = (row / taps.len(), row % taps.len());
            let channel = _mm512_set1_epi32(channel as i32 * plane);
            for (half, &(offset, inside)) in taps[tap].iter().enumerate() {
                // SAFETY: the lanes inside the image index the block (its images, channels and
                // rows are the patch matrix's); the others are not read and give 0. The store
                // writes the panel's term.
                unsafe {
                    let values = _mm512_mask_i32gather_ps::<4>(
                        _mm512_setzero_ps(),
                        inside,
                        _mm512_add_epi32(offset, channel),
                        base.cast(),
                    );
                    _mm512_storeu_ps(panel.as_mut_ptr().add(term * NR + 16 * half), values);
                }
            }
        }
    }

    /// [`Panels::pack`] of the transposed patch matrix: a term is an output position, a
    /// column an input channel's kernel tap.
    #[target_feature(enable = "avx512f")]
    unsafe fn pack_positions(&self, terms: Range<usize>, cols: Range<usize>, panel: &mut [f32]) {
        let g = self.geometry;
        let ([h, w], [kh, kw], [ho, wo]) = (g.input, g.kernel, g.output());
        let (taps, plane) = (kh * kw, h * w);
        // Per column (input channel and tap): its offset from the input under the kernel's
        // first tap, and the tap's row and column.
        let mut columns = [[0i32; NR]; 3];
        for (lane, col) in cols.clone().enumerate() {
            let (channel, tap) = (col / taps, col % taps);
            let (i, j) = (tap / kw * g.dilation[0], tap % kw * g.dilation[1]);
            columns[0][lane] = (channel * plane + i * w + j) as i32;
            columns[1][lane] = i as i32;
            columns[2][lane] = j as i32;
        }
        let [offset, tap_row, tap_col] = columns.map(|lanes| {
            // SAFETY: 2 x 16 lanes of NR = 32 values.
            unsafe { [0, 16].map(|half| _mm512_loadu_si512(lanes[half..].as_ptr().cast())) }
        });
        let lanes = masks(cols.len());
        let inside = |v, size: usize| {
            _mm512_cmpge_epi32_mask(v, _mm512_setzero_si512())
                & _mm512_cmplt_epi32_mask(v, _mm512_set1_epi32(size as i32))
        };
        let base = self.block.as_ptr();
        for (term, position) in terms.enumerate() {
            let (image, position) = (position / (ho * wo), position % (ho * wo));
            let y = (position / wo * g.stride[0]) as i32 - g.padding[0] as i32;
            let x = (position % wo * g.stride[1]) as i32 - g.padding[1] as i32;
            let start =
                _mm512_set1_epi32((image * g.in_channels * plane) as i32 + y * w as i32 + x);
            let (y, x) = (_mm512_set1_epi32(y), _mm512_set1_epi32(x));
            for half in 0..2 {
                let valid = lanes[half]
                    & inside(_mm512_add_epi32(tap_row[half], y), h)
                    & inside(_mm512_add_epi32(tap_col[half], x), w);
                // SAFETY: the valid lanes index the block (the position's image, the column's
                // channel, a row and column inside the image); the others are not read and
                // give 0. The store writes the panel's term.
                unsafe {
                    let values = _mm512_mask_i32gather_ps::<4>(
                        _mm512_setzero_ps(),
                        valid,
                        _mm512_add_epi32(offset[half], start),
                        base.cast(),
                    );
                    _mm512_storeu_ps(panel.as_mut_ptr().add(term * NR + 16 * half), values);
                }
            }
        }
    }
}
