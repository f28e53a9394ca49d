//! The comparison instrument in the app, under egui_kittest: linked zoom, blink, the error maps,
//! a channel switched off and on, another photo's switches, stepping through a folder, and the
//! settings a restarted app comes back with.
#![cfg(feature = "gui")]
mod common;

use common::gui::{harness, harness_with, options, shows_layer, wait_for, MemoryStorage};
use common::repo_path;
use eframe::egui;
use eframe::egui::accesskit::Role;
use egui_kittest::kittest::{By, Queryable as _};
use egui_kittest::Harness;
use layerinv::app::{Blink, LayerinvApp, View};
use layerinv::model::Kind;
use layerinv::model::Layer;

fn image_of(app: &LayerinvApp, layer: Layer, kind: Kind) -> image::RgbImage {
    let panes = app.panes(layer).unwrap().unwrap();
    panes.iter().find(|p| p.rec.kind == kind).unwrap().rec.image.clone()
}

/// Wait until the current variant's reconstructions are there; whether the encoder ran for them.
fn wait_rebuilt(h: &mut Harness<'static, LayerinvApp>, what: &str) -> bool {
    let layer = h.state().layer;
    wait_for(h, what, |a| matches!(a.rebuilt(layer), Some(Ok(_))));
    h.state().rebuilt(layer).unwrap().as_ref().unwrap().encoder_ran
}

#[test]
fn zoom_is_linked_and_blink_shows_the_input_or_the_other_kind() {
    let dec = common::tiny_decoders("pool1");
    let mut h = harness(dec.path(), None, Layer::POOL1);
    wait_for(&mut h, "pool1 reconstructions", |a| shows_layer(a, Layer::POOL1));

    // A pinch over the SAE pane zooms every pane (one ZoomPan), about the pointer.
    h.get_by_label("picture: SAE from pool1").hover();
    h.step();
    h.event(egui::Event::Zoom(2.0));
    h.step();
    h.step();
    let z = h.state().compare.zoom;
    assert!((z.zoom - 2.0).abs() < 1e-3, "zoom {}", z.zoom);
    assert!(z.uv().width() < 0.51);
    // + zooms in further, up to the limit; 0 shows the whole picture again.
    for _ in 0..6 {
        h.key_press(egui::Key::Plus);
        h.step();
    }
    assert_eq!(h.state().compare.zoom.zoom, layerinv::app::zoom::MAX_ZOOM);
    h.key_press(egui::Key::Num0);
    h.step();
    assert_eq!(h.state().compare.zoom.zoom, 1.0);

    // Hold Space: the input in every reconstruction's place; let go: back.
    h.key_down(egui::Key::Space);
    h.step();
    assert_eq!(h.state().compare.blink, Blink::Input);
    assert!(h.query_by_label("input, in SAE's place").is_some());
    assert!(h.query_by_label("input, in SWWAE's place").is_some());
    h.key_up(egui::Key::Space);
    h.step();
    assert_eq!(h.state().compare.blink, Blink::Off);
    assert!(h.query_by_label("SAE from pool1").is_some());
    // Hold S: SAE and SWWAE change places.
    h.key_down(egui::Key::S);
    h.step();
    assert!(h.query_by_label("SWWAE, in SAE's place").is_some());
    h.key_up(egui::Key::S);
    h.step();

    // The error maps: the diff view adds |input − each| and |SWWAE − SAE|.
    h.key_press(egui::Key::Num2);
    h.step();
    assert_eq!(h.state().view, View::Diff);
    assert!(h.query_by_label("|input − SAE|").is_some());
    assert!(h.query_by_label("|SWWAE − SAE|: what the switches change").is_some());
    // Four pictures (the input and three kinds), three error maps against the input.
    for kind in Kind::ALL {
        assert!(h.query_by_label(&format!("picture: {} from pool1", kind.label())).is_some(), "{kind}");
        assert!(h.query_by_label(&format!("|input − {}|", kind.label())).is_some(), "{kind}");
    }
}

#[test]
fn the_all_layers_view_has_a_row_per_kind_and_a_click_opens_the_layer() {
    // Up-conv decoders at pool1 (and the bundle's at pool1 and pool2): its row is there, with a hover cell
    // where a layer has no decoder of the kind.
    let dec = common::tiny_decoders("pool1");
    let mut h = harness(dec.path(), None, Layer::POOL1);
    wait_for(&mut h, "pool1 reconstructions", |a| shows_layer(a, Layer::POOL1));
    h.key_press(egui::Key::Num4);
    h.step();
    assert_eq!(h.state().view, View::AllLayers);
    let layers = h.state().available_layers();
    assert_eq!(layers, ["pool1", "pool2", "pool3", "pool4", "pool5"]);
    wait_for(&mut h, "every layer's reconstructions", |a| layers.iter().all(|&l| matches!(a.panes(l), Some(Ok(_)))));
    for kind in Kind::ALL {
        assert!(h.query_by_label(kind.label()).is_some(), "no row label {kind}");
        assert!(h.query_by_label(&format!("{} pool1", kind.label())).is_some(), "no {kind} picture at pool1");
    }
    assert!(h.query_by_label("SAE pool5").is_some());
    assert!(h.query_by_label("D&B up-conv pool5").is_none(), "no up-conv decoder at pool5");
    // A picture opens its layer in the comparison.
    h.get_by_label("SWWAE pool3").click();
    h.step();
    assert_eq!(h.state().view, View::Compare);
    assert_eq!(h.state().layer, "pool3");
}

#[test]
fn a_channel_switched_off_changes_both_kinds_and_back_on_changes_nothing() {
    let dec = common::tiny_decoders("pool1");
    let mut h = harness(dec.path(), None, Layer::POOL5);
    wait_for(&mut h, "pool5 reconstructions", |a| shows_layer(a, Layer::POOL5));
    let plain = [Kind::Sae, Kind::Swwae].map(|k| image_of(h.state(), Layer::POOL5, k));
    h.key_press(egui::Key::Num3);
    h.step();
    wait_for(&mut h, "pool5's channels", |a| matches!(a.channel_maps(Layer::POOL5), Some(Ok(_))));
    let strongest = match h.state().channel_maps(Layer::POOL5) {
        Some(Ok(c)) => c.maps.order[0],
        _ => unreachable!(),
    };
    h.get_by_label(&format!("channel {strongest}")).click();
    h.step();
    let keep = h.state().mask(Layer::POOL5).unwrap();
    assert_eq!(keep.iter().filter(|&&k| !k).count(), 1);
    assert!(!keep[strongest]);
    // Only the decoders run: the photo's encoder pass is kept.
    assert!(!wait_rebuilt(&mut h, "the masked reconstructions"), "a mask change must not run the encoder");
    for (k, before) in [Kind::Sae, Kind::Swwae].iter().zip(&plain) {
        assert_ne!(&image_of(h.state(), Layer::POOL5, *k), before, "{k} did not change without channel {strongest}");
    }
    // Both panes' titles say so.
    assert!(h.query_by_label("SAE from pool5 · 511 of 512 channels").is_some());
    assert!(h.query_by_label("SWWAE from pool5 · 511 of 512 channels").is_some());
    // Back on: every channel kept is the plain code, pixel for pixel.
    h.get_by_label(&format!("channel {strongest}")).click();
    h.step();
    assert!(h.state().edits.keeps_all());
    wait_rebuilt(&mut h, "the plain reconstructions");
    for (k, before) in [Kind::Sae, Kind::Swwae].iter().zip(&plain) {
        assert_eq!(&image_of(h.state(), Layer::POOL5, *k), before);
    }
    // The channels view exports as a picture (panes above the channel sheet).
    let out = tempfile::tempdir().unwrap();
    let png = out.path().join("channels.png");
    h.state().export_view(&png).unwrap();
    let pic = image::open(&png).unwrap();
    assert!(pic.height() > 224 + 224, "{}×{}", pic.width(), pic.height());
}

#[test]
fn another_photos_switches_change_swwae_only_and_its_own_change_nothing() {
    let dec = common::tiny_decoders("pool1");
    let rocket = repo_path("assets/rocket.jpg");
    let mut h = harness(dec.path(), Some(rocket.clone()), Layer::POOL3);
    wait_for(&mut h, "the rocket", |a| shows_layer(a, Layer::POOL3));
    let chelsea = repo_path("assets/chelsea.png");
    h.state_mut().open_image(&chelsea);
    wait_for(&mut h, "chelsea", |a| a.photo().is_some_and(|p| p.path == chelsea) && shows_layer(a, Layer::POOL3));
    let plain = [Kind::Sae, Kind::Swwae].map(|k| image_of(h.state(), Layer::POOL3, k));

    // The Switches menu offers the photos seen before.
    h.get(By::new().role(Role::ComboBox).value("this photo's own")).click();
    h.run_steps(2);
    h.get_by_label("rocket.jpg").click();
    h.step();
    assert!(!wait_rebuilt(&mut h, "chelsea with the rocket's switches"), "both photos' encoder passes are kept");
    assert_eq!(image_of(h.state(), Layer::POOL3, Kind::Sae), plain[0], "SAE reads no switches");
    assert_ne!(image_of(h.state(), Layer::POOL3, Kind::Swwae), plain[1]);
    assert!(h.query_by_label("SWWAE from pool3 · switches of rocket.jpg").is_some());

    // Chelsea's own switches, named as another photo, change nothing.
    h.state_mut().use_switches_of(&chelsea);
    h.step();
    wait_rebuilt(&mut h, "chelsea with her own switches");
    assert_eq!(image_of(h.state(), Layer::POOL3, Kind::Swwae), plain[1]);
}

#[test]
fn page_down_steps_through_the_folder() {
    let dec = common::tiny_decoders("pool1");
    let dir = tempfile::tempdir().unwrap();
    for (src, name) in [("assets/chelsea.png", "a.png"), ("assets/coffee.png", "b.png"), ("assets/rocket.jpg", "c.jpg")]
    {
        std::fs::copy(repo_path(src), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not a photo").unwrap();
    let mut h = harness(dec.path(), Some(dir.path().to_path_buf()), Layer::POOL1);
    let at = |name: &'static str| move |a: &LayerinvApp| a.photo().is_some_and(|p| p.path.ends_with(name));
    wait_for(&mut h, "the folder's first photo", at("a.png"));
    assert_eq!(h.state().photos.folder.len(), 3);
    h.key_press(egui::Key::PageDown);
    wait_for(&mut h, "the second photo", at("b.png"));
    h.key_press(egui::Key::PageDown);
    wait_for(&mut h, "the third photo", at("c.jpg"));
    h.key_press(egui::Key::PageDown);
    h.step();
    assert!(h.state().photos.loading.is_none(), "the last photo stays");
    h.key_press(egui::Key::PageUp);
    wait_for(&mut h, "back to the second", at("b.png"));
}

#[test]
fn a_restarted_app_comes_back_on_the_same_photo_layer_and_view() {
    let dec = common::tiny_decoders("pool1,pool2");
    let coffee = repo_path("assets/coffee.png");
    let mut h = harness(dec.path(), Some(coffee.clone()), Layer::POOL1);
    wait_for(&mut h, "coffee at pool1", |a| shows_layer(a, Layer::POOL1));
    h.get_by_label("pool2").click();
    h.key_press(egui::Key::Num2);
    wait_for(&mut h, "pool2", |a| shows_layer(a, Layer::POOL2));
    let mut storage = MemoryStorage::default();
    eframe::App::save(h.state_mut(), &mut storage);
    drop(h);

    let mut opts = options(dec.path(), None, None);
    opts.image = None;
    let mut h = harness_with(opts, Some(storage));
    wait_for(&mut h, "the restored photo", |a| a.photo().is_some() && a.model.is_some());
    let app = h.state();
    assert_eq!(app.photo().unwrap().path, coffee);
    assert_eq!(app.layer, "pool2");
    assert_eq!(app.view, View::Diff);
    assert_eq!(app.settings.recent.first(), Some(&coffee));
}
