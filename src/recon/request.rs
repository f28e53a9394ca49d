//! One request for pictures, whoever asks: the photo's code (edited or not) rebuilt at some
//! layers by chosen decoders. `layerinv reconstruct` and the app's worker both build a
//! [`Request`] and [`run`] it; [`crate::figure::figure`] lays out what comes back.

use super::{rebuild, DecoderSet, Reconstruction};
use crate::compare::CodeEdit;
use crate::decoder_sets::{set_labels, SetInfo, UserData};
use crate::error::{Error, Result};
use crate::model::{Encoder, Features, Kind, Layer};
use image::RgbImage;
use std::path::{Path, PathBuf};

/// Which decoder rebuilds a picture: its kind and the folder of its set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    pub kind: Kind,
    pub dir: PathBuf,
}

/// What to rebuild: at each layer, the decoders to rebuild it with, and how the code is changed
/// first ([`CodeEdit`]; a channel mask needs a single layer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub layers: Vec<(Layer, Vec<Source>)>,
    pub edit: CodeEdit,
}

impl Request {
    /// Every kind each of `sets` holds at each of `layers`: what `layerinv reconstruct` draws.
    pub fn every_kind(sets: &DecoderSets, layers: &[Layer], edit: CodeEdit) -> Self {
        let layers = layers
            .iter()
            .map(|&l| {
                let sources = sets
                    .iter()
                    .flat_map(|s| s.info.kinds_at(l).into_iter().map(|kind| Source { kind, dir: s.info.dir.clone() }))
                    .collect();
                (l, sources)
            })
            .collect();
        Self { layers, edit }
    }
}

/// A picture a request asked for: the reconstruction and the decoder it came from.
#[derive(Clone)]
pub struct Picture {
    pub source: Source,
    pub rec: Reconstruction,
}

/// The decoder sets in play, in order (the `--decoders` folders; the app's known folders), each
/// with the decoders loaded so far.
pub struct DecoderSets {
    sets: Vec<DecoderSet>,
    user: UserData,
}

impl DecoderSets {
    /// No set yet; `user` tells the earlier versions' folder when a set is read.
    pub fn new(user: UserData) -> Self {
        Self { sets: Vec::new(), user }
    }

    /// The sets in `dirs` for `enc`, every usable decoder loaded.
    pub fn load(dirs: &[PathBuf], enc: &Encoder) -> Self {
        Self { sets: dirs.iter().map(|d| DecoderSet::load(d, enc)).collect(), user: UserData::default() }
    }

    pub fn iter(&self) -> impl Iterator<Item = &DecoderSet> {
        self.sets.iter()
    }

    pub fn get(&self, dir: &Path) -> Option<&DecoderSet> {
        self.sets.iter().find(|s| s.info.dir == dir)
    }

    /// The set in `dir`, read now if it is not known yet.
    pub fn get_or_read(&mut self, dir: &Path, enc: &Encoder) -> &mut DecoderSet {
        let i = match self.sets.iter().position(|s| s.info.dir == dir) {
            Some(i) => i,
            None => {
                let info = SetInfo::read(dir, enc.arch, &enc.fingerprint, &self.user);
                self.sets.push(DecoderSet::open(info));
                self.sets.len() - 1
            }
        };
        &mut self.sets[i]
    }

    /// Take in new readings of the folders (decoders whose record is unchanged stay loaded).
    pub fn refresh(&mut self, infos: &[SetInfo]) {
        for info in infos {
            match self.sets.iter_mut().find(|s| s.info.dir == info.dir) {
                Some(set) => set.refresh(info.clone()),
                None => self.sets.push(DecoderSet::open(info.clone())),
            }
        }
    }

    /// Forget every set (another model was loaded).
    pub fn clear(&mut self) {
        self.sets.clear();
    }

    /// Each set's name in titles ([`set_labels`]).
    pub fn labels(&self) -> Vec<String> {
        set_labels(&self.sets.iter().map(|s| &s.info).collect::<Vec<_>>())
    }
}

/// Run `req` on a photo: `input` (model-size), `own` its features (covering the request's
/// layers), `theirs` the features of the photo whose switches the edit asks for. The pictures
/// come in the request's order.
pub fn run(
    enc: &Encoder,
    sets: &mut DecoderSets,
    req: &Request,
    input: &RgbImage,
    own: &Features,
    theirs: Option<&Features>,
) -> Result<Vec<Picture>> {
    let Some((first, _)) = req.layers.first() else { return Ok(Vec::new()) };
    if req.edit.keep.is_some() && req.layers.len() > 1 {
        return Err(Error::Unavailable("a channel mask works on one layer".into()));
    }
    let features = req.edit.apply(own, *first, theirs)?;
    let mut out = Vec::new();
    for &(layer, ref sources) in &req.layers {
        if sources.is_empty() {
            return Err(Error::Unavailable(format!("no decoders asked for at {layer}")));
        }
        for source in sources {
            let decoder = sets.get_or_read(&source.dir, enc).load_one(enc, layer, source.kind)?;
            let rec = rebuild(enc, decoder, &features, input, layer, source.kind)?;
            out.push(Picture { source: source.clone(), rec });
        }
    }
    Ok(out)
}
