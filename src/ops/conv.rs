//! Fast CPU convolution (stride 1, square kernel, zero padding, bias) with its backward pass.
//!
//! No im2col buffer: the input is zero-padded once into rows of width `Wp = W + 2p`, so for every
//! kernel offset `(ky, kx)` the input pixels it meets form one contiguous slice of each padded
//! channel, shifted by `ky * Wp + kx`. The convolution is then `k²` GEMMs
//! `W[:, :, ky, kx] (Cout × Cin) · Xpad[:, shift ..] (Cin × H·Wp)` accumulated into an output laid
//! out on the same padded rows; the `Wp − W` extra columns per row are dropped at the end.
//! The input gradient is the same convolution of the output gradient with the flipped, transposed
//! kernel; the weight gradient is `k²` GEMMs `dY (Cout × N) · Xpad[:, shift ..]ᵀ`.

use super::contiguous_slice;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

/// `conv2d(x, w) + b` for `x (B, Cin, H, W)`, `w (Cout, Cin, k, k)`, `b (Cout)`, stride 1.
/// Fast on CPU for f32; elsewhere candle's own convolution.
pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize) -> Result<Tensor> {
    let (_, cin, h, wd) = x.dims4()?;
    let (_, wcin, k, k2) = w.dims4()?;
    if cin != wcin || k != k2 || h + 2 * pad < k || wd + 2 * pad < k {
        candle_core::bail!("conv2d: input {:?} does not fit kernel {:?} with padding {pad}", x.dims(), w.dims())
    }
    if !(x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32) {
        return conv2d_ref(x, w, b, pad);
    }
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, Conv { pad })
}

/// The slow twin: candle's convolution plus a broadcast bias.
pub fn conv2d_ref(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize) -> Result<Tensor> {
    x.conv2d(w, pad, 1, 1, 1)?.broadcast_add(&b.reshape((1, (), 1, 1))?)
}

struct Conv {
    pad: usize,
}

/// Geometry of one padded image.
#[derive(Clone, Copy)]
struct Geom {
    cin: usize,
    cout: usize,
    k: usize,
    h: usize,
    w: usize,
    pad: usize,
}

impl Geom {
    fn wp(&self) -> usize {
        self.w + 2 * self.pad
    }
    fn hp(&self) -> usize {
        self.h + 2 * self.pad
    }
    fn out_h(&self) -> usize {
        self.hp() + 1 - self.k
    }
    fn out_w(&self) -> usize {
        self.wp() + 1 - self.k
    }
    /// Length of one padded channel, with a tail so the last shifted slice stays in bounds.
    fn chan_len(&self) -> usize {
        self.hp() * self.wp() + self.k - 1
    }
    /// Columns of the padded-row output (`out_h` rows of `wp`).
    fn n(&self) -> usize {
        self.out_h() * self.wp()
    }
}

fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Zero-pad one image `(cin, h, w)` into `(cin, chan_len)` rows of width `wp`.
fn pad_image(x: &[f32], g: &Geom, out: &mut [f32]) {
    out.fill(0.0);
    let (wp, l) = (g.wp(), g.chan_len());
    for c in 0..g.cin {
        for y in 0..g.h {
            let src = &x[(c * g.h + y) * g.w..][..g.w];
            let dst = &mut out[c * l + (y + g.pad) * wp + g.pad..][..g.w];
            dst.copy_from_slice(src);
        }
    }
}

/// One image: `y (cout, out_h, out_w) = conv(x) + b`.
fn conv_one(x: &[f32], w: &[f32], b: &[f32], g: &Geom, y: &mut [f32], par: Parallelism) {
    let (wp, l, n, kk) = (g.wp(), g.chan_len(), g.n(), g.k * g.k);
    let mut xp = vec![0f32; g.cin * l];
    pad_image(x, g, &mut xp);
    let mut yp = vec![0f32; g.cout * n];
    for (o, row) in yp.chunks_exact_mut(n).enumerate() {
        row.fill(b[o]);
    }
    for ky in 0..g.k {
        for kx in 0..g.k {
            let shift = ky * wp + kx;
            // SAFETY: dst is cout × n (row stride n); lhs is w[:, :, ky, kx] with row stride
            // cin·k², column stride k²; rhs is cin rows of length n starting at `shift` in each
            // padded channel of length l ≥ shift + n. All in bounds by construction of Geom.
            unsafe {
                gemm::gemm(
                    g.cout,
                    n,
                    g.cin,
                    yp.as_mut_ptr(),
                    1,
                    n as isize,
                    true,
                    w.as_ptr().add(ky * g.k + kx),
                    kk as isize,
                    (g.cin * kk) as isize,
                    xp.as_ptr().add(shift),
                    1,
                    l as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
    }
    let (oh, ow) = (g.out_h(), g.out_w());
    for o in 0..g.cout {
        for r in 0..oh {
            y[(o * oh + r) * ow..][..ow].copy_from_slice(&yp[o * n + r * wp..][..ow]);
        }
    }
}

/// Run `f(image_index, in_slice, out_slice)` over a batch: images in parallel when there are
/// enough of them, else one at a time with a parallel GEMM inside.
fn per_image<F>(x: &[f32], in_len: usize, out: &mut [f32], out_len: usize, f: F)
where
    F: Fn(&[f32], &mut [f32], Parallelism) + Sync,
{
    let batch = x.len() / in_len.max(1);
    if batch >= threads() {
        out.par_chunks_exact_mut(out_len).zip(x.par_chunks_exact(in_len)).for_each(|(o, i)| f(i, o, Parallelism::None));
    } else {
        for (o, i) in out.chunks_exact_mut(out_len).zip(x.chunks_exact(in_len)) {
            f(i, o, Parallelism::Rayon(threads()));
        }
    }
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "conv2d-s1"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (bsz, cin, h, w) = l1.shape().dims4()?;
        let (cout, _, k, _) = l2.shape().dims4()?;
        let g = Geom { cin, cout, k, h, w, pad: self.pad };
        let (x, wt, b) = (contiguous_slice::<f32>(s1, l1)?, contiguous_slice::<f32>(s2, l2)?, contiguous_slice::<f32>(s3, l3)?);
        let out_len = cout * g.out_h() * g.out_w();
        let mut y = vec![0f32; bsz * out_len];
        per_image(x, cin * h * w, &mut y, out_len, |xi, yi, par| conv_one(xi, wt, b, &g, yi, par));
        Ok((CpuStorage::F32(y), Shape::from((bsz, cout, g.out_h(), g.out_w()))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _b: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, _, k, _) = w.dims4()?;
        let dy = dy.contiguous()?;
        // dX = conv(dY, flip(W)ᵀ) with padding k − 1 − p.
        let rev = Tensor::from_vec((0..k as u32).rev().collect::<Vec<_>>(), k, w.device())?;
        let w_t = w.index_select(&rev, 2)?.index_select(&rev, 3)?.transpose(0, 1)?.contiguous()?;
        let zero = Tensor::zeros(w_t.dim(0)?, DType::F32, w.device())?;
        let dx = dy.apply_op3_no_bwd(&w_t, &zero, &Conv { pad: k - 1 - self.pad })?;
        let dw = x.apply_op2_no_bwd(&dy, &ConvWeightGrad { pad: self.pad, k })?;
        let db = dy.sum((0, 2, 3))?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `dW` from the input `x` and the output gradient `dy`.
struct ConvWeightGrad {
    pad: usize,
    k: usize,
}

/// One image's contribution to dW (cout, cin, k, k), accumulated into `dw`.
fn weight_grad_one(x: &[f32], dy: &[f32], g: &Geom, dw: &mut [f32], par: Parallelism) {
    let (wp, l, n, kk) = (g.wp(), g.chan_len(), g.n(), g.k * g.k);
    let mut xp = vec![0f32; g.cin * l];
    pad_image(x, g, &mut xp);
    // dY on padded rows, zeros in the extra columns.
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut dyp = vec![0f32; g.cout * n];
    for o in 0..g.cout {
        for r in 0..oh {
            dyp[o * n + r * wp..][..ow].copy_from_slice(&dy[(o * oh + r) * ow..][..ow]);
        }
    }
    for ky in 0..g.k {
        for kx in 0..g.k {
            let shift = ky * wp + kx;
            // SAFETY: dst is dw[:, :, ky, kx] (cout × cin, strides cin·k², k²); lhs is dyp
            // (cout × n, row stride n); rhs is the transposed shifted input (n × cin: row stride 1,
            // column stride l), in bounds as in conv_one.
            unsafe {
                gemm::gemm(
                    g.cout,
                    g.cin,
                    n,
                    dw.as_mut_ptr().add(ky * g.k + kx),
                    kk as isize,
                    (g.cin * kk) as isize,
                    true,
                    dyp.as_ptr(),
                    1,
                    n as isize,
                    xp.as_ptr().add(shift),
                    l as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
    }
}

impl CustomOp2 for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "conv2d-s1-weight-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (bsz, cin, h, w) = l1.shape().dims4()?;
        let (_, cout, _, _) = l2.shape().dims4()?;
        let g = Geom { cin, cout, k: self.k, h, w, pad: self.pad };
        let (x, dy) = (contiguous_slice::<f32>(s1, l1)?, contiguous_slice::<f32>(s2, l2)?);
        let (in_len, dy_len, dw_len) = (cin * h * w, cout * g.out_h() * g.out_w(), cout * cin * self.k * self.k);
        let dw = if bsz >= threads() {
            // One partial dW per thread, summed at the end.
            let chunk = bsz.div_ceil(threads());
            let parts: Vec<Vec<f32>> = (0..bsz)
                .step_by(chunk)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|start| {
                    let mut dw = vec![0f32; dw_len];
                    for i in start..(start + chunk).min(bsz) {
                        weight_grad_one(&x[i * in_len..][..in_len], &dy[i * dy_len..][..dy_len], &g, &mut dw, Parallelism::None);
                    }
                    dw
                })
                .collect();
            let mut dw = vec![0f32; dw_len];
            for p in parts {
                dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
            }
            dw
        } else {
            let mut dw = vec![0f32; dw_len];
            for i in 0..bsz {
                weight_grad_one(&x[i * in_len..][..in_len], &dy[i * dy_len..][..dy_len], &g, &mut dw, Parallelism::Rayon(threads()));
            }
            dw
        };
        Ok((CpuStorage::F32(dw), Shape::from((cout, cin, self.k, self.k))))
    }
}
