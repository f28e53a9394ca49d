//! Shared test helpers: random-weight encoders (for shapes only, never passed off as trained) and
//! the CLI binary.
#![allow(dead_code)]

#[cfg(feature = "gui")]
pub mod gui;

use candle_core::{DType, Device, Tensor};
use layerinv::data::Preprocess;
use layerinv::model::Layer;
use layerinv::model::{Arch, Encoder, Kind, ModelSource, ModelWeights};
use layerinv::train::TrainConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Random canonical weights for `arch`: the conv trunk, plus the fc head when `with_fc`.
pub fn random_tensors(arch: Arch, with_fc: bool, seed_scale: f64) -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut t = HashMap::new();
    for c in arch.convs() {
        let std = (2.0 / (c.cin * c.k * c.k) as f64).sqrt() * seed_scale;
        t.insert(
            format!("{}.weight", c.key()),
            Tensor::randn(0f32, std as f32, (c.cout, c.cin, c.k, c.k), &dev).unwrap(),
        );
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

/// The CPU, and the first GPU when this build has CUDA and one answers: the op and decoder tests
/// run on each (scripts/gpu-check.sh runs them on the lent GPU).
pub fn devices() -> Vec<Device> {
    let mut d = vec![Device::Cpu];
    if let Ok(cuda) = Device::new_cuda(0) {
        d.push(cuda);
    }
    d
}

pub fn random_encoder(arch: Arch, with_fc: bool) -> Encoder {
    encoder_on(arch, random_tensors(arch, with_fc, 1.0), with_fc, &Device::Cpu)
}

/// An encoder with these canonical `tensors`, moved to `dev` (one set of random weights on two
/// devices).
pub fn encoder_on(arch: Arch, tensors: HashMap<String, Tensor>, with_fc: bool, dev: &Device) -> Encoder {
    let tensors: HashMap<String, Tensor> = tensors.into_iter().map(|(k, v)| (k, v.to_device(dev).unwrap())).collect();
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

/// Assert a command line refused before it ran: exit code 2, no panic, one line on stderr
/// containing `needles`.
pub fn assert_usage_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "expected one line, got: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
}

/// Write `tensors` (f32) as a zip-format PyTorch state dict, byte for byte what `torch.save` of a
/// plain dict of tensors writes: `archive/data.pkl` (pickle protocol 2) + one raw storage each.
pub fn write_pth(path: &std::path::Path, tensors: &[(String, Tensor)]) {
    let declared: Vec<(String, Vec<usize>)> = tensors.iter().map(|(n, t)| (n.clone(), t.dims().to_vec())).collect();
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    write_pth_declaring(path, &declared, &data);
}

/// [`write_pth`] of f32 tensors that declare `shapes` but store `data` (which may not fit them).
pub fn write_pth_declaring(path: &std::path::Path, shapes: &[(String, Vec<usize>)], data: &[Vec<u8>]) {
    use std::io::Write;
    fn unicode(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend((s.len() as u32).to_le_bytes());
        p.extend(s.as_bytes());
    }
    fn int(p: &mut Vec<u8>, v: usize) {
        p.push(b'J');
        p.extend((v as i32).to_le_bytes());
    }
    fn int_tuple(p: &mut Vec<u8>, v: &[usize]) {
        p.push(b'(');
        for &x in v {
            int(p, x);
        }
        p.push(b't');
    }
    let mut pkl = vec![0x80, 2, b'}', b'('];
    for (i, (name, dims)) in shapes.iter().enumerate() {
        unicode(&mut pkl, name);
        pkl.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        pkl.push(b'(');
        unicode(&mut pkl, "storage");
        pkl.extend(b"ctorch\nFloatStorage\n");
        unicode(&mut pkl, &i.to_string());
        unicode(&mut pkl, "cpu");
        int(&mut pkl, dims.iter().product());
        pkl.extend(b"tQ");
        int(&mut pkl, 0);
        int_tuple(&mut pkl, dims);
        let strides: Vec<usize> = (0..dims.len()).map(|d| dims[d + 1..].iter().product()).collect();
        int_tuple(&mut pkl, &strides);
        pkl.push(0x89); // False: requires_grad
        pkl.extend(b"ccollections\nOrderedDict\n)R");
        pkl.extend(b"tR");
    }
    pkl.extend(b"u.");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(&pkl).unwrap();
    for (i, bytes) in data.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.start_file("archive/version", opts).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
}

/// Tiny decoders for `layers` (a few training steps on the demo photos: plumbing only, never
/// passed off as trained) in a temp folder.
pub fn tiny_decoders(layers: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let data = repo_path("assets");
    let o = layerinv(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--val",
        data.to_str().unwrap(),
        "--layers",
        layers,
        "--steps",
        "2",
        "--batch",
        "1",
        "--crop",
        "32",
        "--width",
        "0.25",
        "--out",
        out.path().to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Minimal protobuf writer for a hand-made ONNX file.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    pub fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
        varint(out, field << 3 | 2);
        varint(out, b.len() as u64);
        out.extend(b);
    }
    pub fn int(out: &mut Vec<u8>, field: u64, v: u64) {
        varint(out, field << 3);
        varint(out, v);
    }
}

/// An ONNX graph of Conv nodes with float initializers, like a tf2onnx export (NHWC input).
pub fn write_onnx(path: &std::path::Path, convs: &[(Tensor, Tensor)]) {
    let tensor = |name: &str, t: &Tensor| {
        let mut m = Vec::new();
        for &d in t.dims() {
            pb::int(&mut m, 1, d as u64);
        }
        pb::int(&mut m, 2, 1); // FLOAT
        pb::bytes(&mut m, 8, name.as_bytes());
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        pb::bytes(&mut m, 9, &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
        m
    };
    let mut graph = Vec::new();
    for (i, (w, b)) in convs.iter().enumerate() {
        let mut node = Vec::new();
        pb::bytes(&mut node, 1, format!("x{i}").as_bytes());
        pb::bytes(&mut node, 1, format!("w{i}").as_bytes());
        pb::bytes(&mut node, 1, format!("b{i}").as_bytes());
        pb::bytes(&mut node, 4, b"Conv");
        pb::bytes(&mut graph, 1, &node);
        pb::bytes(&mut graph, 5, &tensor(&format!("w{i}"), w));
        pb::bytes(&mut graph, 5, &tensor(&format!("b{i}"), b));
    }
    let mut shape = Vec::new();
    for d in [1u64, 240, 240, 3] {
        let mut dim = Vec::new();
        pb::int(&mut dim, 1, d);
        pb::bytes(&mut shape, 1, &dim);
    }
    let (mut tt, mut ty, mut input) = (Vec::new(), Vec::new(), Vec::new());
    pb::int(&mut tt, 1, 1);
    pb::bytes(&mut tt, 2, &shape);
    pb::bytes(&mut ty, 1, &tt);
    pb::bytes(&mut input, 1, b"input");
    pb::bytes(&mut input, 2, &ty);
    pb::bytes(&mut graph, 11, &input);
    let mut model = Vec::new();
    pb::int(&mut model, 1, 7); // ir_version
    pb::bytes(&mut model, 7, &graph);
    std::fs::write(path, model).unwrap();
}

/// A folder with the three demo photos and, when `broken`, a file that is not an image.
pub fn demo_photo_dir(broken: bool) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in ["chelsea.png", "coffee.png", "rocket.jpg"] {
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        std::fs::copy(repo_path("assets").join(f), d.path().join("sub").join(f)).unwrap();
    }
    if broken {
        std::fs::write(d.path().join("notes.jpg"), b"this is not a jpeg").unwrap();
    }
    d
}

/// The bundled VGG-16 trunk on the CPU (real ImageNet weights).
pub fn bundled() -> Encoder {
    ModelSource::parse("bundled").load(&Device::Cpu).unwrap()
}

/// A tiny training run of every kind at pool1 on the CPU: photos from `data` (also the
/// validation photos), into `out`, `steps` steps of batch 2 on 32-px crops at width 0.25.
pub fn tiny_run(data: &Path, out: &Path, steps: u64) -> TrainConfig {
    let mut cfg = TrainConfig::new(data.to_path_buf(), vec![Layer::POOL1], Kind::ALL.to_vec(), out.to_path_buf());
    cfg.val = Some(data.to_path_buf());
    cfg.steps = steps;
    cfg.batch = 2;
    cfg.crop = Some(32);
    cfg.width = 0.25;
    cfg.lr = 3e-3;
    cfg.checkpoint_every = 5;
    cfg.val_every = 0;
    // The start the "validation loss halves from step 20 to 80" limit of tests/train.rs was
    // measured with (0 of 15 runs failing); the default start (scales) begins nearer the images'
    // statistics, so its step-20 loss is already lower and the ratio sits near the limit (0.54
    // seen once).
    cfg.init = layerinv::train::Init::Uniform;
    cfg
}
