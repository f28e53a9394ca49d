//! Fast convolution (stride 1, square kernel, zero padding, bias, optional fused ReLU) with its
//! backward pass, as candle ops: our own kernels on the CPU (`conv/cpu.rs`: a direct kernel, and
//! Winograd F(2×2, 3×3) for the 3×3 shapes where it measured faster), cuDNN plus a
//! bias/ReLU kernel on CUDA (`cudnn.rs`, `cuda.rs`). The input gradient is skipped when the input
//! needs no gradient (a decoder's first convolution).

mod cpu;

use super::{f32_values, storage_as};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use cpu::{conv_forward, pack_kernel, winograd, Geom};
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How the CPU computes a convolution (and its input gradient).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvAlgo {
    /// Per shape, whichever measured faster here (`cpu/winograd.rs`'s `worth_it`).
    #[default]
    Auto,
    /// The direct kernel (register-blocked implicit GEMM).
    Direct,
    /// Winograd F(2×2, 3×3) wherever it applies (3×3, padding 1), else the direct kernel.
    Winograd,
}

impl ConvAlgo {
    /// Whether the forward pass (and the input gradient, with `g` its own geometry) runs Winograd.
    fn winograd(self, g: &Geom) -> bool {
        match self {
            ConvAlgo::Auto => winograd::worth_it(g),
            ConvAlgo::Direct => false,
            ConvAlgo::Winograd => winograd::applies(g),
        }
    }

    /// Whether the weight gradient runs Winograd.
    fn winograd_weight_grad(self, g: &Geom) -> bool {
        match self {
            ConvAlgo::Auto => winograd::worth_it_for_weight_grad(g),
            ConvAlgo::Direct => false,
            ConvAlgo::Winograd => winograd::applies(g),
        }
    }
}

/// A convolution kernel packed once for the CPU kernels (the direct kernel's block order, or
/// Winograd's transformed `U` where [`ConvAlgo::Auto`] picks it), for weights that never change
/// (an encoder's, a decoder loaded for inference): each forward pass would otherwise pack it
/// again, which at batch 1 on the 14×14 and 28×28 maps costs about as much as the convolution's
/// transforms. It holds 16/9 of the weights' size for Winograd (an f32 VGG-16 trunk: ≈ 105 MB),
/// so the packed kernels of the whole process share a budget of [`PACKED_BUDGET`] bytes; past it
/// a layer packs per call as before.
pub struct PackedKernel {
    dtype: DType,
    /// (cout, cin, k, pad) of the kernel it was packed from.
    dims: (usize, usize, usize, usize),
    winograd: bool,
    values: Vec<f32>,
}

/// Bytes that all [`PackedKernel`]s of the process may hold (the bundled trunk packs to about
/// 105 MB in f32, its ten decoders to about 73 MB; a user's wider decoders may need more).
pub const PACKED_BUDGET: usize = 512 << 20;
static PACKED_BYTES: AtomicUsize = AtomicUsize::new(0);

impl PackedKernel {
    /// The kernel `w (cout, cin, k, k)` packed for the CPU convolution with padding `pad`, for
    /// inputs of `w`'s dtype; `None` where the fast op does not run (not on the CPU, another
    /// dtype) or the budget is spent. `w` must not change afterwards: a variable's weights do,
    /// and are refused with everything computed from them.
    pub fn new(w: &Tensor, pad: usize) -> Result<Option<Arc<PackedKernel>>> {
        let (cout, cin, k, k2) = w.dims4()?;
        if w.track_op() || !w.device().is_cpu() || !matches!(w.dtype(), DType::F32 | DType::BF16) || k != k2 {
            return Ok(None);
        }
        let g = Geom { cin, cout, k, h: k, w: k, pad, batch: 1 };
        let winograd = ConvAlgo::Auto.winograd(&g);
        let len = if winograd { winograd::kernel_len(&g) } else { cpu::packed_len(&g) };
        let bytes = len * std::mem::size_of::<f32>();
        let reserved = PACKED_BYTES.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            (used + bytes <= PACKED_BUDGET).then_some(used + bytes)
        });
        if reserved.is_err() {
            return Ok(None);
        }
        let (storage, layout) = w.storage_and_layout();
        let wt = match &*storage {
            candle_core::Storage::Cpu(s) => f32_values(s, layout)?,
            _ => candle_core::bail!("PackedKernel: the kernel left the CPU"),
        };
        let values = cpu_pack(&wt, &g, false, winograd);
        debug_assert_eq!(values.len(), len);
        Ok(Some(Arc::new(PackedKernel { dtype: w.dtype(), dims: (cout, cin, k, pad), winograd, values })))
    }

    /// Whether this is the kernel a forward pass for `g` in `dtype` needs, packed for Winograd
    /// or not as `winograd` says.
    fn fits(&self, g: &Geom, dtype: DType, winograd: bool) -> bool {
        self.dtype == dtype && self.dims == (g.cout, g.cin, g.k, g.pad) && self.winograd == winograd
    }
}

impl Drop for PackedKernel {
    fn drop(&mut self) {
        PACKED_BYTES.fetch_sub(self.values.len() * std::mem::size_of::<f32>(), Ordering::Relaxed);
    }
}

/// `conv2d(x, w) + b` (then ReLU when `relu`) for `x (B, Cin, H, W)`, `w (Cout, Cin, k, k)`,
/// `b (Cout)`, stride 1. Fast on CPU, through cuDNN (forward and backward) on CUDA in builds with
/// the `cudnn` feature, for f32 and bf16 (bf16 storage, f32 arithmetic, the result rounded to
/// bf16, as cuDNN does); elsewhere candle's own convolution.
pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize, relu: bool) -> Result<Tensor> {
    conv2d_with(x, w, b, pad, relu, ConvAlgo::Auto)
}

/// [`conv2d`] with `w` already packed (the CPU forward pass uses `packed` where it is `w`'s, in
/// the input's dtype; `w` is still needed for the other devices and the gradients).
pub fn conv2d_packed(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    pad: usize,
    relu: bool,
    packed: &Arc<PackedKernel>,
) -> Result<Tensor> {
    conv(x, w, b, Conv { pad, relu, algo: ConvAlgo::Auto, packed: Some(packed.clone()) })
}

/// [`conv2d`] with the CPU algorithm chosen (the benchmarks and tests compare them).
pub fn conv2d_with(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize, relu: bool, algo: ConvAlgo) -> Result<Tensor> {
    conv(x, w, b, Conv { pad, relu, algo, packed: None })
}

fn conv(x: &Tensor, w: &Tensor, b: &Tensor, op: Conv) -> Result<Tensor> {
    let (pad, relu) = (op.pad, op.relu);
    let (_, cin, h, wd) = x.dims4()?;
    let (_, wcin, k, k2) = w.dims4()?;
    if cin != wcin || k != k2 || h + 2 * pad < k || wd + 2 * pad < k {
        candle_core::bail!("conv2d: input {:?} does not fit kernel {:?} with padding {pad}", x.dims(), w.dims())
    }
    let fast_device = x.device().is_cpu() || (cfg!(feature = "cudnn") && x.device().is_cuda());
    let dtype_ok = matches!(x.dtype(), DType::F32 | DType::BF16) && w.dtype() == x.dtype() && b.dtype() == x.dtype();
    if !(fast_device && dtype_ok) {
        return conv2d_ref(x, w, b, pad, relu);
    }
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, op)
}

/// The slow twin: candle's convolution plus a broadcast bias (and ReLU).
pub fn conv2d_ref(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize, relu: bool) -> Result<Tensor> {
    candle_conv2d(x, w, b, pad, 1, relu)
}

/// Candle's convolution at any stride, plus a broadcast bias (and ReLU): the twin above, and the
/// path for strided convolutions (AlexNet conv1) that the fast op does not cover.
pub fn candle_conv2d(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize, stride: usize, relu: bool) -> Result<Tensor> {
    let y = x.conv2d(w, pad, stride, 1, 1)?.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// The kernel `w` packed for the CPU forward pass (`flip`: for the input gradient, as
/// `pack_kernel`): Winograd's `U` where `winograd`, else the direct kernel's blocks.
fn cpu_pack(w: &[f32], g: &Geom, flip: bool, winograd: bool) -> Vec<f32> {
    if winograd {
        winograd::transform_kernel(w, g, flip)
    } else {
        pack_kernel(w, g, flip)
    }
}

/// The CPU convolution of `x` by the kernel `packed` from [`cpu_pack`] (with the same `winograd`),
/// plus `b`, then ReLU when `relu`.
fn cpu_conv(x: &[f32], packed: &[f32], b: Option<&[f32]>, g: &Geom, relu: bool, winograd: bool) -> Vec<f32> {
    if winograd {
        winograd::conv3x3(x, packed, b, g, relu)
    } else {
        conv_forward(x, packed, b, g, relu)
    }
}

struct Conv {
    pad: usize,
    relu: bool,
    algo: ConvAlgo,
    packed: Option<Arc<PackedKernel>>,
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "conv2d-s1"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (bsz, cin, h, w) = l1.shape().dims4()?;
        let (cout, _, k, _) = l2.shape().dims4()?;
        let g = Geom { cin, cout, k, h, w, pad: self.pad, batch: bsz };
        let (x, b) = (f32_values(s1, l1)?, f32_values(s3, l3)?);
        let winograd = self.algo.winograd(&g);
        let packed = match &self.packed {
            Some(p) if p.fits(&g, s2.dtype(), winograd) => Cow::Borrowed(&p.values[..]),
            _ => Cow::Owned(cpu_pack(&f32_values(s2, l2)?, &g, false, winograd)),
        };
        let y = cpu_conv(&x, &packed, Some(&b), &g, self.relu, winograd);
        Ok((storage_as(s1.dtype(), y), Shape::from((bsz, cout, g.out_h(), g.out_w()))))
    }

    /// cuDNN's convolution, then bias and ReLU in one more pass.
    #[cfg(feature = "cudnn")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (mut y, shape) = super::cudnn::forward(s1, l1, s2, l2, self.pad)?;
        super::cuda::bias_act(&mut y, &shape, s3, l3, self.relu)?;
        Ok((y, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, _, k, _) = w.dims4()?;
        // Through the fused ReLU: the gradient passes where the output is positive.
        let dy =
            if self.relu { dy.contiguous()?.apply_op2_no_bwd(&y.contiguous()?, &ReluGrad)? } else { dy.contiguous()? };
        let db = dy.apply_op1_no_bwd(&BiasGrad)?;
        // Candle asks every op on the path for all its gradients; an input that is neither a
        // variable nor computed from one (a decoder's unpooled code) needs none.
        let need_dx = x.track_op();
        #[cfg(feature = "cudnn")]
        if x.device().is_cuda() {
            let (dx, dw) = super::cudnn::backward(x, w, &dy, self.pad, need_dx)?;
            return Ok((dx, Some(dw), Some(db)));
        }
        let dx = if need_dx {
            Some(dy.apply_op2_no_bwd(&w.contiguous()?, &ConvInputGrad { pad: self.pad, k, algo: self.algo })?)
        } else {
            None
        };
        let dw = x.apply_op2_no_bwd(&dy, &ConvWeightGrad { pad: self.pad, k, algo: self.algo })?;
        Ok((dx, Some(dw), Some(db)))
    }
}

/// `dX = conv(dY, flip(W)ᵀ)` with padding `k − 1 − p`, from the output gradient `dy` and the kernel.
struct ConvInputGrad {
    pad: usize,
    k: usize,
    algo: ConvAlgo,
}

impl CustomOp2 for ConvInputGrad {
    fn name(&self) -> &'static str {
        "conv2d-s1-input-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (bsz, cout, h, w) = l1.shape().dims4()?;
        let (_, cin, _, _) = l2.shape().dims4()?;
        // The convolution of dY (cout channels) into cin channels.
        let g = Geom { cin: cout, cout: cin, k: self.k, h, w, pad: self.k - 1 - self.pad, batch: bsz };
        let (dy, wt) = (f32_values(s1, l1)?, f32_values(s2, l2)?);
        let winograd = self.algo.winograd(&g);
        let dx = cpu_conv(&dy, &cpu_pack(&wt, &g, true, winograd), None, &g, false, winograd);
        Ok((storage_as(s1.dtype(), dx), Shape::from((bsz, cin, g.out_h(), g.out_w()))))
    }
}

/// `dW` from the input `x` and the output gradient `dy`.
struct ConvWeightGrad {
    pad: usize,
    k: usize,
    algo: ConvAlgo,
}

impl CustomOp2 for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "conv2d-s1-weight-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (bsz, cin, h, w) = l1.shape().dims4()?;
        let (_, cout, _, _) = l2.shape().dims4()?;
        let g = Geom { cin, cout, k: self.k, h, w, pad: self.pad, batch: bsz };
        let (x, dy) = (f32_values(s1, l1)?, f32_values(s2, l2)?);
        let dw = if self.algo.winograd_weight_grad(&g) {
            winograd::weight_grad(&x, &dy, &g)
        } else {
            cpu::weight_grad(&x, &dy, &g)
        };
        Ok((storage_as(s1.dtype(), dw), Shape::from((cout, cin, self.k, self.k))))
    }
}

/// `dy` where the ReLU output `y` is positive, else 0.
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "relu-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (dy, y) = (f32_values(s1, l1)?, f32_values(s2, l2)?);
        let out = cpu::relu_grad(&dy, &y)?;
        Ok((storage_as(s1.dtype(), out), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::relu_grad(s1, l1, s2, l2)
    }
}

/// The bias gradient: `dY (B, Cout, H, W)` summed over everything but the channel.
struct BiasGrad;

impl CustomOp1 for BiasGrad {
    fn name(&self) -> &'static str {
        "conv2d-bias-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let dy = f32_values(s, l)?;
        let db = cpu::bias_grad(&dy, (b, c, h, w));
        Ok((storage_as(s.dtype(), db), Shape::from(c)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &candle_core::CudaStorage, l: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::bias_grad(s, l)
    }
}
