//! Architecture tables, encoder taps and switches, decoders for every tap, decoder files.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use common::random_encoder;
use layerinv::model::Layer;
use layerinv::model::{load_decoder, save_decoder, Arch, Decoder, DecoderMeta, DecoderSpec, Encoder, Features, Kind};
use layerinv::ops::PoolSwitches;

#[test]
fn tap_shapes_follow_the_paper_layers() {
    let shapes = |a: Arch| a.tap_shapes().into_iter().map(|(n, s)| format!("{n}{s:?}")).collect::<Vec<_>>().join(" ");
    assert_eq!(
        shapes(Arch::Vgg16),
        "pool1[64, 112, 112] pool2[128, 56, 56] pool3[256, 28, 28] pool4[512, 14, 14] pool5[512, 7, 7] fc6[4096] fc7[4096] fc8[1000]"
    );
    assert_eq!(
        shapes(Arch::AlexNet),
        "pool1[64, 27, 27] pool2[192, 13, 13] conv3[384, 13, 13] conv4[256, 13, 13] pool5[256, 6, 6] fc6[4096] fc7[4096] fc8[1000]"
    );
    let n_convs: Vec<usize> =
        [Arch::Vgg11, Arch::Vgg13, Arch::Vgg16, Arch::Vgg19].iter().map(|a| a.convs().len()).collect();
    assert_eq!(n_convs, vec![8, 10, 13, 16]);
    // torchvision feature indices of VGG-16.
    let idx: Vec<usize> = Arch::Vgg16.convs().iter().map(|c| c.index).collect();
    assert_eq!(idx, vec![0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]);
}

fn image(b: usize, n: usize) -> Tensor {
    Tensor::randn(0f32, 1., (b, 3, n, n), &Device::Cpu).unwrap()
}

#[test]
fn one_forward_pass_returns_every_tap_and_switch() {
    let enc = random_encoder(Arch::AlexNet, true);
    let f = enc.forward(&image(2, 224)).unwrap();
    let got: Vec<(String, Vec<usize>)> = f.taps.iter().map(|(n, t)| (n.to_string(), t.dims()[1..].to_vec())).collect();
    let want: Vec<(String, Vec<usize>)> =
        Arch::AlexNet.tap_shapes().into_iter().map(|(n, s)| (n.to_string(), s)).collect();
    assert_eq!(got, want);
    assert!(f.taps.iter().all(|(_, t)| t.dims()[0] == 2));
    // Switches for pooled stages only; fc8 is raw logits (has negatives), the rest post-ReLU.
    let pooled: Vec<bool> = f.switches.iter().map(|s| s.is_some()).collect();
    assert_eq!(pooled, vec![true, true, false, false, true]);
    assert!(f.tap(Layer::FC8).unwrap().min_all().unwrap().to_scalar::<f32>().unwrap() < 0.0);
    for (name, t) in &f.taps[..7] {
        assert!(t.min_all().unwrap().to_scalar::<f32>().unwrap() >= 0.0, "{name} not post-ReLU");
    }
}

#[test]
fn trunk_only_model_reports_fc_taps_unavailable() {
    let enc = random_encoder(Arch::Vgg11, false);
    assert!(enc.has_tap(Layer::POOL5));
    for t in [Layer::FC6, Layer::FC7, Layer::FC8] {
        assert!(!enc.has_tap(t));
        let err = enc.forward_to(&image(1, 224), t).err().unwrap().to_string();
        assert!(err.contains("stop at the conv trunk"), "{err}");
    }
    assert!(enc.forward_to(&image(1, 64), Layer::CONV3).is_err()); // not a VGG layer
}

fn random_decoder(enc: &Encoder, layer: Layer, kind: Kind, width: f64) -> (Decoder, VarMap) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let spec = DecoderSpec::new(enc.arch, layer, kind, width).unwrap();
    (Decoder::new(spec, vb).unwrap(), vm)
}

#[test]
fn decoders_for_every_conv_tap_rebuild_an_image_of_the_input_size() {
    for (arch, n) in [(Arch::Vgg11, 64), (Arch::Vgg16, 64), (Arch::Vgg19, 32), (Arch::AlexNet, 224)] {
        let enc = random_encoder(arch, false);
        let x = image(2, n);
        let f = enc.forward(&x).unwrap();
        for (tap, _) in arch.tap_shapes().into_iter().filter(|(t, _)| !t.name().starts_with("fc")) {
            for kind in Kind::ALL {
                let (dec, _) = random_decoder(&enc, tap, kind, 0.25);
                let y = dec.forward(&f).unwrap();
                assert_eq!(y.dims(), x.dims(), "{arch} {tap} {kind}");
            }
        }
    }
}

#[test]
fn fc_decoders_mirror_the_head_and_reach_the_image() {
    let enc = random_encoder(Arch::AlexNet, true);
    let x = image(1, 224);
    let f = enc.forward(&x).unwrap();
    for tap in [Layer::FC6, Layer::FC7, Layer::FC8] {
        let (dec, _) = random_decoder(&enc, tap, Kind::Swwae, 0.125);
        assert_eq!(dec.forward(&f).unwrap().dims(), x.dims(), "{tap}");
    }
    // Full-width VGG-16 fc8 decoder: 1000→4096→4096→25088, then as from pool5.
    let spec = DecoderSpec::new(Arch::Vgg16, Layer::FC8, Kind::Sae, 1.0).unwrap();
    let lin: Vec<Vec<usize>> = spec
        .params()
        .into_iter()
        .filter(|(n, _)| n.ends_with("weight") && n.starts_with("fc"))
        .map(|(_, s)| s)
        .collect();
    assert_eq!(lin, vec![vec![4096, 1000], vec![4096, 4096], vec![25088, 4096]]);
    let convs: Vec<Vec<usize>> = spec
        .params()
        .into_iter()
        .filter(|(n, _)| n.starts_with("features") && n.ends_with("weight"))
        .map(|(_, s)| s)
        .collect();
    assert_eq!(convs.len(), 13);
    assert_eq!(convs[0], vec![512, 512, 3, 3]);
    assert_eq!(convs[12], vec![3, 64, 3, 3]);
}

#[test]
fn swwae_uses_the_recorded_switches_and_sae_does_not() {
    let enc = random_encoder(Arch::Vgg11, false);
    let (sae, vm) = random_decoder(&enc, Layer::POOL2, Kind::Sae, 0.5);
    let spec = DecoderSpec::new(Arch::Vgg11, Layer::POOL2, Kind::Swwae, 0.5).unwrap();
    let swwae = Decoder::new(spec, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap(); // same weights
    let f1 = enc.forward(&image(1, 32)).unwrap();
    let mut f2 = enc.forward(&image(1, 32)).unwrap();
    // Same code, other image's switches: SWWAE output changes, SAE's does not.
    f2.taps = f1.taps.clone();
    let diff = |a: &Tensor, b: &Tensor| a.sub(b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(diff(&sae.forward(&f1).unwrap(), &sae.forward(&f2).unwrap()), 0.0);
    assert!(diff(&swwae.forward(&f1).unwrap(), &swwae.forward(&f2).unwrap()) > 0.0);
    assert!(diff(&swwae.forward(&f1).unwrap(), &sae.forward(&f1).unwrap()) > 0.0);
}

fn meta(enc: &Encoder, layer: Layer, kind: Kind, width: f64) -> DecoderMeta {
    DecoderMeta {
        spec: DecoderSpec::new(enc.arch, layer, kind, width).unwrap(),
        encoder: enc.fingerprint.clone(),
        steps: 10,
        images: 80,
        earlier: layerinv::model::Earlier { steps: 7, images: 56 },
        val_loss: Some(0.5),
        val_psnr: Some(20.25),
        objective: layerinv::model::Objective::All,
        scales: [(layer.to_string(), 123.5), ("pool1".to_string(), 7.25)].into_iter().collect(),
    }
}

#[test]
fn decoder_files_round_trip_and_refuse_the_wrong_encoder_layer_or_shape() {
    let dir = tempfile::tempdir().unwrap();
    let enc = random_encoder(Arch::Vgg13, false);
    let (mut dec, vm) = random_decoder(&enc, Layer::POOL2, Kind::Swwae, 0.5);
    let tensors = vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    let path = dir.path().join("d.safetensors");
    let m = meta(&enc, Layer::POOL2, Kind::Swwae, 0.5);
    dec.scales = m.scales.clone();
    save_decoder(&path, &m, &tensors, DType::F32).unwrap();

    let (loaded, lm) = load_decoder(&path, &enc, Layer::POOL2, Kind::Swwae).unwrap();
    assert_eq!(lm, m);
    let f = enc.forward(&image(1, 32)).unwrap();
    let d = dec.forward(&f).unwrap().sub(&loaded.forward(&f).unwrap()).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);

    let other = random_encoder(Arch::Vgg13, false);
    let err = load_decoder(&path, &other, Layer::POOL2, Kind::Swwae).err().unwrap().to_string();
    assert!(
        err.contains("trained for encoder") && err.contains(&enc.fingerprint) && err.contains("d.safetensors"),
        "{err}"
    );
    let err = load_decoder(&path, &enc, Layer::POOL3, Kind::Swwae).err().unwrap().to_string();
    assert!(err.contains("vgg13 pool2 swwae decoder, expected vgg13 pool3 swwae"), "{err}");
    let err = load_decoder(&path, &enc, Layer::POOL2, Kind::Sae).err().unwrap().to_string();
    assert!(err.contains("expected vgg13 pool2 sae"), "{err}");

    // Metadata says width 1.0 but the tensors are width 0.5: every shape is checked.
    let bad = dir.path().join("bad.safetensors");
    let mut wrong = meta(&enc, Layer::POOL2, Kind::Swwae, 0.5);
    save_decoder(&bad, &wrong, &tensors, DType::F16).unwrap();
    let bytes = std::fs::read(&bad).unwrap();
    let (_, md) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut map = md.metadata().clone().unwrap();
    map.insert("width".into(), "1".into());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    std::fs::write(&bad, safetensors::serialize(st.tensors(), Some(map)).unwrap()).unwrap();
    wrong.spec.width = 1.0;
    let err = load_decoder(&bad, &enc, Layer::POOL2, Kind::Swwae).err().unwrap().to_string();
    assert!(err.contains("has shape") && err.contains("expected"), "{err}");

    // A truncated file is refused with the file's name.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_decoder(&bad, &enc, Layer::POOL2, Kind::Swwae).err().unwrap().to_string();
    assert!(err.contains("bad.safetensors") && err.contains("truncated or corrupt"), "{err}");
}

#[test]
fn imagenet_top5_names_and_orders_the_largest_logits() {
    use layerinv::model::labels::{imagenet_classes, top_k};
    let names = imagenet_classes();
    assert_eq!(names.len(), 1000);
    assert_eq!(names[281], "tabby");
    assert_eq!(names[967], "espresso");
    let mut logits = vec![0f32; 1000];
    logits[967] = 5.0;
    logits[281] = 4.0;
    logits[3] = 3.0;
    let t = candle_core::Tensor::from_vec(logits, (1, 1000), &candle_core::Device::Cpu).unwrap();
    let top = top_k(&t, 3).unwrap();
    let got: Vec<&str> = top.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(got, ["espresso", "tabby", "tiger shark"]);
    let sum = 5f64.exp() + 4f64.exp() + 3f64.exp() + 997.0;
    assert!((top[0].1 as f64 - 5f64.exp() / sum).abs() < 1e-5, "{top:?}");
}

/// The same decoder with the same weights gives the same reconstruction and gradients on every
/// device (on CUDA: our pooling/unpooling kernels and cuDNN; run with NVIDIA_TF32_OVERRIDE=0).
/// The decoders all get the CPU encoder's features: near-ties in a pooling window may flip a switch
/// between devices, which moves a value to another pixel. The encoder's activations are compared
/// on their own.
#[test]
#[cfg_attr(not(feature = "cuda"), ignore = "needs a CUDA build and a GPU: compares the CPU and CUDA decoders")]
fn decoders_agree_across_devices() {
    let devs = common::devices();
    if devs.len() < 2 {
        eprintln!("SKIPPED: a CUDA build but no GPU answers: nothing to compare the CPU decoders with");
        return;
    }
    let tensors = common::random_tensors(Arch::Vgg16, false, 1.0);
    let x = image(2, 64);
    let features =
        common::encoder_on(Arch::Vgg16, tensors.clone(), false, &Device::Cpu).forward_to(&x, Layer::POOL3).unwrap();
    let rel = |a: &Tensor, b: &Tensor| {
        let (a, b) = (a.to_device(&Device::Cpu).unwrap(), b.to_device(&Device::Cpu).unwrap());
        let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-12);
        a.sub(&b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale
    };
    for kind in Kind::ALL {
        let spec = DecoderSpec::new(Arch::Vgg16, Layer::POOL3, kind, 0.5).unwrap();
        let mut reference: Option<(Tensor, Vec<(String, Tensor)>)> = None;
        let init = VarMap::new();
        Decoder::new(spec.clone(), VarBuilder::from_varmap(&init, DType::F32, &Device::Cpu)).unwrap();
        let weights: Vec<(String, Tensor)> =
            init.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        for dev in &devs {
            let enc = common::encoder_on(Arch::Vgg16, tensors.clone(), false, dev);
            let own = enc.forward_to(&x.to_device(dev).unwrap(), Layer::POOL3).unwrap();
            for ((name, a), (_, b)) in own.taps.iter().zip(&features.taps) {
                assert!(rel(a, b) < 1e-4, "{dev:?} encoder {name}: {}", rel(a, b));
            }
            let moved = Features {
                taps: features.taps.iter().map(|(n, t)| (*n, t.to_device(dev).unwrap())).collect(),
                switches: features
                    .switches
                    .iter()
                    .map(|s| {
                        s.as_ref().map(|s| PoolSwitches { indices: s.indices.to_device(dev).unwrap(), ..s.clone() })
                    })
                    .collect(),
            };
            let mut vm = VarMap::new();
            let dec = Decoder::new(spec.clone(), VarBuilder::from_varmap(&vm, DType::F32, dev)).unwrap();
            vm.set(weights.iter().map(|(k, v)| (k.clone(), v.to_device(dev).unwrap()))).unwrap();
            let xd = x.to_device(dev).unwrap();
            let y = dec.forward(&moved).unwrap();
            let grads = y.sub(&xd).unwrap().sqr().unwrap().mean_all().unwrap().backward().unwrap();
            let mut vars = vm
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), grads.get(v.as_tensor()).unwrap().clone()))
                .collect::<Vec<_>>();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            match &reference {
                None => reference = Some((y, vars)),
                Some((y0, g0)) => {
                    assert!(rel(&y, y0) < 1e-4, "{kind} {dev:?} output: {}", rel(&y, y0));
                    for ((name, g), (_, g0)) in vars.iter().zip(g0) {
                        assert!(rel(g, g0) < 1e-3, "{kind} {dev:?} d{name}: {}", rel(g, g0));
                    }
                }
            }
        }
    }
}

/// Mixed precision (`--dtype bf16`, as PyTorch's autocast): a bf16 encoder gives f32's features
/// to bf16 precision, and a decoder fed bf16 features computes in bf16 from its f32 weights, with
/// an f32 loss and f32 weight gradients that follow the f32 run's. On every device: our CPU
/// kernels (bf16 storage, f32 arithmetic), cuDNN and our bf16 kernels on CUDA. Covers conv and fc
/// taps (the encoder's and the decoder's fully connected layers).
#[test]
fn bf16_training_follows_f32() {
    use layerinv::train::reconstruction_loss;
    // Relative L2 error: a pre-activation within bf16's rounding of 0 may flip its ReLU, which
    // moves single values a lot but the whole tensor little.
    let rel = |a: &Tensor, b: &Tensor| {
        let (a, b) = (
            a.to_dtype(DType::F32).unwrap().to_device(&Device::Cpu).unwrap(),
            b.to_dtype(DType::F32).unwrap().to_device(&Device::Cpu).unwrap(),
        );
        let norm = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
        norm(&a.sub(&b).unwrap()) / norm(&b).max(1e-12)
    };
    // Limits on the weight gradients' error, which grows with the number of bf16 layers it
    // crossed: measured at most 0.083 for pool3 (4 convolutions back), 0.157 for fc7 (8
    // convolutions and 2 fc layers) and 0.040 for AlexNet pool1 over four random draws of
    // freshly initialised decoders (small weights, so many pre-activations near a ReLU's kink;
    // the deepest layer's bias gradient is the worst). A wrong cast, scale or kernel gives errors
    // of order 1. AlexNet pool1 adds candle's strided convolution (encoder) and
    // transposed convolutions (decoder), which have no bf16 kernels on the CPU, and overlapping
    // unpooling.
    let cases = [
        (Arch::Vgg11, Layer::POOL3, 64, 0.5, 0.15),
        (Arch::Vgg11, Layer::FC7, 224, 0.125, 0.3),
        (Arch::AlexNet, Layer::POOL1, 224, 0.25, 0.08),
    ];
    for dev in common::devices() {
        for (arch, layer, n, width, limit) in cases {
            let enc = common::encoder_on(arch, common::random_tensors(arch, true, 1.0), true, &dev);
            let half = enc.to_dtype(DType::BF16).unwrap();
            assert_eq!((enc.dtype(), half.dtype()), (DType::F32, DType::BF16));
            let x = image(1, n).to_device(&dev).unwrap();
            let f32_features = enc.forward_to(&x, layer).unwrap();
            let bf16_features = half.forward_to(&x, layer).unwrap();
            let (a, b) = (bf16_features.tap(layer).unwrap(), f32_features.tap(layer).unwrap());
            assert_eq!(a.dtype(), DType::BF16);
            assert!(rel(a, b) < 2e-2, "{dev:?} {arch} {layer} bf16 encoder: {}", rel(a, b));
            // The decoders get the same switches (f32's), so only the precision differs.
            let as_bf16 = Features {
                taps: f32_features.taps.iter().map(|(t, v)| (*t, v.to_dtype(DType::BF16).unwrap())).collect(),
                switches: f32_features.switches.clone(),
            };
            for kind in Kind::ALL {
                let spec = DecoderSpec::new(arch, layer, kind, width).unwrap();
                let vm = VarMap::new();
                let dec = Decoder::new(spec, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
                let run = |features: &Features| {
                    let y = dec.forward(features).unwrap();
                    let loss = reconstruction_loss(&y, &x, enc.preprocess).unwrap();
                    assert_eq!(loss.dtype(), DType::F32);
                    let grads = loss.backward().unwrap();
                    let mut g: Vec<(String, Tensor)> = vm
                        .data()
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), grads.get(v.as_tensor()).unwrap().clone()))
                        .collect();
                    g.sort_by(|a, b| a.0.cmp(&b.0));
                    (y, loss, g)
                };
                let ((y32, l32, g32), (y16, l16, g16)) = (run(&f32_features), run(&as_bf16));
                assert_eq!(y16.dtype(), DType::BF16, "{dev:?} {arch} {layer} {kind}");
                assert!(rel(&y16, &y32) < 2e-2, "{dev:?} {arch} {layer} {kind} output: {}", rel(&y16, &y32));
                assert!(rel(&l16, &l32) < 1e-2, "{dev:?} {arch} {layer} {kind} loss: {}", rel(&l16, &l32));
                for ((name, a), (_, b)) in g16.iter().zip(&g32) {
                    assert_eq!(a.dtype(), DType::F32, "{name}");
                    assert!(rel(a, b) < limit, "{dev:?} {arch} {layer} {kind} d{name}: {}", rel(a, b));
                }
            }
        }
    }
}

/// SAE and SWWAE train at the run's rate; an up-conv decoder at `min(1, 2000 / fan-in)` of its
/// widest up-convolution (25·cin: 1,600 at VGG-16's pool1, 12,800 at pool5), whatever its width.
#[test]
fn upconv_learning_rates_shrink_with_the_fan_in_of_the_widest_upconvolution() {
    let want = [
        (Layer::POOL1, 1.0),
        (Layer::POOL2, 0.625),
        (Layer::POOL3, 0.3125),
        (Layer::POOL4, 0.15625),
        (Layer::POOL5, 0.15625),
    ];
    for (layer, scale) in want {
        for width in [0.25, 1.0] {
            let spec = |kind| DecoderSpec::new(Arch::Vgg16, layer, kind, width).unwrap();
            assert_eq!(spec(Kind::Upconv).learning_rate_scale(), scale, "{layer} width {width}");
            assert_eq!(spec(Kind::Sae).learning_rate_scale(), 1.0);
            assert_eq!(spec(Kind::Swwae).learning_rate_scale(), 1.0);
        }
    }
    // fc taps go through pool5's stages: the same widest up-convolution.
    assert_eq!(DecoderSpec::new(Arch::Vgg16, Layer::FC7, Kind::Upconv, 0.25).unwrap().learning_rate_scale(), 0.15625);
}
