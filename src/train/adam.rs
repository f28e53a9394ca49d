//! Adam with its state in plain tensors, so a checkpoint can save and restore it exactly.
//!
//! The update runs as two fused in-place ops per parameter (moments, then weights) instead of a
//! dozen tensor ops with their allocations: on CUDA two kernel launches, on the CPU two passes.

use crate::error::Result;
use crate::ops::contiguous_slice;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, Layout, Tensor, Var};
use rayon::prelude::*;

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// Adam (no weight decay: the reconstruction loss is all we fit) over named variables.
pub struct Adam {
    /// `(name, variable, moments)` sorted by name; the moments are the first and second stacked,
    /// shape `(2, *param)`, so one op updates both.
    slots: Vec<(String, Var, Tensor)>,
    /// Updates taken so far (for bias correction).
    pub t: u64,
}

impl Adam {
    /// Fresh state (zero moments) for `vars`.
    pub fn new(mut vars: Vec<(String, Var)>) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(n, v)| {
                let t = v.as_tensor();
                let mut shape = vec![2];
                shape.extend_from_slice(t.dims());
                let z = Tensor::zeros(shape, t.dtype(), t.device())?;
                Ok((n, v, z))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { slots, t: 0 })
    }

    /// One update with learning rate `lr` from the gradients of a `backward()`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        let bc1 = 1.0 - BETA1.powi(self.t as i32);
        let bc2 = 1.0 - BETA2.powi(self.t as i32);
        let apply = AdamApply { lr_bc1: (lr / bc1) as f32, inv_bc2: (1.0 / bc2) as f32, eps: EPS as f32 };
        for (_, var, mv) in &self.slots {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            mv.inplace_op2(&g.contiguous()?, &AdamMoments)?;
            var.as_tensor().inplace_op2(mv, &apply)?;
        }
        Ok(())
    }

    /// The device the variables live on.
    pub fn device(&self) -> &candle_core::Device {
        self.slots.first().map(|(_, v, _)| v.as_tensor().device()).unwrap_or(&candle_core::Device::Cpu)
    }

    /// `(name, weights)` of every variable.
    pub fn weights(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.slots.iter().map(|(n, var, _)| (n.as_str(), var.as_tensor()))
    }

    /// `(name, weights, first moment, second moment)` of every variable.
    pub fn state(&self) -> impl Iterator<Item = Result<(&str, &Tensor, Tensor, Tensor)>> {
        self.slots.iter().map(|(n, var, mv)| Ok((n.as_str(), var.as_tensor(), mv.get(0)?, mv.get(1)?)))
    }

    /// Set the weights (moments stay as they are); `get` returns the tensor for a parameter name.
    pub fn set_weights(&mut self, mut get: impl FnMut(&str, &[usize]) -> Result<Tensor>) -> Result<()> {
        for (name, var, _) in &mut self.slots {
            let shape = var.as_tensor().dims().to_vec();
            var.set(&get(name, &shape)?)?;
        }
        Ok(())
    }

    /// Set one variable's weights (its moments stay as they are).
    pub fn set(&mut self, name: &str, value: &Tensor) -> Result<()> {
        match self.slots.iter().find(|(n, _, _)| n == name) {
            Some((_, var, _)) => Ok(var.set(&value.to_dtype(var.dtype())?)?),
            None => Err(crate::error::Error::Unavailable(format!("no parameter {name} to set"))),
        }
    }

    /// A copy of the weights, moments and step count, for [`Self::restore_snapshot`].
    pub fn snapshot(&self) -> Result<AdamSnapshot> {
        let values = self
            .slots
            .iter()
            .map(|(_, var, mv)| Ok((var.as_tensor().copy()?, mv.copy()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamSnapshot { values, t: self.t })
    }

    /// Go back to a [`Self::snapshot`] of this optimizer.
    pub fn restore_snapshot(&mut self, snap: &AdamSnapshot) -> Result<()> {
        for ((_, var, mv), (w, m)) in self.slots.iter_mut().zip(&snap.values) {
            var.set(w)?;
            *mv = m.copy()?;
        }
        self.t = snap.t;
        Ok(())
    }

    /// Restore weights and moments by name; `get` returns the saved tensor for a key like
    /// `adam_m.features.0.weight`.
    pub fn restore(&mut self, t: u64, mut get: impl FnMut(&str, &[usize]) -> Result<Tensor>) -> Result<()> {
        for (name, var, mv) in &mut self.slots {
            let shape = var.as_tensor().dims().to_vec();
            var.set(&get(&format!("param.{name}"), &shape)?)?;
            let (m, v) = (get(&format!("adam_m.{name}"), &shape)?, get(&format!("adam_v.{name}"), &shape)?);
            *mv = Tensor::stack(&[m, v], 0)?.contiguous()?;
        }
        self.t = t;
        Ok(())
    }
}

/// Weights and moments of every variable (in the optimizer's order) and the step count.
pub struct AdamSnapshot {
    values: Vec<(Tensor, Tensor)>,
    t: u64,
}

/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²` in place on the stacked moments, from the gradient.
struct AdamMoments;

/// `w ← w − lr/bc₁ · m / (√(v/bc₂) + ε)` in place on the weights, from the stacked moments.
struct AdamApply {
    lr_bc1: f32,
    inv_bc2: f32,
    eps: f32,
}

/// The moment coefficients in f32: β₁, 1−β₁, β₂, 1−β₂ (computed in f64 first).
fn betas() -> [f32; 4] {
    [BETA1 as f32, (1.0 - BETA1) as f32, BETA2 as f32, (1.0 - BETA2) as f32]
}

/// The contiguous f32 data of a storage an op writes in place.
fn f32_mut<'a>(s: &'a mut CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a mut [f32]> {
    let (a, b) =
        l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{what}: input must be contiguous")))?;
    match s {
        CpuStorage::F32(d) => Ok(&mut d[a..b]),
        _ => candle_core::bail!("{what}: only f32 parameters are supported"),
    }
}

/// Check that `moments` holds two values per parameter of `n`.
fn check_pairs(moments: usize, n: usize, what: &str) -> candle_core::Result<()> {
    if moments != 2 * n {
        candle_core::bail!("{what}: {moments} moments for {n} parameters")
    }
    Ok(())
}

impl InplaceOp2 for AdamMoments {
    fn name(&self) -> &'static str {
        "adam-moments"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let g = contiguous_slice::<f32>(s2, l2)?;
        let mv = f32_mut(s1, l1, self.name())?;
        check_pairs(mv.len(), g.len(), self.name())?;
        let (m, v) = mv.split_at_mut(g.len());
        let [b1, c1, b2, c2] = betas();
        m.par_iter_mut().zip(v.par_iter_mut()).zip(g.par_iter()).for_each(|((m, v), &g)| {
            *m = b1 * *m + c1 * g;
            *v = b2 * *v + c2 * (g * g);
        });
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        crate::ops::cuda::adam_moments(s1, l1, s2, l2, betas())
    }
}

impl InplaceOp2 for AdamApply {
    fn name(&self) -> &'static str {
        "adam-apply"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let w = f32_mut(s1, l1, self.name())?;
        let mv = contiguous_slice::<f32>(s2, l2)?;
        check_pairs(mv.len(), w.len(), self.name())?;
        let (m, v) = mv.split_at(w.len());
        w.par_iter_mut().zip(m.par_iter()).zip(v.par_iter()).for_each(|((w, &m), &v)| {
            *w -= self.lr_bc1 * m / ((v * self.inv_bc2).sqrt() + self.eps);
        });
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        crate::ops::cuda::adam_apply(s1, l1, s2, l2, [self.lr_bc1, self.inv_bc2, self.eps])
    }
}
