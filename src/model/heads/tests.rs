//! Properties every head shares: shapes, unit-norm groups, and invariance to permutations of
//! the feature map's positions (all heads here pool over positions).

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use super::*;

const N: usize = 3;
const C: usize = 20;
const H: usize = 3;
const W: usize = 2;
const PERM: [usize; 6] = [4, 0, 5, 2, 1, 3];

fn shape(groups: usize) -> HeadShape {
    HeadShape {
        channels: C,
        groups,
        group_size: 12 / groups,
        reduction: 4,
    }
}

fn features() -> Tensor<4> {
    let device = Device::default();
    device.seed(5);
    Tensor::random([N, C, H, W], Distribution::Normal(0.0, 1.0), &device)
}

/// The map with its H*W positions permuted by `PERM`.
fn permute_positions(x: Tensor<4>) -> Tensor<4> {
    let ids: Vec<i64> = PERM.iter().map(|&p| p as i64).collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(ids, [PERM.len()]), &x.device());
    x.reshape([N, C, H * W])
        .select(2, index)
        .reshape([N, C, H, W])
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

const KINDS: [HeadKind; 6] = HeadKind::ALL;

#[test]
fn every_head_gives_unit_norm_groups_of_the_right_shape() {
    for kind in KINDS {
        let groups = if kind.has_groups() { 3 } else { 1 };
        let head = Head::new(
            kind,
            shape(groups),
            &mut ParamInit::new(1, &Device::default()),
        );
        let out = head.forward(features());
        assert_eq!(out.groups.dims(), [N, groups, 12 / groups], "{kind}");
        let norms = to_vec(out.groups.square().sum_dim(2));
        assert!(
            norms.iter().all(|n| (n - 1.0).abs() < 1e-5),
            "{kind}: {norms:?}"
        );
        let has_maps = matches!(
            kind,
            HeadKind::Gate | HeadKind::Attentive | HeadKind::AttentiveLinear
        );
        assert_eq!(
            out.maps.as_ref().map(|m| m.dims()),
            has_maps.then_some([N, groups, H, W]),
            "{kind}"
        );
    }
}

#[test]
fn every_pooling_head_is_invariant_to_position_permutations() {
    for kind in KINDS {
        let groups = if kind.has_groups() { 3 } else { 1 };
        let head = Head::new(
            kind,
            shape(groups),
            &mut ParamInit::new(2, &Device::default()),
        );
        let x = features();
        let a = to_vec(head.forward(x.clone()).groups);
        let b = to_vec(head.forward(permute_positions(x)).groups);
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff <= 1e-5, "{kind}: {diff}");
    }
}

#[test]
fn heads_differ_in_what_they_compute() {
    // Distinct heads on the same input disagree: no head silently falls back to another.
    let x = features();
    let outputs: Vec<Vec<f32>> = [
        HeadKind::MultiLinear,
        HeadKind::Gate,
        HeadKind::Channel,
        HeadKind::Attentive,
        HeadKind::AttentiveLinear,
    ]
    .into_iter()
    .map(|kind| {
        to_vec(
            Head::new(kind, shape(2), &mut ParamInit::new(3, &Device::default()))
                .forward(x.clone())
                .groups,
        )
    })
    .collect();
    for i in 0..outputs.len() {
        for j in i + 1..outputs.len() {
            let diff = outputs[i]
                .iter()
                .zip(&outputs[j])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff > 1e-3, "heads {i} and {j} agree");
        }
    }
}

#[test]
fn head_names_round_trip_through_the_matrix_spelling() {
    for kind in KINDS {
        let text = format!("\"{kind}\"");
        let parsed: HeadKind = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, kind);
    }
}
