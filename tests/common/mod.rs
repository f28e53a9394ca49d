//! Shared test helpers: random-weight encoders (for shapes only, never passed off as trained) and
//! the CLI binary.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use layerinv::data::Preprocess;
use layerinv::model::{Arch, Encoder, ModelWeights};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Output;

/// Random canonical weights for `arch`: the conv trunk, plus the fc head when `with_fc`.
pub fn random_tensors(arch: Arch, with_fc: bool, seed_scale: f64) -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut t = HashMap::new();
    for c in arch.convs() {
        let std = (2.0 / (c.cin * c.k * c.k) as f64).sqrt() * seed_scale;
        t.insert(format!("{}.weight", c.key()), Tensor::randn(0f32, std as f32, (c.cout, c.cin, c.k, c.k), &dev).unwrap());
        t.insert(format!("{}.bias", c.key()), Tensor::zeros(c.cout, DType::F32, &dev).unwrap());
    }
    if with_fc {
        for f in arch.fcs() {
            let std = (2.0 / f.din as f64).sqrt();
            t.insert(format!("{}.weight", f.tap), Tensor::randn(0f32, std as f32, (f.dout, f.din), &dev).unwrap());
            t.insert(format!("{}.bias", f.tap), Tensor::zeros(f.dout, DType::F32, &dev).unwrap());
        }
    }
    t
}

pub fn random_encoder(arch: Arch, with_fc: bool) -> Encoder {
    let tensors = random_tensors(arch, with_fc, 1.0);
    let fingerprint = layerinv::model::weights::fingerprint(&tensors).unwrap();
    Encoder::new(ModelWeights {
        arch,
        preprocess: Preprocess::Torch,
        name: format!("random {arch}"),
        path: PathBuf::from("random"),
        tensors,
        fc_available: if with_fc { 3 } else { 0 },
        fingerprint,
    })
    .unwrap()
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Run the `layerinv` binary with `args`.
pub fn layerinv(args: &[&str]) -> Output {
    layerinv_env(args, &[])
}

pub fn layerinv_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_layerinv"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Assert a failed run: exit code ≠ 0, no panic, exactly one line on stderr containing `needles`.
pub fn assert_clean_failure(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "expected one line, got: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
}
