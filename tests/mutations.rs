//! Seeded mutations of valid files, through every loader a user's file reaches: bit flips,
//! truncations, and forged header lengths and tensor offsets. Each must load or fail with an
//! error, never panic and never hang. (The open-ended search is `fuzz/`, cargo-fuzz; this keeps CI
//! guarding what it found.)
mod common;

use candle_core::{DType, Device, Tensor};
use common::{
    assert_clean_failure, bundled, layerinv, repo_path, tiny_decoders, write_onnx, write_pth, write_pth_declaring,
};
use layerinv::data::load_image;
use layerinv::model::Layer;
use layerinv::model::{load_decoder, load_weights_file, DecoderSpec, Kind, Objective};
use layerinv::train::{checkpoint_path, DecoderTrainer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// xorshift64: the same cases on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `n` mutants of `valid`: bit flips (1–8 anywhere, or in the first 512 bytes where headers live),
/// truncations, a forged safetensors header length, and forged numbers in a JSON header.
fn mutants(valid: &[u8], n: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for i in 0..n {
        let mut m = valid.to_vec();
        let what = match i % 6 {
            0 | 1 => {
                let span = if i % 6 == 0 { m.len() } else { m.len().min(512) };
                let flips = 1 + rng.below(8);
                for _ in 0..flips {
                    let at = rng.below(span);
                    m[at] ^= 1 << rng.below(8);
                }
                format!("{flips} bit flips")
            }
            2 => {
                let len = rng.below(m.len());
                m.truncate(len);
                format!("truncated to {len} bytes")
            }
            3 => {
                // The first 8 bytes as a little-endian length: safetensors' header size.
                let forged = [u64::MAX, u64::MAX / 2, 1 << 40, m.len() as u64, m.len() as u64 - 7, 0][rng.below(6)];
                m[..8].copy_from_slice(&forged.to_le_bytes());
                format!("header length forged to {forged}")
            }
            4 => {
                // A number in the first 4 KiB (JSON offsets and shapes, zip sizes, protobuf
                // lengths) replaced by a huge or off-by-one one.
                let head = &m[..m.len().min(4096)];
                let digits: Vec<usize> = (0..head.len()).filter(|&k| head[k].is_ascii_digit()).collect();
                if digits.is_empty() {
                    m.truncate(m.len() / 2);
                    "no digits: truncated to half".into()
                } else {
                    let at = digits[rng.below(digits.len())];
                    let repl: &[u8] =
                        [b"99999999999".as_slice(), b"0", b"18446744073709551615", b"4294967296"][rng.below(4)];
                    m.splice(at..at + 1, repl.iter().copied());
                    format!("digit at {at} → {}", String::from_utf8_lossy(repl))
                }
            }
            _ => {
                // A run of random bytes over a header-sized stretch.
                let at = rng.below(m.len().min(1024));
                let len = (1 + rng.below(64)).min(m.len() - at);
                for b in &mut m[at..at + len] {
                    *b = rng.next() as u8;
                }
                format!("{len} random bytes at {at}")
            }
        };
        out.push((what, m));
    }
    out
}

/// Each load gets this long, on its own thread: a loader that hangs fails the test instead of
/// hanging the suite.
const LIMIT: Duration = Duration::from_secs(10);

/// Run `load` on `path` on a thread of its own: its answer, `Err` if it panicked, `None` when it
/// gave none within [`LIMIT`] (the thread is left behind; the test fails).
fn load_within_limit(
    load: &Arc<dyn Fn(&Path) -> bool + Send + Sync>,
    path: &Path,
) -> Option<std::thread::Result<bool>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (load, path) = (load.clone(), path.to_path_buf());
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(&path))));
    });
    rx.recv_timeout(LIMIT).ok()
}

/// Write each mutant to `dir/name`, run `load` on it (true: it loaded): no panic, an answer
/// within [`LIMIT`] each. The valid file itself must load when `valid_loads`, so the mutants
/// start from a file that reaches every stage of the loader.
fn survive(
    dir: &Path,
    name: &str,
    valid: &[u8],
    n: usize,
    seed: u64,
    valid_loads: bool,
    load: impl Fn(&Path) -> bool + Send + Sync + 'static,
) {
    let load: Arc<dyn Fn(&Path) -> bool + Send + Sync> = Arc::new(load);
    let path = dir.join(name);
    std::fs::write(&path, valid).unwrap();
    let answer = |what: &str| match load_within_limit(&load, &path) {
        None => panic!("{name}, {what}: no answer within {LIMIT:?}"),
        Some(Err(_)) => panic!("{name}, {what}: the loader panicked"),
        Some(Ok(loaded)) => loaded,
    };
    assert_eq!(answer("the unmutated file"), valid_loads, "{name}: the unmutated file");
    let mut loaded = 0;
    for (what, bytes) in mutants(valid, n, seed) {
        std::fs::write(&path, &bytes).unwrap();
        loaded += usize::from(answer(&what));
    }
    eprintln!("{name}: {n} mutants, {loaded} loaded, {} refused", n - loaded);
}

/// With `LAYERINV_FUZZ_SEEDS=DIR`, keep a valid file as a seed for a fuzz target (`fuzz/seed.sh`):
/// `DIR/TARGET/NAME`, behind the target's selector byte.
fn keep_as_fuzz_seed(target: &str, selector: u8, file: &Path, bytes: &[u8]) {
    let Some(dir) = std::env::var_os("LAYERINV_FUZZ_SEEDS") else { return };
    let dir = Path::new(&dir).join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file.file_name().unwrap()), [&[selector], bytes].concat()).unwrap();
}

#[test]
fn mutated_images_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    for (name, seed) in [("rocket.jpg", 1), ("coffee.png", 2)] {
        let valid = std::fs::read(repo_path("assets").join(name)).unwrap();
        survive(dir.path(), name, &valid, 90, seed, true, |p| load_image(p).is_ok());
    }
}

#[test]
fn mutated_weights_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    // Small tensors under real names: every parser runs, shape checks refuse at the end.
    let small: Vec<(String, Tensor)> = (0..3)
        .flat_map(|i| {
            let w = Tensor::randn(0f32, 1.0, (4, 3, 3, 3), &Device::Cpu).unwrap();
            let b = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
            [(format!("features.{i}.weight"), w), (format!("features.{i}.bias"), b)]
        })
        .collect();
    let st = dir.path().join("valid.safetensors");
    candle_core::safetensors::save(&small.iter().cloned().collect(), &st).unwrap();
    let pth = dir.path().join("valid.pth");
    write_pth(&pth, &small);
    let onnx = dir.path().join("valid.onnx");
    let convs: Vec<(Tensor, Tensor)> = small.chunks(2).map(|c| (c[0].1.clone(), c[1].1.clone())).collect();
    write_onnx(&onnx, &convs);
    for (i, (file, seed)) in [(&st, 3), (&pth, 4), (&onnx, 5)].into_iter().enumerate() {
        let valid = std::fs::read(file).unwrap();
        keep_as_fuzz_seed("weights", i as u8, file, &valid);
        let name = format!("m.{}", file.extension().unwrap().to_str().unwrap());
        // Tiny tensors fit no architecture: the valid file is refused too, after every parser.
        survive(dir.path(), &name, &valid, 60, seed, false, |p| load_weights_file(p, &Device::Cpu).is_ok());
    }
}

#[test]
fn mutated_decoders_and_checkpoints_never_panic() {
    let enc = Arc::new(bundled());
    let trained = tiny_decoders("pool1");
    let dir = tempfile::tempdir().unwrap();
    let decoder = std::fs::read(repo_path("weights/vgg16_pool1_swwae.safetensors")).unwrap();
    let e = enc.clone();
    survive(dir.path(), "vgg16_pool1_swwae.safetensors", &decoder, 90, 6, true, move |p| {
        load_decoder(p, &e, Layer::POOL1, Kind::Swwae).is_ok()
    });
    let spec = DecoderSpec::new(enc.arch, Layer::POOL1, Kind::Sae, 0.25).unwrap();
    let ckpt = std::fs::read(checkpoint_path(trained.path(), &spec)).unwrap();
    keep_as_fuzz_seed("decoder", 1, Path::new("pool1_sae.ckpt"), &ckpt);
    let fingerprint = enc.fingerprint.clone();
    survive(dir.path(), "vgg16_pool1_sae.ckpt", &ckpt, 90, 7, true, move |p| {
        DecoderTrainer::resume(p, spec.clone(), &fingerprint, Objective::First, &Device::Cpu).is_ok()
    });
}

/// What the fuzzers found, kept: each is refused in one line, without allocating what it declares.
#[test]
fn fuzz_findings_are_refused_before_allocating_what_they_declare() {
    // fuzz target `weights`: a .pth whose pickle declares a 4 GB string (candle allocated it). Its
    // mutation also broke the entry's checksum, which reading the whole pickle first catches.
    let found = repo_path("tests/data/fuzz/pickle_string_length_4gb.pth");
    let o = layerinv(&["info", "--model", found.to_str().unwrap()]);
    assert_clean_failure(&o, &["pickle_string_length_4gb.pth", "data.pkl"]);
    // The same with a good checksum: a string of 4,294,967,040 bytes declared, 3 there.
    let dir = tempfile::tempdir().unwrap();
    let forged = dir.path().join("forged.pth");
    {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&forged).unwrap());
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", opts).unwrap();
        zip.write_all(b"\x80\x02X\x00\xff\xff\xffabc.").unwrap();
        zip.finish().unwrap();
    }
    let o = layerinv(&["info", "--model", forged.to_str().unwrap()]);
    assert_clean_failure(&o, &["forged.pth", "a string at byte 7 runs past the end"]);
    // The same for a tensor: 10⁹ floats declared, 16 bytes stored.
    let huge = dir.path().join("huge.pth");
    write_pth_declaring(&huge, &[("features.0.weight".into(), vec![1000, 1000, 1000])], &[vec![0u8; 16]]);
    let o = layerinv(&["info", "--model", huge.to_str().unwrap()]);
    assert_clean_failure(&o, &["huge.pth", "declares shape [1000, 1000, 1000]", "holds 16 bytes"]);
}
