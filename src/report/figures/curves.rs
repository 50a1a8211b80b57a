//! Line figures: panels of series with optional error bars and marked points (Recall@K
//! curves, training curves, the group-count ablation).

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::style::series_colour;
use super::{Drawn, FAMILY, Figure, extent};

/// One line: points (x, y, error bar half-height), points to mark, drawn faint or not.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, Option<f64>)>,
    /// Points drawn as large dots (the selected epoch).
    pub marked: Vec<(f64, f64)>,
    pub colour: usize,
    /// A reference line (thin and light).
    pub faint: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// x values are log2 of what the ticks show (K, P).
    pub x_log2: bool,
    pub series: Vec<Series>,
}

/// Panels in a grid under a title.
#[derive(Debug, Clone, Default)]
pub struct LineFigure {
    pub title: String,
    pub panels: Vec<Panel>,
    pub columns: usize,
    pub note: String,
}

/// Recall@K curves per method (one panel per section and dataset).
pub type RecallCurves = LineFigure;
/// Training loss and validation metric per epoch, selected epoch marked.
pub type TrainingCurves = LineFigure;
/// Metrics against the number of groups with error bars over seeds.
pub type GroupAblation = LineFigure;

const PANEL_SIZE: (u32, u32) = (520, 380);
const TITLE: u32 = 34;
const NOTE: u32 = 24;

impl LineFigure {
    fn grid(&self) -> (u32, u32) {
        let columns = self.columns.clamp(1, self.panels.len().max(1)) as u32;
        let rows = (self.panels.len() as u32).div_ceil(columns).max(1);
        (columns, rows)
    }
}

impl Figure for LineFigure {
    fn size(&self) -> (u32, u32) {
        let (columns, rows) = self.grid();
        (
            columns * PANEL_SIZE.0,
            TITLE + rows * PANEL_SIZE.1 + if self.note.is_empty() { 0 } else { NOTE },
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let (columns, rows) = self.grid();
        let (_, height) = self.size();
        root.draw(&Text::new(
            self.title.clone(),
            (10, 8),
            TextStyle::from((FAMILY, 18.0).into_font()).color(&BLACK),
        ))
        .drawn()?;
        if !self.note.is_empty() {
            root.draw(&Text::new(
                self.note.clone(),
                (10, height as i32 - NOTE as i32 + 4),
                TextStyle::from((FAMILY, 12.0).into_font()).color(&BLACK),
            ))
            .drawn()?;
        }
        let body = root.margin(TITLE, if self.note.is_empty() { 0 } else { NOTE }, 0, 0);
        let areas = body.split_evenly((rows as usize, columns as usize));
        for (panel, area) in self.panels.iter().zip(areas) {
            draw_panel(panel, &area)?;
        }
        Ok(())
    }
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let Some((lo, hi)) = extent(values) else {
        return (0.0, 1.0);
    };
    let pad = ((hi - lo) * 0.08).max(1e-3 * hi.abs().max(1.0));
    (lo - pad, hi + pad)
}

fn draw_panel<DB: DrawingBackend>(
    panel: &Panel,
    area: &DrawingArea<DB, Shift>,
) -> anyhow::Result<()> {
    let points = || panel.series.iter().flat_map(|s| s.points.iter());
    let x = range(points().map(|p| p.0));
    let y = range(points().flat_map(|p| {
        let e = p.2.unwrap_or(0.0);
        [p.1 - e, p.1 + e]
    }));
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title.clone(), (FAMILY, 15.0))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(52)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .drawn()?;
    let log2 = panel.x_log2;
    let x_format = move |v: &f64| {
        if log2 {
            format!("{}", 2f64.powf(*v).round())
        } else if v.fract().abs() < 1e-9 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    let ticks = if log2 {
        (x.1 - x.0).round() as usize + 1
    } else {
        8
    };
    chart
        .configure_mesh()
        .x_desc(panel.x_label.clone())
        .y_desc(panel.y_label.clone())
        .x_labels(ticks)
        .x_label_formatter(&x_format)
        .label_style((FAMILY, 12.0))
        .axis_desc_style((FAMILY, 13.0))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.1))
        .draw()
        .drawn()?;
    for series in &panel.series {
        draw_series(&mut chart, series)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FAMILY, 11.0))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .drawn()?;
    Ok(())
}

/// One series: its line (and legend entry), its points, error bars and circled points.
fn draw_series<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    series: &Series,
) -> anyhow::Result<()> {
    let colour = series_colour(series.colour);
    let line = if series.faint {
        colour.mix(0.45).stroke_width(1)
    } else {
        colour.stroke_width(2)
    };
    let xy: Vec<(f64, f64)> = series.points.iter().map(|p| (p.0, p.1)).collect();
    let legend_style = line;
    chart
        .draw_series(LineSeries::new(xy.clone(), line))
        .drawn()?
        .label(series.name.clone())
        .legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 18, ly)], legend_style));
    if !series.faint {
        chart
            .draw_series(xy.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .drawn()?;
    }
    chart
        .draw_series(series.points.iter().filter_map(|&(px, py, e)| {
            e.filter(|e| e.is_finite() && *e > 0.0)
                .map(|e| PathElement::new(vec![(px, py - e), (px, py + e)], colour.stroke_width(1)))
        }))
        .drawn()?;
    chart
        .draw_series(
            series
                .marked
                .iter()
                .map(|&p| Circle::new(p, 6, colour.stroke_width(2))),
        )
        .drawn()?;
    Ok(())
}

/// A run's `history.csv`: a header and one row of numbers per epoch.
#[derive(Debug, Clone)]
pub struct History {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

impl History {
    pub fn read(path: &Path) -> anyhow::Result<History> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut lines = text.lines();
        let columns: Vec<String> = lines
            .next()
            .with_context(|| format!("{}: empty", path.display()))?
            .split(',')
            .map(str::to_string)
            .collect();
        let rows = lines
            .map(|line| {
                line.split(',')
                    .map(|v| v.parse::<f64>().unwrap_or(f64::NAN))
                    .collect::<Vec<f64>>()
            })
            .filter(|row| row.len() == columns.len())
            .collect();
        Ok(History { columns, rows })
    }

    /// The column of `split` (`val` or `test`) to draw the selection curve from: MAP@R when
    /// the history has it, else the split's first column ("" when it has none).
    pub fn selection_column(&self, split: &str) -> String {
        let preferred = format!("{split}_map@r");
        if self.columns.contains(&preferred) {
            return preferred;
        }
        (self.columns.iter())
            .find(|c| c.starts_with(&format!("{split}_")))
            .cloned()
            .unwrap_or_default()
    }

    /// (epoch, value) of a column, when the history has it.
    pub fn series(&self, name: &str) -> Option<Vec<(f64, f64)>> {
        let epoch = self.columns.iter().position(|c| c == "epoch")?;
        let column = self.columns.iter().position(|c| c == name)?;
        Some(
            self.rows
                .iter()
                .map(|r| (r[epoch], r[column]))
                .filter(|p| p.1.is_finite())
                .collect(),
        )
    }
}
