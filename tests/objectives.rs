//! Decoders that learn from step one: the data-dependent initialisation, the collapse check, and
//! the paper's three training objectives (each lowers its own loss; a run resumes under its
//! objective and refuses another), on the bundled VGG-16 trunk and the demo photos.
mod common;

use candle_core::{DType, Device, Tensor};
use common::{bundled, layerinv, repo_path};
use layerinv::model::decoder_file::read_decoder_meta;
use layerinv::model::Layer;
use layerinv::model::{save_decoder, Decoder, DecoderMeta, DecoderSpec, Encoder, Kind, Objective};
use layerinv::train::health::{check, COLLAPSE_DEPENDENCE};
use layerinv::train::objective::{loss, StepLoss};
use layerinv::train::{checkpoint_path, train, CancelToken, DecoderTrainer, Event, Init, TrainConfig};
use std::collections::HashMap;
use std::path::Path;

/// The three demo photos, centre-cropped to `size`, preprocessed: `(3, 3, size, size)`.
fn demo_batch(enc: &Encoder, size: usize) -> Tensor {
    let ts: Vec<Tensor> = ["chelsea.png", "coffee.png", "rocket.jpg"]
        .iter()
        .map(|f| {
            let img = image::open(repo_path("assets").join(f)).unwrap().to_rgb8();
            let img = layerinv::data::resize_centre_crop(&img, 224);
            let img = image::imageops::crop_imm(
                &img,
                (224 - size as u32) / 2,
                (224 - size as u32) / 2,
                size as u32,
                size as u32,
            )
            .to_image();
            enc.preprocess.to_tensor(&img, size, &Device::Cpu).unwrap()
        })
        .collect();
    Tensor::stack(&ts, 0).unwrap()
}

/// The measured cause of the grey pool5 decoders: freshly initialised (uniform ±1/√fan_in), a
/// deep decoder's output does not depend on its input. After the data-dependent initialisation it
/// does, and its output has the images' own colour statistics.
#[test]
fn calibration_makes_a_fresh_pool5_decoder_depend_on_its_input() {
    let enc = bundled();
    let x = demo_batch(&enc, 96);
    let f = enc.forward_to(&x, Layer::POOL5).unwrap();
    for kind in Kind::ALL {
        let mut t =
            DecoderTrainer::new(DecoderSpec::new(enc.arch, Layer::POOL5, kind, 0.25).unwrap(), &Device::Cpu).unwrap();
        let (_, before) = check(&t.decoder, &f, &x).unwrap();
        let before = before.dependence.unwrap();
        assert!(before < 1e-3, "{kind}: a fresh decoder's output already varies with the input ({before})");
        t.calibrate(&f, &x, Init::Calibrated).unwrap();
        let (y, after) = check(&t.decoder, &f, &x).unwrap();
        let after = after.dependence.unwrap();
        assert!(after > 0.2, "{kind}: after calibration the output's variance across photos is {after} of theirs");
        assert!(t.decoder.scale("pool5") > 1.0 && t.decoder.scale("pool5").is_finite());
        // Each output channel has the batch's mean.
        let mean = |t: &Tensor| {
            t.mean_keepdim(0)
                .unwrap()
                .mean_keepdim(2)
                .unwrap()
                .mean_keepdim(3)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        for (a, b) in mean(&y).iter().zip(mean(&x)) {
            assert!((a - b).abs() < 0.5, "{kind}: output channel mean {a}, images' {b}");
        }
    }
}

/// A decoder whose output ignores its input is reported collapsed, by the check and by the
/// trainer (an event and a CLI warning), where a calibrated one is not.
#[test]
fn a_decoder_forced_to_collapse_is_reported() {
    let enc = bundled();
    let spec = DecoderSpec::new(enc.arch, Layer::POOL1, Kind::Sae, 0.25).unwrap();
    // All weights zero: every hidden unit dead, the output one constant colour.
    let zeros: HashMap<String, Tensor> =
        spec.params().into_iter().map(|(n, s)| (n, Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap())).collect();
    let x = demo_batch(&enc, 64);
    let f = enc.forward_to(&x, Layer::POOL1).unwrap();
    let dead = Decoder::new(spec.clone(), candle_nn::VarBuilder::from_tensors(zeros.clone(), DType::F32, &Device::Cpu))
        .unwrap();
    let (_, h) = check(&dead, &f, &x).unwrap();
    assert!(h.dependence.unwrap() < COLLAPSE_DEPENDENCE, "{h:?}");
    let why = h.collapse().expect("reported collapsed");
    assert!(why.contains("collapsed") && why.contains("dead"), "{why}");
    let (d, u) = h.dead_units();
    assert_eq!(d, u);

    // The trainer, started from that decoder (zero weights get zero gradients but for the last
    // bias, so it stays collapsed), reports it at each validation; the CLI prints a warning.
    let dir = tempfile::tempdir().unwrap();
    let start = dir.path().join("zero.safetensors");
    let meta = DecoderMeta {
        spec: spec.clone(),
        encoder: enc.fingerprint.clone(),
        steps: 0,
        images: 0,
        earlier: Default::default(),
        val_loss: None,
        val_psnr: None,
        objective: Objective::First,
        scales: Default::default(),
    };
    save_decoder(&start, &meta, &zeros, DType::F32).unwrap();
    let data = repo_path("assets");
    let out = dir.path().join("out");
    let mut cfg = TrainConfig::new(data.clone(), vec![Layer::POOL1], vec![Kind::Sae], out.clone());
    cfg.val = Some(data.clone());
    (cfg.steps, cfg.batch, cfg.crop, cfg.width, cfg.val_every) = (6, 2, Some(32), 0.25, 3);
    cfg.init_from = Some(start.clone());
    let mut collapsed = Vec::new();
    let mut sink = |e: &Event| {
        if let Event::Collapsed { step, id, why } = e {
            collapsed.push((*step, id.to_string(), why.clone()));
        }
    };
    train(&enc, &cfg, &mut sink, &CancelToken::default()).unwrap();
    assert_eq!(collapsed.iter().map(|c| c.0).collect::<Vec<_>>(), [3, 6], "{collapsed:?}");
    assert!(collapsed.iter().all(|c| c.1 == "pool1 sae"));

    let out2 = dir.path().join("out2");
    let o = layerinv(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--val",
        data.to_str().unwrap(),
        "--layers",
        "pool1",
        "--kinds",
        "sae",
        "--steps",
        "4",
        "--batch",
        "2",
        "--crop",
        "32",
        "--width",
        "0.25",
        "--val-every",
        "2",
        "--device",
        "cpu",
        "--init-from",
        start.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("warning: pool1 sae decoder collapsed"), "{err}");
}

/// Each objective's own loss, on a fixed batch, falls under 60% of where it started after 40
/// steps on that batch, for both kinds (pool2: one mark, two stages).
#[test]
fn each_objective_lowers_its_own_loss() {
    let enc = bundled();
    let x = demo_batch(&enc, 32);
    let f = enc.forward_to(&x, Layer::POOL2).unwrap();
    for which in [StepLoss::Image, StepLoss::Marks, StepLoss::Stages] {
        for kind in Kind::ALL {
            let mut t =
                DecoderTrainer::new(DecoderSpec::new(enc.arch, Layer::POOL2, kind, 0.25).unwrap(), &Device::Cpu)
                    .unwrap();
            t.calibrate(&f, &x, Init::Calibrated).unwrap();
            let l0 = loss(&t.decoder, &f, &x, enc.preprocess, which).unwrap().to_scalar::<f32>().unwrap();
            for _ in 0..40 {
                t.step(&f, &x, enc.preprocess, 2e-3, which).unwrap();
            }
            let l1 = loss(&t.decoder, &f, &x, enc.preprocess, which).unwrap().to_scalar::<f32>().unwrap();
            assert!(l1 < 0.6 * l0, "{which:?} {kind}: loss {l0} → {l1}");
        }
    }
    // The losses differ: the marks and stages add terms to the image loss.
    let mut t =
        DecoderTrainer::new(DecoderSpec::new(enc.arch, Layer::POOL2, Kind::Sae, 0.25).unwrap(), &Device::Cpu).unwrap();
    t.calibrate(&f, &x, Init::Calibrated).unwrap();
    let l = |w| loss(&t.decoder, &f, &x, enc.preprocess, w).unwrap().to_scalar::<f32>().unwrap();
    assert!(l(StepLoss::Marks) > l(StepLoss::Image) * 1.01);
    assert_ne!(l(StepLoss::Stages), l(StepLoss::Image));
}

/// `layerwise` trains its stages alone, then fine-tunes the stack on the image for the last share.
#[test]
fn layerwise_switches_to_the_image_loss_for_its_fine_tune() {
    let at = |step| StepLoss::at(Objective::Layerwise, step, 100, 0.2);
    assert_eq!((at(0), at(79), at(80), at(99)), (StepLoss::Stages, StepLoss::Stages, StepLoss::Image, StepLoss::Image));
    assert_eq!(StepLoss::at(Objective::All, 99, 100, 0.2), StepLoss::Marks);
    assert_eq!(StepLoss::at(Objective::First, 0, 100, 0.2), StepLoss::Image);
}

fn run(
    enc: &Encoder,
    out: &Path,
    objective: Objective,
    steps: u64,
    cancel_at: Option<u64>,
    resume: bool,
) -> layerinv::Result<()> {
    let data = repo_path("assets");
    let mut cfg = TrainConfig::new(data.clone(), vec![Layer::POOL2], Kind::ALL.to_vec(), out.to_path_buf());
    cfg.val = Some(data);
    (cfg.steps, cfg.batch, cfg.crop, cfg.width, cfg.val_every, cfg.checkpoint_every) =
        (steps, 2, Some(32), 0.25, 0, 100);
    (cfg.objective, cfg.resume) = (objective, resume);
    let cancel = CancelToken::default();
    let c2 = cancel.clone();
    let mut sink = |e: &Event| {
        if let Event::Step { step, .. } = e {
            if Some(*step) == cancel_at {
                c2.cancel();
            }
        }
    };
    train(enc, &cfg, &mut sink, &cancel).map(|_| ())
}

/// A run is recorded with its objective, resumes under it to the step count, and a resume under
/// another objective is refused naming the checkpoint.
#[test]
fn objectives_are_recorded_and_resume() {
    let enc = bundled();
    for objective in [Objective::All, Objective::Layerwise] {
        let out = tempfile::tempdir().unwrap();
        run(&enc, out.path(), objective, 10, Some(4), false).unwrap();
        let spec = DecoderSpec::new(enc.arch, Layer::POOL2, Kind::Sae, 0.25).unwrap(); // the first decoder the run loads
        let ckpt = checkpoint_path(out.path(), &spec);
        let other = if objective == Objective::All { Objective::First } else { Objective::All };
        let err = run(&enc, out.path(), other, 10, None, true).unwrap_err().to_string();
        assert!(err.contains(ckpt.to_str().unwrap()) && err.contains(&format!("--objective {objective}")), "{err}");
        run(&enc, out.path(), objective, 10, None, true).unwrap();
        for kind in Kind::ALL {
            let meta = read_decoder_meta(&out.path().join(format!("vgg16_pool2_{kind}.safetensors"))).unwrap();
            assert_eq!((meta.steps, meta.objective), (10, objective));
            // The input scales travel with the decoder: the code's and pool1's (the mark).
            assert!(
                meta.scales.get("pool2").is_some_and(|s| *s > 1.0) && meta.scales.contains_key("pool1"),
                "{:?}",
                meta.scales
            );
        }
    }
}

/// `--init uniform` changes nothing; `scales` sets the input and output scales and the last layer
/// only (every hidden layer keeps its uniform weights); `calibrated` rescales every layer.
#[test]
fn the_three_starts_touch_what_they_say() {
    use layerinv::train::health::calibrate;
    let enc = bundled();
    let x = demo_batch(&enc, 64);
    let f = enc.forward_to(&x, Layer::POOL2).unwrap();
    let spec = DecoderSpec::new(enc.arch, Layer::POOL2, Kind::Sae, 0.25).unwrap();
    let last = spec.plan().iter().rev().find_map(|op| op.params().first().map(|p| p.0.clone())).unwrap();
    let mut dec = DecoderTrainer::new(spec, &Device::Cpu).unwrap().decoder;
    assert!(calibrate(&mut dec, &f, &x, Init::Uniform).unwrap().is_empty() && dec.scales.is_empty());
    let names = |u: Vec<(String, Tensor)>| u.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    let scales = names(calibrate(&mut dec, &f, &x, Init::Scales).unwrap());
    assert_eq!(scales.len(), 2, "{scales:?}");
    assert!(scales.contains(&last), "{scales:?} lacks {last}");
    assert!(dec.scale("pool2") > 1.0 && dec.scale(layerinv::model::OUTPUT_SCALE) > 1.0, "{:?}", dec.scales);
    let all = names(calibrate(&mut dec, &f, &x, Init::Calibrated).unwrap());
    assert_eq!(all.len(), dec.named_weights().len() * 2);
}
