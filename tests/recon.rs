//! Reconstruction, evaluation and their metrics; `reconstruct` and `eval` from the command line.
mod common;

use common::{assert_clean_failure, layerinv, repo_path};
use image::RgbImage;
use layerinv::model::Layer;
use layerinv::recon::EvalRow;
use layerinv::train::metrics::{mse, psnr, speckle, ssim};

fn photo() -> RgbImage {
    image::open(repo_path("tests/data/chelsea_224.png")).unwrap().to_rgb8()
}

#[test]
fn perfect_reconstruction_scores_infinite_psnr_and_ssim_one() {
    let a = photo();
    assert_eq!(mse(&a, &a), 0.0);
    assert_eq!(psnr(mse(&a, &a)), f64::INFINITY);
    assert!((ssim(&a, &a) - 1.0).abs() < 1e-12);
    // JSON has no infinity: eval writes null for it.
    let row = EvalRow {
        layer: "pool1".into(),
        kind: layerinv::recon::Method::Decoder(layerinv::model::Kind::Sae),
        decoders: Some("bundled".into()),
        mse: 0.0,
        psnr: f64::INFINITY,
        ssim: 1.0,
        dependence: None,
        speckle: None,
    };
    let v = serde_json::to_value(&row).unwrap();
    assert!(v["psnr"].is_null() && v["ssim"] == 1.0 && v["kind"] == "sae");
}

#[test]
fn metrics_match_hand_computed_values() {
    let a = photo();
    // Every channel one level brighter (none saturates in this photo's range? clamp where it does).
    let mut b = a.clone();
    let mut changed = 0usize;
    for p in b.pixels_mut() {
        for c in 0..3 {
            if p[c] < 255 {
                p[c] += 1;
                changed += 1;
            }
        }
    }
    let expect = changed as f64 / (a.as_raw().len() as f64) / (255.0 * 255.0);
    assert!((mse(&a, &b) - expect).abs() < 1e-15);
    if changed == a.as_raw().len() {
        assert!((psnr(mse(&a, &b)) - 48.1308036).abs() < 1e-6);
    }
    // A constant shift keeps structure: SSIM stays near 1; noise lowers it; a flat grey image is far
    // (smooth fur keeps its contrast term high, so "far" is below one half).
    assert!(ssim(&a, &b) > 0.99);
    let grey = RgbImage::from_pixel(224, 224, image::Rgb([128, 128, 128]));
    assert!(ssim(&a, &grey) < 0.5, "{}", ssim(&a, &grey));
    let mut noisy = a.clone();
    for (i, p) in noisy.pixels_mut().enumerate() {
        let d = if i % 2 == 0 { 20 } else { -20 };
        for c in 0..3 {
            p[c] = (p[c] as i32 + d).clamp(0, 255) as u8;
        }
    }
    let s = ssim(&a, &noisy);
    assert!(s > 0.2 && s < 0.9, "{s}");
    assert!(psnr(mse(&a, &noisy)) < 23.0);
}

/// Speckle: a flat sky above a textured ground. The photo against itself is 0; ±6 of
/// checkerboard noise over it is about 5 (what the noise adds to |x − blur(x)| where the sky is
/// flat); a blurred copy about 0; a photo with no flat region has none.
#[test]
fn speckle_measures_noise_on_flat_regions_only() {
    let mut seed = 12345u32;
    let mut rand = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 24) as u8
    };
    let photo = RgbImage::from_fn(96, 96, |_, y| if y < 48 { image::Rgb([110, 150, 210]) } else { image::Rgb([0; 3]) });
    let photo =
        RgbImage::from_fn(
            96,
            96,
            |x, y| if y < 48 { *photo.get_pixel(x, y) } else { image::Rgb([rand(), rand(), rand()]) },
        );
    assert_eq!(speckle(&photo, &photo), Some(0.0));
    let noisy = RgbImage::from_fn(96, 96, |x, y| {
        let d: i32 = if (x + y) % 2 == 0 { 6 } else { -6 };
        image::Rgb(photo.get_pixel(x, y).0.map(|v| (v as i32 + d).clamp(0, 255) as u8))
    });
    let s = speckle(&noisy, &photo).unwrap();
    assert!(s > 4.0 && s < 6.5, "checkerboard ±6 on the sky: {s}");
    let blurred = image::imageops::blur(&photo, 2.0);
    let s = speckle(&blurred, &photo).unwrap();
    // (Only what the blur carries from the ground into the sky's lowest rows.)
    assert!(s.abs() < 0.1, "a blurred copy adds no speckle: {s}");
    let texture = RgbImage::from_fn(64, 64, |_, _| image::Rgb([rand(), rand(), rand()]));
    assert_eq!(speckle(&texture, &texture), None, "no flat pixel, no measure");
}

#[test]
fn reconstruct_and_eval_from_the_command_line() {
    let dec = common::tiny_decoders("pool1");
    let d = dec.path().to_str().unwrap();
    let img = repo_path("assets/coffee.png");
    let tmp = tempfile::tempdir().unwrap();
    let row = tmp.path().join("row.png");
    let o = layerinv(&[
        "reconstruct",
        img.to_str().unwrap(),
        "--layer",
        "pool1",
        "--decoders",
        d,
        "--out",
        row.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pic = image::open(&row).unwrap();
    assert!(pic.width() >= 3 * 224 && pic.height() >= 224, "{:?}", (pic.width(), pic.height()));

    // The bare pictures, named for a script: the input and one per kind, 224×224.
    let raw = tmp.path().join("raw");
    let args = ["reconstruct", img.to_str().unwrap(), "--layer", "pool1", "--decoders", d, "--out"];
    let o = layerinv(&[&args[..], &[row.to_str().unwrap(), "--raw", raw.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut names: Vec<String> =
        std::fs::read_dir(&raw).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut want = vec!["coffee_input.png".to_string()];
    want.extend(layerinv::model::Kind::ALL.map(|k| format!("coffee_pool1_{k}.png")));
    want.sort();
    assert_eq!(names, want);
    for n in &names {
        assert_eq!(image::open(raw.join(n)).unwrap().to_rgb8().dimensions(), (224, 224), "{n}");
    }

    let grid = tmp.path().join("grid.png");
    let o = layerinv(&[
        "reconstruct",
        img.to_str().unwrap(),
        "--all-layers",
        "--decoders",
        d,
        "--out",
        grid.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pic = image::open(&grid).unwrap();
    assert!(pic.width() >= 2 * 224 && pic.height() >= 2 * 224);

    // A layer without decoders: one line with the command that makes them.
    let o = layerinv(&[
        "reconstruct",
        img.to_str().unwrap(),
        "--layer",
        "pool3",
        "--decoders",
        d,
        "--out",
        row.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, &["no pool3 decoders", "layerinv train", "--layers pool3", d]);

    let saved = tmp.path().join("saved");
    let o = layerinv(&[
        "eval",
        "--data",
        repo_path("assets").to_str().unwrap(),
        "--decoders",
        d,
        "--json",
        "--save",
        saved.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Every photo's input and its reconstructions, as reconstruct --raw names them.
    for stem in ["coffee", "chelsea", "rocket"] {
        assert!(saved.join(format!("{stem}_input.png")).is_file(), "{stem}");
        for k in layerinv::model::Kind::ALL {
            assert!(saved.join(format!("{stem}_pool1_{k}.png")).is_file(), "{stem} {k}");
        }
    }
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.trim().lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["images"], 3);
    assert!(v["model"].as_str().unwrap().contains("VGG-16"));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "{v}");
    for (r, (layer, kind)) in results.iter().zip([
        ("pool1", "sae"),
        ("pool1", "swwae"),
        ("pool1", "upconv"),
        ("pool1", "thumbnail"),
        ("any", "flat"),
    ]) {
        assert_eq!((r["layer"].as_str().unwrap(), r["kind"].as_str().unwrap()), (layer, kind));
        let (m, p, s) = (r["mse"].as_f64().unwrap(), r["psnr"].as_f64().unwrap(), r["ssim"].as_f64().unwrap());
        assert!(m > 0.0 && p > 0.0 && p < 60.0 && s > -1.0 && s < 1.0, "{r}");
        assert!(r["speckle"].as_f64().is_some_and(f64::is_finite), "the photos have flat regions: {r}");
    }
    // pool1's 112-px thumbnail keeps far more of a photo than its mean colour.
    let psnr = |i: usize| results[i]["psnr"].as_f64().unwrap();
    assert!(psnr(3) > psnr(4) + 8.0, "thumbnail {} dB, flat {} dB", psnr(3), psnr(4));
    // How much each picture varies across the photos, over the photos' own variance: the pool1
    // thumbnail nearly all of it, the mean colour much less.
    let dep = |i: usize| results[i]["dependence"].as_f64().unwrap();
    assert!(dep(3) > 0.8 && dep(3) < 1.05 && dep(4) < 0.8 * dep(3), "{} {}", dep(3), dep(4));
}

/// Two sets of decoders on the same photos: `eval` prints a row per set and kind (a copy of a
/// folder gives the same numbers under another name), `reconstruct` a row of pictures per set.
#[test]
fn several_decoder_sets_compare_on_the_same_photos() {
    let dec = common::tiny_decoders("pool1");
    let d = dec.path().to_str().unwrap();
    let assets = repo_path("assets");
    let eval = |sets: &[&str]| {
        let mut args = vec!["eval", "--data", assets.to_str().unwrap(), "--json"];
        for s in sets {
            args.extend(["--decoders", s]);
        }
        let o = layerinv(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    // A copy of the run in another folder: the same record, so the same name but for the folder.
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dec.path()).unwrap().flatten() {
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    let v = eval(&[d, copy.path().to_str().unwrap(), d]);
    let labels: Vec<&str> = v["decoders"].as_array().unwrap().iter().map(|s| s["label"].as_str().unwrap()).collect();
    assert_eq!(labels.len(), 2, "a folder given twice counts once");
    assert_ne!(labels[0], labels[1], "two folders of one name are told apart");
    assert!(labels[0].starts_with("yours: ") && labels[0].contains(d), "{labels:?}");
    let rows = v["results"].as_array().unwrap();
    let row = |label: &str, kind: &str| {
        rows.iter().find(|r| r["decoders"] == label && r["kind"] == kind && r["layer"] == "pool1").unwrap()["psnr"]
            .as_f64()
            .unwrap()
    };
    for kind in ["sae", "swwae", "upconv"] {
        assert_eq!(row(labels[0], kind), row(labels[1], kind));
    }
    assert_eq!(rows.len(), 2 * 3 + 2, "two sets × three kinds, pool1's floor, the flat floor");

    // The bundled set beside a 2-step run: a row each; the bundled decoders are far better.
    let bundled = repo_path("weights");
    let v = eval(&[d, bundled.to_str().unwrap()]);
    let rows = v["results"].as_array().unwrap();
    let psnr = |label: &str, layer: Layer| {
        rows.iter()
            .find(|r| r["decoders"] == label && r["kind"] == "swwae" && r["layer"] == layer.name())
            .map(|r| r["psnr"].as_f64().unwrap())
    };
    let tiny = v["decoders"][0]["label"].as_str().unwrap().to_string();
    assert!(psnr("bundled", Layer::POOL1).unwrap() > psnr(&tiny, Layer::POOL1).unwrap() + 5.0);
    assert!(psnr("bundled", Layer::POOL5).is_some() && psnr(&tiny, Layer::POOL5).is_none(), "{v}");

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("two.png");
    let img = repo_path("assets/coffee.png");
    let args = |extra: &[&str]| {
        let mut a = vec!["reconstruct", img.to_str().unwrap(), "--layer", "pool1", "--decoders", d, "--decoders"];
        a.push(bundled.to_str().unwrap());
        a.extend(["--out", out.to_str().unwrap()]);
        a.extend(extra);
        layerinv(&a)
    };
    let o = args(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pic = image::open(&out).unwrap();
    assert!(pic.width() >= 3 * 224 && pic.height() >= 2 * 224, "{:?}", (pic.width(), pic.height()));
    assert_clean_failure(&args(&["--diff"]), &["--diff", "give --decoders once"]);
}

/// The floors: a flat image is its own thumbnail at any grid; the flat floor of a half-black,
/// half-white photo is mid-grey; a thumbnail at the image's own size is the image.
#[test]
fn floors_are_the_squeezed_photo_and_its_mean_colour() {
    use layerinv::recon::{flat, thumbnail};
    let grey = RgbImage::from_pixel(224, 224, image::Rgb([90, 140, 200]));
    for grid in [1, 7, 14, 112] {
        assert_eq!(thumbnail(&grey, grid), grey, "grid {grid}");
    }
    let halves =
        RgbImage::from_fn(224, 224, |x, _| if x < 112 { image::Rgb([0, 0, 0]) } else { image::Rgb([255, 255, 255]) });
    assert!(flat(&halves).pixels().all(|p| p.0 == [128, 128, 128]));
    let p = photo();
    let (w, _) = p.dimensions();
    assert_eq!(thumbnail(&p, w), p);
    // Coarser grids lose more.
    let err = |g| layerinv::train::metrics::mse(&thumbnail(&p, g), &p);
    assert!(err(7) > err(28) && err(28) > err(112), "{} {} {}", err(7), err(28), err(112));
}

#[test]
fn decoders_of_another_model_are_refused() {
    let dec = common::tiny_decoders("pool1");
    // Bundled decoders are for the bundled trunk; a random-weights file is another encoder.
    let tensors = common::random_tensors(layerinv::model::Arch::Vgg16, false, 1.0);
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("other.safetensors");
    candle_core::safetensors::save(&tensors, &model).unwrap();
    let o = layerinv(&[
        "reconstruct",
        repo_path("assets/coffee.png").to_str().unwrap(),
        "--layer",
        "pool1",
        "--decoders",
        dec.path().to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--out",
        tmp.path().join("x.png").to_str().unwrap(),
    ]);
    assert_clean_failure(&o, &["vgg16_pool1_sae.safetensors", "trained for encoder"]);
}

/// The app keeps one encoder pass per photo (every tap) and rebuilds any layer from it: the same
/// reconstructions as a pass up to that layer, with the bundled model and decoders.
#[test]
fn reconstructions_from_kept_features_equal_a_fresh_pass() {
    use layerinv::model::{Kind, ModelSource};
    use layerinv::recon::{features_of, reconstruct, reconstruct_from, DecoderSet};
    let enc = ModelSource::parse("bundled").load(&candle_core::Device::Cpu).unwrap();
    let set = DecoderSet::load(&repo_path("weights"), &enc);
    let input = photo();
    let kept = features_of(&enc, &input).unwrap();
    for layer in [Layer::POOL1, Layer::POOL4] {
        let layers = [layer];
        let fresh = reconstruct(&enc, &set, &input, &layers, &Kind::ALL).unwrap();
        let again = reconstruct_from(&enc, &set, &kept, &input, &layers, &Kind::ALL).unwrap();
        // One picture per kind bundled at the layer (up-conv at pool1–pool3 so far).
        let bundled = Kind::ALL
            .iter()
            .filter(|k| repo_path("weights").join(format!("vgg16_{layer}_{}.safetensors", k.name())).is_file())
            .count();
        assert!(bundled >= 2, "{layer}");
        assert_eq!((fresh.len(), again.len()), (bundled, bundled), "{layer}");
        for (a, b) in fresh.iter().zip(&again) {
            assert_eq!((a.layer, a.kind), (b.layer, b.kind));
            assert_eq!(a.image, b.image, "{layer} {}", a.kind);
        }
    }
}

/// The all-layers figure has a row per set and kind: a kind a set has at no layer (up-conv at
/// pool4 and pool5 in the bundle today) adds no empty row, a kind it has at some layers keeps its
/// row, and a second set adds its own rows.
#[test]
fn the_all_layers_figure_has_a_row_per_set_and_kind_it_holds() {
    use layerinv::figure::{figure, CodeChange, View};
    use layerinv::model::Kind;
    use layerinv::recon::Reconstruction;
    let input = photo();
    let rec =
        |layer: Layer, kind| Reconstruction { layer, kind, image: input.clone(), psnr: 30.0, ssim: 0.9, speckle: None };
    let draw = |rows: &[Vec<(String, &Reconstruction)>]| {
        figure(View::AllLayers, &input, "x.png", rows, &CodeChange::default(), Vec::new()).height()
    };
    let two_kinds = [
        rec(Layer::POOL1, Kind::Sae),
        rec(Layer::POOL2, Kind::Sae),
        rec(Layer::POOL1, Kind::Swwae),
        rec(Layer::POOL2, Kind::Swwae),
    ];
    fn set<'a>(label: &str, recs: &'a [Reconstruction]) -> Vec<(String, &'a Reconstruction)> {
        recs.iter().map(|r| (label.to_string(), r)).collect()
    }
    let h2 = draw(&[set("bundled", &two_kinds)]);
    let mut three_kinds = two_kinds.to_vec();
    three_kinds.push(rec(Layer::POOL1, Kind::Upconv));
    let h3 = draw(&[set("bundled", &three_kinds)]);
    // The figure is a row shorter without the missing kind, and each row is as tall.
    assert!(h2 < h3 && h3 - h2 >= input.height(), "{h2} vs {h3}");
    let row = h3 - h2;
    // Two sets of two kinds: four rows, whatever the order the pictures come in.
    let mut mixed = set("bundled", &two_kinds);
    mixed.extend(set("yours", &two_kinds));
    mixed.reverse();
    assert_eq!(draw(&[mixed]), h2 + 2 * row);
}
