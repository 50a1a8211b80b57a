//! A 2-D convolution on flex as matrix products over patch matrices (im2col), forward and
//! backward, several images per product:
//! - output: `y[co, (n, p)] = sum_c W[co, c] * col[c, (n, p)]`,
//! - input gradient: `dcol = W^T dy`, added back into the image (col2im),
//! - weight gradient: `dW += dy col^T`,
//!
//! where `col[(ci, i, j), (n, p)]` holds the input value under kernel tap (i, j) of channel ci at
//! output position p of image n.
//!
//! burn-flex convolves image by image in tiles of output positions and computes the gradients
//! as convolutions (the weight gradient with batch and channels swapped): on the small maps of
//! a ResNet's later layers (4 to 64 positions per image) every product is a sliver far below
//! the speed of the gemm kernel. Here a product spans as many images as it takes to give it
//! [`COLUMNS`] columns, within a memory budget for the patch matrix.
//!
//! On AVX-512 neither the forward pass nor the weight gradient writes its patch matrix: the
//! products gather their panels of it from the images (`im2col/patch_panels.rs`).
//!
//! Products run in a fixed order and gemm splits none of their sums across threads, so the
//! results do not depend on the thread count.

use super::scratch::Scratch;
use crate::products::{Threads, View, all_on_avx512, avx512, product, product_in_chunks};
use rayon::prelude::*;

mod channels_last;
mod patch_panels;

use patch_panels::PatchPanels;

/// Columns a product aims at: enough for the gemm kernel's full speed.
const COLUMNS: usize = 1024;
/// Largest patch matrix of a block of images, in f32 values (32 MiB).
const PATCH_BUDGET: usize = 8 << 20;

/// The geometry of one convolution (NCHW input, OIHW weight, no groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    /// Output height and width (PyTorch's formula).
    pub fn output(&self) -> [usize; 2] {
        std::array::from_fn(|a| {
            (self.input[a] + 2 * self.padding[a] - self.dilation[a] * (self.kernel[a] - 1) - 1)
                / self.stride[a]
                + 1
        })
    }

    /// Elements of one input patch: `in_channels * kh * kw`.
    fn patch(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// A 1x1 convolution with stride 1 and no padding reads each image as its own patch matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }
}

/// Where a kernel tap reads: the output rows that see the input (with their input row), the
/// output columns that do and the input column of the first of them.
struct Tap {
    rows: Vec<(usize, usize)>,
    columns: std::ops::Range<usize>,
    first: usize,
    /// No output position of the tap is in the padding.
    whole: bool,
}

/// Images per product: enough for [`COLUMNS`] columns, within [`PATCH_BUDGET`].
fn block_images(geometry: &ConvGeometry) -> usize {
    let [ho, wo] = geometry.output();
    let positions = (ho * wo).max(1);
    let by_columns = COLUMNS.div_ceil(positions);
    let by_memory = (PATCH_BUDGET / (geometry.patch() * positions).max(1)).max(1);
    by_columns.min(by_memory).clamp(1, geometry.batch.max(1))
}

/// `out` = the first `out.len()` values of `from`, in fixed-size pieces the compiler copies
/// with vector moves: a map's rows are 2 to 64 values, where `copy_from_slice` calls memmove.
fn copy_short(out: &mut [f32], from: &[f32]) {
    let from = &from[..out.len()];
    let mut pieces = out.chunks_exact_mut(8);
    for (to, piece) in (&mut pieces).zip(from.chunks_exact(8)) {
        let piece: &[f32; 8] = piece.try_into().expect("8 values");
        to.copy_from_slice(piece);
    }
    let rest = pieces.into_remainder();
    let done = from.len() - rest.len();
    for (to, &x) in rest.iter_mut().zip(&from[done..]) {
        *to = x;
    }
}

/// `[images, channels, positions]` -> `[channels, images * positions]`.
fn channels_first(block: &[f32], channels: usize, positions: usize, out: &mut Vec<f32>) {
    let images = block.len() / (channels * positions).max(1);
    out.resize(block.len(), 0.0);
    out.par_chunks_mut(images * positions)
        .enumerate()
        .for_each(|(c, row)| {
            for (n, segment) in row.chunks_mut(positions).enumerate() {
                let start = (n * channels + c) * positions;
                segment.copy_from_slice(&block[start..start + positions]);
            }
        });
}

/// `[channels, images * positions]` -> `[images, channels, positions]`, into `out`.
fn images_first(matrix: &[f32], channels: usize, positions: usize, out: &mut [f32]) {
    let images = matrix.len() / (channels * positions).max(1);
    out.par_chunks_mut(positions)
        .enumerate()
        .for_each(|(index, segment)| {
            let (n, c) = (index / channels, index % channels);
            let start = c * images * positions + n * positions;
            segment.copy_from_slice(&matrix[start..start + positions]);
        });
}

/// The output `[batch, out_channels, ho, wo]` of the convolution of `x` `[batch,
/// in_channels, h, w]` with `weight` `[out_channels, in_channels, kh, kw]`.
pub fn forward(geometry: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    forward_in_blocks(geometry, x, weight, block_images(geometry))
}

/// [`forward`] with `images` images per product.
fn forward_in_blocks(
    geometry: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    images: usize,
) -> Vec<f32> {
    let (image_len, output_len, positions) = geometry.lengths();
    assert_eq!(x.len(), geometry.batch * image_len, "input size");
    let weights = View::new(weight, geometry.out_channels, geometry.patch());
    let mut y = vec![0f32; geometry.batch * output_len];
    let (mut columns, mut products) = (Scratch::take(), Scratch::take());
    for (block, out) in x
        .chunks(images * image_len)
        .zip(y.chunks_mut(images * output_len))
    {
        let images = block.len() / image_len;
        let to = match images {
            1 => &mut *out,
            _ => {
                products.resize(out.len(), 0.0);
                &mut products[..]
            }
        };
        geometry.block_product(block, weights, to, &mut columns);
        if images > 1 {
            images_first(&products, geometry.out_channels, positions, out);
        }
    }
    y
}

impl ConvGeometry {
    /// `to = weights patches` for a block of images: the patch matrix read in place where the
    /// AVX-512 products take the whole sum, else written into `columns` first.
    fn block_product(&self, block: &[f32], weights: View, to: &mut [f32], columns: &mut Vec<f32>) {
        let n = to.len() / self.out_channels;
        if !self.is_pointwise() && all_on_avx512(self.out_channels, n, self.patch()) {
            let patches = PatchPanels {
                geometry: self,
                block,
                transposed: false,
                first_term: 0,
            };
            return product_of_patches(to, weights, patches, false);
        }
        let columns = View::new(self.patches(block, columns), self.patch(), n);
        product(to, weights, columns, false);
    }
}

/// `dst (+)= lhs patches` on AVX-512, the patch matrix (or its transpose) read in place;
/// `accumulate`: add to dst.
fn product_of_patches(dst: &mut [f32], lhs: View, patches: PatchPanels, accumulate: bool) {
    product_in_chunks(
        dst,
        (lhs.rows, lhs.cols),
        accumulate,
        Threads::All,
        |start| {
            let rows = PatchPanels {
                first_term: start,
                ..patches
            };
            (avx512::Left::Strided(lhs.strided(start)), rows)
        },
    );
}

/// `dst = lhs rhs` on AVX-512, lhs packed already.
fn product_of_tiles(dst: &mut [f32], lhs: &avx512::Tiles, rhs: View) {
    let (_, rhs_rs) = rhs.strides();
    product_in_chunks(dst, (lhs.rows(), rhs.rows), false, Threads::All, |start| {
        let rows = rhs.strided(start * rhs_rs as usize);
        (avx512::Left::Tiles(lhs, start), rows)
    });
}

/// `dL/dx` (when `input_grad`) and `dL/dW` `[out_channels, in_channels, kh, kw]` of the
/// convolution from its input `x`, weight and output gradient `grad` `[batch, out_channels,
/// ho, wo]`.
pub fn backward(
    geometry: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    input_grad: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    backward_in_blocks(
        geometry,
        x,
        weight,
        grad,
        input_grad,
        block_images(geometry),
    )
}

/// [`backward`] with `block_len` images per product.
fn backward_in_blocks(
    geometry: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    input_grad: bool,
    block_len: usize,
) -> (Option<Vec<f32>>, Vec<f32>) {
    let (image_len, output_len, positions) = geometry.lengths();
    assert_eq!(x.len(), geometry.batch * image_len, "input size");
    assert_eq!(
        grad.len(),
        geometry.batch * output_len,
        "output gradient size"
    );
    let patch = geometry.patch();
    let weights = View::new(weight, geometry.out_channels, patch);
    let path = geometry.weight_gradient_path(block_len);
    // Channels last, the products' gradient is reordered into burn's at the end.
    let (mut dw, mut taps_first) = (Vec::new(), Scratch::take());
    let dw_len = geometry.out_channels * patch;
    match path {
        WeightGradient::ChannelsLast => taps_first.resize(dw_len, 0.0),
        _ => dw.resize(dw_len, 0.0),
    }
    let mut dx = input_grad.then(|| vec![0f32; x.len()]);
    // The input gradient's left operand, W^T, packed once for every block's product where they
    // all take the AVX-512 products (each would pack it for each of its tasks).
    let packed_weights = (input_grad && geometry.input_gradient_packed(block_len))
        .then(|| avx512::Tiles::pack(weights.t().strided(0), (patch, geometry.out_channels)));
    let mut buffers = [(); 3].map(|_| Scratch::take());
    let mut grads = Scratch::take();
    let blocks = x
        .chunks(block_len * image_len)
        .zip(grad.chunks(block_len * output_len));
    for (index, (block, g)) in blocks.enumerate() {
        let images = block.len() / image_len;
        let g = if images == 1 {
            g
        } else {
            channels_first(g, geometry.out_channels, positions, &mut grads);
            &grads
        };
        let g = View::new(g, geometry.out_channels, images * positions);
        if let Some(dx) = &mut dx {
            let dx = &mut dx[index * block_len * image_len..][..block.len()];
            let weights = match &packed_weights {
                Some(tiles) => Weights::Packed(tiles),
                None => Weights::Transposed(weights.t()),
            };
            geometry.block_input_gradient(weights, g, dx, &mut buffers[0]);
        }
        let dw = match path {
            WeightGradient::ChannelsLast => &mut taps_first[..dw_len],
            _ => &mut dw[..],
        };
        geometry.block_weight_gradient(path, block, g, (dw, index > 0), &mut buffers[1..]);
    }
    if path == WeightGradient::ChannelsLast {
        dw = geometry.channels_first_weights(&taps_first[..dw_len]);
    }
    (dx, dw)
}

/// How a call's weight gradient reads each block's patch matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WeightGradient {
    /// Gathered into the AVX-512 products' panels from the images.
    InPlace,
    /// Written transposed and channels last (`channels_last.rs`), taps before channels.
    ChannelsLast,
    /// The forward pass's patch matrix, written and read transposed.
    Written,
}

/// The input gradient's left operand `W^T`.
enum Weights<'a> {
    Packed(&'a avx512::Tiles),
    Transposed(View<'a>),
}

impl ConvGeometry {
    /// How the weight gradient reads the patch matrices of blocks of `block_len` images.
    fn weight_gradient_path(&self, block_len: usize) -> WeightGradient {
        if self.weight_gradient_in_place(block_len) {
            WeightGradient::InPlace
        } else if self.weight_gradient_channels_last(block_len) {
            WeightGradient::ChannelsLast
        } else {
            WeightGradient::Written
        }
    }

    /// A block's input gradient `dx` from its output gradient `g`: `W^T g`, added back into
    /// the images (col2im) through the scratch `dcolumns`, or itself for one image of a
    /// pointwise convolution.
    fn block_input_gradient(
        &self,
        weights: Weights,
        g: View,
        dx: &mut [f32],
        dcolumns: &mut Vec<f32>,
    ) {
        let images = dx.len() / (self.in_channels * self.input[0] * self.input[1]);
        let gathered = !(self.is_pointwise() && images == 1);
        if gathered {
            dcolumns.resize(self.patch() * g.cols, 0.0);
        }
        let to = if gathered {
            &mut dcolumns[..]
        } else {
            &mut *dx
        };
        match weights {
            Weights::Packed(tiles) => product_of_tiles(to, tiles, g),
            Weights::Transposed(weights) => product(to, weights, g, false),
        }
        if gathered {
            self.add_patches(dcolumns, images, dx);
        }
    }

    /// `dw (+)= g col^T` for a block of images (`accumulate`: add), its patch matrix read by
    /// `path`; `buffers`: two scratch buffers.
    fn block_weight_gradient(
        &self,
        path: WeightGradient,
        block: &[f32],
        g: View,
        (dw, accumulate): (&mut [f32], bool),
        buffers: &mut [Scratch],
    ) {
        let [pixels, columns] = buffers else {
            panic!("two scratch buffers")
        };
        let (patch, positions) = (self.patch(), g.cols);
        match path {
            WeightGradient::InPlace => {
                let patches = PatchPanels {
                    geometry: self,
                    block,
                    transposed: true,
                    first_term: 0,
                };
                product_of_patches(dw, g, patches, accumulate);
            }
            WeightGradient::ChannelsLast => {
                let rows = self.patch_rows(block, pixels, columns);
                product(dw, g, View::new(rows, positions, patch), accumulate);
            }
            WeightGradient::Written => {
                let columns = View::new(self.patches(block, columns), patch, positions);
                product(dw, g, columns.t(), accumulate);
            }
        }
    }
}

impl ConvGeometry {
    /// Whether the weight gradient's products, in blocks of `block_len` images, read the
    /// transposed patch matrix in place: where the AVX-512 products take every chunk of every
    /// block's sum (all blocks of a call sum alike, see [`Self::weight_gradient_channels_last`]).
    fn weight_gradient_in_place(&self, block_len: usize) -> bool {
        let positions = self.output()[0] * self.output()[1];
        self.block_sizes(block_len)
            .iter()
            .all(|&images| all_on_avx512(self.out_channels, self.patch(), images * positions))
    }

    /// Whether the input gradient's products `W^T dy`, in blocks of `block_len` images, all
    /// take the AVX-512 products.
    fn input_gradient_packed(&self, block_len: usize) -> bool {
        let positions = self.output()[0] * self.output()[1];
        self.block_sizes(block_len)
            .iter()
            .all(|&images| all_on_avx512(self.patch(), images * positions, self.out_channels))
    }

    /// The two sizes of a call's blocks of `block_len` images: the first and the last.
    fn block_sizes(&self, block_len: usize) -> [usize; 2] {
        match self.batch % block_len {
            0 => [block_len, block_len],
            short => [block_len, short],
        }
    }

    /// (values per input image, per output image, output positions per image).
    fn lengths(&self) -> (usize, usize, usize) {
        let [h, w] = self.input;
        let [ho, wo] = self.output();
        (
            self.in_channels * h * w,
            self.out_channels * ho * wo,
            ho * wo,
        )
    }

    /// The patch matrix `[in_channels * kh * kw, images * ho * wo]` of a block of images
    /// (`[images, in_channels, h, w]`), written into `columns`; a single image of a pointwise
    /// convolution is its own patch matrix.
    fn patches<'a>(&self, block: &'a [f32], columns: &'a mut Vec<f32>) -> &'a [f32] {
        let (image_len, _, positions) = self.lengths();
        let images = block.len() / image_len;
        if self.is_pointwise() {
            if images == 1 {
                return block;
            }
            channels_first(block, self.in_channels, positions, columns);
            return columns;
        }
        let taps = self.taps();
        let plane = self.input[0] * self.input[1];
        columns.resize(self.patch() * images * positions, 0.0);
        // A task per row (channel and tap): a stem's 3 channels are 147 rows.
        columns
            .par_chunks_mut(images * positions)
            .enumerate()
            .for_each(|(index, row)| {
                let (ci, tap) = (index / taps.len(), &taps[index % taps.len()]);
                for (n, segment) in row.chunks_mut(positions).enumerate() {
                    let channel = &block[(n * self.in_channels + ci) * plane..][..plane];
                    self.gather(tap, channel, segment);
                }
            });
        columns
    }

    /// Where each kernel tap reads, tap by tap (row-major over the kernel).
    fn taps(&self) -> Vec<Tap> {
        let [ho, _] = self.output();
        let [kh, kw] = self.kernel;
        (0..kh * kw)
            .map(|tap| {
                let (i, j) = (tap / kw, tap % kw);
                let (columns, first) = self.valid(1, j);
                let rows: Vec<(usize, usize)> = (0..ho)
                    .filter_map(|oy| self.source(0, oy, i, self.input[0]).map(|iy| (oy, iy)))
                    .filter(|_| !columns.is_empty())
                    .collect();
                let whole = rows.len() == ho && columns == (0..self.output()[1]);
                Tap {
                    rows,
                    columns,
                    first,
                    whole,
                }
            })
            .collect()
    }

    /// One image's row of the patch matrix for `tap` from its input `channel`: the input under
    /// the tap at each output position, 0 in the padding.
    fn gather(&self, tap: &Tap, channel: &[f32], segment: &mut [f32]) {
        let (w, wo, stride) = (self.input[1], self.output()[1], self.stride[1]);
        if !tap.whole {
            segment.fill(0.0);
        }
        for &(oy, iy) in &tap.rows {
            let out = &mut segment[oy * wo..][tap.columns.clone()];
            let line = &channel[iy * w + tap.first..(iy + 1) * w];
            if stride == 1 {
                copy_short(out, line);
            } else {
                for (value, &x) in out.iter_mut().zip(line.iter().step_by(stride)) {
                    *value = x;
                }
            }
        }
    }

    /// Adds one image's row of the patch matrix's gradient for `tap` into the gradient of its
    /// input `plane` (the inverse of [`Self::gather`]).
    fn scatter_add(&self, tap: &Tap, segment: &[f32], plane: &mut [f32]) {
        let (w, wo, stride) = (self.input[1], self.output()[1], self.stride[1]);
        for &(oy, iy) in &tap.rows {
            let line = &segment[oy * wo..][tap.columns.clone()];
            let target = &mut plane[iy * w + tap.first..(iy + 1) * w];
            // Stride 1 apart: a loop the compiler vectorises.
            if stride == 1 {
                for (x, &value) in target.iter_mut().zip(line) {
                    *x += value;
                }
            } else {
                for (x, &value) in target.iter_mut().step_by(stride).zip(line) {
                    *x += value;
                }
            }
        }
    }

    /// The output coordinates along `axis` whose input under kernel tap `k` lies inside the
    /// input (not in the padding), and the input coordinate of the first of them.
    fn valid(&self, axis: usize, k: usize) -> (std::ops::Range<usize>, usize) {
        let out = self.output()[axis];
        let (stride, size) = (self.stride[axis], self.input[axis] as isize);
        // Output o reads input o * stride + offset.
        let offset = (k * self.dilation[axis]) as isize - self.padding[axis] as isize;
        let start = ((-offset).max(0) as usize).div_ceil(stride).min(out);
        let end = if size - offset <= 0 {
            0
        } else {
            ((size - offset - 1) as usize / stride + 1).min(out)
        };
        let first = (start as isize * stride as isize + offset).max(0) as usize;
        (start..end.max(start), first)
    }

    /// The input coordinate along `axis` that output coordinate `o` reads under kernel tap
    /// `k`; `None` in the padding.
    fn source(&self, axis: usize, o: usize, k: usize, size: usize) -> Option<usize> {
        let at = (o * self.stride[axis] + k * self.dilation[axis]) as isize
            - self.padding[axis] as isize;
        (0..size as isize).contains(&at).then_some(at as usize)
    }

    /// Adds a patch matrix's gradient `[in_channels * kh * kw, images * ho * wo]` back into
    /// the gradient of its images `dx` `[images, in_channels, h, w]` (col2im), in parallel
    /// over input channels.
    fn add_patches(&self, dcolumns: &[f32], images: usize, dx: &mut [f32]) {
        let (_, _, positions) = self.lengths();
        let taps = self.taps();
        let rows = taps.len() * images * positions;
        // The planes of each input channel, image by image: one task per channel.
        let mut channels: Vec<Vec<&mut [f32]>> =
            (0..self.in_channels).map(|_| Vec::new()).collect();
        for (index, plane) in dx.chunks_mut(self.input[0] * self.input[1]).enumerate() {
            channels[index % self.in_channels].push(plane);
        }
        channels
            .into_par_iter()
            .enumerate()
            .for_each(|(ci, mut planes)| {
                let rows = &dcolumns[ci * rows..(ci + 1) * rows];
                for (tap, row) in taps.iter().zip(rows.chunks(images * positions)) {
                    for (plane, segment) in planes.iter_mut().zip(row.chunks(positions)) {
                        self.scatter_add(tap, segment, plane);
                    }
                }
            });
    }
}

#[cfg(test)]
mod tests;
