use super::*;
use crate::products::{product_by, same_bits};

/// The definitions, summed in f64: output, input gradient and weight gradient.
struct Naive {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
}

fn naive(geometry: &ConvGeometry, x: &[f32], weight: &[f32], grad: &[f32]) -> Naive {
    let [h, w] = geometry.input;
    let [ho, wo] = geometry.output();
    let [kh, kw] = geometry.kernel;
    let (cin, cout) = (geometry.in_channels, geometry.out_channels);
    let mut naive = Naive {
        y: vec![0.0; geometry.batch * cout * ho * wo],
        dx: vec![0.0; x.len()],
        dw: vec![0.0; weight.len()],
    };
    for n in 0..geometry.batch {
        for co in 0..cout {
            for ci in 0..cin {
                for (i, j) in (0..kh).flat_map(|i| (0..kw).map(move |j| (i, j))) {
                    for (oy, ox) in (0..ho).flat_map(|oy| (0..wo).map(move |ox| (oy, ox))) {
                        let (Some(iy), Some(ix)) =
                            (geometry.source(0, oy, i, h), geometry.source(1, ox, j, w))
                        else {
                            continue;
                        };
                        let xi = ((n * cin + ci) * h + iy) * w + ix;
                        let wi = ((co * cin + ci) * kh + i) * kw + j;
                        let yi = ((n * cout + co) * ho + oy) * wo + ox;
                        naive.y[yi] += f64::from(x[xi]) * f64::from(weight[wi]);
                        naive.dx[xi] += f64::from(grad[yi]) * f64::from(weight[wi]);
                        naive.dw[wi] += f64::from(grad[yi]) * f64::from(x[xi]);
                    }
                }
            }
        }
    }
    naive
}

/// A convolution of three images: (in channels, out channels, h, w, kernel, stride,
/// padding, dilation).
type Shape = (
    usize,
    usize,
    usize,
    usize,
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [usize; 2],
);

/// The bit-for-bit tests' convolutions: each product on gemm's main path but the last
/// shape's weight gradient.
const PRODUCT_SHAPES: [Shape; 10] = [
    (16, 24, 9, 9, [3, 3], [1, 1], [1, 1], [1, 1]),
    (16, 24, 9, 9, [3, 3], [2, 2], [1, 1], [1, 1]),
    (16, 24, 10, 10, [3, 3], [1, 1], [2, 2], [2, 2]),
    (16, 32, 9, 9, [1, 1], [2, 2], [0, 0], [1, 1]),
    (16, 32, 9, 9, [1, 1], [1, 1], [0, 0], [1, 1]),
    (3, 16, 15, 13, [7, 7], [2, 2], [3, 3], [1, 1]),
    // Two images of 400 positions: the weight gradient's sum in two chunks.
    (4, 16, 20, 20, [3, 3], [1, 1], [1, 1], [1, 1]),
    // 576 terms: the forward pass's sum in two chunks.
    (64, 20, 6, 5, [3, 3], [1, 1], [1, 1], [1, 1]),
    // 600 output channels: the input gradient's sum in two chunks.
    (8, 600, 5, 5, [3, 3], [1, 1], [1, 1], [1, 1]),
    // One input channel: the weight gradient off gemm's main path (8 x 9 outputs) takes the
    // forward pass's patch matrix.
    (1, 8, 9, 9, [3, 3], [1, 1], [1, 1], [1, 1]),
];

/// A convolution of a batch of three images: (in channels, out channels, input size).
fn three_images(
    (in_channels, out_channels, input): (usize, usize, [usize; 2]),
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> ConvGeometry {
    ConvGeometry {
        batch: 3,
        in_channels,
        input,
        out_channels,
        kernel,
        stride,
        padding,
        dilation,
    }
}

fn values(count: usize, salt: usize) -> Vec<f32> {
    (0..count)
        .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.0) - 1.0)
        .collect()
}

fn assert_close(what: &str, geometry: &ConvGeometry, fast: &[f32], slow: &[f64]) {
    assert_eq!(fast.len(), slow.len(), "{what} size");
    for (k, (a, b)) in fast.iter().zip(slow).enumerate() {
        assert!(
            (f64::from(*a) - b).abs() <= 1e-4 * b.abs().max(1.0),
            "{geometry:?} {what} element {k}: {a} vs {b}"
        );
    }
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
        // The last maps of a small input: taps that see only padding.
        (4, 3, 1, 1, [3, 3], [1, 1], [1, 1], [1, 1]),
        (4, 3, 2, 3, [3, 3], [2, 2], [1, 1], [1, 1]),
        (2, 3, 3, 3, [3, 3], [1, 1], [1, 1], [2, 2]),
    ];
    for (cin, cout, h, w, kernel, stride, padding, dilation) in cases {
        let geometry = three_images((cin, cout, [h, w]), kernel, stride, padding, dilation);
        let [ho, wo] = geometry.output();
        let x = values(3 * cin * h * w, 1);
        let weight = values(cout * geometry.patch(), 5);
        let grad = values(3 * cout * ho * wo, 2);
        let slow = naive(&geometry, &x, &weight, &grad);
        // One image per product, two (the last block short) and all three.
        for images in [1, 2, 3] {
            let y = forward_in_blocks(&geometry, &x, &weight, images);
            assert_close("output", &geometry, &y, &slow.y);
            let (dx, dw) = backward_in_blocks(&geometry, &x, &weight, &grad, true, images);
            assert_close("input gradient", &geometry, &dx.expect("dx"), &slow.dx);
            assert_close("weight gradient", &geometry, &dw, &slow.dw);
        }
        assert_eq!(
            forward(&geometry, &x, &weight),
            forward_in_blocks(&geometry, &x, &weight, 3)
        );
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
    let weight = values(32 * geometry.patch(), 6);
    let grad = values(4 * 32 * 400, 4);
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let y = forward(&geometry, &x, &weight);
                (y, backward(&geometry, &x, &weight, &grad, true))
            })
    };
    assert_eq!(on(1), on(3));
}

/// The weight gradient by gemm, block by block: `dy col^T` on the forward pass's patch
/// matrix, or (`channels_last`) `dy rows` on the channels-last one, put back in burn's order.
fn gemm_weight_gradient(
    geometry: &ConvGeometry,
    (x, grad): (&[f32], &[f32]),
    images: usize,
    channels_last: bool,
) -> Vec<f32> {
    let never = |_: usize, _: usize, _: usize| false;
    let (image_len, output_len, positions) = geometry.lengths();
    let (cout, patch) = (geometry.out_channels, geometry.patch());
    let mut dw = vec![0f32; cout * patch];
    let blocks = x
        .chunks(images * image_len)
        .zip(grad.chunks(images * output_len));
    for (index, (block, g)) in blocks.enumerate() {
        let n = block.len() / image_len * positions;
        let mut g_columns = Vec::new();
        channels_first(g, cout, positions, &mut g_columns);
        let g = View::new(&g_columns, cout, n);
        let (mut pixels, mut columns) = (Vec::new(), Vec::new());
        let rhs = match channels_last {
            true => View::new(
                geometry.patch_rows(block, &mut pixels, &mut columns),
                n,
                patch,
            ),
            false => View::new(geometry.patches(block, &mut columns), patch, n).t(),
        };
        product_by(&mut dw, g, rhs, index > 0, never);
    }
    match channels_last {
        true => geometry.channels_first_weights(&dw),
        false => dw,
    }
}

#[test]
fn the_weight_gradient_is_gemms_product_with_the_patch_matrix_bit_for_bit() {
    for (cin, cout, h, w, kernel, stride, padding, dilation) in PRODUCT_SHAPES {
        let geometry = three_images((cin, cout, [h, w]), kernel, stride, padding, dilation);
        let (image_len, output_len, _) = geometry.lengths();
        let x = values(3 * image_len, 1);
        let weight = values(cout * geometry.patch(), 5);
        let grad = values(3 * output_len, 2);
        // Blocks of one image and of two (the last one short).
        for images in [1, 2] {
            let (_, dw) = backward_in_blocks(&geometry, &x, &weight, &grad, false, images);
            let reference = gemm_weight_gradient(&geometry, (&x, &grad), images, false);
            let same = |a: &[f32]| same_bits(a, &reference);
            assert!(same(&dw), "{geometry:?}, {images} images per block");
            // On AVX-512 the products read the transposed patch matrix in place; gemm
            // on the channels-last rows (what a CPU without AVX-512 runs) sums alike.
            let in_place = geometry.weight_gradient_in_place(images);
            assert_eq!(
                in_place,
                cin > 1 && avx512::applies(64, 64, 64),
                "{geometry:?}"
            );
            let channels_last = geometry.weight_gradient_channels_last(images);
            assert_eq!(channels_last, cin > 1, "{geometry:?}");
            if channels_last {
                let by_rows = gemm_weight_gradient(&geometry, (&x, &grad), images, true);
                assert!(
                    same(&by_rows),
                    "{geometry:?}, {images} images per block, gemm"
                );
            }
        }
    }
}

/// The forward pass by gemm on the patch matrix written out, in blocks of `images`.
fn gemm_forward(geometry: &ConvGeometry, x: &[f32], weight: &[f32], images: usize) -> Vec<f32> {
    let never = |_: usize, _: usize, _: usize| false;
    let (image_len, output_len, positions) = geometry.lengths();
    let (cout, patch) = (geometry.out_channels, geometry.patch());
    let mut y = vec![0f32; geometry.batch * output_len];
    for (block, out) in x
        .chunks(images * image_len)
        .zip(y.chunks_mut(images * output_len))
    {
        let n = block.len() / image_len * positions;
        let mut columns = Vec::new();
        let columns = View::new(geometry.patches(block, &mut columns), patch, n);
        let mut products = vec![0f32; cout * n];
        product_by(
            &mut products,
            View::new(weight, cout, patch),
            columns,
            false,
            never,
        );
        images_first(&products, cout, positions, out);
    }
    y
}

#[test]
fn the_forward_gathering_its_panels_is_gemms_product_bit_for_bit() {
    if !avx512::applies(64, 64, 64) {
        eprintln!(
            "SKIPPED the_forward_gathering_its_panels_is_gemms_product_bit_for_bit: this \
             CPU takes gemm's products (no AVX-512F)"
        );
        return;
    }
    for (cin, cout, h, w, kernel, stride, padding, dilation) in PRODUCT_SHAPES {
        let geometry = three_images((cin, cout, [h, w]), kernel, stride, padding, dilation);
        let (image_len, _, positions) = geometry.lengths();
        let x = values(3 * image_len, 1);
        let weight = values(cout * geometry.patch(), 5);
        // Blocks of one image and of two (the last one short): panels across images.
        for images in [1, 2] {
            assert!(all_on_avx512(cout, images * positions, geometry.patch()));
            let y = forward_in_blocks(&geometry, &x, &weight, images);
            let reference = gemm_forward(&geometry, &x, &weight, images);
            assert!(
                same_bits(&y, &reference),
                "{geometry:?}, {images} images per block"
            );
        }
    }
}

#[test]
fn the_input_gradient_is_gemms_product_bit_for_bit() {
    let never = |_: usize, _: usize, _: usize| false;
    for (cin, cout, h, w, kernel, stride, padding, dilation) in PRODUCT_SHAPES {
        let geometry = three_images((cin, cout, [h, w]), kernel, stride, padding, dilation);
        let (image_len, output_len, positions) = geometry.lengths();
        let x = values(3 * image_len, 1);
        let weight = values(cout * geometry.patch(), 5);
        let grad = values(3 * output_len, 2);
        let weights = View::new(&weight, cout, geometry.patch());
        for images in [1, 2] {
            let packed = geometry.input_gradient_packed(images);
            assert_eq!(packed, avx512::applies(64, 64, 64), "{geometry:?}");
            let (dx, _) = backward_in_blocks(&geometry, &x, &weight, &grad, true, images);
            let mut reference = vec![0f32; x.len()];
            let blocks = reference
                .chunks_mut(images * image_len)
                .zip(grad.chunks(images * output_len));
            for (dx, g) in blocks {
                let n = dx.len() / image_len * positions;
                let mut g_columns = Vec::new();
                channels_first(g, cout, positions, &mut g_columns);
                let mut dcolumns = vec![0f32; geometry.patch() * n];
                let g = View::new(&g_columns, cout, n);
                product_by(&mut dcolumns, weights.t(), g, false, never);
                geometry.add_patches(&dcolumns, n / positions, dx);
            }
            let same = same_bits(&dx.unwrap(), &reference);
            assert!(same, "{geometry:?}, {images} images per block");
        }
    }
}
