//! The desktop app under egui_kittest (no GPU, no window): it starts and shows reconstructions,
//! the layer picker changes the view, dropped files load (bad ones keep the old image), and the
//! Train dialog starts and cancels a tiny run on CPU.
#![cfg(feature = "gui")]
mod common;

use common::gui::{drop_file, harness, harness_with, shows_layer, wait_for};
use common::repo_path;
use eframe::egui;
use egui_kittest::kittest::NodeT as _;
use egui_kittest::kittest::Queryable as _;
use egui_kittest::Harness;
use layerinv::app::training::RunState;
use layerinv::app::LayerinvApp;
use layerinv::model::Kind;
use layerinv::model::Layer;

#[test]
fn starts_and_the_layer_picker_changes_the_view() {
    let dec = common::tiny_decoders("pool1,pool2");
    let mut h = harness(dec.path(), None, Layer::POOL2);
    wait_for(&mut h, "pool2 reconstructions", |a| shows_layer(a, Layer::POOL2));
    for kind in Kind::ALL {
        assert!(h.query_all_by_label(&format!("{} from pool2", kind.label())).count() > 0, "{kind}");
    }
    // Decoders missing from the first folder come from the bundled ones; layers the model cannot
    // serve are disabled with the reason (the bundled trunk has no classifier head).
    assert!(h.state().layer_unavailable(Layer::POOL4).is_none());
    assert!(h.state().layer_unavailable(Layer::FC6).is_some_and(|w| w.contains("classifier head")));

    h.get_by_label("pool1").click();
    wait_for(&mut h, "pool1 reconstructions", |a| shows_layer(a, Layer::POOL1));
    assert!(h.query_all_by_label("SWWAE from pool1").count() > 0);
    assert_eq!(h.query_all_by_label("SWWAE from pool2").count(), 0);
    // Each pane shows pool1's floor for this photo: the photo squeezed to 112 px and blown back up.
    let photo = h.state().photo().map(|p| p.input.clone()).unwrap();
    let floor = layerinv::recon::thumbnail(&photo, 112);
    let floor = layerinv::train::metrics::psnr(layerinv::train::metrics::mse(&floor, &photo));
    let want = format!("floor {floor:.1} dB");
    assert_eq!(h.query_all_by_label_contains(&want).count(), Kind::ALL.len(), "{want}: a pane per kind");

    // → steps back to pool2 (the next available layer); its result is cached, so no recompute.
    h.key_press(egui::Key::ArrowRight);
    h.step();
    assert_eq!(h.state().layer, "pool2");
    assert!(shows_layer(h.state(), Layer::POOL2));
}

#[test]
fn a_dropped_photo_loads_and_a_bad_one_keeps_the_old() {
    let dec = common::tiny_decoders("pool1,pool2");
    let mut h = harness(dec.path(), None, Layer::POOL1);
    wait_for(&mut h, "the demo photo", |a| shows_layer(a, Layer::POOL1));
    let coffee = repo_path("assets/coffee.png");
    drop_file(&mut h, coffee.clone());
    wait_for(&mut h, "the dropped photo", |a| {
        a.photo().is_some_and(|p| p.path == coffee) && shows_layer(a, Layer::POOL1)
    });

    let bad = repo_path("tests/data/odd/not_an_image.jpg");
    drop_file(&mut h, bad);
    wait_for(&mut h, "the error", |a| a.last_error.is_some() && a.photos.loading.is_none());
    let err = h.state().last_error.clone().unwrap();
    assert!(err.contains("not_an_image.jpg"), "{err}");
    assert_eq!(h.state().photo().unwrap().path, coffee, "the previous photo stays");
    h.get_by_label_contains("Error:");
}

#[test]
fn the_train_dialog_starts_and_cancels_a_tiny_run() {
    let dec = common::tiny_decoders("pool1,pool2");
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(dec.path(), None, Layer::POOL1);
    wait_for(&mut h, "the model", |a| a.model.is_some() && shows_layer(a, Layer::POOL1));
    start_tiny_run(&mut h, Some(out.path()));
    wait_for(&mut h, "training steps", |a| a.training.as_ref().is_some_and(|r| r.step >= 3));
    h.get_by_label("Cancel").click();
    h.step();
    wait_for(&mut h, "the cancelled run", |a| a.training.as_ref().is_some_and(|r| r.state != RunState::Running));
    let run = h.state().training.as_ref().unwrap();
    assert_eq!(run.state, RunState::Cancelled);
    assert!(!run.curves.is_empty() && run.curves.iter().all(|(_, c)| !c.is_empty()));
    assert!(out.path().join("vgg16_pool1_sae.ckpt").is_file());
    assert!(out.path().join("vgg16_pool1_swwae.safetensors").is_file());
}

#[test]
fn the_model_menu_moves_the_work_to_another_device() {
    let dec = common::tiny_decoders("pool2");
    let mut h = harness(dec.path(), None, Layer::POOL2);
    wait_for(&mut h, "pool2 reconstructions", |a| shows_layer(a, Layer::POOL2));
    let open_menu = |h: &mut Harness<'static, LayerinvApp>| {
        h.get_by_label("Model").click();
        h.run_steps(3);
        h.get_by_label("Compute on");
    };
    open_menu(&mut h);
    if candle_core::utils::cuda_is_available() {
        // CUDA build with a GPU: the menu moves the work there and back, the panes come back.
        h.get_by_label("CUDA GPU").click();
        h.run_steps(3);
        wait_for(&mut h, "pool2 reconstructions on CUDA", |a| {
            a.device_name().starts_with("CUDA") && shows_layer(a, Layer::POOL2)
        });
        open_menu(&mut h);
        h.get_by_label("CPU").click();
        h.run_steps(3);
        wait_for(&mut h, "pool2 reconstructions on the CPU", |a| {
            a.device_name().starts_with("CPU") && shows_layer(a, Layer::POOL2)
        });
    } else {
        // A build without CUDA: the CUDA item is greyed out; clicking it, or the CPU the work is
        // already on, moves nothing.
        assert!(
            h.get_by_label("CUDA GPU").accesskit_node().is_disabled(),
            "the CUDA item must be disabled without CUDA"
        );
        assert!(!h.get_by_label("CPU").accesskit_node().is_disabled());
        h.get_by_label("CUDA GPU").click();
        h.run_steps(3);
        open_menu(&mut h);
        h.get_by_label("CPU").click();
        h.run_steps(3);
        assert!(h.state().device_name().starts_with("CPU"), "{}", h.state().device_name());
        assert!(shows_layer(h.state(), Layer::POOL2));
        // Asked for from outside the menu (as `--device cuda` does), CUDA is an error in the
        // status bar and the CPU worker stays.
        h.state_mut().set_device("cuda");
        h.step();
        h.get_by_label_contains("built without CUDA");
        assert!(shows_layer(h.state(), Layer::POOL2));
    }
}

/// Train > Train decoders…, a long tiny run on the demo photos (pool1 as selected), Start; `out`:
/// the dialog's Save to (`None`: its default, a new run folder).
fn start_tiny_run(h: &mut Harness<'static, LayerinvApp>, out: Option<&std::path::Path>) {
    h.get_by_label("Train").click();
    h.run_steps(3);
    h.get_by_label("Train decoders…").click();
    h.run_steps(3);
    {
        let d = h.state_mut().train_dialog.as_mut().expect("the dialog is open");
        assert!(d.out.is_empty(), "a run gets a new folder of its own by default");
        d.data = repo_path("assets").display().to_string();
        d.settings.steps = 100_000;
        d.crop = 32;
        d.settings.batch = 1;
        d.settings.width = 0.25;
        d.device = "cpu".into();
        if let Some(out) = out {
            d.out = out.display().to_string();
        }
    }
    h.step();
    h.get_by_label("Start training").click();
    h.step();
}

/// The app with no `--decoders` folder (the bundled set first) and `data` as the user's layerinv
/// folder (runs, trash), on the demo photo at pool1.
fn fresh_user(data: &std::path::Path, storage: Option<common::gui::MemoryStorage>) -> Harness<'static, LayerinvApp> {
    let opts = layerinv::app::AppOptions {
        data_dir: Some(data.to_path_buf()),
        decoders: None,
        ..common::gui::options(data, None, Some(Layer::POOL1))
    };
    harness_with(opts, storage)
}

/// Where each pane's decoder comes from.
/// How many kinds the bundled set has decoders for (pool1).
fn bundled_kinds() -> usize {
    let dir = layerinv::model::source::weights_dir();
    Kind::ALL.iter().filter(|k| dir.join(format!("vgg16_pool1_{k}.safetensors")).is_file()).count()
}

fn pane_dirs(app: &LayerinvApp, layer: Layer) -> Vec<std::path::PathBuf> {
    match app.panes(layer) {
        Some(Ok(panes)) => panes.iter().map(|p| p.source.dir.clone()).collect(),
        _ => Vec::new(),
    }
}

/// The trial run of issue 28: a run started from the Train dialog and cancelled never replaces the
/// bundled decoders, during the run (its newest decoders show in a labelled preview row) or after
/// a restart; the run is one click away in the Decoders menu, and forgetting it moves its folder
/// to the trash.
#[test]
fn a_trial_run_never_hides_the_bundled_decoders() {
    let data = tempfile::tempdir().unwrap();
    let bundled = layerinv::model::source::weights_dir();
    let mut h = fresh_user(data.path(), None);
    wait_for(&mut h, "pool1 reconstructions", |a| shows_layer(a, Layer::POOL1));
    let n = bundled_kinds();
    assert_eq!(pane_dirs(h.state(), Layer::POOL1), vec![bundled.clone(); n]);
    assert_eq!(h.query_all_by_label("bundled").count(), n, "each pane names its decoder");

    start_tiny_run(&mut h, None);
    // The first checkpoint (step 20) shows in a preview row; the chosen panes stay bundled.
    // The run trains every kind, so its preview has a pane per kind.
    let all = Kind::ALL.len();
    wait_for(&mut h, "the training preview", |a| a.preview(Layer::POOL1).is_some_and(|p| p.panes.len() == all));
    assert_eq!(h.query_all_by_label_contains("training preview, step ").count(), all);
    let run_dir = h.state().training.as_ref().unwrap().out_dir();
    assert!(run_dir.starts_with(data.path().join("runs")), "{}", run_dir.display());
    h.get_by_label("Cancel").click();
    h.step();
    wait_for(&mut h, "the cancelled run", |a| a.training.as_ref().is_some_and(|r| !r.is_running()));
    wait_for(&mut h, "its folder read again", |a| {
        a.decoders.set(&run_dir).is_some_and(|s| s.summary().contains("cancelled"))
    });
    assert_eq!(pane_dirs(h.state(), Layer::POOL1), vec![bundled.clone(); n]);
    let mut storage = common::gui::MemoryStorage::default();
    h.state().current_settings().save(&mut storage);
    drop(h);

    // Started again: the bundled decoders, titled so; the trial run is listed.
    let mut h = fresh_user(data.path(), Some(storage));
    wait_for(&mut h, "pool1 reconstructions after a restart", |a| shows_layer(a, Layer::POOL1));
    assert_eq!(pane_dirs(h.state(), Layer::POOL1), vec![bundled.clone(); n]);
    assert_eq!(h.query_all_by_label("bundled").count(), n);
    let summary = h.state().decoders.set(&run_dir).expect("the run is a set").summary();

    // One click in the Decoders menu switches every pane to it.
    h.get_by_label("Decoders").click();
    h.run_steps(3);
    h.get_by_label(&summary).click();
    h.run_steps(2);
    wait_for(&mut h, "the trial run's pictures", |a| {
        shows_layer(a, Layer::POOL1) && pane_dirs(a, Layer::POOL1) == vec![run_dir.clone(); all]
    });
    assert_eq!(h.query_all_by_label_contains("(cancelled)").count(), all, "each pane says the run was cancelled");

    // Forgotten: the folder moves to the trash with its files, the panes go back to bundled.
    h.state_mut().forget_set(&run_dir);
    wait_for(&mut h, "the bundled pictures again", |a| {
        shows_layer(a, Layer::POOL1) && pane_dirs(a, Layer::POOL1) == vec![bundled.clone(); n]
    });
    assert!(!run_dir.exists());
    let moved = data.path().join("trash").join(run_dir.file_name().unwrap());
    for kind in Kind::ALL {
        assert!(moved.join(format!("vgg16_pool1_{kind}.safetensors")).is_file());
    }
    assert!(h.state().note.as_ref().is_some_and(|n| n.contains("move it back")), "{:?}", h.state().note);
}

/// A run that finished takes over only the panes whose decoders it beats on its validation
/// photos, says so in the status bar with both scores, and the user can switch back.
#[test]
fn a_finished_run_takes_over_only_where_it_is_better() {
    let data = tempfile::tempdir().unwrap();
    let bundled = layerinv::model::source::weights_dir();
    let two_steps = common::tiny_decoders("pool1");
    let mut h = fresh_user(data.path(), None);
    wait_for(&mut h, "pool1 reconstructions", |a| shows_layer(a, Layer::POOL1));
    // The user shows the 2-step decoders, but SWWAE stays bundled.
    h.state_mut().use_decoders_dir(two_steps.path().to_path_buf());
    wait_for(&mut h, "the 2-step SAE", |a| a.decoders.set(two_steps.path()).is_some());
    h.state_mut().decoders.choose(Layer::POOL1, Kind::Swwae, &bundled);
    let two = two_steps.path().to_path_buf();
    let chosen: Vec<_> = Kind::ALL.map(|k| if k == Kind::Swwae { bundled.clone() } else { two.clone() }).into();
    wait_for(&mut h, "the chosen pictures", |a| shows_layer(a, Layer::POOL1) && pane_dirs(a, Layer::POOL1) == chosen);

    let assets = repo_path("assets");
    let out = data.path().join("runs").join("finished");
    let mut cfg =
        layerinv::train::TrainConfig::new(assets.clone(), vec![Layer::POOL1], Kind::ALL.to_vec(), out.clone());
    cfg.val = Some(assets);
    cfg.steps = 150;
    cfg.batch = 2;
    cfg.crop = Some(48);
    cfg.width = 0.25;
    cfg.checkpoint_every = 50;
    cfg.val_every = 50;
    h.state_mut().start_training(cfg, candle_core::Device::Cpu);
    wait_for(&mut h, "the run to finish and be judged", |a| {
        a.note.as_ref().is_some_and(|n| n.contains("validation photos:")) && shows_layer(a, Layer::POOL1)
    });
    let note = h.state().note.clone().unwrap();
    assert!(note.contains("on its 3 validation photos"), "{note}");
    assert!(
        note.contains("now shown: pool1 SAE") && note.contains("kept the decoders on screen: pool1 SWWAE"),
        "{note}"
    );
    assert!(note.contains("against bundled's"), "both scores are named: {note}");
    wait_for(&mut h, "the run's SAE beside the bundled SWWAE", |a| {
        shows_layer(a, Layer::POOL1) && pane_dirs(a, Layer::POOL1)[..2] == [out.clone(), bundled.clone()]
    });
    // The up-conv pane went to the run exactly when the note says the run beat the 2-step one.
    let upconv_taken = pane_dirs(h.state(), Layer::POOL1)[2] == out;
    let shown = note.split("now shown: ").nth(1).and_then(|s| s.split(';').next()).unwrap_or("");
    assert_eq!(shown.contains("pool1 D&B up-conv"), upconv_taken, "{note}");
    h.get_by_label_contains("now shown: pool1 SAE");

    // Back to the 2-step SAE from the Decoders menu.
    let summary = h.state().decoders.set(two_steps.path()).unwrap().summary();
    h.get_by_label("Decoders").click();
    h.run_steps(3);
    h.get_by_label(&summary).click();
    h.run_steps(2);
    wait_for(&mut h, "the 2-step SAE again", |a| {
        shows_layer(a, Layer::POOL1) && pane_dirs(a, Layer::POOL1)[0] == two_steps.path()
    });
}

/// A run whose decoder diverges shows each rollback in the training panel and as a marked line on
/// the loss curves.
#[test]
fn the_training_panel_shows_each_rollback() {
    let dec = common::tiny_decoders("pool1");
    let mut h = harness(dec.path(), None, Layer::POOL1);
    wait_for(&mut h, "the model", |a| a.model.is_some() && shows_layer(a, Layer::POOL1));
    let out = tempfile::tempdir().unwrap();
    let mut cfg = common::tiny_run(&repo_path("assets"), out.path(), 12);
    cfg.kinds = vec![Kind::Sae];
    // The default start (tiny_run's uniform one diverges more gently at this rate).
    cfg.init = layerinv::train::Init::default();
    cfg.lr = 1e4;
    h.state_mut().start_training(cfg, candle_core::Device::Cpu);
    wait_for(&mut h, "the run to end", |a| a.training.as_ref().is_some_and(|r| !r.is_running()));
    h.run_steps(2);
    let run = h.state().training.as_ref().unwrap();
    assert_eq!(run.rollbacks.len(), 4, "{:?}", run.rollbacks);
    assert_eq!(h.query_all_by_label_contains("Warning: pool1 sae decoder diverged at step").count(), 4);
    assert_eq!(h.query_all_by_label_contains("learning rate halved to").count(), 4);
    // The curve's legend names the rollback line.
    assert!(h.query_all_by_label("rollback: pool1 sae").count() > 0);
}
