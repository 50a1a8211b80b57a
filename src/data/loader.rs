//! Batches decoded ahead of the training step: a loader thread prepares the next batches
//! (each one's images in parallel on rayon) while the model works on the current one.

use std::sync::mpsc::sync_channel;

use super::images::ImageSet;
use super::pipeline::View;

/// Batches prepared ahead of the one in use.
const LOOKAHEAD: usize = 2;

/// Calls `step(i, indices, pixels)` for every batch of `batches` in order, where `pixels` are
/// the batch's images of `set` seen as `view_of(i)`, prepared on a loader thread ahead of the
/// call. The first decoding error or error of `step` ends the loop and is returned.
pub fn for_each_batch<F>(
    set: &ImageSet,
    batches: &[Vec<usize>],
    view_of: impl Fn(usize) -> View + Sync,
    mut step: F,
) -> anyhow::Result<()>
where
    F: FnMut(usize, &[usize], Vec<f32>) -> anyhow::Result<()>,
{
    std::thread::scope(|scope| {
        let (sender, receiver) = sync_channel(LOOKAHEAD);
        let view_of = &view_of;
        scope.spawn(move || {
            for (i, batch) in batches.iter().enumerate() {
                // A send fails only when the consumer stopped (an error): stop too.
                if sender.send(set.batch(batch, view_of(i))).is_err() {
                    return;
                }
            }
        });
        for (i, batch) in batches.iter().enumerate() {
            let pixels = receiver
                .recv()
                .expect("the loader thread sends every batch")?;
            step(i, batch, pixels)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::images::Images;

    fn set() -> ImageSet {
        ImageSet {
            images: Images::Decoded((0..10).map(|v| v as f32).collect()),
            labels: vec![0; 10],
            class_ids: vec![0],
            channels: 1,
            height: 1,
            width: 1,
        }
    }

    #[test]
    fn batches_arrive_in_order_with_their_pixels() {
        let batches = vec![vec![3, 1], vec![0], vec![9, 8, 7]];
        let mut seen = Vec::new();
        for_each_batch(
            &set(),
            &batches,
            |_| View::Test,
            |i, indices, pixels| {
                assert_eq!(indices, batches[i].as_slice());
                seen.push(pixels);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, vec![vec![3.0, 1.0], vec![0.0], vec![9.0, 8.0, 7.0]]);
    }

    #[test]
    fn an_error_of_the_step_stops_the_loop() {
        let batches: Vec<Vec<usize>> = (0..10).map(|i| vec![i]).collect();
        let mut calls = 0;
        let result = for_each_batch(
            &set(),
            &batches,
            |_| View::Test,
            |i, _, _| {
                calls += 1;
                anyhow::ensure!(i < 2, "stop");
                Ok(())
            },
        );
        assert!(result.is_err());
        assert_eq!(calls, 3);
    }
}
