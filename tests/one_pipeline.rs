//! One picture pipeline: what the app's File > Export view writes and what `layerinv reconstruct`
//! writes are the same PNG, pixel for pixel, for the same photo, layer, decoders and edit.
#![cfg(feature = "gui")]
mod common;

use common::gui::{harness_with, wait_for};
use common::{layerinv, repo_path};
use layerinv::app::{AppOptions, LayerinvApp, View};
use layerinv::model::Layer;
use std::path::Path;

/// The app on the bundled decoders alone (a fresh user folder: no runs of its own), on `photo`.
fn app(photo: &Path, layer: Layer, view: View, user: &Path) -> AppOptions {
    AppOptions {
        image: Some(photo.to_path_buf()),
        layer: Some(layer),
        model: "bundled".into(),
        data_dir: Some(user.to_path_buf()),
        device: "cpu".into(),
        view: Some(view),
        ..Default::default()
    }
}

/// Export the app's view once everything in it is ready, run the CLI with `args`, and compare.
fn same_png(opts: AppOptions, ready: impl Fn(&LayerinvApp) -> bool, args: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness_with(opts, None);
    wait_for(&mut h, "the view", &ready);
    let exported = out.path().join("export.png");
    h.state().export_view(&exported).unwrap();
    let drawn = out.path().join("cli.png");
    let mut all: Vec<&str> = args.to_vec();
    let drawn_arg = drawn.to_str().unwrap().to_string();
    all.extend(["--out", &drawn_arg]);
    let o = layerinv(&all);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (image::open(&exported).unwrap().to_rgb8(), image::open(&drawn).unwrap().to_rgb8());
    assert_eq!(a.dimensions(), b.dimensions(), "{args:?}");
    let differ = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
    assert_eq!(differ, 0, "{args:?}: {differ} pixels differ");
}

fn rebuilt(app: &LayerinvApp, layer: Layer) -> bool {
    app.layer == layer && matches!(app.rebuilt(layer), Some(Ok(_)))
}

#[test]
fn export_and_reconstruct_draw_the_same_comparison() {
    let user = tempfile::tempdir().unwrap();
    let photo = repo_path("assets/chelsea.png");
    let p = photo.to_str().unwrap();
    same_png(
        app(&photo, Layer::POOL3, View::Compare, user.path()),
        |a| rebuilt(a, Layer::POOL3),
        &["reconstruct", p, "--layer", "pool3"],
    );
}

#[test]
fn export_and_reconstruct_draw_the_same_error_maps_of_an_edited_code() {
    let user = tempfile::tempdir().unwrap();
    let (photo, rocket) = (repo_path("assets/chelsea.png"), repo_path("assets/rocket.jpg"));
    let opts = AppOptions {
        switches_from: Some(rocket.clone()),
        keep_channels: Some("top:32".into()),
        ..app(&photo, Layer::POOL2, View::Diff, user.path())
    };
    let (p, r) = (photo.to_str().unwrap(), rocket.to_str().unwrap());
    same_png(
        opts,
        |a| rebuilt(a, Layer::POOL2) && a.mask(Layer::POOL2).is_some_and(|m| m.iter().filter(|&&k| k).count() == 32),
        &["reconstruct", p, "--layer", "pool2", "--switches-from", r, "--keep-channels", "top:32", "--diff"],
    );
}

#[test]
fn export_and_reconstruct_draw_the_same_all_layers_figure() {
    let user = tempfile::tempdir().unwrap();
    let photo = repo_path("assets/coffee.png");
    let p = photo.to_str().unwrap();
    same_png(
        app(&photo, Layer::POOL1, View::AllLayers, user.path()),
        |a| {
            let layers = a.available_layers();
            !layers.is_empty() && layers.iter().all(|&l| matches!(a.panes(l), Some(Ok(_))))
        },
        &["reconstruct", p, "--all-layers"],
    );
}
