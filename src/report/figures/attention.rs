//! The interpretation figure: a few fixed test images (a row each), the input and every group's
//! attention map (or gate mask) upsampled to the input and overlaid (a column each).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::style::{inferno, rgb};
use super::{Drawn, FAMILY, Figure};
use crate::eval::npy::{NpyValues, read_npy};
use crate::store::RunFile;

/// Side of one panel in pixels.
const PANEL: u32 = 112;
const GAP: u32 = 6;
const LEFT: u32 = 78;
const TOP: u32 = 56;
const BOTTOM: u32 = 28;
/// Finest grid drawn per panel (SVG size grows with its square).
const MAX_GRID: usize = 56;
/// Weight of the attention colour over the input.
const ALPHA: f32 = 0.55;

#[derive(Debug, Clone)]
pub struct AttentionFigure {
    pub title: String,
    /// "attention" or "mask": what a column shows.
    pub what: &'static str,
    /// Side of the square display grid.
    pub grid: usize,
    /// Per image: grid x grid RGB in [0, 1].
    pub images: Vec<Vec<[f32; 3]>>,
    /// Per image, per group: grid x grid values in [0, 1] (divided by the map's maximum).
    pub maps: Vec<Vec<Vec<f32>>>,
    pub labels: Vec<i64>,
}

/// Bilinear resampling of one `h x w` plane to `out_h x out_w` (half-pixel centres, edges
/// clamped: `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`).
pub fn resize(plane: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let source = |o: usize, n_out: usize, n_in: usize| -> (usize, usize, f32) {
        let x = ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).max(0.0);
        let i = (x.floor() as usize).min(n_in - 1);
        (i, (i + 1).min(n_in - 1), x - i as f32)
    };
    let mut out = Vec::with_capacity(out_h * out_w);
    for oy in 0..out_h {
        let (y0, y1, fy) = source(oy, out_h, h);
        for ox in 0..out_w {
            let (x0, x1, fx) = source(ox, out_w, w);
            let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
            let bottom = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

fn floats(path: &Path) -> anyhow::Result<(Vec<usize>, Vec<f32>)> {
    let array = read_npy(path)?;
    match array.values {
        NpyValues::Float(v) => Ok((array.shape, v)),
        NpyValues::Int(_) => anyhow::bail!("{}: expected float32 values", path.display()),
    }
}

impl AttentionFigure {
    /// Reads `attention-{images,maps,labels}.npy` of a run; `None` when the run stores no maps.
    /// `bgr`: the inputs are in BGR order (BN-Inception).
    pub fn load(
        dir: &Path,
        title: String,
        what: &'static str,
        bgr: bool,
    ) -> anyhow::Result<Option<Self>> {
        let maps_path = dir.join(RunFile::AttentionMaps.name());
        if !maps_path.exists() {
            return Ok(None);
        }
        let (image_shape, pixels) = floats(&dir.join(RunFile::AttentionImages.name()))?;
        let (map_shape, values) = floats(&maps_path)?;
        let labels = match read_npy(&dir.join(RunFile::AttentionLabels.name()))?.values {
            NpyValues::Int(v) => v,
            NpyValues::Float(v) => v.iter().map(|&x| x as i64).collect(),
        };
        let ([n, channels, h, w], [n_maps, groups, mh, mw]) = (
            <[usize; 4]>::try_from(image_shape.as_slice())?,
            <[usize; 4]>::try_from(map_shape.as_slice())?,
        );
        anyhow::ensure!(
            n == n_maps && labels.len() == n,
            "{}: {n} images, {n_maps} map sets, {} labels",
            dir.display(),
            labels.len()
        );
        let grid = h.max(w).min(MAX_GRID);
        let mut images = Vec::new();
        let mut maps = Vec::new();
        for i in 0..n {
            let image = &pixels[i * channels * h * w..(i + 1) * channels * h * w];
            // Undo the normalisation for display: one min-max over all channels keeps colours.
            let (lo, hi) = image
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, u), &v| {
                    (l.min(v), u.max(v))
                });
            let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
            let planes: Vec<Vec<f32>> = (0..channels)
                .map(|c| resize(&image[c * h * w..(c + 1) * h * w], h, w, grid, grid))
                .collect();
            images.push(
                (0..grid * grid)
                    .map(|p| {
                        let v = |c: usize| (planes[c][p] - lo) * scale;
                        match channels {
                            1 => [v(0); 3],
                            _ if bgr => [v(2), v(1), v(0)],
                            _ => [v(0), v(1), v(2)],
                        }
                    })
                    .collect(),
            );
            maps.push(
                (0..groups)
                    .map(|g| {
                        let start = (i * groups + g) * mh * mw;
                        let map = resize(&values[start..start + mh * mw], mh, mw, grid, grid);
                        let top = map.iter().copied().fold(f32::MIN, f32::max);
                        map.iter()
                            .map(|&a| if top > 0.0 { a / top } else { 0.0 })
                            .collect()
                    })
                    .collect(),
            );
        }
        Ok(Some(AttentionFigure {
            title,
            what,
            grid,
            images,
            maps,
            labels,
        }))
    }

    fn note(&self) -> String {
        format!(
            "colour: {} divided by its map's maximum (inferno, dark = low), blended over the input",
            self.what
        )
    }

    fn groups(&self) -> usize {
        self.maps.first().map_or(0, Vec::len)
    }

    fn panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (x, y): (i32, i32),
        colour: impl Fn(usize) -> [f32; 3],
    ) -> anyhow::Result<()> {
        let g = self.grid;
        let edge = |i: usize| (i as u32 * PANEL / g as u32) as i32;
        for row in 0..g {
            for col in 0..g {
                root.draw(&Rectangle::new(
                    [
                        (x + edge(col), y + edge(row)),
                        (x + edge(col + 1), y + edge(row + 1)),
                    ],
                    rgb(colour(row * g + col)).filled(),
                ))
                .drawn()?;
            }
        }
        Ok(())
    }
}

impl Figure for AttentionFigure {
    fn size(&self) -> (u32, u32) {
        let columns = 1 + self.groups() as u32;
        let rows = self.images.len() as u32;
        // Wide enough for the title and the note (DejaVu Sans: about 7.5 and 6 px a character
        // at 17 and 12 px) when there are few groups.
        let title = self.title.chars().count() as u32 * 15 / 2;
        let text = title.max(self.note().chars().count() as u32 * 6) + 20;
        (
            (LEFT + columns * (PANEL + GAP) + GAP).max(text),
            TOP + rows * (PANEL + GAP) + BOTTOM,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let text = |size: f64| TextStyle::from((FAMILY, size).into_font()).color(&BLACK);
        root.draw(&Text::new(self.title.clone(), (10, 8), text(17.0)))
            .drawn()?;
        let column_x = |c: u32| (LEFT + c * (PANEL + GAP)) as i32;
        root.draw(&Text::new(
            "input",
            (column_x(0) + 36, TOP as i32 - 20),
            text(13.0),
        ))
        .drawn()?;
        for g in 0..self.groups() {
            root.draw(&Text::new(
                format!("group {}", g + 1),
                (column_x(g as u32 + 1) + 28, TOP as i32 - 20),
                text(13.0),
            ))
            .drawn()?;
        }
        for (i, image) in self.images.iter().enumerate() {
            let y = (TOP + i as u32 * (PANEL + GAP)) as i32;
            root.draw(&Text::new(
                format!("class {}", self.labels[i]),
                (8, y + PANEL as i32 / 2 - 7),
                text(13.0),
            ))
            .drawn()?;
            self.panel(root, (column_x(0), y), |p| image[p])?;
            for (g, map) in self.maps[i].iter().enumerate() {
                self.panel(root, (column_x(g as u32 + 1), y), |p| {
                    let heat = inferno(map[p]);
                    std::array::from_fn(|c| (1.0 - ALPHA) * image[p][c] + ALPHA * heat[c])
                })?;
            }
        }
        let (_, height) = self.size();
        root.draw(&Text::new(
            self.note(),
            (10, height as i32 - 20),
            text(12.0),
        ))
        .drawn()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_resize_matches_torch_half_pixel_centres() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=4,
        // mode="bilinear", align_corners=False)
        let out = resize(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
        let expected = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
        assert_eq!(resize(&[5.0; 9], 3, 3, 3, 3), vec![5.0; 9]);
    }
}
