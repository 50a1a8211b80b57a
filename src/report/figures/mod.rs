//! Figures from stored artifacts only (attention maps, embeddings, histories, metrics): PNG and
//! SVG with plotters, text in the bundled DejaVu Sans so no system font is needed.

mod attention;
mod curves;
mod projection;
mod select;
mod style;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

pub use attention::AttentionFigure;
pub use curves::{GroupAblation, RecallCurves, TrainingCurves};
pub use projection::{EmbeddingProjection, principal_components};
pub use select::write_figures;

/// DejaVu Sans (Bitstream Vera license, font/LICENSE).
const FONT: &[u8] = include_bytes!("font/DejaVuSans.ttf");
/// The family every figure asks for; SVG viewers fall back to their own sans-serif.
pub const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            if plotters::style::register_font(FAMILY, style, FONT).is_err() {
                panic!("the bundled font does not parse");
            }
        }
    });
}

/// The smallest and largest finite value, if there is one (axis ranges).
pub(crate) fn extent(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |range, v| {
            Some(range.map_or((v, v), |(lo, hi): (f64, f64)| (lo.min(v), hi.max(v))))
        })
}

/// A figure that draws itself on any plotters backend.
pub trait Figure {
    /// Width and height in pixels (PNG) or user units (SVG).
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

/// plotters' errors carry the backend's error type; turn them into anyhow errors.
pub(crate) trait Drawn<T> {
    fn drawn(self) -> anyhow::Result<T>;
}

impl<T, E: std::fmt::Display> Drawn<T> for Result<T, E> {
    fn drawn(self) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("drawing: {e}"))
    }
}

/// Renders `figure` to `<dir>/<stem>.png` and `<dir>/<stem>.svg` (atomically); returns both.
pub fn save(figure: &impl Figure, dir: &Path, stem: &str) -> anyhow::Result<Vec<PathBuf>> {
    register_font();
    let (width, height) = figure.size();
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).drawn()?;
        figure.draw(&root)?;
        root.present().drawn()?;
    }
    let image = image::RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| anyhow::anyhow!("{stem}: pixel buffer of the wrong size"))?;
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).drawn()?;
        figure.draw(&root)?;
        root.present().drawn()?;
    }
    let mut written = Vec::new();
    for (ext, bytes) in [("png", png.into_inner()), ("svg", svg.into_bytes())] {
        let path = dir.join(format!("{stem}.{ext}"));
        crate::store::write_atomic(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}
