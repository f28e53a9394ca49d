//! The layers with weights that encoder and decoders share: the convolution (our fast stride-1
//! op, candle's otherwise) and the fully connected layer. Both compute in their input's dtype.

use crate::ops::{
    candle_conv2d, conv2d, conv2d_packed, upsample_conv, upsample_conv_with, PackedKernel, PoolSwitches, Upsample,
    UpsamplePlan,
};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use std::sync::{Arc, OnceLock};

pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    pad: usize,
    stride: usize,
    relu: bool,
    /// The kernel packed for the CPU convolution on the first forward pass, where the weights are
    /// plain tensors that never change (not a trainer's variables); `None` where they are not
    /// packed (see [`PackedKernel::new`]).
    packed: OnceLock<Option<Arc<PackedKernel>>>,
    /// For a layer after an upsampling ([`Self::forward_upsampled`]) with weights that never
    /// change: its coarse kernel, made (and packed) on the first pass.
    coarse: OnceLock<Option<CoarseKernel>>,
}

/// The kernel and bias of [`crate::ops::upsample_conv`]'s coarse convolution for one layer, in the
/// dtype of the first input, packed where the CPU convolution packs.
struct CoarseKernel {
    plan: UpsamplePlan,
    weight: Tensor,
    bias: Tensor,
    packed: Option<Arc<PackedKernel>>,
}

impl Conv {
    /// `relu`: apply a ReLU to the output (fused into the convolution where possible).
    pub fn new(weight: Tensor, bias: Tensor, pad: usize, stride: usize, relu: bool) -> Self {
        Self { weight, bias, pad, stride, relu, packed: OnceLock::new(), coarse: OnceLock::new() }
    }

    /// A trainable layer named `vb`'s prefix: `weight (cout, cin, k, k)`, `bias`, initialised as
    /// [`fresh_init`] says.
    pub fn from_vb(cin: usize, cout: usize, k: usize, pad: usize, relu: bool, vb: VarBuilder) -> Result<Self> {
        let init = fresh_init(cin * k * k);
        let weight = vb.get_with_hints((cout, cin, k, k), "weight", init)?;
        let bias = vb.get_with_hints(cout, "bias", init)?;
        Ok(Self::new(weight, bias, pad, 1, relu))
    }

    pub fn dtype(&self) -> DType {
        self.weight.dtype()
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The same layer with its weights converted to `dtype` (a bf16 encoder).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self::new(self.weight.to_dtype(dtype)?, self.bias.to_dtype(dtype)?, self.pad, self.stride, self.relu))
    }

    /// The convolution with or without the ReLU, whatever the layer was built with (the
    /// pre-activation, for data-dependent initialisation and dead-unit counts).
    /// Computes in the input's dtype, as PyTorch's autocast does: f32 weights meet bf16
    /// activations as bf16 (the cast is differentiable, so their gradients come back in f32).
    pub fn forward_with(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        if self.stride == 1 {
            let (w, b) = (self.weight.to_dtype(x.dtype())?, self.bias.to_dtype(x.dtype())?);
            if self.packed.get().is_none() && x.device().is_cpu() {
                // The weights in the first input's dtype (a later one of another dtype packs per call).
                let _ = self.packed.set(PackedKernel::new(&w, self.pad)?);
            }
            match self.packed.get() {
                Some(Some(packed)) => conv2d_packed(x, &w, &b, self.pad, relu, packed),
                _ => conv2d(x, &w, &b, self.pad, relu),
            }
        } else {
            let compute = candle_dtype(x);
            let (w, b) = (self.weight.to_dtype(compute)?, self.bias.to_dtype(compute)?);
            candle_conv2d(&x.to_dtype(compute)?, &w, &b, self.pad, self.stride, relu)?.to_dtype(x.dtype())
        }
    }
}

impl Conv {
    /// `up` (after the 2×2 pooling `sw`) then this convolution, with or without the ReLU, computed
    /// from the coarse map `x` by the fused op ([`crate::ops::upsample_conv`]). `None` where the
    /// fused op does not apply (not on the CPU, a strided layer, overlapping windows): the caller
    /// upsamples and convolves as two steps.
    pub fn forward_upsampled(&self, x: &Tensor, up: Upsample, sw: &PoolSwitches, relu: bool) -> Result<Option<Tensor>> {
        let (_, _, k, _) = self.weight.dims4()?;
        if !x.device().is_cpu() || self.stride != 1 || self.pad != k / 2 {
            return Ok(None);
        }
        let Some(plan) = UpsamplePlan::new(up, k, sw) else { return Ok(None) };
        let frozen = !self.weight.track_op() && !self.bias.track_op();
        if frozen && self.coarse.get().is_none() {
            let (w, b) = plan.coarse_kernel(&self.weight, &self.bias, x.dtype())?;
            let packed = PackedKernel::new(&w, plan.coarse_pad())?;
            let _ = self.coarse.set(Some(CoarseKernel { plan: plan.clone(), weight: w, bias: b, packed }));
        }
        let kept =
            self.coarse.get().and_then(|c| c.as_ref()).filter(|c| c.plan == plan && c.weight.dtype() == x.dtype());
        let y = match kept {
            Some(c) => upsample_conv_with(x, &plan, sw, |x, pad| match &c.packed {
                Some(p) => conv2d_packed(x, &c.weight, &c.bias, pad, relu, p),
                None => conv2d(x, &c.weight, &c.bias, pad, relu),
            })?,
            // A trainer's weights change every step: the kernel is made again each time.
            None => upsample_conv(x, &self.weight, &self.bias, relu, up, sw)?,
        };
        Ok(Some(y))
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, self.relu)
    }
}

/// How a fresh decoder's weights and biases are drawn: uniform in ±1/√fan_in, with fan_in `cin·k²`
/// for a convolution, `din` for a fully connected layer and, by PyTorch's convention for transposed
/// convolutions (the weight's second dimension times k²), `cout·k²`. PyTorch's default. Candle's
/// default (Kaiming-normal weights, 2.4× the spread) starts a decoder whose output, in the 0–255
/// units of Caffe preprocessing, is far off the image, and Adam never recovers: VGG-16 pool1 SAE
/// after 300 steps (crop 64, batch 8, lr 1e-3) reached a training loss of about 0.011 and 20.6 dB
/// (PyTorch) / 21.5 dB (layerinv) on the held-out photos that way, against 30.7 / 30.6 dB with
/// this init (`scripts/torch_train_pool1.py`).
pub fn fresh_init(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform { lo: -bound, up: bound }
}

/// The dtype candle's own layers compute in for input `x`: `x`'s, except bf16 on the CPU, where
/// candle's matmul (also behind its convolutions) has no kernel: there f32, the result rounded
/// back to bf16 (bf16 storage, f32 arithmetic, as our CPU convolution).
pub fn candle_dtype(x: &Tensor) -> DType {
    if x.dtype() == DType::BF16 && x.device().is_cpu() {
        DType::F32
    } else {
        x.dtype()
    }
}

/// A fully connected layer `x Wᵀ + b` for `x (B, din)`, `W (dout, din)`, in the input's dtype as
/// [`Conv`] (through [`candle_dtype`]).
pub struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    pub fn new(weight: Tensor, bias: Tensor) -> Self {
        Self { weight, bias }
    }

    /// A trainable layer named `vb`'s prefix: `weight (dout, din)`, `bias`, initialised as
    /// [`fresh_init`] says.
    pub fn from_vb(din: usize, dout: usize, vb: VarBuilder) -> Result<Self> {
        let init = fresh_init(din);
        Ok(Self::new(vb.get_with_hints((dout, din), "weight", init)?, vb.get_with_hints(dout, "bias", init)?))
    }

    pub fn dtype(&self) -> DType {
        self.weight.dtype()
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The same layer with its weights converted to `dtype` (a bf16 encoder).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self::new(self.weight.to_dtype(dtype)?, self.bias.to_dtype(dtype)?))
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let compute = candle_dtype(x);
        let (w, b) = (self.weight.to_dtype(compute)?, self.bias.to_dtype(compute)?);
        x.to_dtype(compute)?.matmul(&w.t()?)?.broadcast_add(&b)?.to_dtype(x.dtype())
    }
}
