//! A decoder with its weights: the plan of [`DecoderSpec::plan`] built into layers, run as a
//! whole (reconstruction), stage by stage (the `layerwise` objective), with the output at every
//! mark (the `all` objective), or step by step with a look at every pre-activation
//! (data-dependent initialisation, dead-unit counts).

use super::decoder_spec::{DecOp, DecoderSpec, Switches};
use super::encoder::Features;
use super::layers::{candle_dtype, fresh_init, Conv, Dense};
use crate::error::{Error, Result};
use crate::ops::{spread, unpool, unpool_fixed, PoolSwitches, Upsample};
use candle_core::{Module, Tensor};
use candle_nn::{ConvTranspose2d, ConvTranspose2dConfig, VarBuilder};
use std::collections::BTreeMap;
use std::ops::Range;

/// The computation of a layer with weights.
enum Op {
    Linear(Dense),
    /// Built without its ReLU; [`Weighted::forward`] fuses it where the layer has one.
    Conv(Conv),
    Deconv(ConvTranspose2d),
}

/// A layer with weights: `name` prefixes its parameters; an activation after it (`relu`: all but
/// the last), a ReLU or, with a `slope` above 0, a leaky ReLU.
struct Weighted {
    name: String,
    op: Op,
    relu: bool,
    slope: f64,
}

impl Weighted {
    /// The output before the ReLU.
    fn pre(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match &self.op {
            Op::Linear(m) => m.forward(x)?,
            Op::Conv(m) => m.forward_with(x, false)?,
            Op::Deconv(m) => {
                // In the input's dtype as the other layers (the casts are differentiable).
                let compute = candle_dtype(x);
                let b = m.bias().map(|b| b.to_dtype(compute)).transpose()?;
                ConvTranspose2d::new(m.weight().to_dtype(compute)?, b, *m.config())
                    .forward(&x.to_dtype(compute)?)?
                    .to_dtype(x.dtype())?
            }
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.op {
            Op::Conv(m) if self.slope == 0.0 => Ok(m.forward_with(x, self.relu)?),
            _ if self.relu => self.activate(self.pre(x)?),
            _ => self.pre(x),
        }
    }

    /// `up` (after the pooling `sw`) then this layer, fused ([`Conv::forward_upsampled`]), with
    /// its activation (`activate`) or without; `None` where the fused op does not apply.
    fn forward_upsampled(&self, x: &Tensor, up: Upsample, sw: &PoolSwitches, activate: bool) -> Result<Option<Tensor>> {
        let Op::Conv(m) = &self.op else { return Ok(None) };
        let activate = activate && self.relu;
        // The plain ReLU is fused into the convolution; a leaky one follows it.
        let fused_relu = activate && self.slope == 0.0;
        let Some(y) = m.forward_upsampled(x, up, sw, fused_relu)? else { return Ok(None) };
        Ok(Some(if activate && !fused_relu { self.activate(y)? } else { y }))
    }

    /// The activation after the layer, on its output before it.
    fn activate(&self, pre: Tensor) -> Result<Tensor> {
        Ok(if self.slope == 0.0 { pre.relu()? } else { pre.maximum(&pre.affine(self.slope, 0.0)?)? })
    }

    /// The dimension of the weight that indexes output channels.
    fn out_axis(&self) -> usize {
        match self.op {
            Op::Deconv(_) => 1,
            _ => 0,
        }
    }
}

enum Layer {
    Weighted(Weighted),
    Reshape(usize, usize, usize),
    Unpool(usize, Switches),
    Spread(usize),
    Mark(crate::model::Layer),
}

/// A run of layers between two marks: from `input` (the decoder's tap, or the encoder activation
/// a mark mirrors) to `target` (the next mark's tap; `None`: the image).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub input: crate::model::Layer,
    pub target: Option<crate::model::Layer>,
    layers: Range<usize>,
}

/// What [`Decoder::inspect`] shows its hook, layer with weights by layer with weights.
pub struct Visit<'a> {
    /// The layer's parameter prefix.
    pub name: &'a str,
    /// The layer's output before its ReLU, from the (possibly replaced) outputs before it.
    pub pre: Tensor,
    /// Whether an activation (ReLU, or leaky ReLU) follows (false only for the last layer).
    pub relu: bool,
    /// The weight dimension that indexes output channels.
    pub out_axis: usize,
}

impl Layer {
    /// The stage and upsampling of a layer that the fused op can take with the convolution after
    /// it: SAE's fixed-cell unpooling and up-conv's spread (SWWAE's switches differ per channel).
    fn fusable(&self) -> Option<(usize, Upsample)> {
        match self {
            Layer::Unpool(stage, Switches::Fixed) => Some((*stage, Upsample::FixedCell)),
            Layer::Spread(stage) => Some((*stage, Upsample::Spread)),
            _ => None,
        }
    }
}

/// The key of the output scale in [`Decoder::scales`].
pub const OUTPUT_SCALE: &str = "output";

/// A decoder with its weights.
pub struct Decoder {
    pub spec: DecoderSpec,
    layers: Vec<Layer>,
    /// By tap name, the constant each activation is divided by where it enters the decoder (the
    /// code at the decoder's tap; for the `all` and `layerwise` objectives also the activations
    /// the marks mirror), so what the decoder sees has about unit size whatever the depth; under
    /// [`OUTPUT_SCALE`], the constant the last layer's output is multiplied by, so the last
    /// layer's weights are of the same size as the others' (Adam moves every weight by about the
    /// learning rate per step, so weights of very different sizes learn at very different
    /// relative rates). A scale not listed is 1 (decoders trained before they were recorded).
    pub scales: BTreeMap<String, f64>,
    /// Upsample and convolve in one op where it applies (on by default; off: the two steps, the
    /// twin the tests compare against).
    pub fused: bool,
}

impl Decoder {
    /// Build from a `VarBuilder` whose names follow [`DecoderSpec::params`] (a `VarMap` for
    /// training, a loaded file for inference). Scales start at 1.
    pub fn new(spec: DecoderSpec, vb: VarBuilder) -> Result<Self> {
        let plan = spec.plan();
        let last = plan.iter().rposition(|op| !op.params().is_empty()).unwrap_or(0);
        let slope = spec.kind.negative_slope();
        let layers = plan
            .into_iter()
            .enumerate()
            .map(|(i, op)| {
                let relu = i != last;
                let weighted = |name: String, op: Op| Layer::Weighted(Weighted { name, op, relu, slope });
                Ok(match op {
                    DecOp::Linear { name, din, dout } => {
                        let m = Dense::from_vb(din, dout, vb.pp(&name))?;
                        weighted(name, Op::Linear(m))
                    }
                    DecOp::Reshape { c, h, w } => Layer::Reshape(c, h, w),
                    DecOp::Unpool { stage, switches } => Layer::Unpool(stage, switches),
                    DecOp::Spread { stage } => Layer::Spread(stage),
                    DecOp::Mark { tap } => Layer::Mark(tap),
                    DecOp::Conv { name, cin, cout, k, pad } => {
                        let m = Conv::from_vb(cin, cout, k, pad, false, vb.pp(&name))?;
                        weighted(name, Op::Conv(m))
                    }
                    DecOp::Deconv { name, cin, cout, k, stride, pad, out_pad } => {
                        let cfg = ConvTranspose2dConfig { padding: pad, output_padding: out_pad, stride, dilation: 1 };
                        let (vbn, init) = (vb.pp(&name), fresh_init(cout * k * k));
                        let weight = vbn.get_with_hints((cin, cout, k, k), "weight", init)?;
                        let bias = vbn.get_with_hints(cout, "bias", init)?;
                        weighted(name, Op::Deconv(ConvTranspose2d::new(weight, Some(bias), cfg)))
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { spec, layers, scales: BTreeMap::new(), fused: true })
    }

    /// The constant the activation of `tap` is divided by where it enters this decoder.
    pub fn scale(&self, tap: &str) -> f64 {
        self.scales.get(tap).copied().unwrap_or(1.0)
    }

    /// The encoder's activation of `tap`, divided by its scale.
    pub fn scaled_tap(&self, f: &Features, tap: crate::model::Layer) -> Result<Tensor> {
        let t = f.tap(tap).ok_or_else(|| Error::Unavailable(format!("the features hold no {tap} activation")))?;
        let s = self.scale(tap.name());
        Ok(if s == 1.0 { t.clone() } else { t.affine(1.0 / s, 0.0)? })
    }

    /// Reconstruct the (preprocessed) input images `(B, 3, H, W)` from the encoder's features.
    pub fn forward(&self, f: &Features) -> Result<Tensor> {
        self.run(self.scaled_tap(f, self.spec.layer.layer())?, 0..self.layers.len(), f, None)
    }

    /// [`Self::forward`], also returning the output at every mark with the mark's tap.
    pub fn forward_marked(&self, f: &Features) -> Result<(Tensor, Vec<(crate::model::Layer, Tensor)>)> {
        let mut marks = Vec::new();
        let y = self.run(self.scaled_tap(f, self.spec.layer.layer())?, 0..self.layers.len(), f, Some(&mut marks))?;
        Ok((y, marks))
    }

    /// The decoder cut at its marks, top to bottom.
    pub fn segments(&self) -> Vec<Segment> {
        let mut out = Vec::new();
        let (mut input, mut start) = (self.spec.layer.layer(), 0);
        for (i, l) in self.layers.iter().enumerate() {
            if let Layer::Mark(tap) = l {
                out.push(Segment { input: std::mem::replace(&mut input, *tap), target: Some(*tap), layers: start..i });
                start = i + 1;
            }
        }
        out.push(Segment { input, target: None, layers: start..self.layers.len() });
        out
    }

    /// Run one segment on `x` (its input, scaled), with the switches of `f`.
    pub fn forward_segment(&self, seg: &Segment, x: Tensor, f: &Features) -> Result<Tensor> {
        self.run(x, seg.layers.clone(), f, None)
    }

    /// The last layer's output times the output scale.
    fn scale_output(&self, y: Tensor) -> Result<Tensor> {
        let s = self.scale(OUTPUT_SCALE);
        Ok(if s == 1.0 { y } else { y.affine(s, 0.0)? })
    }

    fn run(
        &self,
        mut x: Tensor,
        range: Range<usize>,
        f: &Features,
        mut marks: Option<&mut Vec<(crate::model::Layer, Tensor)>>,
    ) -> Result<Tensor> {
        let last = range.end == self.layers.len();
        let layers = &self.layers[range];
        let mut i = 0;
        while i < layers.len() {
            if let Some(y) = self.fused_pair(layers, i, &x, f, true)? {
                (x, i) = (y, i + 2);
                continue;
            }
            x = match &layers[i] {
                Layer::Weighted(w) => w.forward(&x)?,
                Layer::Mark(tap) => {
                    if let Some(m) = marks.as_deref_mut() {
                        m.push((*tap, x.clone()));
                    }
                    x
                }
                other => self.reshape_or_unpool(other, &x, f)?,
            };
            i += 1;
        }
        if last {
            x = self.scale_output(x)?;
        }
        Ok(x)
    }

    /// Where `layers[i]` is an upsampling the fused op takes with the convolution after it: that
    /// pair's output (with the convolution's activation when `activate`); `None` otherwise.
    fn fused_pair(
        &self,
        layers: &[Layer],
        i: usize,
        x: &Tensor,
        f: &Features,
        activate: bool,
    ) -> Result<Option<Tensor>> {
        if !self.fused {
            return Ok(None);
        }
        let (Some((stage, up)), Some(Layer::Weighted(w))) = (layers[i].fusable(), layers.get(i + 1)) else {
            return Ok(None);
        };
        w.forward_upsampled(x, up, pooling(f, stage)?, activate)
    }

    fn reshape_or_unpool(&self, l: &Layer, x: &Tensor, f: &Features) -> Result<Tensor> {
        Ok(match l {
            Layer::Reshape(c, h, w) => x.reshape(((), *c, *h, *w))?,
            Layer::Unpool(stage, switches) => {
                let sw = pooling(f, *stage)?;
                match switches {
                    Switches::Recorded => unpool(x, sw)?,
                    Switches::Fixed => unpool_fixed(x, sw)?,
                }
            }
            Layer::Spread(stage) => {
                let sw = pooling(f, *stage)?;
                spread(x, sw.kernel, sw.stride, sw.in_hw)?
            }
            Layer::Weighted(_) | Layer::Mark(_) => x.clone(),
        })
    }

    /// `(weight, bias)` of every layer with weights, by the layer's parameter prefix.
    pub fn named_weights(&self) -> std::collections::HashMap<String, (Tensor, Tensor)> {
        let mut out = std::collections::HashMap::new();
        for l in &self.layers {
            if let Layer::Weighted(w) = l {
                let (weight, bias) = match &w.op {
                    Op::Linear(m) => (m.weight().clone(), Some(m.bias().clone())),
                    Op::Conv(m) => (m.weight().clone(), Some(m.bias().clone())),
                    Op::Deconv(m) => (m.weight().clone(), m.bias().cloned()),
                };
                if let Some(bias) = bias {
                    out.insert(w.name.clone(), (weight, bias));
                }
            }
        }
        out
    }

    /// Run the whole decoder, showing `hook` every layer with weights before its activation; what
    /// the hook returns (`Some`) replaces that layer's output before its activation (for the last
    /// layer: before the output scale). Returns the output.
    pub fn inspect(&self, f: &Features, hook: &mut dyn FnMut(Visit) -> Result<Option<Tensor>>) -> Result<Tensor> {
        let mut x = self.scaled_tap(f, self.spec.layer.layer())?;
        let mut i = 0;
        while i < self.layers.len() {
            // An upsampling the fused op takes goes with the convolution after it: their output
            // is that convolution's pre-activation.
            let pre = self.fused_pair(&self.layers, i, &x, f, false)?;
            if pre.is_some() {
                i += 1;
            }
            let l = &self.layers[i];
            i += 1;
            x = match l {
                Layer::Weighted(w) => {
                    let pre = match pre {
                        Some(p) => p,
                        None => w.pre(&x)?,
                    };
                    let visit = Visit { name: &w.name, pre: pre.clone(), relu: w.relu, out_axis: w.out_axis() };
                    let y = hook(visit)?.unwrap_or(pre);
                    if w.relu {
                        w.activate(y)?
                    } else {
                        y
                    }
                }
                Layer::Mark(_) => x,
                other => self.reshape_or_unpool(other, &x, f)?,
            };
        }
        self.scale_output(x)
    }
}

/// The record of stage `stage`'s max-pooling in `f`: its geometry and switches.
fn pooling(f: &Features, stage: usize) -> Result<&crate::ops::PoolSwitches> {
    f.switches
        .get(stage)
        .and_then(|s| s.as_ref())
        .ok_or_else(|| Error::Unavailable(format!("the features hold no pooling switches for stage {}", stage + 1)))
}
