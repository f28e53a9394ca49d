//! The losses of the three training objectives (the paper's decoding pathways), for one batch.

use crate::data::Preprocess;
use crate::error::Result;
use crate::model::{Decoder, Features, Objective};
use crate::ops::mse_loss;
use candle_core::{DType, Tensor};

/// What one step minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepLoss {
    /// The image loss: the whole decoder against the input (`first`, and the fine-tune of
    /// `layerwise`).
    Image,
    /// The image loss plus each mark's output against the encoder activation it mirrors (`all`).
    Marks,
    /// Each segment alone, from the encoder's activation at its top, against the activation at its
    /// bottom (the image for the last): `layerwise` before its fine-tune.
    Stages,
}

impl StepLoss {
    /// The loss of step `step` (0-based) of a run of `total` steps: `layerwise` trains its stages
    /// alone for all but the last `finetune` share of the steps, then the stack on the image.
    pub fn at(objective: Objective, step: u64, total: u64, finetune: f64) -> StepLoss {
        match objective {
            Objective::First => StepLoss::Image,
            Objective::All => StepLoss::Marks,
            Objective::Layerwise => {
                let alone = (total as f64 * (1.0 - finetune.clamp(0.0, 1.0))).round() as u64;
                if step < alone {
                    StepLoss::Stages
                } else {
                    StepLoss::Image
                }
            }
        }
    }
}

/// The loss `which` of decoder `dec` on the batch `x` (preprocessed) with its features `f`.
/// Every term is a mean squared error. The image term is in 0–1 pixel units; an activation term
/// compares the decoder's output with the encoder's activation, both divided by that tap's
/// scale ([`Decoder::scales`], about the activation's size), and is weighted by the energy of the
/// batch's images in the image term's units, so each depth counts about as much as the image.
pub fn loss(dec: &Decoder, f: &Features, x: &Tensor, preprocess: Preprocess, which: StepLoss) -> Result<Tensor> {
    let image_scale = preprocess.loss_scale();
    match which {
        StepLoss::Image => Ok(mse_loss(&dec.forward(f)?, x, image_scale)?),
        StepLoss::Marks => {
            let (y, marks) = dec.forward_marked(f)?;
            let w = image_energy(x, image_scale)?.sqrt();
            let mut total = mse_loss(&y, x, image_scale)?;
            for (tap, h) in marks {
                let target = dec.scaled_tap(f, tap)?.to_dtype(DType::F32)?;
                total = (total + mse_loss(&h, &target, w)?)?;
            }
            Ok(total)
        }
        StepLoss::Stages => {
            let w = image_energy(x, image_scale)?.sqrt();
            let mut total: Option<Tensor> = None;
            for seg in dec.segments() {
                let y = dec.forward_segment(&seg, dec.scaled_tap(f, seg.input)?, f)?;
                let term = match seg.target {
                    Some(tap) => mse_loss(&y, &dec.scaled_tap(f, tap)?.to_dtype(DType::F32)?, w)?,
                    None => mse_loss(&y, x, image_scale)?,
                };
                total = Some(match total {
                    Some(t) => (t + term)?,
                    None => term,
                });
            }
            Ok(total.unwrap_or(Tensor::zeros((), DType::F32, x.device())?))
        }
    }
}

/// `mean((scale·x)²)` of the batch, at least a small positive floor.
fn image_energy(x: &Tensor, scale: f64) -> Result<f64> {
    let e = x.to_dtype(DType::F32)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64 * scale * scale;
    Ok(e.max(1e-6))
}
