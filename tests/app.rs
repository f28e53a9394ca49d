//! The desktop app under egui_kittest (no GPU, no window): it starts and shows reconstructions,
//! the layer picker changes the view, dropped files load (bad ones keep the old image), and the
//! Train dialog starts and cancels a tiny run on CPU.
#![cfg(feature = "gui")]
mod common;

use common::gui::{drop_file, harness, shows_layer, wait_for};
use common::repo_path;
use eframe::egui;
use egui_kittest::kittest::NodeT as _;
use egui_kittest::kittest::Queryable as _;
use egui_kittest::Harness;
use layerinv::app::training::RunState;
use layerinv::app::LayerinvApp;

#[test]
fn starts_and_the_layer_picker_changes_the_view() {
    let dec = common::tiny_decoders("pool1,pool2");
    let mut h = harness(dec.path(), None, "pool2");
    wait_for(&mut h, "pool2 reconstructions", |a| shows_layer(a, "pool2"));
    assert!(h.query_all_by_label("SAE from pool2").count() > 0);
    assert!(h.query_all_by_label("SWWAE from pool2").count() > 0);
    // Decoders missing from the first folder come from the bundled ones; layers the model cannot
    // serve are disabled with the reason (the bundled trunk has no classifier head).
    assert!(h.state().layer_unavailable("pool4").is_none());
    assert!(h.state().layer_unavailable("fc6").is_some_and(|w| w.contains("classifier head")));

    h.get_by_label("pool1").click();
    wait_for(&mut h, "pool1 reconstructions", |a| shows_layer(a, "pool1"));
    assert!(h.query_all_by_label("SWWAE from pool1").count() > 0);
    assert_eq!(h.query_all_by_label("SWWAE from pool2").count(), 0);
    // Each pane shows pool1's floor for this photo: the photo squeezed to 112 px and blown back up.
    let photo = h.state().photo.as_ref().map(|p| p.input.clone()).unwrap();
    let floor = layerinv::recon::thumbnail(&photo, 112);
    let floor = layerinv::train::metrics::psnr(layerinv::train::metrics::mse(&floor, &photo));
    let want = format!("floor {floor:.1} dB");
    assert_eq!(h.query_all_by_label_contains(&want).count(), 2, "{want}");

    // → steps back to pool2 (the next available layer); its result is cached, so no recompute.
    h.key_press(egui::Key::ArrowRight);
    h.step();
    assert_eq!(h.state().layer, "pool2");
    assert!(shows_layer(h.state(), "pool2"));
}

#[test]
fn a_dropped_photo_loads_and_a_bad_one_keeps_the_old() {
    let dec = common::tiny_decoders("pool1,pool2");
    let mut h = harness(dec.path(), None, "pool1");
    wait_for(&mut h, "the demo photo", |a| shows_layer(a, "pool1"));
    let coffee = repo_path("assets/coffee.png");
    drop_file(&mut h, coffee.clone());
    wait_for(&mut h, "the dropped photo", |a| {
        a.photo.as_ref().is_some_and(|p| p.path == coffee) && shows_layer(a, "pool1")
    });

    let bad = repo_path("tests/data/odd/not_an_image.jpg");
    drop_file(&mut h, bad);
    wait_for(&mut h, "the error", |a| a.last_error.is_some() && a.loading.is_none());
    let err = h.state().last_error.clone().unwrap();
    assert!(err.contains("not_an_image.jpg"), "{err}");
    assert_eq!(h.state().photo.as_ref().unwrap().path, coffee, "the previous photo stays");
    h.get_by_label_contains("Error:");
}

#[test]
fn the_train_dialog_starts_and_cancels_a_tiny_run() {
    let dec = common::tiny_decoders("pool1,pool2");
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(dec.path(), None, "pool1");
    wait_for(&mut h, "the model", |a| a.model.is_some() && shows_layer(a, "pool1"));
    h.get_by_label("Train").click();
    h.run_steps(3);
    h.get_by_label("Train decoders…").click();
    h.run_steps(3);
    {
        let d = h.state_mut().train_dialog.as_mut().expect("the dialog is open");
        d.data = repo_path("assets").display().to_string();
        d.steps = 100_000;
        d.crop = 32;
        d.batch = 1;
        d.width = 0.25;
        d.device = "cpu".into();
        d.out = out.path().display().to_string();
    }
    h.step();
    h.get_by_label("Start training").click();
    h.step();
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
    let mut h = harness(dec.path(), None, "pool2");
    wait_for(&mut h, "pool2 reconstructions", |a| shows_layer(a, "pool2"));
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
            a.device_name().starts_with("CUDA") && shows_layer(a, "pool2")
        });
        open_menu(&mut h);
        h.get_by_label("CPU").click();
        h.run_steps(3);
        wait_for(&mut h, "pool2 reconstructions on the CPU", |a| {
            a.device_name().starts_with("CPU") && shows_layer(a, "pool2")
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
        assert!(shows_layer(h.state(), "pool2"));
        // Asked for from outside the menu (as `--device cuda` does), CUDA is an error in the
        // status bar and the CPU worker stays.
        h.state_mut().set_device("cuda");
        h.step();
        h.get_by_label_contains("built without CUDA");
        assert!(shows_layer(h.state(), "pool2"));
    }
}
