//! Class-balanced batches: m images of each of batch_size / m classes.
//!
//! Classes are drawn without replacement within a batch; images within a class without
//! replacement when the class has at least m of them. The generator of epoch e is seeded from
//! (seed, e), so a resumed run draws the same batches.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Draws class-balanced batches of image indices.
#[derive(Debug, Clone)]
pub struct ClassBalancedSampler {
    by_class: Vec<Vec<usize>>,
    samples_per_class: usize,
    classes_per_batch: usize,
    batches_per_epoch: usize,
}

impl ClassBalancedSampler {
    /// A sampler over `by_class` (image indices per class); an epoch is
    /// `total images / batch_size` batches (at least one).
    pub fn new(by_class: Vec<Vec<usize>>, batch_size: usize, samples_per_class: usize) -> Self {
        let by_class: Vec<Vec<usize>> = by_class.into_iter().filter(|c| !c.is_empty()).collect();
        assert!(samples_per_class > 0 && batch_size.is_multiple_of(samples_per_class));
        let classes_per_batch = batch_size / samples_per_class;
        assert!(
            classes_per_batch <= by_class.len(),
            "a batch needs {classes_per_batch} classes, there are {}",
            by_class.len()
        );
        let total: usize = by_class.iter().map(Vec::len).sum();
        Self {
            by_class,
            samples_per_class,
            classes_per_batch,
            batches_per_epoch: (total / batch_size).max(1),
        }
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.batches_per_epoch
    }

    /// The batches of epoch `epoch` (0-based) for run seed `seed`.
    pub fn epoch(&self, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
        let mut rng = ChaCha8Rng::seed_from_u64(
            seed.wrapping_mul(0xA076_1D64_78BD_642F) ^ (epoch as u64 + 1),
        );
        (0..self.batches_per_epoch)
            .map(|_| self.batch(&mut rng))
            .collect()
    }

    fn batch(&self, rng: &mut impl Rng) -> Vec<usize> {
        let classes: Vec<&Vec<usize>> = self
            .by_class
            .choose_multiple(rng, self.classes_per_batch)
            .collect();
        let mut batch = Vec::with_capacity(self.classes_per_batch * self.samples_per_class);
        for members in classes {
            if members.len() >= self.samples_per_class {
                batch.extend(
                    members
                        .choose_multiple(rng, self.samples_per_class)
                        .copied(),
                );
            } else {
                batch.extend(
                    (0..self.samples_per_class).map(|_| *members.choose(rng).expect("non-empty")),
                );
            }
        }
        // Keep class blocks contiguous but shuffle their order: nothing downstream may rely on it.
        let mut blocks: Vec<&[usize]> = batch.chunks(self.samples_per_class).collect();
        blocks.shuffle(rng);
        blocks.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<Vec<usize>> {
        // 4 classes: class c holds indices c*10 .. c*10+9 (class 3 has only 1 image).
        let mut by_class: Vec<Vec<usize>> =
            (0..3).map(|c| (c * 10..c * 10 + 10).collect()).collect();
        by_class.push(vec![30]);
        by_class
    }

    #[test]
    fn every_batch_has_m_images_of_distinct_classes() {
        let sampler = ClassBalancedSampler::new(classes(), 6, 2);
        assert_eq!(sampler.batches_per_epoch(), 31 / 6);
        for batch in sampler.epoch(1, 0) {
            assert_eq!(batch.len(), 6);
            let class_of: Vec<usize> = batch.iter().map(|i| i / 10).collect();
            for block in class_of.chunks(2) {
                assert_eq!(block[0], block[1]);
            }
            let mut distinct: Vec<usize> = class_of.chunks(2).map(|b| b[0]).collect();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3);
            // A class with at least m images gives m distinct images.
            for block in batch.chunks(2) {
                if block[0] != 30 {
                    assert_ne!(block[0], block[1]);
                }
            }
        }
    }

    #[test]
    fn epochs_are_reproducible_and_differ_from_each_other() {
        let sampler = ClassBalancedSampler::new(classes(), 6, 2);
        assert_eq!(sampler.epoch(5, 3), sampler.epoch(5, 3));
        assert_ne!(sampler.epoch(5, 3), sampler.epoch(5, 4));
        assert_ne!(sampler.epoch(5, 3), sampler.epoch(6, 3));
    }
}
