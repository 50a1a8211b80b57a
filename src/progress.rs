//! Progress bars (indicatif) and logs (tracing) that share the terminal without tearing.

use std::io::{IsTerminal, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The terminal's bars; hidden when stderr is not a terminal.
#[derive(Clone)]
pub struct Progress {
    bars: MultiProgress,
}

impl Progress {
    /// Bars on stderr (drawn only on a terminal).
    pub fn new() -> Self {
        Self {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        }
    }

    /// A bar that draws nothing.
    pub fn hidden() -> Self {
        Self {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        }
    }

    /// The bar over the cells of a `run`.
    pub fn cells(&self, total: usize) -> ProgressBar {
        let bar = self.bars.add(ProgressBar::new(total as u64));
        bar.set_style(
            ProgressStyle::with_template("cells   {bar:30} {pos}/{len} [{elapsed_precise}] {msg}")
                .expect("valid template"),
        );
        bar
    }

    /// A bar over the batches of one cell's epoch.
    pub fn batches(&self) -> ProgressBar {
        let bar = self.bars.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("batches {bar:30} {pos}/{len} {msg} ({per_sec})")
                .expect("valid template"),
        );
        bar
    }

    /// Removes a finished bar.
    pub fn remove(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        self.bars.remove(bar);
    }

    /// Installs a tracing subscriber that prints above the bars (`RUST_LOG`, default `info`).
    pub fn init_logging(&self) {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(AboveBars(self.bars.clone()))
            .try_init();
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// A log writer that suspends the bars while a line is written.
#[derive(Clone)]
struct AboveBars(MultiProgress);

struct SuspendedStderr(MultiProgress);

impl Write for SuspendedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for AboveBars {
    type Writer = SuspendedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        SuspendedStderr(self.0.clone())
    }
}
