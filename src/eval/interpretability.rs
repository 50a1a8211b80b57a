//! Interpretability numbers of a grouping head on a set of images: how much the groups'
//! attention maps overlap (mean pairwise Bhattacharyya coefficient), how spread each map is
//! (entropy over positions, divided by log N so 1 is uniform), and how similar the groups'
//! embeddings are (mean pairwise cosine). Distinct, diverse groups mean low overlap and low
//! cosine.

use super::retrieval::Metrics;

/// Sums over images, finished into means by [`Interpretability::finish`].
#[derive(Debug, Clone, Default)]
pub struct Interpretability {
    overlap: f64,
    entropy: f64,
    cosine: f64,
    map_images: usize,
    group_images: usize,
}

impl Interpretability {
    /// Adds a batch: `groups` `[n, P, d]` (each group unit-norm) and, for heads with maps,
    /// `maps` `[n, P, positions]` (non-negative; each map is normalised to sum 1 here).
    pub fn add(&mut self, groups: &[f32], p: usize, d: usize, maps: Option<(&[f32], usize)>) {
        let n = groups.len() / (p * d);
        if p < 2 && maps.is_none() {
            return;
        }
        for i in 0..n {
            let image = &groups[i * p * d..(i + 1) * p * d];
            if p >= 2 {
                let mut sum = 0.0;
                for a in 0..p {
                    for b in a + 1..p {
                        let dot: f32 = image[a * d..(a + 1) * d]
                            .iter()
                            .zip(&image[b * d..(b + 1) * d])
                            .map(|(x, y)| x * y)
                            .sum();
                        sum += f64::from(dot);
                    }
                }
                self.cosine += sum / (p * (p - 1) / 2) as f64;
                self.group_images += 1;
            }
            if let Some((maps, positions)) = maps {
                let image = &maps[i * p * positions..(i + 1) * p * positions];
                let dists: Vec<Vec<f64>> = image
                    .chunks(positions)
                    .map(|m| {
                        let total: f64 = m.iter().map(|&v| f64::from(v.max(0.0))).sum();
                        m.iter()
                            .map(|&v| f64::from(v.max(0.0)) / total.max(f64::MIN_POSITIVE))
                            .collect()
                    })
                    .collect();
                let log_n = (positions as f64).ln().max(f64::MIN_POSITIVE);
                let entropy: f64 = dists
                    .iter()
                    .map(|m| {
                        -m.iter()
                            .filter(|&&v| v > 0.0)
                            .map(|v| v * v.ln())
                            .sum::<f64>()
                    })
                    .sum::<f64>()
                    / p as f64;
                self.entropy += entropy / log_n;
                if p >= 2 {
                    let mut sum = 0.0;
                    for a in 0..p {
                        for b in a + 1..p {
                            sum += dists[a]
                                .iter()
                                .zip(&dists[b])
                                .map(|(x, y)| (x * y).sqrt())
                                .sum::<f64>();
                        }
                    }
                    self.overlap += sum / (p * (p - 1) / 2) as f64;
                }
                self.map_images += 1;
            }
        }
    }

    /// Means over the images: `group_cosine` (P >= 2), `attention_entropy` (heads with maps),
    /// `attention_overlap` (both).
    pub fn finish(&self) -> Metrics {
        let mut m = Metrics::new();
        if self.group_images > 0 {
            m.insert(
                "group_cosine".into(),
                self.cosine / self.group_images as f64,
            );
        }
        if self.map_images > 0 {
            m.insert(
                "attention_entropy".into(),
                self.entropy / self.map_images as f64,
            );
            if self.group_images > 0 {
                m.insert(
                    "attention_overlap".into(),
                    self.overlap / self.map_images as f64,
                );
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_sharp_maps_and_orthogonal_groups_score_zero() {
        // One image, two groups: orthogonal embeddings, one-hot maps on different positions.
        let groups = [1.0f32, 0.0, 0.0, 1.0];
        let maps = [1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let mut acc = Interpretability::default();
        acc.add(&groups, 2, 2, Some((&maps, 4)));
        let m = acc.finish();
        assert!(m["group_cosine"].abs() < 1e-12);
        assert!(m["attention_overlap"].abs() < 1e-12);
        assert!(m["attention_entropy"].abs() < 1e-12);
    }

    #[test]
    fn identical_uniform_maps_and_groups_score_one() {
        let groups = [0.6f32, 0.8, 0.6, 0.8];
        // Unnormalised masks (as the gate head's) are normalised first.
        let maps = [0.5f32; 8];
        let mut acc = Interpretability::default();
        acc.add(&groups, 2, 2, Some((&maps, 4)));
        let m = acc.finish();
        assert!((m["group_cosine"] - 1.0).abs() < 1e-6);
        assert!((m["attention_overlap"] - 1.0).abs() < 1e-12);
        assert!((m["attention_entropy"] - 1.0).abs() < 1e-12);
        // One group: no pairs, nothing but the entropy.
        let mut single = Interpretability::default();
        single.add(&[1.0, 0.0], 1, 2, None);
        assert!(single.finish().is_empty());
    }
}
