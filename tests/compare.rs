//! The what/where experiments with the bundled decoders: a photo's own switches and every channel
//! change nothing; another photo's switches change SWWAE only; fewer channels change both.
mod common;

use common::{assert_clean_failure, layerinv, repo_path};
use layerinv::compare::{error_map, keep_channels, with_switches_of, ChannelSpec};
use layerinv::data::load_image;
use layerinv::model::Layer;
use layerinv::model::{Encoder, Kind, ModelSource};
use layerinv::recon::{features_of, model_input, reconstruct_from, DecoderSet, Reconstruction};

fn setup() -> (Encoder, DecoderSet) {
    let enc = ModelSource::parse("bundled").load(&candle_core::Device::Cpu).unwrap();
    let set = DecoderSet::load(&repo_path("weights"), &enc);
    (enc, set)
}

fn photo(enc: &Encoder, name: &str) -> image::RgbImage {
    model_input(enc, &load_image(&repo_path("assets").join(name)).unwrap())
}

fn pictures(recs: &[Reconstruction]) -> Vec<(Kind, Vec<u8>)> {
    recs.iter().map(|r| (r.kind, r.image.as_raw().clone())).collect()
}

#[test]
fn own_switches_change_nothing_and_another_photos_change_swwae_only() {
    let (enc, set) = setup();
    let (cat, rocket) = (photo(&enc, "chelsea.png"), photo(&enc, "rocket.jpg"));
    let (f, g) = (features_of(&enc, &cat).unwrap(), features_of(&enc, &rocket).unwrap());
    let layers = [Layer::POOL2, Layer::POOL4];
    let plain = reconstruct_from(&enc, &set, &f, &cat, &layers, &Kind::ALL).unwrap();
    let own = reconstruct_from(&enc, &set, &with_switches_of(&f, &f).unwrap(), &cat, &layers, &Kind::ALL).unwrap();
    assert_eq!(pictures(&own), pictures(&plain), "a photo's own switches must change nothing, pixel for pixel");

    let other = reconstruct_from(&enc, &set, &with_switches_of(&f, &g).unwrap(), &cat, &layers, &Kind::ALL).unwrap();
    for (p, o) in plain.iter().zip(&other) {
        let (_, mean_diff) = error_map(&p.image, &o.image);
        if p.kind.reads_switches() {
            assert!(mean_diff > 3.0, "{}: the rocket's switches moved SWWAE by only {mean_diff:.2}", p.layer);
            assert!(
                o.psnr < p.psnr - 1.0,
                "{}: {:.2} dB with the rocket's switches, {:.2} with its own",
                p.layer,
                o.psnr,
                p.psnr
            );
        } else {
            assert_eq!(p.image, o.image, "{} reads no switches ({})", p.kind.label(), p.layer);
        }
    }
}

/// Every kind the bundle lacks (the up-convolutional decoder until it is trained and bundled),
/// with fresh weights: another photo's switches change nothing of a kind that reads none, and
/// keeping fewer channels changes what it draws. (An invariance of the architecture; the weights
/// are not trained and nothing here measures fidelity.)
#[test]
fn switches_change_only_the_kinds_that_read_them_and_masks_change_every_kind() {
    use layerinv::model::DecoderSpec;
    use layerinv::train::DecoderTrainer;
    let enc = ModelSource::parse("bundled").load(&candle_core::Device::Cpu).unwrap();
    let (cat, rocket) = (photo(&enc, "chelsea.png"), photo(&enc, "rocket.jpg"));
    let (f, g) = (features_of(&enc, &cat).unwrap(), features_of(&enc, &rocket).unwrap());
    let dev = candle_core::Device::Cpu;
    for kind in Kind::ALL {
        let spec = DecoderSpec::new(enc.arch, Layer::POOL2, kind, 0.25).unwrap();
        let dec = DecoderTrainer::new(spec, &dev).unwrap().frozen(&dev, candle_core::DType::F32).unwrap();
        let plain = dec.forward(&f).unwrap();
        let moved = dec.forward(&with_switches_of(&f, &g).unwrap()).unwrap();
        let diff = plain.sub(&moved).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(
            diff == 0.0,
            !kind.reads_switches(),
            "{}: another photo's switches moved it by {diff}",
            kind.label()
        );
        let top = ChannelSpec::parse("top:8").unwrap().mask(f.tap(Layer::POOL2).unwrap()).unwrap();
        let masked = dec.forward(&keep_channels(&f, Layer::POOL2, &top).unwrap()).unwrap();
        let diff = plain.sub(&masked).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff > 0.0, "{}: keeping 8 channels changed nothing", kind.label());
    }
}

#[test]
fn keeping_every_channel_changes_nothing_and_the_top_8_change_both() {
    let (enc, set) = setup();
    let cat = photo(&enc, "chelsea.png");
    let f = features_of(&enc, &cat).unwrap();
    let layer = [Layer::POOL3];
    let plain = reconstruct_from(&enc, &set, &f, &cat, &layer, &Kind::ALL).unwrap();
    let code = f.tap(Layer::POOL3).unwrap();
    let all = ChannelSpec::parse("0-255").unwrap().mask(code).unwrap();
    assert!(all.iter().all(|&k| k));
    let kept = reconstruct_from(&enc, &set, &keep_channels(&f, Layer::POOL3, &all).unwrap(), &cat, &layer, &Kind::ALL)
        .unwrap();
    assert_eq!(pictures(&kept), pictures(&plain), "keeping every channel must change nothing, pixel for pixel");

    let top = ChannelSpec::parse("top:8").unwrap().mask(code).unwrap();
    assert_eq!(top.iter().filter(|&&k| k).count(), 8);
    let energy = layerinv::compare::channel_energy(code).unwrap();
    let weakest_kept = (0..256).filter(|&i| top[i]).map(|i| energy[i]).fold(f32::INFINITY, f32::min);
    assert!((0..256).filter(|&i| !top[i]).all(|i| energy[i] <= weakest_kept), "top:8 keeps the 8 strongest");
    let few = reconstruct_from(&enc, &set, &keep_channels(&f, Layer::POOL3, &top).unwrap(), &cat, &layer, &Kind::ALL)
        .unwrap();
    for (p, q) in plain.iter().zip(&few) {
        assert!(q.psnr < p.psnr - 2.0, "{:?}: {:.2} dB from 8 channels, {:.2} from 256", p.kind, q.psnr, p.psnr);
    }
}

#[test]
fn channel_specs_parse_and_refuse_with_the_reason() {
    assert_eq!(ChannelSpec::parse("0-31,64, 100").unwrap(), ChannelSpec::List(vec![(0, 31), (64, 64), (100, 100)]));
    assert_eq!(ChannelSpec::parse("top:16").unwrap(), ChannelSpec::Top(16));
    for (bad, why) in
        [("5-2", "backwards"), ("abc", "not a channel index"), ("top:x", "whole number"), ("", "give channel")]
    {
        let e = ChannelSpec::parse(bad).unwrap_err().to_string();
        assert!(e.contains(why) && e.contains("--keep-channels"), "{bad:?}: {e}");
    }
    let code = candle_core::Tensor::ones((1, 64, 2, 2), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    let e = ChannelSpec::parse("0,64").unwrap().mask(&code).unwrap_err().to_string();
    assert!(e.contains("channel 64 does not exist") && e.contains("64"), "{e}");
}

#[test]
fn cli_reconstruct_draws_the_experiments_and_refuses_bad_requests_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (cat, rocket) = (repo_path("assets/chelsea.png"), repo_path("assets/rocket.jpg"));
    let (cat, rocket) = (cat.to_str().unwrap(), rocket.to_str().unwrap());
    let out = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let plain = out("plain.png");
    let o = layerinv(&["reconstruct", cat, "--layer", "pool3", "--out", &plain]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // A kind the set lacks is named, with the command that makes it; the picture shows the rest.
    for kind in Kind::ALL {
        let note = format!("note: no {kind} decoders for pool3");
        let absent =
            layerinv::recon::DecoderSet::load(&repo_path("weights"), &setup().0).get(Layer::POOL3, kind).is_err();
        assert_eq!(err.contains(&note), absent, "{err}");
        if absent {
            assert!(err.contains(&format!("--kinds {kind}")), "{err}");
            // Not into the program's own folder: into one of the user's, then shown beside it.
            assert!(err.contains("--out decoders`, then add `--decoders decoders`"), "{err}");
            assert!(!err.contains(&format!("--out {}", repo_path("weights").display())), "{err}");
        }
    }
    let diff = out("diff.png");
    let o = layerinv(&[
        "reconstruct",
        cat,
        "--layer",
        "pool3",
        "--out",
        &diff,
        "--switches-from",
        rocket,
        "--keep-channels",
        "top:32",
        "--diff",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (p, d) = (image::open(&plain).unwrap(), image::open(&diff).unwrap());
    assert!(d.width() > p.width() + 200, "the diff figure has a fourth column (the colour scale)");
    assert!(d.height() > p.height() * 3 / 2, "the diff figure has a second row");

    let o = layerinv(&["reconstruct", cat, "--layer", "pool3", "--out", &out("x.png"), "--keep-channels", "0-999"]);
    assert_clean_failure(&o, &["channel 999 does not exist", "256"]);
    let o = layerinv(&["reconstruct", cat, "--all-layers", "--out", &out("x.png"), "--keep-channels", "top:4"]);
    assert_clean_failure(&o, &["--keep-channels", "--layer"]);
    let o =
        layerinv(&["reconstruct", cat, "--layer", "pool3", "--out", &out("x.png"), "--switches-from", "/no/such.jpg"]);
    assert_clean_failure(&o, &["/no/such.jpg"]);
}

/// A code seen channel by channel: energies and maxima per channel, the order by energy, and an
/// atlas with each channel's map as a grey tile (white at that channel's own maximum); an fc code
/// gives one 1×1 tile per unit.
#[test]
fn channel_maps_order_by_energy_and_scale_each_tile_to_its_maximum() {
    use layerinv::compare::ChannelMaps;
    // 3 channels of 2×2: channel 1 the strongest, channel 2 all zero.
    let code = candle_core::Tensor::new(
        &[[[[1f32, 0.], [0., 1.]], [[4., 2.], [0., 2.]], [[0., 0.], [0., 0.]]]],
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let m = ChannelMaps::of(&code).unwrap();
    assert_eq!(m.order, vec![1, 0, 2]);
    assert_eq!(m.max, vec![1.0, 4.0, 0.0]);
    assert_eq!(m.energy, vec![0.5, 6.0, 0.0]);
    assert_eq!((m.tile, m.cols), ((2, 2), 2));
    assert_eq!(m.atlas.dimensions(), (4, 4));
    // Tile 0 is channel 1: 4 → white, 2 → half grey; tile 1 is channel 0; tile 2, channel 2, black.
    assert_eq!(m.atlas.get_pixel(0, 0)[0], 255);
    assert_eq!(m.atlas.get_pixel(1, 0)[0], 128);
    assert_eq!(m.atlas.get_pixel(2, 0)[0], 255);
    assert_eq!(m.atlas.get_pixel(0, 2)[0], 0);
    let fc = candle_core::Tensor::new(&[[0.5f32, -1.0, 3.0, 0.0, 2.0]], &candle_core::Device::Cpu).unwrap();
    let f = ChannelMaps::of(&fc).unwrap();
    assert_eq!((f.tile, f.order[0], f.order[1]), ((1, 1), 2, 4));
    // top:2 from the same energies as the CLI's --keep-channels.
    let keep = ChannelSpec::Top(2).mask_for(5, &f.energy).unwrap();
    assert_eq!(keep, vec![false, false, true, false, true]);
}
