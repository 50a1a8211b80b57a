//! A seeded synthetic image dataset for tests: each class is a random smooth colour pattern;
//! its images are the pattern, circularly shifted by a few pixels, plus noise. Nothing to
//! download, any size, and learnable (so a training test can see the metric move).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::images::{Splits, Validation, select_classes, split_validation};

/// The synthetic dataset's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    /// Classes in all; the first half train, the second half test.
    pub classes: usize,
    pub images_per_class: usize,
    /// Height and width.
    pub size: usize,
    pub channels: usize,
    /// Standard deviation of the pixel noise.
    pub noise: f64,
    pub val_fraction: f64,
    pub seed: u64,
    /// Held-out images of every training class, or held-out training classes.
    #[serde(skip_serializing_if = "Validation::is_images")]
    pub validation: Validation,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            classes: 8,
            images_per_class: 8,
            size: 48,
            channels: 3,
            noise: 0.3,
            val_fraction: 0.25,
            seed: 0,
            validation: Validation::Images,
        }
    }
}

impl SyntheticConfig {
    /// The generator's limits.
    pub fn check(&self) -> Result<(), crate::error::Invalid> {
        if self.classes < 4 || self.images_per_class < 2 || self.size < 8 || self.channels == 0 {
            return Err(crate::error::Invalid::new(
                &["classes", "images_per_class", "size", "channels"],
                "[datasets.synthetic] needs classes >= 4, images_per_class >= 2, size >= 8, channels >= 1",
            ));
        }
        Ok(())
    }

    /// Classes on the training side (before any class-disjoint validation split).
    fn training_side(&self) -> usize {
        self.classes / 2
    }

    /// Classes available to training batches.
    pub fn train_class_count(&self) -> usize {
        self.validation
            .train_classes(self.training_side(), self.val_fraction, None)
    }

    /// Generates the images and splits them.
    pub fn splits(&self) -> Splits {
        let (s, c) = (self.size, self.channels);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut pixels = Vec::with_capacity(self.classes * self.images_per_class * c * s * s);
        let mut labels = Vec::new();
        for class in 0..self.classes {
            // A pattern: the sum of a few random plane waves per channel.
            let waves: Vec<[f64; 4]> = (0..3 * c)
                .map(|_| {
                    [
                        rng.random_range(0.5..3.0),
                        rng.random_range(0.5..3.0),
                        rng.random_range(0.0..std::f64::consts::TAU),
                        rng.random_range(0.5..1.0),
                    ]
                })
                .collect();
            for _ in 0..self.images_per_class {
                let (dy, dx) = (rng.random_range(0..4), rng.random_range(0..4));
                for channel in 0..c {
                    for y in 0..s {
                        for x in 0..s {
                            let (yy, xx) = (
                                ((y + dy) % s) as f64 / s as f64,
                                ((x + dx) % s) as f64 / s as f64,
                            );
                            let value: f64 = waves[channel * 3..channel * 3 + 3]
                                .iter()
                                .map(|[fy, fx, phase, amp]| {
                                    amp * (std::f64::consts::TAU * (fy * yy + fx * xx) + phase)
                                        .sin()
                                })
                                .sum();
                            let noise: f64 = rng.random_range(-1.0..1.0) * self.noise * 3f64.sqrt();
                            pixels.push((value + noise) as f32);
                        }
                    }
                }
                labels.push(class as u32);
            }
        }
        let half = self.training_side() as u32;
        let train_ids: Vec<u32> = (0..half).collect();
        let test_ids: Vec<u32> = (half..self.classes as u32).collect();
        let shape = (c, s, s);
        let train_all = select_classes(&pixels, &labels, shape, &train_ids, 0, self.seed);
        let test = select_classes(&pixels, &labels, shape, &test_ids, 0, self.seed);
        let (train, val) = split_validation(
            &train_all,
            self.validation,
            self.val_fraction,
            None,
            self.seed,
        );
        Splits {
            train,
            val,
            test,
            gallery: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_seeded_class_disjoint_and_sized() {
        let config = SyntheticConfig {
            classes: 6,
            images_per_class: 4,
            size: 8,
            ..SyntheticConfig::default()
        };
        let a = config.splits();
        let b = config.splits();
        assert_eq!(a.train.decoded(), b.train.decoded());
        assert_eq!(a.test.class_ids, vec![3, 4, 5]);
        assert_eq!(a.train.class_ids, vec![0, 1, 2]);
        assert_eq!(a.train.len() + a.val.len(), 12);
        assert_eq!(a.test.len(), 12);
        assert_eq!(a.test.image_len(), 3 * 64);
        let other = SyntheticConfig { seed: 1, ..config }.splits();
        assert_ne!(a.train.decoded(), other.train.decoded());
    }
}
