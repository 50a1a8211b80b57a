//! Tensors regenerated from a name, bit for bit as tests/fixtures/seeded.py draws them: the
//! committed fixtures hold a network's manifest (names, shapes, bounds) and PyTorch's outputs,
//! and each side regenerates the weights. Element i of the tensor named `key` is
//! `low + (high - low) * u` in float32, u the top 24 bits of splitmix64's finaliser of
//! `fnv1a64(key) + (i + 1) * 0x9E3779B97F4A7C15`, scaled by 2^-24.

use sha2::{Digest, Sha256};

fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// `n` values of the tensor named `key`, uniform on [low, high).
pub fn uniform(key: &str, n: usize, low: f32, high: f32) -> Vec<f32> {
    let base = fnv1a64(key);
    (0..n as u64)
        .map(|i| {
            let mut z = base.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 * (1.0 / 16_777_216.0);
            low + (high - low) * u
        })
        .collect()
}

/// A tensor's values: float32, or int64 (BatchNorm's `num_batches_tracked`, zeros).
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Values {
    /// Little-endian bytes, as a state dict's storage holds them.
    pub fn le_bytes(&self) -> Vec<u8> {
        match self {
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A named tensor of a regenerated state dict.
#[derive(Clone, Debug)]
pub struct Named {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

/// Every tensor of a fixture's manifest (`[{name, shape, dtype, low, high}, ...]`), drawn under
/// `namespace`, in manifest order.
pub fn generate(namespace: &str, manifest: &serde_json::Value) -> Vec<Named> {
    let entries = manifest.as_array().expect("a manifest is a list");
    entries
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let shape: Vec<usize> = serde_json::from_value(e["shape"].clone()).unwrap();
            let n = shape.iter().product();
            let values = match e["dtype"].as_str().unwrap() {
                "int64" => Values::I64(vec![0; n]),
                "float32" => {
                    let bound = |k: &str| e[k].as_f64().unwrap() as f32;
                    let key = format!("{namespace}/{name}");
                    Values::F32(uniform(&key, n, bound("low"), bound("high")))
                }
                other => panic!("{name}: dtype {other}"),
            };
            Named {
                name,
                shape,
                values,
            }
        })
        .collect()
}

/// The sha256 of every tensor's little-endian bytes in order (the manifest's `sha256`).
pub fn sha256(tensors: &[Named]) -> String {
    let mut digest = Sha256::new();
    for t in tensors {
        digest.update(t.values.le_bytes());
    }
    format!("{:x}", digest.finalize())
}
