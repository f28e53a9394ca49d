//! The frozen encoder: one forward pass returns every tap and every pooling switch.

use super::arch::{Arch, FcSpec, Layer, PoolSpec, Stage};
use super::layers::{Conv, Dense};
use super::weights::ModelWeights;
use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::ops::{max_pool_with_switches, PoolSwitches};
use candle_core::{DType, Device, Module, Tensor};

struct EncoderStage {
    tap: Layer,
    convs: Vec<Conv>,
    pool: Option<PoolSpec>,
}

/// A pretrained classifier's feature extractor. Its tensors are constants, not variables, so no
/// gradient ever reaches them.
pub struct Encoder {
    pub arch: Arch,
    pub preprocess: Preprocess,
    pub name: String,
    pub fingerprint: String,
    stages: Vec<EncoderStage>,
    fcs: Vec<(FcSpec, Dense)>,
    device: Device,
}

/// The result of a forward pass: activations by tap, switches by stage (`None` for stages
/// without pooling or not reached).
#[derive(Clone)]
pub struct Features {
    pub taps: Vec<(Layer, Tensor)>,
    pub switches: Vec<Option<PoolSwitches>>,
}

impl Features {
    pub fn tap(&self, layer: Layer) -> Option<&Tensor> {
        self.taps.iter().find(|(t, _)| *t == layer).map(|(_, x)| x)
    }
}

impl Encoder {
    pub fn new(w: ModelWeights) -> Result<Self> {
        let get = |name: String| -> Result<Tensor> {
            w.tensors.get(&name).cloned().ok_or_else(|| Error::bad_file(&w.path, format!("missing tensor {name}")))
        };
        let stages = w
            .arch
            .stages()
            .into_iter()
            .map(|Stage { tap, convs, pool }| {
                let convs = convs
                    .iter()
                    .map(|c| {
                        Ok(Conv::new(
                            get(format!("{}.weight", c.key()))?,
                            get(format!("{}.bias", c.key()))?,
                            c.pad,
                            c.stride,
                            true,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(EncoderStage { tap, convs, pool })
            })
            .collect::<Result<Vec<_>>>()?;
        let fcs = w.arch.fcs()[..w.fc_available]
            .iter()
            .map(|fc| Ok((*fc, Dense::new(get(format!("{}.weight", fc.tap))?, get(format!("{}.bias", fc.tap))?))))
            .collect::<Result<Vec<_>>>()?;
        let device = w.tensors.values().next().map(|t| t.device().clone()).unwrap_or(Device::Cpu);
        Ok(Self {
            arch: w.arch,
            preprocess: w.preprocess,
            name: w.name,
            fingerprint: w.fingerprint,
            stages,
            fcs,
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype the encoder computes in (its weights'): f32, or bf16 after [`Self::to_dtype`].
    pub fn dtype(&self) -> DType {
        self.fcs
            .first()
            .map(|(_, l)| l.dtype())
            .or(self.stages.first().and_then(|s| s.convs.first()).map(|c| c.dtype()))
            .unwrap_or(DType::F32)
    }

    /// The same encoder computing in `dtype` (bf16 for mixed-precision training): weights
    /// converted once, inputs converted on the way in, features and switches in that dtype.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let stages = self
            .stages
            .iter()
            .map(|s| {
                Ok(EncoderStage {
                    tap: s.tap,
                    convs: s.convs.iter().map(|c| c.to_dtype(dtype)).collect::<candle_core::Result<_>>()?,
                    pool: s.pool,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let fcs = self.fcs.iter().map(|(f, l)| Ok((*f, l.to_dtype(dtype)?))).collect::<Result<Vec<_>>>()?;
        Ok(Self {
            arch: self.arch,
            preprocess: self.preprocess,
            name: self.name.clone(),
            fingerprint: self.fingerprint.clone(),
            stages,
            fcs,
            device: self.device.clone(),
        })
    }

    /// Whether this model's weights provide `tap` (the conv trunk always does; fc taps only when
    /// the file has the head).
    pub fn has_tap(&self, tap: Layer) -> bool {
        self.stages.iter().any(|s| s.tap == tap) || self.fcs.iter().any(|(f, _)| f.tap == tap)
    }

    /// Why `tap` cannot be served, or `None` when it can.
    pub fn unavailable_reason(&self, tap: Layer) -> Option<String> {
        if self.has_tap(tap) {
            None
        } else if self.arch.tap(tap).is_ok() {
            Some(format!(
                "{tap} is not available: the weights of {} stop at the conv trunk; load a model with the classifier head (e.g. `--model {}`)",
                self.name,
                if self.arch == Arch::Vgg19 { "vgg19" } else { "vgg16" }
            ))
        } else {
            self.arch.tap(tap).err().map(|e| e.to_string())
        }
    }

    /// Run `x` `(B, 3, H, W)` through the whole encoder (every available tap).
    pub fn forward(&self, x: &Tensor) -> Result<Features> {
        let last = self.fcs.last().map(|(f, _)| f.tap).or(self.stages.last().map(|s| s.tap)).unwrap_or(Layer::POOL5);
        self.forward_to(x, last)
    }

    /// Run `x` `(B, 3, H, W)` up to and including `tap`. Conv taps accept any spatial size large
    /// enough for the pooling; fc taps need the model's input size.
    pub fn forward_to(&self, x: &Tensor, tap: Layer) -> Result<Features> {
        if let Some(why) = self.unavailable_reason(tap) {
            return Err(Error::Unavailable(why));
        }
        let (_, c, h, w) = x.dims4()?;
        if c != 3 {
            return Err(Error::Unavailable(format!("the encoder takes 3-channel images, got {c} channels")));
        }
        let mut taps = Vec::new();
        let mut switches = Vec::new();
        let mut x = x.to_device(&self.device)?.to_dtype(self.dtype())?;
        for st in &self.stages {
            for conv in &st.convs {
                x = conv.forward(&x)?;
            }
            let sw = match st.pool {
                Some(p) => {
                    let (v, sw) = max_pool_with_switches(&x, p.k, p.stride)?;
                    x = v;
                    Some(sw)
                }
                None => None,
            };
            switches.push(sw);
            taps.push((st.tap, x.clone()));
            if st.tap == tap {
                return Ok(Features { taps, switches });
            }
        }
        let n = self.arch.input_size();
        if (h, w) != (n, n) {
            return Err(Error::Unavailable(format!("{tap} needs {n}×{n} input, got {h}×{w}")));
        }
        x = x.flatten_from(1)?;
        for (fc, lin) in &self.fcs {
            x = lin.forward(&x)?;
            if fc.relu {
                x = x.relu()?;
            }
            taps.push((fc.tap, x.clone()));
            if fc.tap == tap {
                break;
            }
        }
        Ok(Features { taps, switches })
    }

    /// Parameters needed to compute each tap (cumulative), by tap name.
    pub fn params_per_tap(&self) -> Vec<(Layer, usize)> {
        let mut total = 0;
        let mut out = Vec::new();
        for st in self.arch.stages() {
            total += st.convs.iter().map(|c| c.cout * c.cin * c.k * c.k + c.cout).sum::<usize>();
            out.push((st.tap, total));
        }
        for fc in self.arch.fcs() {
            total += fc.din * fc.dout + fc.dout;
            out.push((fc.tap, total));
        }
        out
    }
}
