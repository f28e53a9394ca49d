//! Where a training run starts from, tiny runs on the bundled VGG-16 trunk on CPU: its own
//! checkpoints (cancelled and resumed, refused when corrupted or of another width, decoders at
//! different steps in one run) and another decoder's weights (`--init-from`, and the record of
//! the training behind them).
mod common;

use common::{bundled, demo_photo_dir, tiny_run as tiny};
use layerinv::model::decoder_file::read_decoder_meta;
use layerinv::model::Layer;
use layerinv::model::{Earlier, Kind};
use layerinv::train::record::{RunRecord, RunState};
use layerinv::train::{checkpoint_path, train, CancelToken, Event};

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
    let spec = layerinv::model::DecoderSpec::new(enc.arch, Layer::POOL1, Kind::Swwae, 0.25).unwrap();
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
    let (dec, meta) = layerinv::model::load_decoder(
        &out.path().join("vgg16_pool1_swwae.safetensors"),
        &enc,
        Layer::POOL1,
        Kind::Swwae,
    )
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
    let spec = layerinv::model::DecoderSpec::new(enc.arch, Layer::POOL1, Kind::Sae, 0.25).unwrap();
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
fn init_from_copies_weights_of_the_same_layer_and_refuses_others() {
    let enc = bundled();
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let mut cfg = tiny(data.path(), out.path(), 3);
    cfg.kinds = vec![Kind::Sae];
    train(&enc, &cfg, &mut |_: &Event| {}, &CancelToken::default()).unwrap();
    let sae_file = out.path().join("vgg16_pool1_sae.safetensors");

    let spec = layerinv::model::DecoderSpec::new(enc.arch, Layer::POOL1, Kind::Swwae, 0.25).unwrap();
    let mut t = layerinv::train::DecoderTrainer::new(spec, enc.device()).unwrap();
    t.init_from(&sae_file, &enc.fingerprint).unwrap();
    let (saved, _) = layerinv::model::weights::read_safetensors(&sae_file, enc.device()).unwrap();
    for (name, w) in t.tensors() {
        let s = saved[&name].to_dtype(candle_core::DType::F32).unwrap();
        let diff = w.sub(&s).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0, "{name}");
    }

    let other = layerinv::model::DecoderSpec::new(enc.arch, Layer::POOL2, Kind::Swwae, 0.25).unwrap();
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
