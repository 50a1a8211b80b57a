//! agml's losses against pytorch-metric-learning: the loss value and its gradient with
//! respect to the embeddings, for every committed fixture under tests/fixtures/losses
//! (written by tests/fixtures/make_loss_fixtures.py).

use std::path::Path;

use agml::loss::margin::{MarginConfig, MarginNormalization, Triplet};
use agml::loss::{LossConfig, MarginLoss, MetricLoss, NormalizedSoftmax, ProxyAnchor};
use agml::loss::{LossShape, NormalizedSoftmaxConfig, ProxyAnchorConfig};
use agml::model::layers::{ParamInit, l2_normalize};
use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use serde_json::Value;

const TOLERANCE: f64 = 1e-5;

fn matrix(value: &Value) -> (Vec<f32>, [usize; 2]) {
    let rows: Vec<Vec<f64>> = serde_json::from_value(value.clone()).unwrap();
    let shape = [rows.len(), rows[0].len()];
    (
        rows.into_iter().flatten().map(|v| v as f32).collect(),
        shape,
    )
}

/// The loss agml computes for `fixture`, on `embedding` `[n, d]`.
fn agml_loss(
    fixture: &Value,
    embedding: Tensor<2>,
    labels: &[usize],
    device: &Device,
) -> Tensor<1> {
    let mut params = fixture["params"].clone();
    params["name"] = fixture["loss"].clone();
    let config: LossConfig = serde_json::from_value(params).unwrap();
    let classes = labels.iter().max().unwrap() + 1;
    let [_, d] = embedding.dims();
    let proxies = || {
        let (values, [c, dim]) = matrix(&fixture["proxies"]);
        Param::from_tensor(Tensor::<3>::from_data(
            TensorData::new(values, [1, c, dim]),
            device,
        ))
    };
    match config {
        LossConfig::Margin(c) => {
            // The fixture's reference takes every triplet; agml's own sampling is tested apart.
            // pytorch-metric-learning divides by the active terms (the authors' count of
            // active triplets is checked in src/loss/margin.rs).
            let c = MarginConfig {
                normalization: MarginNormalization::ActiveTerms,
                ..c
            };
            let loss = MarginLoss::new(&c, 1, classes, device);
            let mut triplets = Vec::new();
            for a in 0..labels.len() {
                for p in (0..labels.len()).filter(|&p| p != a && labels[p] == labels[a]) {
                    for n in (0..labels.len()).filter(|&n| labels[n] != labels[a]) {
                        triplets.push(Triplet {
                            anchor: a,
                            positive: p,
                            negative: n,
                        });
                    }
                }
            }
            loss.triplet_loss(
                l2_normalize(embedding),
                loss.group_beta(0),
                labels,
                &triplets,
            )
        }
        LossConfig::ProxyAnchor(ProxyAnchorConfig { margin, alpha, .. }) => {
            let loss = ProxyAnchor {
                proxies: proxies(),
                margin,
                alpha,
            };
            loss.forward(embedding, loss.group_proxies(0), labels)
        }
        LossConfig::NormalizedSoftmax(NormalizedSoftmaxConfig { temperature, .. }) => {
            let loss = NormalizedSoftmax {
                weights: proxies(),
                temperature,
            };
            loss.forward(embedding, loss.group_weights(0), labels)
        }
        other => {
            let shape = LossShape {
                groups: 1,
                classes,
                group_size: d,
            };
            let loss = MetricLoss::new(&other, shape, &mut ParamInit::new(0, device));
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            loss.forward_group(0, embedding, labels, &mut rng)
        }
    }
}

fn check(path: &Path) -> Result<(), String> {
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let device = Device::default().autodiff();
    let (values, shape) = matrix(&fixture["embeddings"]);
    let embedding = Tensor::<2>::from_data(TensorData::new(values, shape), &device).require_grad();
    let labels: Vec<usize> = serde_json::from_value(fixture["labels"].clone()).unwrap();
    let loss = agml_loss(&fixture, embedding.clone(), &labels, &device);
    let got = loss.clone().into_scalar::<f32>() as f64;
    let expected = fixture["expected_loss"].as_f64().unwrap();
    if got.is_nan() || (got - expected).abs() > TOLERANCE * expected.abs().max(1e-3) {
        return Err(format!("loss {got} vs {expected}"));
    }
    let grads = loss.backward();
    let grad = embedding
        .grad(&grads)
        .map(|g| g.into_data().try_into_vec::<f32>().unwrap())
        .unwrap_or_else(|| vec![0.0; shape[0] * shape[1]]);
    let (expected_grad, _) = matrix(&fixture["expected_grad"]);
    // Relative to the gradient's largest entry: tiny entries carry rounding only.
    let scale = expected_grad
        .iter()
        .fold(0.0f64, |m, &g| m.max(f64::from(g).abs()))
        .max(1e-6);
    for (i, (&g, &e)) in grad.iter().zip(&expected_grad).enumerate() {
        let (g, e) = (f64::from(g), f64::from(e));
        if g.is_nan() || (g - e).abs() > TOLERANCE * scale {
            return Err(format!("gradient[{i}] {g} vs {e} (scale {scale})"));
        }
    }
    Ok(())
}

#[test]
fn every_loss_matches_pytorch_metric_learning() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/losses");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 20, "fixtures missing in {}", dir.display());
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|p| {
            check(p)
                .err()
                .map(|e| format!("{}: {e}", p.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures differ:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}
