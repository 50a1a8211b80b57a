//! The weight gradient of a 2-D convolution as one matrix product per image (im2col):
//! `dW[co, (ci, i, j)] += sum_p g[co, p] * col[(ci, i, j), p]`, where `col` holds the input
//! patch seen by each output position p.
//!
//! burn computes this gradient as a convolution of the input with the output gradient (batch
//! and channels swapped, the stride as dilation). On a CPU that is a skinny product whose
//! output has one column per kernel position (1 for a 1x1 convolution, 9 for 3x3), far below
//! the speed of the gemm kernel; here the product has one column per input patch element
//! (`in_channels * kh * kw`), the shape the kernel is fast at.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

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

/// `dW` `[out_channels, in_channels, kh, kw]` (row-major) of the convolution `geometry` from its
/// input `x` `[batch, in_channels, h, w]` and output gradient `grad` `[batch, out_channels, ho,
/// wo]`. Images are added in order and each product's sum runs in a fixed order, so the result
/// does not depend on the thread count.
pub fn weight_gradient(geometry: &ConvGeometry, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let [h, w] = geometry.input;
    let [ho, wo] = geometry.output();
    let (positions, patch) = (ho * wo, geometry.patch());
    let image_len = geometry.in_channels * h * w;
    let grad_len = geometry.out_channels * positions;
    assert_eq!(x.len(), geometry.batch * image_len, "input size");
    assert_eq!(
        grad.len(),
        geometry.batch * grad_len,
        "output gradient size"
    );
    let mut dw = vec![0f32; geometry.out_channels * patch];
    let mut columns = Vec::new();
    for n in 0..geometry.batch {
        let image = &x[n * image_len..(n + 1) * image_len];
        let patches: &[f32] = if geometry.is_pointwise() {
            image
        } else {
            im2col(geometry, image, &mut columns);
            &columns
        };
        let g = &grad[n * grad_len..(n + 1) * grad_len];
        // dw[co, c] (+)= sum_p g[co, p] * patches[c, p]
        // SAFETY: dw holds out_channels x patch, g out_channels x positions and patches
        // patch x positions f32 values, row-major; the strides below address exactly those
        // (the right-hand side is `patches` read transposed).
        unsafe {
            gemm(
                geometry.out_channels,
                patch,
                positions,
                dw.as_mut_ptr(),
                1,
                patch as isize,
                n > 0,
                g.as_ptr(),
                1,
                positions as isize,
                patches.as_ptr(),
                positions as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::Rayon(0),
            );
        }
    }
    dw
}

/// Writes the patch matrix of one image, `[in_channels * kh * kw, ho * wo]`: row (ci, i, j)
/// holds the input value under kernel tap (i, j) of channel ci at each output position (0 in
/// the padding).
fn im2col(geometry: &ConvGeometry, image: &[f32], columns: &mut Vec<f32>) {
    let [h, w] = geometry.input;
    let [ho, wo] = geometry.output();
    let [kh, kw] = geometry.kernel;
    let positions = ho * wo;
    columns.resize(geometry.patch() * positions, 0.0);
    columns
        .par_chunks_mut(kh * kw * positions)
        .enumerate()
        .for_each(|(ci, rows)| {
            let channel = &image[ci * h * w..(ci + 1) * h * w];
            for (tap, row) in rows.chunks_mut(positions).enumerate() {
                let (i, j) = (tap / kw, tap % kw);
                for (oy, out) in row.chunks_mut(wo).enumerate() {
                    let iy = (oy * geometry.stride[0] + i * geometry.dilation[0]) as isize
                        - geometry.padding[0] as isize;
                    if iy < 0 || iy >= h as isize {
                        out.fill(0.0);
                        continue;
                    }
                    let line = &channel[iy as usize * w..(iy as usize + 1) * w];
                    for (ox, value) in out.iter_mut().enumerate() {
                        let ix = (ox * geometry.stride[1] + j * geometry.dilation[1]) as isize
                            - geometry.padding[1] as isize;
                        *value = if ix < 0 || ix >= w as isize {
                            0.0
                        } else {
                            line[ix as usize]
                        };
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, summed in f64.
    fn naive(geometry: &ConvGeometry, x: &[f32], grad: &[f32]) -> Vec<f64> {
        let [h, w] = geometry.input;
        let [ho, wo] = geometry.output();
        let [kh, kw] = geometry.kernel;
        let (cin, cout) = (geometry.in_channels, geometry.out_channels);
        let mut dw = vec![0f64; cout * cin * kh * kw];
        for n in 0..geometry.batch {
            for co in 0..cout {
                for ci in 0..cin {
                    for i in 0..kh {
                        for j in 0..kw {
                            let mut sum = 0f64;
                            for oy in 0..ho {
                                for ox in 0..wo {
                                    let iy = (oy * geometry.stride[0] + i * geometry.dilation[0])
                                        as isize
                                        - geometry.padding[0] as isize;
                                    let ix = (ox * geometry.stride[1] + j * geometry.dilation[1])
                                        as isize
                                        - geometry.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let xv =
                                        x[((n * cin + ci) * h + iy as usize) * w + ix as usize];
                                    let gv = grad[((n * cout + co) * ho + oy) * wo + ox];
                                    sum += f64::from(xv) * f64::from(gv);
                                }
                            }
                            dw[((co * cin + ci) * kh + i) * kw + j] += sum;
                        }
                    }
                }
            }
        }
        dw
    }

    fn values(count: usize, salt: usize) -> Vec<f32> {
        (0..count)
            .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.0) - 1.0)
            .collect()
    }

    #[test]
    fn every_backbone_shape_matches_the_definition() {
        // (in, out, h, w, kernel, stride, padding, dilation): 1x1 (stride 1 and 2), 3x3 (stride
        // 1 and 2), 5x5 and 7x7 stride 2 as the backbones use them; odd sizes, a dilation.
        let cases = [
            (8, 6, 9, 7, [1, 1], [1, 1], [0, 0], [1, 1]),
            (8, 6, 9, 7, [1, 1], [2, 2], [0, 0], [1, 1]),
            (5, 4, 9, 8, [3, 3], [1, 1], [1, 1], [1, 1]),
            (5, 4, 9, 8, [3, 3], [2, 2], [1, 1], [1, 1]),
            (3, 4, 11, 10, [5, 5], [1, 1], [2, 2], [1, 1]),
            (3, 5, 15, 13, [7, 7], [2, 2], [3, 3], [1, 1]),
            (4, 3, 10, 10, [3, 3], [1, 1], [2, 2], [2, 2]),
        ];
        for (cin, cout, h, w, kernel, stride, padding, dilation) in cases {
            let geometry = ConvGeometry {
                batch: 3,
                in_channels: cin,
                input: [h, w],
                out_channels: cout,
                kernel,
                stride,
                padding,
                dilation,
            };
            let [ho, wo] = geometry.output();
            let x = values(3 * cin * h * w, 1);
            let grad = values(3 * cout * ho * wo, 2);
            let fast = weight_gradient(&geometry, &x, &grad);
            let slow = naive(&geometry, &x, &grad);
            for (k, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert!(
                    (f64::from(*a) - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{geometry:?} element {k}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn the_result_does_not_depend_on_the_thread_count() {
        let geometry = ConvGeometry {
            batch: 4,
            in_channels: 16,
            input: [20, 20],
            out_channels: 32,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        };
        let x = values(4 * 16 * 400, 3);
        let grad = values(4 * 32 * 400, 4);
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| weight_gradient(&geometry, &x, &grad))
        };
        assert_eq!(on(1), on(3));
    }
}
