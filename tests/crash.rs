//! Crash-clean training folders, with the real CLI: one trainer per output folder (the lock dies
//! with its holder), `kill -9` at random moments leaves only loadable files, and what a killed
//! write left half-written is removed at the next start; Ctrl-C saves and `--resume` finishes.
mod common;

use common::{assert_clean_failure, demo_photo_dir, layerinv};
use layerinv::model::decoder_file::{load_decoder, read_decoder_meta};
use layerinv::model::Layer;
use layerinv::model::{DecoderSpec, Objective};
use layerinv::model::{Kind, ModelSource};
use layerinv::train::{checkpoint_path, DecoderTrainer};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A tiny pool1 run, `--checkpoint-every 1` so that files are being written most of the time.
fn train_args<'a>(data: &'a str, out: &'a str, steps: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--layers",
        "pool1",
        "--steps",
        steps,
        "--batch",
        "1",
        "--crop",
        "32",
        "--width",
        "0.25",
        "--out",
        out,
        "--checkpoint-every",
        "1",
        "--val-every",
        "0",
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
}

/// Start a training run; return once it has logged step 10 (so its files exist).
fn start_training(args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_layerinv"))
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    loop {
        let line = lines.next().unwrap_or_else(|| panic!("training ended before step 10: {seen}")).unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("step 10/") {
            break;
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

fn kill9(child: &mut Child) {
    let status = Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    child.wait().unwrap();
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

/// A pid no process can have (above Linux's largest `pid_max`).
const DEAD_PID: u32 = 4_194_305;

#[test]
fn a_second_trainer_on_the_same_folder_is_refused_and_the_lock_dies_with_its_holder() {
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let (d, o) = (data.path().to_str().unwrap(), out.path().to_str().unwrap());
    let mut first = start_training(&train_args(d, o, "100000"));
    let second = layerinv(&train_args(d, o, "3"));
    assert_clean_failure(&second, &[o, &format!("pid {}", first.id()), "another training run"]);

    kill9(&mut first);
    // A write killed half-way leaves NAME.tmpPID; the next run removes those of dead processes.
    let stale = out.path().join(format!("vgg16_pool1_sae.safetensors.tmp{DEAD_PID}"));
    std::fs::write(&stale, b"half a file").unwrap();
    let again = layerinv(&train_args(d, o, "3"));
    assert!(again.status.success(), "the lock must die with its process: {}", String::from_utf8_lossy(&again.stderr));
    assert!(!stale.exists(), "the stale temp file stays: {:?}", temp_files(out.path()));
}

#[test]
fn kill_9_at_random_moments_leaves_loadable_files_and_resume_reaches_the_target() {
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let (d, o) = (data.path().to_str().unwrap(), out.path().to_str().unwrap());
    let enc = ModelSource::parse("bundled").load(&candle_core::Device::Cpu).unwrap();
    // Deterministic "random" delays after step 10: 0–400 ms, a different point of the
    // write-every-step cycle each time.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..10 {
        let mut child = start_training(&train_args(d, o, "100000"));
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::thread::sleep(std::time::Duration::from_millis(state % 400));
        kill9(&mut child);
        for kind in Kind::ALL {
            let file = out.path().join(format!("vgg16_pool1_{}.safetensors", kind.name()));
            let (_, meta) =
                load_decoder(&file, &enc, Layer::POOL1, kind).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(meta.steps >= 10, "round {round}: {} steps", meta.steps);
            let spec = DecoderSpec::new(enc.arch, Layer::POOL1, kind, 0.25).unwrap();
            let ckpt = checkpoint_path(out.path(), &spec);
            DecoderTrainer::resume(&ckpt, spec, &enc.fingerprint, Objective::First, &candle_core::Device::Cpu)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
    let steps = read_decoder_meta(&out.path().join("vgg16_pool1_sae.safetensors")).unwrap().steps;
    let target = (steps + 5).to_string();
    let mut args = train_args(d, o, &target);
    args.push("--resume");
    let resumed = layerinv(&args);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    for kind in Kind::ALL {
        let meta = read_decoder_meta(&out.path().join(format!("vgg16_pool1_{}.safetensors", kind.name()))).unwrap();
        assert_eq!(meta.steps, steps + 5);
    }
    assert!(temp_files(out.path()).is_empty(), "{:?}", temp_files(out.path()));
}

/// A tmpfs mounted for the test's life (root only; `None`, with the reason, where not allowed).
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn mount(bytes: usize) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs", dir.path().to_str().unwrap()])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(TinyDisk { dir })
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_while_saving_keeps_the_previous_files_and_says_so_in_one_line() {
    let disk = match TinyDisk::mount(2 << 20) {
        Ok(d) => d,
        Err(why) => {
            eprintln!("SKIPPED: this test needs to mount a small tmpfs (root): {why}");
            return;
        }
    };
    let data = demo_photo_dir(false);
    let out = disk.dir.path().join("decoders");
    let (d, o) = (data.path().to_str().unwrap(), out.to_str().unwrap());
    let first = layerinv(&train_args(d, o, "2"));
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let before: Vec<(String, Vec<u8>)> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    let kinds = layerinv::model::Kind::ALL.len();
    assert_eq!(before.len(), 2 * kinds + 1, "a decoder and a checkpoint per kind, and the run's record");
    // Fill the disk to the last byte.
    let filler = disk.dir.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    while std::io::Write::write_all(&mut f, &block[..1]).is_ok() {}
    drop(f);

    let mut args = train_args(d, o, "4");
    args.push("--resume");
    let full = layerinv(&args);
    // The run's progress lines, then one error line naming the file it could not save.
    let err = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{err}");
    let last = err.trim_end().lines().last().unwrap_or("");
    assert!(last.starts_with("error: ") && last.contains(o) && last.contains("No space left on device"), "{err}");
    assert!(!err.contains(".ckpt.tmp") && !err.contains(".safetensors.tmp") && !err.contains("panicked"), "{err}");
    for (name, bytes) in &before {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), bytes, "{name} changed");
    }
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
}

#[test]
fn cli_train_ctrl_c_saves_and_resume_finishes() {
    let data = demo_photo_dir(false);
    let out = tempfile::tempdir().unwrap();
    let (d, o) = (data.path().to_str().unwrap(), out.path().to_str().unwrap());
    let args = [
        "train",
        "--data",
        d,
        "--layers",
        "pool1",
        "--kinds",
        "swwae",
        "--steps",
        "100000",
        "--batch",
        "1",
        "--crop",
        "32",
        "--width",
        "0.25",
        "--out",
        o,
        "--checkpoint-every",
        "1000000",
        "--device",
        "cpu",
    ];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_layerinv"))
        .args(args)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Without a terminal the trainer logs every 10th step: once it is training, press Ctrl-C.
    let mut err = String::new();
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("step 10/") {
            send_sigint(child.id());
        }
        err.push_str(&line);
        err.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("interrupted at step") && err.contains("--resume"), "{err}");
    let file = out.path().join("vgg16_pool1_swwae.safetensors");
    let steps = read_decoder_meta(&file).unwrap().steps;
    assert!(steps > 0 && steps < 100000, "{steps}");
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty());

    let target = (steps + 3).to_string();
    let mut args2 = args.to_vec();
    args2[8] = &target;
    args2.push("--resume");
    let out2 = layerinv(&args2);
    assert!(out2.status.success(), "{}", String::from_utf8_lossy(&out2.stderr));
    assert_eq!(read_decoder_meta(&file).unwrap().steps, steps + 3);
}

fn send_sigint(pid: u32) {
    let status = std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}
