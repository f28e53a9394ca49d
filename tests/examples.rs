//! Every example README and docs cite runs on a fresh checkout: each one's fast path, run from
//! the binary `cargo test` builds beside the tests (`target/<profile>/examples/`).
mod common;

use common::repo_path;
use std::path::PathBuf;
use std::process::Command;

/// The example `name` as `cargo test` built it.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/examples-HASH → target/<profile>/examples/NAME
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile.join("examples").join(name);
    assert!(path.is_file(), "{} is not built (cargo test builds the examples)", path.display());
    path
}

/// Run `name` with `args` from the checkout; its standard output, after checking it succeeded.
fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name)).args(args).current_dir(repo_path(".")).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name} {args:?} failed: {stderr}\n{stdout}");
    format!("{stdout}{stderr}")
}

#[test]
fn app_latency_times_the_kinds_the_bundled_set_has() {
    // README's figure is `app_latency -- pool5`; pool1 has every kind bundled, pool5 all but one.
    for layer in ["pool5", "pool1"] {
        let out = run("app_latency", &[layer, "2"]);
        assert!(out.contains("median"), "{layer}: {out}");
    }
}

#[test]
fn latency_times_the_encoder_and_each_decoder() {
    let out = run("latency", &["1"]);
    assert!(out.contains("encoder_all") && out.contains("pool2_sae") && out.contains("pool5_upconv"), "{out}");
}

#[test]
fn convshape_times_the_convolution_shapes() {
    let out = run("convshape", &["1", "1"]);
    assert!(out.lines().count() > 3, "{out}");
}

#[test]
fn switch_speckle_measures_the_bundled_swwae_decoders() {
    let photos = tempfile::tempdir().unwrap();
    std::fs::copy(repo_path("assets/chelsea.png"), photos.path().join("chelsea.png")).unwrap();
    let out = run("switch_speckle", &[photos.path().to_str().unwrap(), "weights", "pool1"]);
    assert!(out.contains("pool1"), "{out}");
}
