//! A 2-D projection of test embeddings (the first two principal components), coloured by
//! class: one panel per run, from the stored test-embeddings.npy and test-labels.npy.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::style::series_colour;
use super::{Drawn, FAMILY, Figure, extent};
use crate::eval::evaluate::{read_embeddings, read_labels};
use crate::store::{EmbeddedSet, RunFile};

/// At most this many classes are drawn (colours stay distinguishable), and at most this many
/// points (the SVG stays small); both chosen deterministically.
const MAX_CLASSES: usize = 10;
const MAX_POINTS: usize = 4000;

/// The top two principal axes of `rows` (n x d, row-major) by power iteration with
/// deflation on the d x d covariance; returns the n x 2 projection of the centred rows.
pub fn principal_components(rows: &[f32], d: usize) -> Vec<[f64; 2]> {
    let n = rows.len() / d;
    let mut mean = vec![0f64; d];
    for row in rows.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v) / n as f64;
        }
    }
    let mut cov = vec![0f64; d * d];
    for row in rows.chunks_exact(d) {
        let centred: Vec<f64> = row
            .iter()
            .zip(&mean)
            .map(|(&v, m)| f64::from(v) - m)
            .collect();
        for i in 0..d {
            let ci = centred[i];
            for (j, cj) in centred.iter().enumerate() {
                cov[i * d + j] += ci * cj;
            }
        }
    }
    let mut axes: Vec<Vec<f64>> = Vec::new();
    for _ in 0..2 {
        // A fixed start that is not orthogonal to any axis in practice.
        let mut v: Vec<f64> = (0..d).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect();
        for _ in 0..300 {
            let mut next: Vec<f64> = (0..d)
                .map(|i| (0..d).map(|j| cov[i * d + j] * v[j]).sum())
                .collect();
            for axis in &axes {
                let dot: f64 = next.iter().zip(axis).map(|(a, b)| a * b).sum();
                for (x, a) in next.iter_mut().zip(axis) {
                    *x -= dot * a;
                }
            }
            let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            next.iter_mut().for_each(|x| *x /= norm);
            v = next;
        }
        // Sign convention: the largest component positive (stable across runs).
        let top = v
            .iter()
            .copied()
            .fold(0f64, |a, b| if b.abs() > a.abs() { b } else { a });
        if top < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
        axes.push(v);
    }
    rows.chunks_exact(d)
        .map(|row| {
            let project = |axis: &[f64]| {
                row.iter()
                    .zip(&mean)
                    .zip(axis)
                    .map(|((&v, m), a)| (f64::from(v) - m) * a)
                    .sum()
            };
            [project(&axes[0]), project(&axes[1])]
        })
        .collect()
}

/// One panel: a run's projected points and their classes.
#[derive(Debug, Clone)]
pub struct ProjectionPanel {
    pub title: String,
    pub points: Vec<([f64; 2], usize)>,
}

#[derive(Debug, Clone)]
pub struct EmbeddingProjection {
    pub title: String,
    pub panels: Vec<ProjectionPanel>,
    /// The class labels, in colour order.
    pub classes: Vec<i64>,
}

impl ProjectionPanel {
    /// Reads a run's test embeddings; keeps the first [`MAX_CLASSES`] classes (by label) and
    /// every k-th of their points so at most [`MAX_POINTS`] remain.
    pub fn load(dir: &Path, title: String) -> anyhow::Result<(ProjectionPanel, Vec<i64>)> {
        // The readers `agml evaluate` uses: a NaN or infinite value is bad input naming the
        // file and row (a projection of it would be meaningless).
        let embeddings_file = dir.join(RunFile::Embeddings(EmbeddedSet::Test).name());
        let labels_file = dir.join(RunFile::Labels(EmbeddedSet::Test).name());
        let (values, d) = read_embeddings(&embeddings_file)?;
        let labels = read_labels(&labels_file)?;
        let n = values.len() / d;
        anyhow::ensure!(
            labels.len() == n,
            "{}: {n} embeddings, {} labels",
            dir.display(),
            labels.len()
        );
        let mut classes = labels.clone();
        classes.sort_unstable();
        classes.dedup();
        classes.truncate(MAX_CLASSES);
        let kept: Vec<usize> = (0..n).filter(|&i| classes.contains(&labels[i])).collect();
        let stride = kept.len().div_ceil(MAX_POINTS).max(1);
        let kept: Vec<usize> = kept.into_iter().step_by(stride).collect();
        let rows: Vec<f32> = kept
            .iter()
            .flat_map(|&i| values[i * d..(i + 1) * d].iter().copied())
            .collect();
        let projected = principal_components(&rows, d);
        let points = kept
            .iter()
            .zip(projected)
            .map(|(&i, p)| (p, classes.iter().position(|&c| c == labels[i]).unwrap_or(0)))
            .collect();
        Ok((ProjectionPanel { title, points }, classes))
    }
}

const PANEL_SIZE: u32 = 440;
const TITLE: u32 = 34;
const LEGEND: u32 = 30;

impl Figure for EmbeddingProjection {
    fn size(&self) -> (u32, u32) {
        (
            PANEL_SIZE * self.panels.len().max(1) as u32,
            TITLE + PANEL_SIZE + LEGEND,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let text = |size: f64| TextStyle::from((FAMILY, size).into_font()).color(&BLACK);
        root.draw(&Text::new(self.title.clone(), (10, 8), text(18.0)))
            .drawn()?;
        let (_, height) = self.size();
        let legend_y = height as i32 - LEGEND as i32 + 8;
        root.draw(&Text::new("class:", (10, legend_y), text(12.0)))
            .drawn()?;
        for (i, class) in self.classes.iter().enumerate() {
            let x = 60 + i as i32 * 56;
            root.draw(&Circle::new(
                (x, legend_y + 7),
                5,
                series_colour(i).filled(),
            ))
            .drawn()?;
            root.draw(&Text::new(class.to_string(), (x + 9, legend_y), text(12.0)))
                .drawn()?;
        }
        let body = root.margin(TITLE, LEGEND, 0, 0);
        for (panel, area) in self
            .panels
            .iter()
            .zip(body.split_evenly((1, self.panels.len().max(1))))
        {
            let range = |axis: usize| match extent(panel.points.iter().map(|(p, _)| p[axis])) {
                Some((lo, hi)) => {
                    let pad = ((hi - lo) * 0.05).max(1e-6);
                    (lo - pad)..(hi + pad)
                }
                None => -1.0..1.0,
            };
            let mut chart = ChartBuilder::on(&area)
                .caption(panel.title.clone(), (FAMILY, 14.0))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(40)
                .build_cartesian_2d(range(0), range(1))
                .drawn()?;
            chart
                .configure_mesh()
                .x_desc("PC 1")
                .y_desc("PC 2")
                .x_labels(5)
                .y_labels(5)
                .label_style((FAMILY, 11.0))
                .axis_desc_style((FAMILY, 12.0))
                .light_line_style(BLACK.mix(0.0))
                .bold_line_style(BLACK.mix(0.08))
                .draw()
                .drawn()?;
            chart
                .draw_series(panel.points.iter().map(|&(p, c)| {
                    Circle::new((p[0], p[1]), 2, series_colour(c).mix(0.7).filled())
                }))
                .drawn()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_components_find_the_spread_directions() {
        // Points spread 10x along (1, 1, 0) and 1x along (1, -1, 0), none along z.
        let mut rows = Vec::new();
        for i in -5..=5 {
            for j in -2..=2 {
                let (a, b) = (i as f32 * 10.0, j as f32);
                rows.extend([a + b + 3.0, a - b + 3.0, 7.0]);
            }
        }
        let projected = principal_components(&rows, 3);
        // The first coordinate is the long direction: its variance is ~100x the second's.
        let var = |k: usize| projected.iter().map(|p| p[k] * p[k]).sum::<f64>();
        assert!(var(0) > 50.0 * var(1), "{} vs {}", var(0), var(1));
        // Point (i = 5, j = 0) sits at +50 * sqrt(2) on PC 1 (up to the sign convention).
        let p = projected[10 * 5 + 2];
        assert!((p[0].abs() - 50.0 * 2f64.sqrt()).abs() < 1e-6, "{p:?}");
        assert!(p[1].abs() < 1e-6);
    }
}
