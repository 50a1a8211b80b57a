//! `agml check invariance`: (1) each head's output under random permutations of the feature
//! map's positions (its attention maps must permute alike), (2) the whole network under
//! circular shifts of the input, by multiples of the backbone's total stride (a permutation of
//! the feature map, up to borders and padding) and by other amounts, (3) every head, and a
//! flatten head as the negative control that shows the check can fail (METHOD.md,
//! "Invariance").

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::model::backbones::{Backbone, BackboneKind};
use crate::model::heads::{FlattenHead, GroupShape, Head, HeadKind, HeadOutput, HeadShape};
use crate::model::layers::ParamInit;

/// The attentive head must be invariant within this (float rounding).
pub const INVARIANT_WITHIN: f64 = 1e-5;
/// The negative control must differ by at least this.
pub const CONTROL_VARIES_BY: f64 = 1e-2;

/// What to check.
#[derive(Debug, Clone)]
pub struct InvarianceOptions {
    pub backbone: BackboneKind,
    /// Heads to check (the flatten control is always added).
    pub heads: Vec<HeadKind>,
    pub groups: usize,
    pub embedding_size: usize,
    /// Input images per check.
    pub images: usize,
    /// Random permutations and shifts tried.
    pub trials: usize,
    pub seed: u64,
}

impl Default for InvarianceOptions {
    fn default() -> Self {
        Self {
            backbone: BackboneKind::ConvnetSmall,
            heads: HeadKind::ALL.to_vec(),
            groups: 4,
            embedding_size: 64,
            images: 2,
            trials: 3,
            seed: 0,
        }
    }
}

/// The numbers of one head (max absolute differences of the L2-normalised groups).
#[derive(Debug, Clone, Serialize)]
pub struct InvarianceRow {
    pub head: String,
    pub groups: usize,
    /// Output under position permutations of the feature map.
    pub permutation: f64,
    /// Attention maps of permuted input vs permuted attention maps (heads with maps).
    pub maps: Option<f64>,
    /// Whole network, circular input shifts by multiples of the total stride.
    pub shift_by_stride: f64,
    /// Whole network, circular input shifts by other amounts.
    pub shift_other: f64,
}

/// The check's result.
#[derive(Debug, Clone, Serialize)]
pub struct InvarianceReport {
    pub backbone: String,
    pub image_size: usize,
    pub total_stride: usize,
    pub feature_map: [usize; 2],
    pub rows: Vec<InvarianceRow>,
    /// Why the check failed (empty when it passed).
    pub failures: Vec<String>,
}

/// A head under test: one of the model's heads or the flatten control.
enum Subject {
    Head(Box<Head>),
    Flatten(FlattenHead),
}

impl Subject {
    fn forward(&self, features: Tensor<4>) -> HeadOutput {
        match self {
            Subject::Head(h) => h.forward(features),
            Subject::Flatten(f) => {
                let [n, c, h, w] = features.dims();
                f.forward_positions(features.reshape([n, c, h * w]).swap_dims(1, 2))
            }
        }
    }
}

fn random_tensor(dims: [usize; 4], rng: &mut ChaCha8Rng, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    Tensor::from_data(TensorData::new(values, dims), device)
}

/// `x` with its H*W positions reordered: position k of the result is position perm[k] of x.
fn permute_positions(x: Tensor<4>, perm: &[usize]) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let ids: Vec<i64> = perm.iter().map(|&p| p as i64).collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(ids, [perm.len()]), &x.device());
    x.reshape([n, c, h * w])
        .select(2, index)
        .reshape([n, c, h, w])
}

/// `x` rolled circularly by (dy, dx) pixels.
fn roll(x: Tensor<4>, dy: usize, dx: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let (dy, dx) = (dy % h, dx % w);
    let x = if dy == 0 {
        x
    } else {
        Tensor::cat(
            vec![
                x.clone().slice([0..n, 0..c, h - dy..h, 0..w]),
                x.slice([0..n, 0..c, 0..h - dy, 0..w]),
            ],
            2,
        )
    };
    if dx == 0 {
        x
    } else {
        Tensor::cat(
            vec![
                x.clone().slice([0..n, 0..c, 0..h, w - dx..w]),
                x.slice([0..n, 0..c, 0..h, 0..w - dx]),
            ],
            3,
        )
    }
}

fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    let diff = (a - b)
        .abs()
        .max()
        .into_data()
        .try_into_vec::<f32>()
        .expect("float");
    f64::from(diff[0])
}

/// The heads under test (each with its group count) and the flatten control, over feature
/// maps of `channels` x `positions`.
fn subjects(
    options: &InvarianceOptions,
    channels: usize,
    positions: usize,
    init: &mut ParamInit,
) -> Vec<(String, usize, Subject)> {
    let mut subjects: Vec<(String, usize, Subject)> = options
        .heads
        .iter()
        .map(|&kind| {
            let groups = GroupShape::of(kind, options.groups, options.embedding_size);
            let shape = HeadShape::new(channels, groups, 8.min(channels));
            let head = Subject::Head(Box::new(Head::new(kind, shape, init)));
            (kind.to_string(), groups.groups, head)
        })
        .collect();
    let control = FlattenHead::new(channels, positions, options.embedding_size, init);
    subjects.push(("flatten (control)".into(), 1, Subject::Flatten(control)));
    subjects
}

/// What one subject shows: its output under each permutation of positions (and whether its
/// maps permute alike), and under the shifted inputs' feature maps.
fn measure(
    (name, groups, subject): &(String, usize, Subject),
    features: &Tensor<4>,
    perms: &[Vec<usize>],
    by_stride: &[Tensor<4>],
    by_other: &[Tensor<4>],
) -> InvarianceRow {
    let base = subject.forward(features.clone());
    let mut permutation = 0f64;
    let mut maps: Option<f64> = None;
    for perm in perms {
        let out = subject.forward(permute_positions(features.clone(), perm));
        permutation = permutation.max(max_abs_diff(base.groups.clone(), out.groups));
        if let (Some(m0), Some(m1)) = (&base.maps, out.maps) {
            let expected = permute_positions(m0.clone(), perm);
            maps = Some(maps.unwrap_or(0.0).max(max_abs_diff(expected, m1)));
        }
    }
    let worst = |maps: &[Tensor<4>]| {
        maps.iter()
            .map(|f| max_abs_diff(base.groups.clone(), subject.forward(f.clone()).groups))
            .fold(0f64, f64::max)
    };
    InvarianceRow {
        head: name.clone(),
        groups: *groups,
        permutation,
        maps,
        shift_by_stride: worst(by_stride),
        shift_other: worst(by_other),
    }
}

/// The claims that do not hold: attentive grouping not invariant (or its maps not
/// equivariant), or a control that does not vary (so the check could not fail).
fn failures(rows: &[InvarianceRow]) -> Vec<String> {
    let mut failures = Vec::new();
    for row in rows {
        let attentive = row.head == "attentive" || row.head == "attentive-linear";
        if attentive && row.permutation > INVARIANT_WITHIN {
            failures.push(format!(
                "{}: output changes by {:.1e} under position permutations (> {INVARIANT_WITHIN:.0e})",
                row.head, row.permutation
            ));
        }
        if attentive && row.maps.is_some_and(|m| m > INVARIANT_WITHIN) {
            failures.push(format!(
                "{}: attention maps do not permute with the positions ({:.1e})",
                row.head,
                row.maps.unwrap_or_default()
            ));
        }
        if row.head.starts_with("flatten") && row.permutation < CONTROL_VARIES_BY {
            failures.push(format!(
                "the flatten control changes by only {:.1e} under permutations: the check cannot tell",
                row.permutation
            ));
        }
    }
    failures
}

/// Runs the check on `device` (plain, inference mode: BatchNorm uses its running statistics).
pub fn check_invariance(options: &InvarianceOptions, device: &Device) -> InvarianceReport {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let stride = options.backbone.total_stride();
    // A feature map of 7 x 7 positions (224 for ResNet-50, 28 for the small CNN).
    let image_size = 7 * stride;
    let mut init = ParamInit::new(options.seed, device);
    let backbone = Backbone::new(options.backbone, 3, false, &mut init);
    let images = random_tensor(
        [options.images, 3, image_size, image_size],
        &mut rng,
        device,
    );
    let features = backbone.forward(images.clone());
    let [_, channels, fh, fw] = features.dims();
    let subjects = subjects(options, channels, fh * fw, &mut init);
    let perms: Vec<Vec<usize>> = (0..options.trials)
        .map(|_| {
            let mut p: Vec<usize> = (0..fh * fw).collect();
            p.shuffle(&mut rng);
            p
        })
        .collect();
    let multiples = [(stride, 0), (0, stride), (2 * stride, 3 * stride)];
    let others = [(1, 0), (0, stride / 2 + 1), (stride + 3, stride - 1)];
    let shifted = |shifts: &[(usize, usize)]| -> Vec<Tensor<4>> {
        shifts
            .iter()
            .map(|&(dy, dx)| backbone.forward(roll(images.clone(), dy, dx)))
            .collect()
    };
    let (by_stride, by_other) = (shifted(&multiples), shifted(&others));
    let rows: Vec<InvarianceRow> = subjects
        .iter()
        .map(|s| measure(s, &features, &perms, &by_stride, &by_other))
        .collect();
    InvarianceReport {
        backbone: options.backbone.to_string(),
        image_size,
        total_stride: stride,
        feature_map: [fh, fw],
        failures: failures(&rows),
        rows,
    }
}

impl InvarianceReport {
    /// The Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Invariance of each head ({} backbone, {}x{} input, {}x{} feature map, random weights): \
             max |difference| of the L2-normalised group embeddings. Permutation: of the feature \
             map's positions (maps: attention of the permuted map vs the permuted attention). \
             Shift: circular shift of the input, by multiples of the total stride {} or by other \
             amounts (approximate by design: borders and padding). The flatten head is the \
             negative control.\n\n",
            self.backbone,
            self.image_size,
            self.image_size,
            self.feature_map[0],
            self.feature_map[1],
            self.total_stride
        );
        s += "| head | P | permutation | maps | shift by stride | other shift |\n";
        s += "|---|---|---|---|---|---|\n";
        for r in &self.rows {
            s += &format!(
                "| {} | {} | {:.1e} | {} | {:.1e} | {:.1e} |\n",
                r.head,
                r.groups,
                r.permutation,
                r.maps.map_or("-".into(), |m| format!("{m:.1e}")),
                r.shift_by_stride,
                r.shift_other
            );
        }
        s
    }

    /// The LaTeX (booktabs) table.
    pub fn latex(&self) -> String {
        let sci = |v: f64| {
            let text = format!("{v:.1e}");
            match text.split_once('e') {
                Some((m, e)) => format!("${m}\\cdot10^{{{e}}}$"),
                None => text,
            }
        };
        let mut s = String::from(
            "\\begin{tabular}{lrrrrr}\n\\toprule\nhead & $P$ & permutation & maps & shift by stride & other shift \\\\\n\\midrule\n",
        );
        for r in &self.rows {
            s += &format!(
                "{} & {} & {} & {} & {} & {} \\\\\n",
                r.head,
                r.groups,
                sci(r.permutation),
                r.maps.map_or("--".into(), sci),
                sci(r.shift_by_stride),
                sci(r.shift_other)
            );
        }
        s += "\\bottomrule\n\\end{tabular}\n";
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attentive_heads_are_invariant_and_the_control_is_not() {
        let report = check_invariance(&InvarianceOptions::default(), &Device::default());
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        let row = |name: &str| report.rows.iter().find(|r| r.head == name).unwrap();
        assert!(row("attentive").permutation <= INVARIANT_WITHIN);
        assert!(row("attentive").maps.unwrap() <= INVARIANT_WITHIN);
        assert!(row("flatten (control)").permutation > 0.05);
        // A shift by other amounts moves the features off the grid: clearly not exact.
        assert!(row("attentive").shift_other > row("attentive").permutation);
        assert_eq!(report.rows.len(), HeadKind::ALL.len() + 1);
        assert!(report.markdown().contains("| attentive | 4 |"));
    }

    #[test]
    fn roll_moves_pixels_circularly() {
        let device = Device::default();
        let x = Tensor::<4>::from_data(
            TensorData::new((0..6).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 2, 3]),
            &device,
        );
        let rolled = roll(x, 1, 1).into_data().try_into_vec::<f32>().unwrap();
        // [[0,1,2],[3,4,5]] -> rows swapped -> [[3,4,5],[0,1,2]] -> columns by 1 -> [[5,3,4],[2,0,1]]
        assert_eq!(rolled, vec![5.0, 3.0, 4.0, 2.0, 0.0, 1.0]);
    }
}
