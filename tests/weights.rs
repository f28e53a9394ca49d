//! Weight files of every supported kind load to the same canonical encoder.

mod common;

use candle_core::{Device, Tensor};
use common::{random_tensors, write_onnx, write_pth};
use layerinv::model::Layer;
use layerinv::model::{load_weights_file, Arch, Encoder};
use std::collections::HashMap;

/// Rename canonical tensors with `f` (None drops the tensor).
fn renamed(t: &HashMap<String, Tensor>, f: impl Fn(&str) -> Option<String>) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = t.iter().filter_map(|(k, v)| f(k).map(|n| (n, v.clone()))).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn torchvision_pth_and_timm_safetensors_give_the_same_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let canon = random_tensors(Arch::AlexNet, true, 1.0);

    // torchvision AlexNet names: classifier.{1,4,6}, inside a DataParallel `module.` prefix.
    let tv = renamed(&canon, |k| {
        let k = k.replace("fc6.", "classifier.1.").replace("fc7.", "classifier.4.").replace("fc8.", "classifier.6.");
        Some(format!("module.{k}"))
    });
    let pth = dir.path().join("alexnet.pth");
    write_pth(&pth, &tv);

    // timm names with the fc layers stored conv-shaped.
    let timm: Vec<(String, Tensor)> = renamed(&canon, |k| {
        Some(k.replace("fc6.", "pre_logits.fc1.").replace("fc7.", "pre_logits.fc2.").replace("fc8.", "head.fc."))
    })
    .into_iter()
    .map(|(k, v)| if k == "pre_logits.fc1.weight" { (k, v.reshape((4096, 256, 6, 6)).unwrap()) } else { (k, v) })
    .collect();
    let st = dir.path().join("alexnet.safetensors");
    std::fs::write(&st, safetensors::serialize(timm, None).unwrap()).unwrap();

    let a = load_weights_file(&pth, &Device::Cpu).unwrap();
    let b = load_weights_file(&st, &Device::Cpu).unwrap();
    assert_eq!(a.arch, Arch::AlexNet);
    assert_eq!(b.arch, Arch::AlexNet);
    assert_eq!((a.fc_available, b.fc_available), (3, 3));
    assert_eq!(a.fingerprint, b.fingerprint, "same weights, same fingerprint");
    let x = Tensor::randn(0f32, 1., (1, 3, 224, 224), &Device::Cpu).unwrap();
    let (ea, eb) = (Encoder::new(a).unwrap(), Encoder::new(b).unwrap());
    let la = ea.forward(&x).unwrap().tap(Layer::FC8).unwrap().clone();
    let lb = eb.forward(&x).unwrap().tap(Layer::FC8).unwrap().clone();
    assert_eq!(la.sub(&lb).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
}

#[test]
fn a_head_that_stops_early_makes_only_the_later_taps_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let canon = random_tensors(Arch::AlexNet, true, 1.0);
    let no_fc7 = renamed(&canon, |k| (!k.starts_with("fc7.")).then(|| k.to_string()));
    let path = dir.path().join("partial.safetensors");
    std::fs::write(&path, safetensors::serialize(no_fc7, None).unwrap()).unwrap();
    let enc = Encoder::new(load_weights_file(&path, &Device::Cpu).unwrap()).unwrap();
    assert!(enc.has_tap(Layer::FC6));
    assert!(!enc.has_tap(Layer::FC7));
    assert!(!enc.has_tap(Layer::FC8), "fc8 needs fc7's output");
}

#[test]
fn onnx_trunks_import_to_f16_safetensors_with_caffe_preprocessing() {
    let dir = tempfile::tempdir().unwrap();
    let canon = random_tensors(Arch::Vgg11, false, 1.0);
    let convs: Vec<(Tensor, Tensor)> = Arch::Vgg11
        .convs()
        .iter()
        .map(|c| (canon[&format!("{}.weight", c.key())].clone(), canon[&format!("{}.bias", c.key())].clone()))
        .collect();
    let onnx = dir.path().join("keras_vgg11.onnx");
    write_onnx(&onnx, &convs);
    let direct = load_weights_file(&onnx, &Device::Cpu).unwrap();
    assert_eq!(direct.arch, Arch::Vgg11);
    assert_eq!(direct.preprocess, layerinv::data::Preprocess::Caffe);
    assert_eq!(direct.fingerprint, layerinv::model::weights::fingerprint(&canon).unwrap());

    let out = dir.path().join("vgg11.safetensors");
    let o = common::layerinv(&["import-onnx", onnx.to_str().unwrap(), out.to_str().unwrap(), "--name", "test trunk"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let imported = load_weights_file(&out, &Device::Cpu).unwrap();
    assert_eq!(
        (imported.arch, imported.preprocess, imported.name.as_str()),
        (Arch::Vgg11, layerinv::data::Preprocess::Caffe, "test trunk")
    );
    // f16 storage: each weight within f16 rounding of the original.
    for (k, v) in &canon {
        let d = imported.tensors[k].sub(v).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let m = v.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d <= m * 1e-3, "{k}: {d}");
    }
    // Too few convs for any architecture: refused, naming what was found.
    let short = dir.path().join("short.onnx");
    write_onnx(&short, &convs[..3]);
    let err = load_weights_file(&short, &Device::Cpu).err().unwrap().to_string();
    assert!(
        err.contains("short.onnx") && err.contains("3 convolutions") && err.contains("match no known architecture"),
        "{err}"
    );
}

/// The bundled weights are looked for in `$LAYERINV_WEIGHTS`, beside the executable, in
/// `../share/layerinv/weights` from it (an installed package), in the checkout a cargo-built
/// executable sits in, and last in the checkout it was built from; the first that holds the
/// model wins, and where none does one line names every place looked.
#[test]
fn the_bundled_weights_are_found_in_order_and_a_missing_bundle_names_every_place() {
    use layerinv::model::source::{find_weights_dir, weights_places, BUNDLED_MODEL_FILE};
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let env = r.join("env");
    let installed = r.join("usr/bin/layerinv");
    let checkout = r.join("src-checkout");
    let places = weights_places(Some(env.clone()), Some(&installed), &checkout);
    let expected = [
        env.clone(),
        r.join("usr/bin/weights"),
        r.join("usr/share/layerinv/weights"),
        r.join("weights"),
        r.parent().unwrap().join("weights"),
        checkout.join("weights"),
    ];
    assert_eq!(places, expected);

    let err = find_weights_dir(&places).unwrap_err();
    assert!(!err.contains('\n') && err.contains(BUNDLED_MODEL_FILE) && err.contains("LAYERINV_WEIGHTS"), "{err}");
    for p in &places {
        assert!(err.contains(&p.display().to_string()), "{err} lacks {}", p.display());
    }
    // Filled from the last place to the first: each time the earlier place wins.
    for (i, place) in places.iter().enumerate().rev() {
        // The parent of the temporary folder is shared: leave it alone.
        if i == 4 {
            continue;
        }
        std::fs::create_dir_all(place).unwrap();
        std::fs::write(place.join(BUNDLED_MODEL_FILE), b"x").unwrap();
        assert_eq!(find_weights_dir(&places).unwrap(), *place);
    }

    // A cargo build: `target/release/layerinv` and a test binary in `target/debug/deps/` both
    // find the checkout they sit in.
    let checkout = r.join("clone");
    std::fs::create_dir_all(checkout.join("weights")).unwrap();
    std::fs::write(checkout.join("weights").join(BUNDLED_MODEL_FILE), b"x").unwrap();
    let elsewhere = r.join("nowhere");
    for exe in ["target/release/layerinv", "target/debug/deps/app-0123"] {
        let places = weights_places(None, Some(&checkout.join(exe)), &elsewhere);
        assert_eq!(find_weights_dir(&places).unwrap(), checkout.join("weights"), "{exe}");
    }
}
