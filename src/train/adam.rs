//! Adam with its state in plain tensors, so a checkpoint can save and restore it exactly.

use crate::error::Result;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// Adam (no weight decay: the reconstruction loss is all we fit) over named variables.
pub struct Adam {
    /// `(name, variable, first moment, second moment)`, sorted by name.
    slots: Vec<(String, Var, Tensor, Tensor)>,
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
                let z = v.as_tensor().zeros_like()?;
                Ok((n, v, z.clone(), z))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { slots, t: 0 })
    }

    /// One update with learning rate `lr` from the gradients of a `backward()`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        let bc1 = 1.0 - BETA1.powi(self.t as i32);
        let bc2 = 1.0 - BETA2.powi(self.t as i32);
        for (_, var, m, v) in &mut self.slots {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            *m = m.affine(BETA1, 0.)?.add(&g.affine(1.0 - BETA1, 0.)?)?;
            *v = v.affine(BETA2, 0.)?.add(&g.sqr()?.affine(1.0 - BETA2, 0.)?)?;
            let update = m.affine(lr / bc1, 0.)?.div(&v.affine(1.0 / bc2, 0.)?.sqrt()?.affine(1.0, EPS)?)?;
            var.set(&var.as_tensor().sub(&update)?)?;
        }
        Ok(())
    }

    /// The device the variables live on.
    pub fn device(&self) -> &candle_core::Device {
        self.slots.first().map(|(_, v, _, _)| v.as_tensor().device()).unwrap_or(&candle_core::Device::Cpu)
    }

    /// `(name, weights, first moment, second moment)` of every variable.
    pub fn state(&self) -> impl Iterator<Item = (&str, &Tensor, &Tensor, &Tensor)> {
        self.slots.iter().map(|(n, var, m, v)| (n.as_str(), var.as_tensor(), m, v))
    }

    /// Set the weights (moments stay as they are); `get` returns the tensor for a parameter name.
    pub fn set_weights(&mut self, mut get: impl FnMut(&str, &[usize]) -> Result<Tensor>) -> Result<()> {
        for (name, var, _, _) in &mut self.slots {
            let shape = var.as_tensor().dims().to_vec();
            var.set(&get(name, &shape)?)?;
        }
        Ok(())
    }

    /// Restore weights and moments by name; `get` returns the saved tensor for a key like
    /// `adam_m.features.0.weight`.
    pub fn restore(&mut self, t: u64, mut get: impl FnMut(&str, &[usize]) -> Result<Tensor>) -> Result<()> {
        for (name, var, m, v) in &mut self.slots {
            let shape = var.as_tensor().dims().to_vec();
            var.set(&get(&format!("param.{name}"), &shape)?)?;
            *m = get(&format!("adam_m.{name}"), &shape)?;
            *v = get(&format!("adam_v.{name}"), &shape)?;
        }
        self.t = t;
        Ok(())
    }
}
