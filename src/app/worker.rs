//! The app's compute thread: it owns the encoder and the decoders and answers jobs with replies,
//! so the UI thread never runs a tensor op.

use super::decoders::Source;
use crate::compare::{error_map, switches_map, ChannelMaps, CodeEdit};
use crate::data::load_image;
use crate::decoder_sets::{SetInfo, UserData};
use crate::model::{Decoder, Encoder, Features, Kind, Layer, ModelSource};
use crate::recon::{
    features_of, layer_grid, model_input, rebuild, run, thumbnail, DecoderSets, Reconstruction, Request,
};
use crate::train::metrics::{mse, psnr};
use candle_core::Device;
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

/// What a reconstruction changes about the photo's own code before the decoders see it: the
/// library's [`CodeEdit`], and the id under which the worker keeps the switches' photo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Variant {
    pub edit: CodeEdit,
    /// The id of [`CodeEdit::switches_of`]'s photo.
    pub switches_id: Option<u64>,
}

impl Variant {
    pub fn is_plain(&self) -> bool {
        self.edit.is_plain()
    }
}

/// Work for the compute thread.
#[derive(Debug, Clone)]
pub enum Job {
    /// Load a model (`bundled`, `vgg16`, `vgg19` or a weights file).
    LoadModel(String),
    /// Read what these decoder folders hold for the loaded model (a decoder whose record
    /// changed on disk is loaded again when next used).
    ScanSets(Vec<PathBuf>),
    /// Decode an image file; it becomes image `id`.
    LoadImage { id: u64, path: PathBuf },
    /// Rebuild image `id` from `layer` with each source's decoder, its code changed as `variant`
    /// says; `preview`: the decoders of a run in progress.
    Reconstruct { id: u64, layer: Layer, variant: Variant, sources: Vec<Source>, preview: bool },
    /// Image `id`'s code at `layer`, channel by channel.
    Channels { id: u64, layer: Layer },
    /// Measure a finished run's decoders against those they would replace (`None`: nothing to
    /// replace) on the same photos (the run's validation photos).
    Judge { run: PathBuf, photos: Vec<PathBuf>, pairs: Vec<(Layer, Kind, Option<PathBuf>)> },
}

/// Per layer of the model: `None` when the model can serve it, else why not.
pub type LayerStatus = Vec<(Layer, Option<String>)>;

/// One decoder of a finished run against the one it would replace, mean PSNR on the same photos.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub layer: Layer,
    pub kind: Kind,
    pub run_psnr: f64,
    /// The decoder shown before and its PSNR.
    pub current: Option<(PathBuf, f64)>,
}

/// Answers from the compute thread.
pub enum Reply {
    Model {
        name: String,
        arch: crate::model::Arch,
        fingerprint: String,
        layers: LayerStatus,
    },
    /// What the scanned folders hold.
    Sets(Vec<SetInfo>),
    /// `top5`: the classifier's five best guesses, when the model has fc8.
    Image {
        id: u64,
        path: PathBuf,
        input: RgbImage,
        top5: Option<Vec<(String, f32)>>,
    },
    /// `recs` in the order of `sources`, with `errors`, each one's |input − picture| map and its
    /// mean, and `lost`, the map between the two kinds of [`Kind::switch_pair`] when both are
    /// there; `floor`: PSNR of the layer's thumbnail floor for this photo (`None` for fc layers);
    /// `seconds`: the whole job; `encoder_ran`: whether it had to run the encoder (else only the
    /// decoders ran, on a kept encoder pass).
    Reconstructed {
        id: u64,
        layer: Layer,
        variant: Variant,
        sources: Vec<Source>,
        preview: bool,
        recs: Vec<Reconstruction>,
        errors: Vec<(RgbImage, f64)>,
        lost: Option<(RgbImage, f64)>,
        floor: Option<f64>,
        seconds: f64,
        encoder_ran: bool,
    },
    Channels {
        id: u64,
        layer: Layer,
        maps: ChannelMaps,
    },
    /// `photos`: how many of the run's validation photos could be read.
    Judged {
        run: PathBuf,
        photos: usize,
        verdicts: Vec<Verdict>,
    },
    /// A job failed; the message is one line naming the file or thing and the problem.
    Failed {
        job: Job,
        error: String,
    },
}

/// Handle to the compute thread. Dropping it closes the job channel and joins the thread.
pub struct Worker {
    jobs: Option<Sender<Job>>,
    replies: Receiver<Reply>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Start the thread on `device`; `wake` is called after each reply (e.g. request a repaint).
    /// `user` is where the earlier versions' decoders are (to name that set).
    pub fn spawn(device: Device, user: UserData, wake: impl Fn() + Send + 'static) -> Self {
        let (job_tx, job_rx) = channel::<Job>();
        let (reply_tx, replies) = channel();
        let thread = std::thread::Builder::new()
            .name("layerinv-worker".into())
            .spawn(move || {
                let sets = DecoderSets::new(user.clone());
                let mut state = State { device, user, encoder: None, sets, images: Vec::new() };
                while let Ok(job) = job_rx.recv() {
                    let reply = state.handle(job.clone()).unwrap_or_else(|error| Reply::Failed { job, error });
                    if reply_tx.send(reply).is_err() {
                        break;
                    }
                    wake();
                }
            })
            .ok();
        Self { jobs: Some(job_tx), replies, thread }
    }

    pub fn send(&self, job: Job) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(job);
        }
    }

    /// The next reply, if one is waiting.
    pub fn try_recv(&self) -> Option<Reply> {
        self.replies.try_recv().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct State {
    device: Device,
    user: UserData,
    encoder: Option<Encoder>,
    /// The decoder sets, with the decoders loaded so far.
    sets: DecoderSets,
    /// The few most recent photos, so that changing the layer runs only the decoders.
    images: Vec<Kept>,
}

/// A loaded photo: its model-size input and, once computed for the current model, every tap.
struct Kept {
    id: u64,
    input: RgbImage,
    features: Option<Features>,
}

/// Photos kept with their features (about 12 MB each for VGG-16 at 224×224).
const KEEP_IMAGES: usize = 8;

impl State {
    fn handle(&mut self, job: Job) -> std::result::Result<Reply, String> {
        match job {
            Job::LoadModel(source) => {
                let enc = ModelSource::parse(&source).load(&self.device).map_err(|e| e.to_string())?;
                let layers = enc.arch.layers().into_iter().map(|l| (l, enc.unavailable_reason(l))).collect();
                let reply = Reply::Model {
                    name: enc.name.clone(),
                    arch: enc.arch,
                    fingerprint: enc.fingerprint.clone(),
                    layers,
                };
                self.sets.clear();
                self.encoder = Some(enc);
                // The kept photos' features came from the previous model.
                for kept in &mut self.images {
                    kept.features = None;
                }
                Ok(reply)
            }
            Job::ScanSets(dirs) => {
                let enc = self.encoder.as_ref().ok_or("no model loaded")?;
                let sets: Vec<SetInfo> =
                    dirs.iter().map(|d| SetInfo::read(d, enc.arch, &enc.fingerprint, &self.user)).collect();
                self.sets.refresh(&sets);
                Ok(Reply::Sets(sets))
            }
            Job::LoadImage { id, path } => {
                let enc = self.encoder.as_ref().ok_or("no model loaded")?;
                let img = load_image(&path).map_err(|e| e.to_string())?;
                let input = model_input(enc, &img);
                // One encoder pass for every layer (and the top-5 where the model has fc8).
                let features = features_of(enc, &input).map_err(|e| e.to_string())?;
                let top5 = features
                    .tap(enc.arch.logits())
                    .map(|l| crate::model::labels::top_k(l, 5))
                    .transpose()
                    .map_err(|e| e.to_string())?;
                self.keep(Kept { id, input: input.clone(), features: Some(features) });
                Ok(Reply::Image { id, path, input, top5 })
            }
            Job::Reconstruct { id, layer, variant, sources, preview } => {
                let started = Instant::now();
                let mut encoder_ran = false;
                let theirs = match (variant.switches_id, &variant.edit.switches_of) {
                    (Some(other), Some(path)) => Some(self.features(other, Some(path), &mut encoder_ran)?.clone()),
                    _ => None,
                };
                let own = self.features(id, None, &mut encoder_ran)?.clone();
                let enc = self.encoder.as_ref().ok_or("no model loaded")?;
                let input = &self.images.iter().find(|k| k.id == id).ok_or("that image is no longer loaded")?.input;
                let request = Request { layers: vec![(layer, sources.clone())], edit: variant.edit.clone() };
                let recs: Vec<Reconstruction> = run(enc, &mut self.sets, &request, input, &own, theirs.as_ref())
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|p| p.rec)
                    .collect();
                let floor = layer_grid(enc, layer).map(|g| psnr(mse(&thumbnail(input, g), input)));
                // The error maps here, not on the UI thread.
                let errors = recs.iter().map(|r| error_map(input, &r.image)).collect();
                let pictures: Vec<(Kind, &RgbImage)> = recs.iter().map(|r| (r.kind, &r.image)).collect();
                let lost = switches_map(&pictures);
                let seconds = started.elapsed().as_secs_f64();
                Ok(Reply::Reconstructed {
                    id,
                    layer,
                    variant,
                    sources,
                    preview,
                    recs,
                    errors,
                    lost,
                    floor,
                    seconds,
                    encoder_ran,
                })
            }
            Job::Channels { id, layer } => {
                let features = self.features(id, None, &mut false)?;
                let code = features.tap(layer).ok_or_else(|| format!("no {layer} activation"))?;
                let maps = ChannelMaps::of(code).map_err(|e| e.to_string())?;
                Ok(Reply::Channels { id, layer, maps })
            }
            Job::Judge { run, photos, pairs } => self.judge(run, &photos, pairs),
        }
    }
}

impl State {
    /// Image `id`'s features, from the kept encoder pass or a new one (`ran` is then set). An
    /// image no longer kept is loaded again from `path` when one is given.
    fn features(&mut self, id: u64, path: Option<&PathBuf>, ran: &mut bool) -> std::result::Result<&Features, String> {
        let enc = self.encoder.as_ref().ok_or("no model loaded")?;
        if !self.images.iter().any(|k| k.id == id) {
            let path = path.ok_or("that image is no longer loaded")?;
            let input = model_input(enc, &load_image(path).map_err(|e| e.to_string())?);
            self.keep(Kept { id, input, features: None });
        }
        let enc = self.encoder.as_ref().ok_or("no model loaded")?;
        let kept = self.images.iter_mut().find(|k| k.id == id).ok_or("that image is no longer loaded")?;
        match &mut kept.features {
            Some(f) => Ok(f),
            none => {
                *ran = true;
                Ok(none.insert(features_of(enc, &kept.input).map_err(|e| e.to_string())?))
            }
        }
    }

    /// The decoder in `dir` for `layer`/`kind`, loaded once.
    fn decoder(&mut self, dir: &Path, layer: Layer, kind: Kind) -> std::result::Result<&Decoder, String> {
        let enc = self.encoder.as_ref().ok_or("no model loaded")?;
        self.sets.get_or_read(dir, enc).load_one(enc, layer, kind).map_err(|e| e.to_string())
    }

    /// Mean PSNR of the run's decoders and of those they would replace, on the same photos.
    fn judge(
        &mut self,
        run: PathBuf,
        photos: &[PathBuf],
        pairs: Vec<(Layer, Kind, Option<PathBuf>)>,
    ) -> std::result::Result<Reply, String> {
        for &(layer, kind, ref current) in &pairs {
            self.decoder(&run, layer, kind)?;
            if let Some(c) = current {
                self.decoder(c, layer, kind)?;
            }
        }
        let enc = self.encoder.as_ref().ok_or("no model loaded")?;
        let mut sums = vec![(0.0, 0.0); pairs.len()];
        let mut n = 0;
        for p in photos {
            let Ok(img) = load_image(p) else { continue };
            let input = model_input(enc, &img);
            let features = features_of(enc, &input).map_err(|e| e.to_string())?;
            for (&(layer, kind, ref current), sum) in pairs.iter().zip(sums.iter_mut()) {
                let score = |dir: &Path| -> std::result::Result<f64, String> {
                    let d = self
                        .sets
                        .get(dir)
                        .ok_or("that decoder set is not loaded")?
                        .get(layer, kind)
                        .map_err(|e| e.to_string())?;
                    Ok(rebuild(enc, d, &features, &input, layer, kind).map_err(|e| e.to_string())?.psnr)
                };
                sum.0 += score(&run)?;
                if let Some(c) = current {
                    sum.1 += score(c)?;
                }
            }
            n += 1;
        }
        let mean = |s: f64| s / n.max(1) as f64;
        let verdicts = pairs
            .into_iter()
            .zip(sums)
            .map(|((layer, kind, current), (mine, theirs))| Verdict {
                layer,
                kind,
                run_psnr: mean(mine),
                current: current.map(|c| (c, mean(theirs))),
            })
            .collect();
        Ok(Reply::Judged { run, photos: n, verdicts })
    }

    /// Keep a photo, forgetting the oldest beyond [`KEEP_IMAGES`].
    fn keep(&mut self, kept: Kept) {
        self.images.retain(|k| k.id != kept.id);
        self.images.push(kept);
        if self.images.len() > KEEP_IMAGES {
            self.images.remove(0);
        }
    }
}
