//! The trainer on the bundled VGG-16 trunk, tiny runs on CPU: loss goes down, broken inputs,
//! NaN handling, fresh decoders' starts; the CLI's errors and Ctrl-C. Where a run starts from
//! (checkpoints, --init-from) is in train_start.rs.
mod common;

use common::{assert_clean_failure, assert_usage_error, bundled, demo_photo_dir, layerinv, tiny_run as tiny};
use layerinv::model::decoder_file::read_decoder_meta;
use layerinv::model::Kind;
use layerinv::model::Layer;
use layerinv::train::record::RunRecord;
use layerinv::train::{checkpoint_path, train, CancelToken, Event};

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
        Event::Validation { step, results, .. } => vals.push((*step, results.iter().map(|r| r.loss).collect())),
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
        if let Event::Validation { step, results, .. } = e {
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
        let path = checkpoint_path(
            out.path(),
            &layerinv::model::DecoderSpec::new(enc.arch, Layer::POOL1, kind, 0.25).unwrap(),
        );
        let bytes = std::fs::read(&path).unwrap();
        let t = safetensors::SafeTensors::deserialize(&bytes).unwrap().tensors();
        assert!(t.iter().all(|(_, v)| v.dtype() == safetensors::Dtype::F32), "{}", path.display());
    }
}

/// Rewrite the learning-rate multiplier a checkpoint carries (as a guard's rollbacks leave it).
fn set_lr_scale(ckpt: &std::path::Path, scale: f64) {
    let bytes = std::fs::read(ckpt).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut header = meta.metadata().clone().unwrap();
    header.insert("lr_scale".into(), scale.to_string());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().map(|(n, v)| (n.to_string(), v)).collect();
    std::fs::write(ckpt, safetensors::serialize(tensors, Some(header)).unwrap()).unwrap();
}

/// A decoder whose loss explodes (a learning rate of 10,000) is rolled back to its last good
/// state with half the rate, again and again, and after four rollbacks stops at that state with
/// its files as they were; the run's other decoder (resumed at a sane rate: its checkpoint's
/// multiplier) trains on to the end untouched, and `run.json` records every rollback.
#[test]
fn a_diverging_decoder_rolls_back_with_half_the_rate_then_stops_and_the_others_go_on() {
    let enc = bundled();
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let mut cfg = tiny(data.path(), out.path(), 5);
    cfg.kinds = vec![Kind::Sae, Kind::Swwae];
    train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap();
    let sae_file = out.path().join("vgg16_pool1_sae.safetensors");
    let weights = |p: &std::path::Path| {
        let bytes = std::fs::read(p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut v: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, t)| (n, t.data().to_vec())).collect();
        v.sort();
        v
    };
    let weights_before = weights(&sae_file);
    let swwae_ckpt = out.path().join("vgg16_pool1_swwae.ckpt");
    set_lr_scale(&swwae_ckpt, 1e-7);

    cfg.resume = true;
    cfg.steps = 40;
    cfg.lr = 1e4;
    let mut events = Vec::new();
    let summary = train(&enc, &cfg, &mut |e: &Event| events.push(e.clone()), &CancelToken::default()).unwrap();

    let rollbacks: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::RolledBack { id, rollback, lr } => Some((id.clone(), rollback.clone(), *lr)),
            _ => None,
        })
        .collect();
    assert_eq!(rollbacks.len(), 4, "{rollbacks:?}");
    for (i, (id, r, lr)) in rollbacks.iter().enumerate() {
        assert_eq!(id.kind, Kind::Sae, "only the exploding decoder rolls back");
        assert_eq!(r.back_to, 5, "back to the state it was resumed in");
        assert_eq!(r.count, i as u32 + 1);
        let halved = 0.5f64.powi(i as i32 + 1);
        assert_eq!((r.lr_scale, *lr), (halved, 1e4 * halved), "the rate halves each time");
        let said = r.describe(id, *lr);
        assert!(said.contains("pool1 sae decoder diverged at step") && said.contains("learning rate halved"), "{said}");
    }
    assert_eq!(summary.failed.len(), 1, "{:?}", summary.failed);
    let (id, why) = &summary.failed[0];
    assert_eq!(id.kind, Kind::Sae);
    assert!(why.contains("diverged 4 times") && why.contains("last good state, step 5"), "{why}");
    assert_eq!(weights(&sae_file), weights_before, "its file holds its last good weights");
    assert_eq!(read_decoder_meta(&sae_file).unwrap().steps, 5);
    // The other decoder went on to the end, its steps reported after every rollback.
    let last_rollback = events.iter().rposition(|e| matches!(e, Event::RolledBack { .. })).unwrap();
    let swwae_after = events[last_rollback..]
        .iter()
        .filter(|e| matches!(e, Event::Step { losses, .. } if losses.iter().any(|(id, _)| id.kind == Kind::Swwae)))
        .count();
    assert!(swwae_after > 0);
    assert_eq!(read_decoder_meta(&out.path().join("vgg16_pool1_swwae.safetensors")).unwrap().steps, 40);
    let record = RunRecord::load(out.path()).unwrap().unwrap();
    assert_eq!(record.rollbacks.len(), 4);
    assert!(record.rollbacks.iter().all(|p| p.kind == Kind::Sae && p.back_to == 5 && p.step > 5));
    assert_eq!(record.rollbacks[0].lr, 5e3);
}

/// A learning rate that is not a positive number is refused before anything runs.
#[test]
fn a_learning_rate_that_is_not_positive_is_refused() {
    let enc = bundled();
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    for lr in [f64::NAN, 0.0, -1e-3, f64::INFINITY] {
        let mut cfg = tiny(data.path(), out.path(), 5);
        cfg.lr = lr;
        let err = train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap_err().to_string();
        assert!(err.contains("learning rate must be a positive number"), "{lr}: {err}");
    }
    assert!(!out.path().join("vgg16_pool1_sae.safetensors").exists());
}

/// `layerinv train` says each rollback in a `warning:` line naming the decoder, the step and the
/// new rate.
#[test]
fn cli_train_warns_of_each_rollback() {
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let (d, o) = (data.path().to_str().unwrap(), out.path().to_str().unwrap());
    let args = ["--threads", "2", "train", "--data", d, "--val", d, "--layers", "pool1", "--kinds", "sae"];
    let rest = ["--steps", "12", "--batch", "2", "--crop", "32", "--width", "0.25", "--lr", "1e4", "--out", o];
    let run = layerinv(&[&args[..], &rest[..]].concat());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{err}");
    let warnings: Vec<&str> =
        err.lines().filter(|l| l.starts_with("warning: pool1 sae decoder diverged at step")).collect();
    assert_eq!(warnings.len(), 4, "{err}");
    assert!(warnings[0].contains("rolled back to step 0, learning rate halved to 5.0e3"), "{err}");
    assert!(err.contains("diverged 4 times"), "{err}");
}

/// The runs the guard's first rule let through (from scratch at a learning rate of 10,000 on
/// tiny crops, each kind alone): SWWAE's loss climbed (0.04 → 118 at step 10 → 768 at step 40,
/// no rollback), dragging the median with it, and SAE's alternated above and below the limit after
/// three rollbacks and finished at about 45 times its usual loss. Both now roll back four times and
/// stop at their last good state.
#[test]
fn a_loss_that_climbs_or_alternates_is_caught_too() {
    let data = demo_photo_dir(false);
    let d = data.path().to_str().unwrap();
    for kind in ["sae", "swwae"] {
        let out = tempfile::tempdir().unwrap();
        let o = out.path().to_str().unwrap();
        let args = ["--threads", "2", "train", "--data", d, "--val", d, "--layers", "pool1", "--kinds", kind];
        let rest = ["--init", "uniform", "--steps", "40", "--batch", "2", "--crop", "32", "--width", "0.25"];
        let run = layerinv(&[&args[..], &rest[..], &["--lr", "1e4", "--out", o]].concat());
        let err = String::from_utf8_lossy(&run.stderr);
        let said = format!("warning: pool1 {kind} decoder diverged at step");
        assert_eq!(err.lines().filter(|l| l.starts_with(&said)).count(), 4, "{kind}: {err}");
        assert!(err.contains(&format!("pool1 {kind} stopped: diverged 4 times")), "{kind}: {err}");
    }
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
    assert_usage_error(&out, &["'pool9'", "--layers", "pool1, pool2"]);
    // A layer of another architecture: the model says which layers it has.
    let out = layerinv(&["train", "--data", d, "--layers", "conv4"]);
    assert_clean_failure(&out, &["conv4 is not a layer of vgg16", "pool1, pool2"]);
    // A layer or kind named twice (as extra arguments after a recipe's own can do).
    let out = layerinv(&["train", "--data", d, "--layers", "pool1,pool2", "--layers", "pool1"]);
    assert_clean_failure(&out, &["pool1 is asked for twice"]);
    let out = layerinv(&["train", "--data", d, "--layers", "pool1", "--kinds", "sae,swwae,sae"]);
    assert_clean_failure(&out, &["sae is asked for twice"]);
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
    for (arch, layer) in [(Arch::AlexNet, Layer::POOL1), (Arch::Vgg11, Layer::FC7)] {
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
    // On the CPU the step `train` takes with its encoder cache full is timed too.
    let cached = v["train_cached_img_per_s"]["pool1"].as_object().unwrap();
    assert_eq!(cached.keys().collect::<Vec<_>>(), ["sae"], "{v}");
    assert!(cached["sae"].as_f64().unwrap() > 0.0, "{v}");
}
