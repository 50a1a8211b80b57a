//! Colours shared by the figures: a categorical palette for methods and classes, and a
//! perceptually ordered colormap for attention.

use plotters::style::RGBColor;

/// Tableau 10: distinct, colour-blind-aware series colours.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub fn series_colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Anchors of matplotlib's "inferno" (t = 0, 1/8, ..., 1), linearly interpolated between.
const INFERNO: [[f32; 3]; 9] = [
    [0.0015, 0.0005, 0.0139],
    [0.0853, 0.0424, 0.2290],
    [0.2582, 0.0386, 0.4065],
    [0.4168, 0.0901, 0.4329],
    [0.5783, 0.1480, 0.4044],
    [0.7355, 0.2154, 0.3301],
    [0.8650, 0.3168, 0.2261],
    [0.9541, 0.4681, 0.0997],
    [0.9883, 0.9984, 0.6449],
];

/// `t` in [0, 1] (clamped) to an RGB colour in [0, 1].
pub fn inferno(t: f32) -> [f32; 3] {
    let x = t.clamp(0.0, 1.0) * (INFERNO.len() - 1) as f32;
    let i = (x.floor() as usize).min(INFERNO.len() - 2);
    let f = x - i as f32;
    std::array::from_fn(|c| INFERNO[i][c] * (1.0 - f) + INFERNO[i + 1][c] * f)
}

pub fn rgb(c: [f32; 3]) -> RGBColor {
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    RGBColor(byte(c[0]), byte(c[1]), byte(c[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_colormap_runs_dark_to_light_and_clamps() {
        let lum = |c: [f32; 3]| c[0] + c[1] + c[2];
        let steps: Vec<f32> = (0..=20).map(|i| lum(inferno(i as f32 / 20.0))).collect();
        assert!(steps.windows(2).all(|w| w[1] > w[0]), "{steps:?}");
        assert_eq!(inferno(-1.0), inferno(0.0));
        assert_eq!(inferno(2.0), INFERNO[8]);
    }
}
