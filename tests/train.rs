//! The trainer on the bundled VGG-16 trunk, tiny runs on CPU: loss goes down, cancel and resume,
//! broken inputs and checkpoints, NaN handling; the CLI's Ctrl-C.
mod common;

use common::{assert_clean_failure, assert_usage_error, demo_photo_dir, layerinv};
use layerinv::model::decoder_file::read_decoder_meta;
use layerinv::model::{Earlier, Encoder, Kind, ModelSource};
use layerinv::train::record::{RunRecord, RunState};
use layerinv::train::{checkpoint_path, train, CancelToken, Event, TrainConfig};
use std::path::Path;

fn bundled() -> Encoder {
    ModelSource::parse("bundled").load(&candle_core::Device::Cpu).unwrap()
}

fn tiny(data: &Path, out: &Path, steps: u64) -> TrainConfig {
    let mut cfg = TrainConfig::new(data.to_path_buf(), vec!["pool1".into()], Kind::ALL.to_vec(), out.to_path_buf());
    cfg.val = Some(data.to_path_buf());
    cfg.steps = steps;
    cfg.batch = 2;
    cfg.crop = Some(32);
    cfg.width = 0.25;
    cfg.lr = 3e-3;
    cfg.checkpoint_every = 5;
    cfg.val_every = 0;
    // The start the "validation loss halves from step 20 to 80" limit was measured with (0 of 15
    // runs failing); the default start (scales) begins nearer the images' statistics, so its
    // step-20 loss is already lower and the ratio sits near the limit (0.54 seen once).
    cfg.init = layerinv::train::Init::Uniform;
    cfg
}

/// Every kind's validation loss (the same held-out crops each time) at the end of the run is
/// under half of what it was at the first validation, step 20 of 80, while the learning rate was
/// still warming up. (Per-batch training losses of 2 random crops swing by 3× with the crops'
/// content, so they are no measure of learning over a run this short.)
fn assert_validation_halves(vals: &[(u64, Vec<f64>)]) {
    assert_eq!(vals.iter().map(|v| v.0).collect::<Vec<_>>(), [20, 40, 60, 80]);
    let (first, last) = (&vals[0].1, &vals[3].1);
    let n = Kind::ALL.len();
    assert_eq!((first.len(), last.len()), (n, n));
    for k in 0..n {
        assert!(
            last[k] < 0.5 * first[k],
            "decoder {k}: validation loss {} at step 20 → {} at step 80",
            first[k],
            last[k]
        );
    }
}

#[test]
fn a_few_steps_lower_the_loss_and_broken_files_are_skipped() {
    let enc = bundled();
    let data = demo_photo_dir(true);
    let out = tempfile::tempdir().unwrap();
    let mut vals = Vec::new();
    let mut skipped = Vec::new();
    let mut sink = |e: &Event| match e {
        Event::Validation { step, results } => vals.push((*step, results.iter().map(|r| r.loss).collect())),
        Event::Skipped(s) => skipped.push(s.path.clone()),
        _ => {}
    };
    let val = demo_photo_dir(false);
    let mut cfg = tiny(data.path(), out.path(), 80);
    cfg.val = Some(val.path().to_path_buf());
    cfg.val_every = 20;
    let summary = train(&enc, &cfg, &mut sink, &CancelToken::default()).unwrap();
    assert!(!summary.cancelled);
    assert_validation_halves(&vals);
    // The run's record keeps the curve: every kind at steps 20, 40, 60, 80, as the events said.
    let record = RunRecord::load(out.path()).unwrap().unwrap();
    let steps: Vec<u64> = record.curve.iter().map(|p| p.step).collect();
    assert_eq!(steps, [20, 40, 60, 80].map(|s| [s; Kind::ALL.len()]).concat());
    let losses: Vec<f64> = vals.iter().flat_map(|(_, l)| l.clone()).collect();
    // (to JSON's last digit: serde_json reads floats back within an ulp)
    assert_eq!(record.curve.len(), losses.len());
    for (p, l) in record.curve.iter().zip(&losses) {
        assert!((p.loss - l).abs() <= 1e-12 * l.abs(), "{} vs {l}", p.loss);
    }
    assert!(skipped.iter().any(|p| p.ends_with("notes.jpg")), "{skipped:?}");
    for kind in Kind::ALL {
        let meta = read_decoder_meta(&out.path().join(format!("vgg16_pool1_{kind}.safetensors"))).unwrap();
        assert_eq!(meta.steps, 80);
        assert_eq!(meta.images, 160);
    }
}

/// Mixed precision (`--dtype bf16`): the same run learns as well, validates (bf16
/// reconstructions measured in f32) and saves decoders with f32 master weights behind them.
#[test]
fn bf16_mixed_precision_lowers_the_loss_too() {
    let enc = bundled();
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let (mut vals, mut psnrs) = (Vec::new(), Vec::new());
    let mut sink = |e: &Event| {
        if let Event::Validation { step, results } = e {
            vals.push((*step, results.iter().map(|r| r.loss).collect()));
            psnrs.extend(results.iter().map(|r| r.psnr));
        }
    };
    let mut cfg = tiny(data.path(), out.path(), 80);
    cfg.precision = layerinv::device::Precision::Bf16;
    cfg.val_every = 20;
    train(&enc, &cfg, &mut sink, &CancelToken::default()).unwrap();
    assert_validation_halves(&vals);
    assert!(!psnrs.is_empty() && psnrs.iter().all(|p| p.is_finite() && *p > 5.0), "{psnrs:?}");
    for kind in Kind::ALL {
        let path =
            checkpoint_path(out.path(), &layerinv::model::DecoderSpec::new(enc.arch, "pool1", kind, 0.25).unwrap());
        let bytes = std::fs::read(&path).unwrap();
        let t = safetensors::SafeTensors::deserialize(&bytes).unwrap().tensors();
        assert!(t.iter().all(|(_, v)| v.dtype() == safetensors::Dtype::F32), "{}", path.display());
    }
}

#[test]
fn cancel_then_resume_reaches_the_step_count() {
    let enc = bundled();
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let cancel = CancelToken::default();
    let c2 = cancel.clone();
    let mut sink = |e: &Event| {
        if let Event::Step { step: 7, .. } = e {
            c2.cancel();
        }
    };
    let cfg = tiny(data.path(), out.path(), 12);
    let s = train(&enc, &cfg, &mut sink, &cancel).unwrap();
    assert!(s.cancelled);
    let spec = layerinv::model::DecoderSpec::new(enc.arch, "pool1", Kind::Swwae, 0.25).unwrap();
    let ckpt = checkpoint_path(out.path(), &spec);
    let (_, meta) = layerinv::train::DecoderTrainer::resume(
        &ckpt,
        spec.clone(),
        &enc.fingerprint,
        layerinv::model::Objective::First,
        enc.device(),
    )
    .unwrap();
    assert_eq!(meta.steps, 7, "the cancelled run saves where it stopped");
    // The run's record says so, for the app's decoder sets.
    let record = RunRecord::load(out.path()).unwrap().expect("run.json");
    assert_eq!((record.state, record.step, record.settings.steps), (RunState::Cancelled, 7, 12));
    assert_eq!(record.settings.kinds, Kind::ALL);
    // By name in the file, as records written before the settings were the config itself.
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(out.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(raw["settings"]["kinds"], serde_json::json!(Kind::ALL.map(|k| k.name())));
    assert_eq!(raw["settings"]["dtype"], "fp32");
    // The lock goes with the run. (A process another test spawns at that moment holds a copy of
    // the lock's descriptor between its fork and its exec, so allow it a moment to let go.)
    let released = (0..50).any(|_| {
        let free = !RunRecord::is_live(out.path());
        if !free {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        free
    });
    assert!(released, "the lock goes with the run");

    let mut resumed_from = Vec::new();
    let mut steps_seen = Vec::new();
    let mut sink = |e: &Event| match e {
        Event::Started { decoders, .. } => resumed_from = decoders.iter().map(|(_, s)| *s).collect(),
        Event::Step { step, .. } => steps_seen.push(*step),
        _ => {}
    };
    let mut cfg = cfg;
    cfg.resume = true;
    let s = train(&enc, &cfg, &mut sink, &CancelToken::default()).unwrap();
    assert!(!s.cancelled);
    assert_eq!(resumed_from, vec![7; Kind::ALL.len()]);
    assert_eq!(steps_seen, vec![8, 9, 10, 11, 12]);
    let resumed = RunRecord::load(out.path()).unwrap().expect("run.json");
    assert_eq!((resumed.state, resumed.step, resumed.started), (RunState::Finished, 12, record.started));
    let (dec, meta) =
        layerinv::model::load_decoder(&out.path().join("vgg16_pool1_swwae.safetensors"), &enc, "pool1", Kind::Swwae)
            .unwrap();
    assert_eq!(meta.steps, 12);
    assert_eq!(dec.spec, spec);
    assert!(meta.val_psnr.is_some_and(|p| p.is_finite()));
}

#[test]
fn a_corrupted_checkpoint_is_refused_by_name() {
    let enc = bundled();
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let mut cfg = tiny(data.path(), out.path(), 2);
    train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap();
    let spec = layerinv::model::DecoderSpec::new(enc.arch, "pool1", Kind::Sae, 0.25).unwrap();
    let ckpt = checkpoint_path(out.path(), &spec);
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() / 2]).unwrap();
    cfg.resume = true;
    cfg.steps = 4;
    let err = train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap_err().to_string();
    assert!(err.contains("vgg16_pool1_sae.ckpt") && err.contains("truncated or corrupt"), "{err}");
    assert_eq!(err.lines().count(), 1);

    // A checkpoint of another width is refused too, with what it is and what was asked.
    std::fs::write(&ckpt, &bytes).unwrap();
    cfg.width = 0.5;
    let err = train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap_err().to_string();
    assert!(err.contains("width 0.25") && err.contains("width 0.5"), "{err}");
}

#[test]
fn a_nan_loss_stops_that_decoder_and_keeps_its_checkpoint() {
    let enc = bundled();
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let mut cfg = tiny(data.path(), out.path(), 5);
    cfg.kinds = vec![Kind::Sae];
    train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap();
    let dec_file = out.path().join("vgg16_pool1_sae.safetensors");
    let before = std::fs::read(&dec_file).unwrap();
    cfg.resume = true;
    cfg.steps = 10;
    cfg.lr = f64::NAN;
    let mut failures = Vec::new();
    let err = train(
        &enc,
        &cfg,
        &mut |e: &Event| {
            if let Event::DecoderFailed { error, .. } = e {
                failures.push(error.clone())
            }
        },
        &CancelToken::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("NaN") && failures[0].contains("pool1 sae"), "{}", failures[0]);
    assert!(err.contains("every decoder failed"), "{err}");
    assert_eq!(std::fs::read(&dec_file).unwrap(), before, "the last good decoder file stays");
    assert_eq!(read_decoder_meta(&dec_file).unwrap().steps, 5);
}

#[test]
fn cli_train_errors_are_one_line() {
    let data = demo_photo_dir(false);
    let d = data.path().to_str().unwrap();
    let out = layerinv(&["train", "--data", "/no/such/folder", "--layers", "pool1"]);
    assert_clean_failure(&out, &["/no/such/folder"]);
    let out = layerinv(&["train", "--data", d, "--layers", "fc7"]);
    assert_clean_failure(&out, &["fc7 is not available"]);
    let empty = tempfile::tempdir().unwrap();
    let out = layerinv(&["train", "--data", empty.path().to_str().unwrap(), "--layers", "pool1"]);
    assert_clean_failure(&out, &["no training images"]);
    // Choices the command line knows are checked as it is read: one line, exit code 2, the choices.
    let out = layerinv(&["train", "--data", d, "--kinds", "vae"]);
    assert_usage_error(&out, &["'vae'", "--kinds", "sae, swwae"]);
    let out = layerinv(&["train", "--data", d, "--dtype", "fp16"]);
    assert_usage_error(&out, &["'fp16'", "--dtype", "fp32, bf16"]);
    let out = layerinv(&["bench", "--device", "cpu", "--dtype", "half"]);
    assert_usage_error(&out, &["'half'", "--dtype", "fp32, bf16"]);
    let out = layerinv(&["train", "--data", d, "--layers", "pool9"]);
    assert_clean_failure(&out, &["pool9 is not a layer of vgg16", "pool1, pool2"]);
}

#[test]
fn init_from_copies_weights_of_the_same_layer_and_refuses_others() {
    let enc = bundled();
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let mut cfg = tiny(data.path(), out.path(), 3);
    cfg.kinds = vec![Kind::Sae];
    train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap();
    let sae_file = out.path().join("vgg16_pool1_sae.safetensors");

    let spec = layerinv::model::DecoderSpec::new(enc.arch, "pool1", Kind::Swwae, 0.25).unwrap();
    let mut t = layerinv::train::DecoderTrainer::new(spec, enc.device()).unwrap();
    t.init_from(&sae_file, &enc.fingerprint).unwrap();
    let (saved, _) = layerinv::model::weights::read_safetensors(&sae_file, enc.device()).unwrap();
    for (name, w) in t.tensors() {
        let s = saved[&name].to_dtype(candle_core::DType::F32).unwrap();
        let diff = w.sub(&s).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0, "{name}");
    }

    let other = layerinv::model::DecoderSpec::new(enc.arch, "pool2", Kind::Swwae, 0.25).unwrap();
    let mut t = layerinv::train::DecoderTrainer::new(other, enc.device()).unwrap();
    let err = t.init_from(&sae_file, &enc.fingerprint).unwrap_err().to_string();
    assert!(err.contains("vgg16_pool1_sae.safetensors") && err.contains("pool1") && err.contains("pool2"), "{err}");
}

/// A decoder started from another's file (`--init-from`, e.g. the bundled one on another
/// machine) records the training behind those weights beside its own run's steps, over every
/// earlier start, and keeps it when resumed.
#[test]
fn init_from_keeps_the_record_of_the_training_before() {
    let enc = bundled();
    let data = demo_photo_dir(false);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let file = |d: &tempfile::TempDir| d.path().join("vgg16_pool1_sae.safetensors");
    let mut cfg = tiny(data.path(), dirs[0].path(), 3);
    cfg.kinds = vec![Kind::Sae];
    train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap();
    let first = read_decoder_meta(&file(&dirs[0])).unwrap();
    assert_eq!((first.steps, first.earlier), (3, Earlier::default()));
    assert!(!first.training().contains("started from"), "{}", first.training());

    (cfg.out, cfg.steps, cfg.init_from) = (dirs[1].path().to_path_buf(), 2, Some(file(&dirs[0])));
    train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap();
    let second = read_decoder_meta(&file(&dirs[1])).unwrap();
    assert_eq!(second.steps, 2, "its own run's steps drive its schedule");
    assert_eq!(second.earlier, Earlier { steps: 3, images: first.images });
    assert!(second.training().contains("after 3 steps"), "{}", second.training());

    // Resumed further: its own steps grow, the record of before stays.
    (cfg.steps, cfg.resume) = (4, true);
    train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap();
    let resumed = read_decoder_meta(&file(&dirs[1])).unwrap();
    assert_eq!((resumed.steps, resumed.earlier), (4, second.earlier));

    // Started again from that one: both earlier runs count.
    (cfg.out, cfg.steps, cfg.resume, cfg.init_from) = (dirs[2].path().to_path_buf(), 1, false, Some(file(&dirs[1])));
    train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap();
    let third = read_decoder_meta(&file(&dirs[2])).unwrap();
    assert_eq!(third.earlier, Earlier { steps: 3 + 4, images: first.images + resumed.images });
}

#[test]
fn decoders_at_different_steps_share_a_run_without_extra_validations() {
    let enc = bundled();
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let mut cfg = tiny(data.path(), out.path(), 6);
    cfg.kinds = vec![Kind::Sae];
    train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap();
    // SAE resumes at 6 and is done after 2 batches; SWWAE starts at 0 and needs all 8.
    cfg.kinds = Kind::ALL.to_vec();
    cfg.resume = true;
    cfg.steps = 8;
    cfg.val_every = 4;
    cfg.checkpoint_every = 4;
    let (mut steps, mut vals, mut ckpts) = (Vec::new(), 0, 0);
    train(
        &enc,
        &cfg,
        &mut |e: &Event| match e {
            Event::Step { step, .. } => steps.push(*step),
            Event::Validation { .. } => vals += 1,
            Event::Checkpoint { .. } => ckpts += 1,
            _ => {}
        },
        &CancelToken::default(),
    )
    .unwrap();
    assert_eq!(steps, (1..=8).collect::<Vec<u64>>());
    assert_eq!(vals, 2, "validation after batches 4 and 8 only");
    assert_eq!(ckpts, 2, "a checkpoint after batch 4 and the final save");
    for kind in Kind::ALL {
        assert_eq!(read_decoder_meta(&out.path().join(format!("vgg16_pool1_{kind}.safetensors"))).unwrap().steps, 8);
    }
}

/// A fresh decoder starts as PyTorch's layers do: every weight and bias uniform in ±1/√fan_in
/// (fan_in = cin·k² for a convolution, cout·k² for a transposed one, din for a fully connected
/// layer). Candle's Kaiming-normal default trained VGG-16 pool1 ten times worse in 300 steps.
#[test]
fn fresh_decoders_start_uniform_within_one_over_root_fan_in() {
    use layerinv::model::DecOp;
    use layerinv::model::{Arch, DecoderSpec};
    let dev = candle_core::Device::Cpu;
    let (mut convs, mut deconvs, mut linears) = (0, 0, 0);
    for (arch, layer) in [(Arch::AlexNet, "pool1"), (Arch::Vgg11, "fc7")] {
        let spec = DecoderSpec::new(arch, layer, Kind::Sae, 0.25).unwrap();
        let t = layerinv::train::DecoderTrainer::new(spec.clone(), &dev).unwrap();
        let tensors = t.tensors();
        for op in spec.plan() {
            let fan_in = match &op {
                DecOp::Conv { cin, k, .. } => (convs += 1, cin * k * k).1,
                DecOp::Deconv { cout, k, .. } => (deconvs += 1, cout * k * k).1,
                DecOp::Linear { din, .. } => (linears += 1, *din).1,
                DecOp::Reshape { .. } | DecOp::Unpool { .. } | DecOp::Spread { .. } | DecOp::Mark { .. } => continue,
            };
            let bound = 1.0 / (fan_in as f64).sqrt();
            for (name, _) in op.params() {
                let v = tensors[&name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let max = v.iter().fold(0f64, |m, x| m.max(x.abs() as f64));
                assert!(max <= bound * (1.0 + 1e-6), "{arch} {layer} {name}: |value| up to {max}, bound {bound}");
                if v.len() >= 1000 {
                    let std = (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
                    let want = bound / 3f64.sqrt();
                    assert!((std / want - 1.0).abs() < 0.1, "{arch} {layer} {name}: spread {std}, uniform's {want}");
                }
            }
        }
    }
    assert!(convs > 0 && deconvs > 0 && linears > 0, "covered {convs} conv, {deconvs} deconv, {linears} fc layers");
}

/// `bench --json` says how many threads the work ran on (`--threads 1`: 1, not the machine's
/// cores) and times only the kinds asked for.
#[test]
fn bench_reports_its_threads_and_kinds() {
    let args = ["--threads", "1", "bench", "--device", "cpu", "--batch", "1", "--steps", "1", "--layers", "pool1"];
    let o = layerinv(&[&args[..], &["--kinds", "sae", "--json"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["threads"], 1, "{v}");
    let pool1 = v["train_img_per_s"]["pool1"].as_object().unwrap();
    assert_eq!(pool1.keys().collect::<Vec<_>>(), ["sae"], "{v}");
}
