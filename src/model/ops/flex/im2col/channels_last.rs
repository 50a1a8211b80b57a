//! The weight gradient's patch matrix, channels last: `dW = dy col^T` as a product whose right
//! operand has contiguous rows, built from the images channels last, where each kernel tap's
//! input channels are one contiguous copy. Taken where the products do not read the patch
//! matrix in place (`patch_panels.rs`): gemm's, on CPUs without AVX-512.
//!
//! The weight gradient comes out with its taps before its input channels, `[out_channels, kh,
//! kw, in_channels]`, and is put back in burn's order at the end. Each value is the same sum
//! over output positions in the same order as `dy col^T`'s, so the same bits.

use rayon::prelude::*;

use super::{ConvGeometry, copy_short};
use crate::products::avx512::on_gemms_main_path;
use crate::products::last_chunk_len;

/// Pixels per task of [`channels_last`]: a task's values fit in L1 (64 channels).
const PIXELS: usize = 64;

/// `[images, channels, plane]` -> `[images * plane, channels]`, into `out`.
pub(super) fn channels_last(block: &[f32], channels: usize, plane: usize, out: &mut Vec<f32>) {
    out.resize(block.len(), 0.0);
    out.par_chunks_mut(PIXELS * channels)
        .enumerate()
        .for_each(|(index, pixels)| {
            // Where each pixel's first channel lies in the block.
            let starts: [usize; PIXELS] = std::array::from_fn(|offset| {
                let pixel = index * PIXELS + offset;
                pixel / plane * channels * plane + pixel % plane
            });
            // Channel by channel: the reads run along an image's plane.
            for c in 0..channels {
                for (pixel, start) in pixels.chunks_mut(channels).zip(starts) {
                    pixel[c] = block[start + c * plane];
                }
            }
        });
}

impl ConvGeometry {
    /// Whether the weight gradient's products, in blocks of `block_len` images, all take gemm's
    /// main path (or the AVX-512 products, which round as it does), where a sum does not depend
    /// on the operands' layout: gemm's other paths sum across vector lanes as the layout
    /// allows.
    pub(super) fn weight_gradient_channels_last(&self, block_len: usize) -> bool {
        let positions = self.output()[0] * self.output()[1];
        self.block_sizes(block_len).iter().all(|&images| {
            let terms = last_chunk_len(images * positions);
            on_gemms_main_path(self.out_channels, self.patch(), terms)
        })
    }

    /// The patch matrix of a block of images (`[images, in_channels, h, w]`) transposed, its
    /// columns tap by tap and within a tap channel by channel: `[images * ho * wo, kh * kw *
    /// in_channels]`, 0 in the padding. `pixels` takes the block channels last.
    pub(super) fn patch_rows<'a>(
        &self,
        block: &[f32],
        pixels: &mut Vec<f32>,
        rows: &'a mut Vec<f32>,
    ) -> &'a [f32] {
        let cin = self.in_channels;
        let [h, w] = self.input;
        if self.is_pointwise() {
            channels_last(block, cin, h * w, rows);
            return rows;
        }
        channels_last(block, cin, h * w, pixels);
        let ([ho, wo], kw, patch) = (self.output(), self.kernel[1], self.patch());
        rows.resize(block.len() / (cin * h * w) * ho * wo * patch, 0.0);
        // A task per output row of an image.
        rows.par_chunks_mut(wo * patch)
            .enumerate()
            .for_each(|(index, line)| {
                let (n, oy) = (index / ho, index % ho);
                let image = &pixels[n * h * w * cin..][..h * w * cin];
                for (ox, row) in line.chunks_mut(patch).enumerate() {
                    for (tap, channels) in row.chunks_mut(cin).enumerate() {
                        let (i, j) = (tap / kw, tap % kw);
                        match (self.source(0, oy, i, h), self.source(1, ox, j, w)) {
                            (Some(iy), Some(ix)) => {
                                copy_short(channels, &image[(iy * w + ix) * cin..])
                            }
                            _ => channels.fill(0.0),
                        }
                    }
                }
            });
        rows
    }

    /// A weight gradient `[out_channels, kh, kw, in_channels]` in burn's order, `[out_channels,
    /// in_channels, kh, kw]`.
    pub(super) fn channels_first_weights(&self, taps_first: &[f32]) -> Vec<f32> {
        let (taps, cin) = (self.kernel[0] * self.kernel[1], self.in_channels);
        let mut weights = Vec::with_capacity(taps_first.len());
        // An output channel per task, its taps read in order. Written once, never zeroed: at
        // ResNet's 512 channels this is 9 MiB, and filling it twice costs as much as the copy.
        weights.spare_capacity_mut()[..taps_first.len()]
            .par_chunks_mut(taps * cin)
            .zip(taps_first.par_chunks(taps * cin))
            .for_each(|(to, from)| {
                for (tap, channels) in from.chunks_exact(cin).enumerate() {
                    for (c, &value) in channels.iter().enumerate() {
                        to[c * taps + tap].write(value);
                    }
                }
            });
        // SAFETY: the chunks cover the first `taps_first.len()` values, and each chunk's
        // `taps * cin` values are written above (every (tap, c) pair once).
        unsafe { weights.set_len(taps_first.len()) };
        weights
    }
}
