//! ImageNet-1k class names (index → first WordNet lemma), for the top-5 of models with fc8.
//! From timm's `imagenet_synsets.txt` + `imagenet_synset_to_lemma.txt` (see weights/README.md).

use crate::error::Result;
use candle_core::{DType, Tensor};

const CLASSES: &str = include_str!("../../weights/imagenet_classes.txt");

/// The 1000 ImageNet class names in class-index order.
pub fn imagenet_classes() -> Vec<&'static str> {
    CLASSES.lines().collect()
}

/// The `k` most probable classes of one image's fc8 logits `(1000,)` or `(1, 1000)`:
/// `(class name, softmax probability)`, most probable first.
pub fn top_k(logits: &Tensor, k: usize) -> Result<Vec<(String, f32)>> {
    let v = logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let max = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = v.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].partial_cmp(&v[a]).unwrap_or(std::cmp::Ordering::Equal));
    let names = imagenet_classes();
    Ok(idx
        .into_iter()
        .take(k)
        .map(|i| (names.get(i).map(|s| s.to_string()).unwrap_or_else(|| format!("class {i}")), exp[i] / sum))
        .collect())
}
