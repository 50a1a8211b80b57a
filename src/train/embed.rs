//! Embedding a whole set with a frozen model, and its retrieval metrics: what every epoch's
//! validation and test evaluation runs.

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::loader::for_each_batch;
use crate::data::{ImageSet, View};
use crate::eval::interpretability::Interpretability;
use crate::eval::{Metrics, Vectors, query_gallery_metrics, retrieval_metrics};
use crate::model::Embedder;

/// Images per forward pass when embedding a whole set.
const EMBED_BATCH: usize = 500;
/// Test images whose attention maps each run keeps (for figures without a forward pass).
const ATTENTION_SAMPLE: usize = 8;

/// `[n, c, h, w]` images from row-major pixels.
pub fn pixels_tensor(pixels: Vec<f32>, n: usize, shape: [usize; 3], device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(pixels, [n, shape[0], shape[1], shape[2]]),
        device,
    )
}

/// What one pass over a set (test view) gives.
pub struct Embedding {
    /// `[n, P * d]` row-major (groups concatenated).
    pub embeddings: Vec<f32>,
    pub dim: usize,
    /// Group cosine, attention overlap and entropy over the set (see eval::interpretability).
    pub interpretability: Metrics,
    /// The maps of the images at `sample` (in that order), `[k, P, h, w]`, for heads with maps.
    pub sample_maps: Option<(Vec<f32>, [usize; 4])>,
}

/// One pass of `model` over every image of `set` (test view); the maps of the images at
/// `sample` are kept.
pub fn embed(
    model: &Embedder,
    set: &ImageSet,
    sample: &[usize],
    device: &Device,
) -> anyhow::Result<Embedding> {
    let shape = set.batch_shape(View::Test);
    let indices: Vec<usize> = (0..set.len()).collect();
    let chunks: Vec<Vec<usize>> = indices.chunks(EMBED_BATCH).map(<[usize]>::to_vec).collect();
    let mut out = Vec::new();
    let mut dim = 0;
    let mut interpretability = Interpretability::default();
    let mut kept: Vec<(usize, Vec<f32>)> = Vec::new();
    let mut map_dims = [0usize; 3];
    for_each_batch(
        set,
        &chunks,
        |_| View::Test,
        |_, chunk, pixels| {
            let output = model.forward(pixels_tensor(pixels, chunk.len(), shape, device));
            let [n, p, d] = output.groups.dims();
            dim = p * d;
            let groups = output
                .groups
                .reshape([n, p * d])
                .into_data()
                .try_into_vec::<f32>()
                .expect("float embeddings");
            let maps = output.maps.map(|m| {
                let [_, _, h, w] = m.dims();
                map_dims = [p, h, w];
                m.into_data().try_into_vec::<f32>().expect("float maps")
            });
            let positions = map_dims[1] * map_dims[2];
            interpretability.add(&groups, p, d, maps.as_deref().map(|m| (m, positions)));
            if let Some(maps) = &maps {
                for (k, &i) in chunk.iter().enumerate() {
                    if sample.contains(&i) {
                        let len = p * positions;
                        kept.push((i, maps[k * len..(k + 1) * len].to_vec()));
                    }
                }
            }
            out.extend(groups);
            Ok(())
        },
    )?;
    let sample_maps = (!kept.is_empty()).then(|| {
        let ordered: Vec<f32> = sample
            .iter()
            .filter_map(|i| kept.iter().find(|(j, _)| j == i))
            .flat_map(|(_, m)| m.iter().copied())
            .collect();
        let [p, h, w] = map_dims;
        (ordered, [sample.len(), p, h, w])
    });
    Ok(Embedding {
        embeddings: out,
        dim,
        interpretability: interpretability.finish(),
        sample_maps,
    })
}

/// The images whose attention maps a run keeps: the first test image of each of the first
/// eight test classes (the same images in every run on a dataset).
pub fn attention_sample(set: &ImageSet) -> Vec<usize> {
    set.indices_by_class()
        .into_iter()
        .filter_map(|members| members.first().copied())
        .take(ATTENTION_SAMPLE)
        .collect()
}

/// Retrieval metrics of `model` on `set` (leave-one-out, or each image of `set` against
/// `gallery`), with the embedding of `set` and the gallery's embeddings (empty without one).
pub fn evaluate(
    model: &Embedder,
    set: &ImageSet,
    gallery: Option<&ImageSet>,
    ks: &[usize],
    sample: &[usize],
    device: &Device,
) -> anyhow::Result<(Metrics, Embedding, Vec<f32>)> {
    let embedded = embed(model, set, sample, device)?;
    let (test, dim) = (&embedded.embeddings, embedded.dim);
    let Some(gallery_set) = gallery else {
        let metrics = retrieval_metrics(test, dim, &set.labels, ks);
        return Ok((metrics, embedded, Vec::new()));
    };
    let gallery = embed(model, gallery_set, &[], device)?.embeddings;
    let metrics = query_gallery_metrics(
        Vectors::new(test, dim),
        &set.labels,
        Vectors::new(&gallery, dim),
        &gallery_set.labels,
        ks,
    );
    Ok((metrics, embedded, gallery))
}
