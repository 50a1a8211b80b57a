//! k-means with k the number of classes, as faiss runs it for pytorch-metric-learning's
//! AccuracyCalculator (`faiss.Kmeans(d, k, niter=20)`): k distinct points drawn as the initial
//! centroids, Lloyd iterations with exact assignment, an empty cluster re-seeded by splitting a
//! large one, one run.
//!
//! Assignment is the costly part (n x k x d per iteration): it runs as blocked matrix products
//! (the k-NN's kernel), a block of points against every centroid, in parallel over blocks and
//! reduced in point order, so a seed gives the same clustering at any thread count. From the
//! second iteration on, a point is only reassigned when it may have changed cluster: each point
//! keeps an upper bound on its distance to its centroid and a lower bound on its distance to
//! every other one, moved by how far the centroids moved (Hamerly, "Making k-means even
//! faster", SDM 2010). A point whose bounds still separate keeps its cluster without a product;
//! the bounds carry a margin for the rounding of the products, so the pruning changes no
//! assignment that the full products would make.

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::knn::{Left, Right, dot};

/// Lloyd iterations at most (AccuracyCalculator's `niter=20`); they stop early once no point
/// changes cluster.
pub const MAX_ITERATIONS: usize = 20;
/// Points per assignment block: a block holds BLOCK x k products.
const BLOCK: usize = 256;
/// faiss's perturbation of a split centroid (1 / 1024).
const SPLIT: f32 = 1.0 / 1024.0;
/// With fewer centroids every point is reassigned in full each iteration: the products are
/// cheap, and the clustering is exactly the one of plain Lloyd iterations.
const PRUNE_FROM: usize = 32;
/// One centroid in this many (those that moved farthest) is measured against every point
/// instead of loosening every bound.
const JUMPERS: usize = 16;

/// A finished k-means: each row's cluster, the objective and the iterations it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    pub assignment: Vec<usize>,
    /// Sum over rows of the squared distance to their centroid.
    pub inertia: f64,
    pub iterations: usize,
}

/// k-means of the rows of `data` (`[n, dim]`) into `k` clusters, seeded by `seed`.
pub fn kmeans(data: &[f32], dim: usize, k: usize, seed: u64) -> Clustering {
    lloyd(data, dim, k, seed, k >= PRUNE_FROM)
}

/// [`kmeans`], reassigning only the points whose bounds overlap when `prune`.
fn lloyd(data: &[f32], dim: usize, k: usize, seed: u64, prune: bool) -> Clustering {
    let n = data.len() / dim;
    if n == 0 || k <= 1 {
        return Clustering {
            assignment: vec![0; n],
            inertia: inertia_of_one(data, dim),
            iterations: 0,
        };
    }
    let k = k.min(n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centroids: Vec<f32> = sample(&mut rng, n, k)
        .into_iter()
        .flat_map(|i| data[i * dim..(i + 1) * dim].to_vec())
        .collect();
    let points = Points::new(data, dim);
    let mut state = Assignment::new(&points, &centroids);
    let mut previous: Option<Vec<usize>> = None;
    let mut iterations = 0;
    loop {
        let converged = previous.as_ref() == Some(&state.cluster);
        if converged || iterations == MAX_ITERATIONS {
            return Clustering {
                inertia: inertia(&points, &centroids, &state.cluster),
                assignment: state.cluster,
                iterations,
            };
        }
        let moved = update(data, dim, k, &state.cluster);
        let drift = drift(&centroids, &moved, dim);
        centroids = moved;
        previous = Some(state.cluster.clone());
        state.reassign(&points, &centroids, &drift, prune);
        iterations += 1;
    }
}

/// The rows being clustered and their squared norms.
struct Points<'a> {
    data: &'a [f32],
    dim: usize,
    norms: Vec<f32>,
}

impl<'a> Points<'a> {
    fn new(data: &'a [f32], dim: usize) -> Self {
        let norms = data.chunks(dim).map(squared_norm).collect();
        Self { data, dim, norms }
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The squared distance of row `i` to `centroid`, summed in f64.
    fn squared_distance(&self, i: usize, centroid: &[f32]) -> f64 {
        self.row(i)
            .iter()
            .zip(centroid)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum()
    }
}

fn squared_norm(row: &[f32]) -> f32 {
    row.iter().map(|v| v * v).sum()
}

/// Each point's cluster and the bounds (Euclidean distances) that decide whether it must be
/// reassigned.
struct Assignment {
    cluster: Vec<usize>,
    /// At least the distance to its centroid.
    upper: Vec<f32>,
    /// At most the distance to any other centroid.
    lower: Vec<f32>,
}

impl Assignment {
    /// Every point assigned in full.
    fn new(points: &Points, centroids: &[f32]) -> Self {
        let n = points.norms.len();
        let mut state = Self {
            cluster: vec![0; n],
            upper: vec![f32::INFINITY; n],
            lower: vec![0.0; n],
        };
        let all: Vec<usize> = (0..n).collect();
        state.assign_in_full(points, centroids, &all);
        state
    }

    /// The assignment to the moved `centroids`; with `prune`, only points whose bounds no
    /// longer separate are reassigned.
    fn reassign(&mut self, points: &Points, centroids: &[f32], drift: &[f32], prune: bool) {
        let n = self.cluster.len();
        if !prune {
            let all: Vec<usize> = (0..n).collect();
            self.assign_in_full(points, centroids, &all);
            return;
        }
        // The few centroids that moved farthest (re-seeded and regrouping clusters) would
        // loosen every bound: their distances are computed instead, and the bounds move by the
        // farthest move among the others.
        let jumpers = farthest_moved(drift, (centroids.len() / points.dim / JUMPERS).max(1));
        let settled_drift = (0..drift.len())
            .filter(|c| jumpers.binary_search(c).is_err())
            .map(|c| drift[c])
            .fold(0.0, f32::max);
        let nearest_jumper = nearest_of(points, centroids, &jumpers, &self.cluster);
        for i in 0..n {
            self.upper[i] += drift[self.cluster[i]];
            self.lower[i] = (self.lower[i] - settled_drift)
                .max(0.0)
                .min(nearest_jumper[i]);
        }
        let dim = points.dim;
        let doubtful: Vec<usize> = (0..n).filter(|&i| self.upper[i] > self.lower[i]).collect();
        // The exact distance to its own centroid may already settle it.
        let tightened: Vec<f32> = doubtful
            .par_iter()
            .map(|&i| {
                let c = &centroids[self.cluster[i] * dim..(self.cluster[i] + 1) * dim];
                (points.squared_distance(i, c) as f32 * (1.0 + rounding(dim))).sqrt()
            })
            .collect();
        let mut unsettled = Vec::new();
        for (&i, &upper) in doubtful.iter().zip(&tightened) {
            self.upper[i] = upper;
            if upper > self.lower[i] {
                unsettled.push(i);
            }
        }
        tracing::debug!(
            doubtful = doubtful.len(),
            reassigned = unsettled.len(),
            points = n,
            settled_drift,
            "k-means iteration"
        );
        self.assign_in_full(points, centroids, &unsettled);
    }

    /// The nearest centroid of each of `which` (ties to the lower index) from the products
    /// with every centroid, and its bounds from the nearest and second-nearest distances,
    /// widened by the products' rounding.
    fn assign_in_full(&mut self, points: &Points, centroids: &[f32], which: &[usize]) {
        let dim = points.dim;
        let k = centroids.len() / dim;
        let bounds = Bounds::of(centroids, dim);
        let right = Right::new(centroids, dim);
        let found: Vec<(usize, f32, f32)> = which
            .par_chunks(BLOCK)
            .flat_map_iter(|block| {
                let rows: Vec<f32> = block.iter().flat_map(|&i| points.row(i).to_vec()).collect();
                let mut products = vec![0f32; block.len() * k];
                dot(&Left::new(&rows, dim), &right, &mut products);
                let nearest: Vec<(usize, f32, f32)> = block
                    .iter()
                    .zip(products.chunks(k))
                    .map(|(&i, row)| {
                        let (best, first, second) = nearest_two(row, &bounds.norms);
                        let own = points.norms[i];
                        (best, bounds.upper(own, first), bounds.lower(own, second))
                    })
                    .collect();
                nearest.into_iter()
            })
            .collect();
        for (&i, (best, upper, lower)) in which.iter().zip(found) {
            self.cluster[i] = best;
            self.upper[i] = upper;
            self.lower[i] = lower;
        }
    }
}

/// Distance bounds from the scores `|c|^2 - 2 x.c` of matrix products with a set of
/// centroids, widened by the products' rounding: |error of x.c| <= d u |x| |c|, which is at
/// most d u (|x|^2 + |c|^2) / 2, twice in a score, so a margin of d u (|x|^2 + max |c|^2) on
/// each squared distance.
struct Bounds {
    dim: usize,
    /// The centroids' squared norms.
    norms: Vec<f32>,
    largest_norm: f32,
}

impl Bounds {
    fn of(centroids: &[f32], dim: usize) -> Self {
        let norms: Vec<f32> = centroids.chunks(dim).map(squared_norm).collect();
        let largest_norm = norms.iter().copied().fold(0.0, f32::max);
        Self {
            dim,
            norms,
            largest_norm,
        }
    }

    fn margin(&self, own: f32) -> f32 {
        rounding(self.dim) * (own + self.largest_norm)
    }

    /// At least the distance of a point with squared norm `own` to a centroid of `score`.
    fn upper(&self, own: f32, score: f32) -> f32 {
        (own + score + self.margin(own)).max(0.0).sqrt()
    }

    /// At most that distance.
    fn lower(&self, own: f32, score: f32) -> f32 {
        (own + score - self.margin(own)).max(0.0).sqrt()
    }
}

/// The relative rounding bound of a sum of `dim` products in f32 (`dim` units in the last
/// place, doubled for safety).
fn rounding(dim: usize) -> f32 {
    2.0 * dim as f32 * f32::EPSILON
}

/// The index of the lowest score `|c|^2 - 2 x.c` (ties to the lower index), it, and the
/// second-lowest (infinite with one centroid).
fn nearest_two(products: &[f32], norms: &[f32]) -> (usize, f32, f32) {
    let mut best = (0, f32::INFINITY);
    let mut second = f32::INFINITY;
    for (c, (p, norm)) in products.iter().zip(norms).enumerate() {
        let score = norm - 2.0 * p;
        if score < best.1 {
            second = best.1;
            best = (c, score);
        } else if score < second {
            second = score;
        }
    }
    (best.0, best.1, second)
}

/// How far each centroid moved, rounded up.
fn drift(old: &[f32], new: &[f32], dim: usize) -> Vec<f32> {
    old.chunks(dim)
        .zip(new.chunks(dim))
        .map(|(a, b)| {
            let squared: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                .sum();
            (squared.sqrt() * (1.0 + 1e-6)) as f32
        })
        .collect()
}

/// The `count` centroids that moved farthest (ties to the lower index), in index order.
fn farthest_moved(drift: &[f32], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..drift.len()).collect();
    order.sort_by(|&a, &b| drift[b].total_cmp(&drift[a]).then(a.cmp(&b)));
    order.truncate(count);
    order.sort_unstable();
    order
}

/// For every point, a lower bound on its distance to the nearest of `which` centroids other
/// than its own (infinite when there is none).
fn nearest_of(points: &Points, centroids: &[f32], which: &[usize], cluster: &[usize]) -> Vec<f32> {
    let dim = points.dim;
    let chosen: Vec<f32> = which
        .iter()
        .flat_map(|&c| centroids[c * dim..(c + 1) * dim].to_vec())
        .collect();
    let bounds = Bounds::of(&chosen, dim);
    let right = Right::new(&chosen, dim);
    let m = which.len();
    points
        .data
        .par_chunks(BLOCK * dim)
        .enumerate()
        .flat_map_iter(|(b, block)| {
            let mut products = vec![0f32; block.len() / dim * m];
            dot(&Left::new(block, dim), &right, &mut products);
            let nearest: Vec<f32> = products
                .chunks(m)
                .enumerate()
                .map(|(r, row)| {
                    let i = b * BLOCK + r;
                    let score = row
                        .iter()
                        .zip(&bounds.norms)
                        .zip(which)
                        .filter(|&(_, &c)| c != cluster[i])
                        .map(|((p, norm), _)| norm - 2.0 * p)
                        .fold(f32::INFINITY, f32::min);
                    bounds.lower(points.norms[i], score)
                })
                .collect();
            nearest.into_iter()
        })
        .collect()
}

/// Sum over points of the squared distance to their centroid.
fn inertia(points: &Points, centroids: &[f32], cluster: &[usize]) -> f64 {
    let dim = points.dim;
    cluster
        .par_iter()
        .enumerate()
        .map(|(i, &c)| points.squared_distance(i, &centroids[c * dim..(c + 1) * dim]))
        .collect::<Vec<f64>>()
        .iter()
        .sum()
}

fn inertia_of_one(data: &[f32], dim: usize) -> f64 {
    let n = data.len() / dim;
    if n == 0 {
        return 0.0;
    }
    let mean: Vec<f64> = (0..dim)
        .map(|j| (0..n).map(|i| f64::from(data[i * dim + j])).sum::<f64>() / n as f64)
        .collect();
    data.chunks(dim)
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(&x, m)| (f64::from(x) - m).powi(2))
                .sum::<f64>()
        })
        .sum()
}

/// The mean of each cluster's rows; an empty cluster takes half of the largest (its centroid
/// copied and both nudged apart, as faiss splits).
fn update(data: &[f32], dim: usize, k: usize, assignment: &[usize]) -> Vec<f32> {
    let mut sums = vec![0f64; k * dim];
    let mut counts = vec![0usize; k];
    for (row, &c) in data.chunks(dim).zip(assignment) {
        counts[c] += 1;
        for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row) {
            *s += f64::from(v);
        }
    }
    let mut centroids: Vec<f32> = (0..k * dim)
        .map(|i| match counts[i / dim] {
            0 => 0.0,
            count => (sums[i] / count as f64) as f32,
        })
        .collect();
    for empty in 0..k {
        if counts[empty] > 0 {
            continue;
        }
        let largest = (0..k)
            .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
            .expect("k >= 1");
        for j in 0..dim {
            let v = centroids[largest * dim + j];
            let (a, b) = if j % 2 == 0 {
                (1.0 + SPLIT, 1.0 - SPLIT)
            } else {
                (1.0 - SPLIT, 1.0 + SPLIT)
            };
            centroids[empty * dim + j] = v * a;
            centroids[largest * dim + j] = v * b;
        }
        counts[empty] = counts[largest] / 2;
        counts[largest] -= counts[empty];
    }
    centroids
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    /// `classes` centres in [-1, 1]^dim and `per_class` points around each, `spread` apart.
    fn clouds(classes: usize, per_class: usize, dim: usize, spread: f32) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(classes as u64);
        let centres: Vec<f32> = (0..classes * dim)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        (0..classes * per_class)
            .flat_map(|i| {
                let c = i % classes;
                centres[c * dim..(c + 1) * dim]
                    .iter()
                    .map(|&v| v + rng.random_range(-spread..spread))
                    .collect::<Vec<f32>>()
            })
            .collect()
    }

    #[test]
    fn pruning_changes_no_assignment() {
        // Separated and overlapping clouds, with many centroids (pruning on by default).
        for (classes, spread) in [(300, 0.2), (300, 1.5), (64, 3.0)] {
            let data = clouds(classes, 6, 24, spread);
            let pruned = lloyd(&data, 24, classes, 7, true);
            let full = lloyd(&data, 24, classes, 7, false);
            assert_eq!(pruned.assignment, full.assignment, "{classes} x {spread}");
            assert_eq!(pruned.iterations, full.iterations);
            assert!((pruned.inertia - full.inertia).abs() <= 1e-9 * full.inertia);
            assert_eq!(kmeans(&data, 24, classes, 7), pruned);
        }
    }

    #[test]
    fn pruned_kmeans_is_the_same_at_any_thread_count() {
        let data = clouds(200, 5, 16, 1.0);
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| kmeans(&data, 16, 200, 3))
        };
        assert_eq!(on(1), on(3));
    }

    #[test]
    fn an_empty_cluster_takes_half_of_the_largest() {
        // Three points, two identical: seeding on the pair leaves one cluster empty.
        let data = [0.0f32, 0.0, 0.0, 0.0, 5.0, 5.0];
        let centroids = update(&data, 2, 3, &[0, 0, 1]);
        assert_eq!(&centroids[2..4], &[5.0, 5.0]);
        // Cluster 2 is empty: it copies cluster 0 (the largest), nudged.
        let (a, b) = (&centroids[0..2], &centroids[4..6]);
        assert_eq!(a, &[0.0, 0.0]);
        assert_eq!(b, &[0.0, 0.0]);
        let data = [1.0f32, 1.0, 1.0, 1.0, 5.0, 5.0];
        let centroids = update(&data, 2, 3, &[0, 0, 1]);
        assert!(
            centroids[4] > centroids[0] && centroids[5] < centroids[1],
            "{centroids:?}"
        );
    }
}
