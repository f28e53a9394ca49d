//! The layers with weights that encoder and decoders share: the convolution (our fast stride-1
//! op, candle's otherwise) and the fully connected layer. Both compute in their input's dtype.

use crate::ops::{candle_conv2d, conv2d};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    pad: usize,
    stride: usize,
    relu: bool,
}

impl Conv {
    /// `relu`: apply a ReLU to the output (fused into the convolution where possible).
    pub fn new(weight: Tensor, bias: Tensor, pad: usize, stride: usize, relu: bool) -> Self {
        Self { weight, bias, pad, stride, relu }
    }

    /// A trainable layer (Kaiming-normal weights) named `vb`'s prefix: `weight`, `bias`.
    pub fn from_vb(cin: usize, cout: usize, k: usize, pad: usize, relu: bool, vb: VarBuilder) -> Result<Self> {
        let c = candle_nn::conv2d(cin, cout, k, Conv2dConfig { padding: pad, ..Default::default() }, vb)?;
        let bias = c.bias().cloned().ok_or_else(|| candle_core::Error::Msg("conv without bias".into()))?;
        Ok(Self::new(c.weight().clone(), bias, pad, 1, relu))
    }

    pub fn dtype(&self) -> DType {
        self.weight.dtype()
    }

    /// The same layer with its weights converted to `dtype` (a bf16 encoder).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self { weight: self.weight.to_dtype(dtype)?, bias: self.bias.to_dtype(dtype)?, ..*self })
    }
}

impl Module for Conv {
    /// Computes in the input's dtype, as PyTorch's autocast does: f32 weights meet bf16
    /// activations as bf16 (the cast is differentiable, so their gradients come back in f32).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.stride == 1 {
            let (w, b) = (self.weight.to_dtype(x.dtype())?, self.bias.to_dtype(x.dtype())?);
            conv2d(x, &w, &b, self.pad, self.relu)
        } else {
            let compute = candle_dtype(x);
            let (w, b) = (self.weight.to_dtype(compute)?, self.bias.to_dtype(compute)?);
            candle_conv2d(&x.to_dtype(compute)?, &w, &b, self.pad, self.stride, self.relu)?.to_dtype(x.dtype())
        }
    }
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

    /// A trainable layer (candle's default initialisation) named `vb`'s prefix: `weight`, `bias`.
    pub fn from_vb(din: usize, dout: usize, vb: VarBuilder) -> Result<Self> {
        let l = candle_nn::linear(din, dout, vb)?;
        let bias = l.bias().cloned().ok_or_else(|| candle_core::Error::Msg("linear layer without bias".into()))?;
        Ok(Self::new(l.weight().clone(), bias))
    }

    pub fn dtype(&self) -> DType {
        self.weight.dtype()
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
