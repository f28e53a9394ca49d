//! The convolution layer used by encoder and decoders: our fast stride-1 op, candle's otherwise.

use crate::ops::{candle_conv2d, conv2d};
use candle_core::{Module, Result, Tensor};
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
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.stride == 1 {
            conv2d(x, &self.weight, &self.bias, self.pad, self.relu)
        } else {
            candle_conv2d(x, &self.weight, &self.bias, self.pad, self.stride, self.relu)
        }
    }
}
