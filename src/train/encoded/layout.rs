//! What an entry holds and how crops are cut from it: the codes a run reads (f16) and the
//! switches of every pooling up to its deepest layer (2-bit window positions).

use crate::error::{Error, Result};
use crate::model::{Arch, Features, Layer, Objective, Tap};
use crate::ops::PoolSwitches;
use candle_core::{DType, Device, Tensor};
use half::f16;

/// What a run keeps of each photo: the codes it reads and the switches of every pooling up to its
/// deepest layer (all of them 2×2 windows of stride 2 after size-keeping convolutions).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The codes kept: tap name, its stage's index, channels.
    codes: Vec<(Layer, usize, usize)>,
    /// Channels of each stage's pooling, from the first stage to the deepest trained one.
    pools: Vec<usize>,
}

impl Layout {
    /// The layout for decoders of `taps` trained with `objective` on crops of `crop` pixels, or
    /// why their crops cannot be cut from whole photos.
    pub fn plan(arch: Arch, taps: &[Tap], objective: Objective, crop: usize) -> std::result::Result<Self, String> {
        if let Some(t) = taps.iter().find(|t| t.is_fc()) {
            return Err(format!("{t} reads the whole input"));
        }
        let deepest = taps.iter().map(|t| t.index()).max().ok_or("no layer to train")?;
        let stages = arch.stages();
        let mut pools = Vec::new();
        for st in stages.iter().take(deepest + 1) {
            let keeps_size = st.convs.iter().all(|c| c.stride == 1 && 2 * c.pad + 1 == c.k);
            let halves = st.pool.is_some_and(|p| p.k == 2 && p.stride == 2);
            let channels = st.convs.last().map(|c| c.cout);
            match channels {
                Some(c) if keeps_size && halves => pools.push(c),
                _ => return Err(format!("{}'s stage is not size-keeping convolutions and a 2×2 pooling", st.tap)),
            }
        }
        let stride = 1 << pools.len();
        if !crop.is_multiple_of(stride) {
            let name = stages[deepest].tap;
            return Err(format!("{crop}-pixel crops are not a multiple of {name}'s {stride}-pixel cells"));
        }
        // The objectives beyond the image loss compare every stage with the encoder's activation.
        let codes = (0..=deepest)
            .filter(|&i| objective != Objective::First || taps.iter().any(|t| t.index() == i))
            .map(|i| (stages[i].tap, i, pools[i]))
            .collect();
        Ok(Self { codes, pools })
    }

    /// The deepest layer's cell side in pixels: crops start at multiples of it.
    pub fn stride(&self) -> usize {
        1 << self.pools.len()
    }

    pub(super) fn deepest(&self) -> usize {
        self.pools.len() - 1
    }

    /// The layout's part of an entry's file name: `pool1+pool3-s3` (codes, pooled stages).
    pub(super) fn tag(&self) -> String {
        let codes: Vec<Layer> = self.codes.iter().map(|c| c.0).collect();
        format!("{}-s{}", Layer::join(&codes, "+"), self.pools.len())
    }

    /// Bytes of an entry's maps for an `h × w` photo.
    pub(super) fn payload_len(&self, h: usize, w: usize) -> usize {
        self.offsets(h, w).last().copied().unwrap_or(0)
    }

    /// Where each section of an entry's maps starts for an `h × w` photo: the codes (f16), then
    /// the switches (four to a byte); the last item is the end.
    fn offsets(&self, h: usize, w: usize) -> Vec<usize> {
        let cells = |i: usize| (h >> (i + 1)) * (w >> (i + 1));
        let codes = self.codes.iter().map(|&(_, i, c)| 2 * c * cells(i));
        let pools = self.pools.iter().enumerate().map(|(i, c)| (c * cells(i)).div_ceil(4));
        let mut at = 0;
        let mut out = vec![0];
        for len in codes.chain(pools) {
            at += len;
            out.push(at);
        }
        out
    }

    /// An entry's maps from the features of one whole `h × w` photo: the codes in f16, then the
    /// switches, four to a byte.
    pub fn pack(&self, f: &Features, h: usize, w: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.payload_len(h, w));
        for &(tap, i, c) in &self.codes {
            let t = f.tap(tap).ok_or_else(|| Error::Unavailable(format!("the encoding lacks {tap}")))?;
            check_dims(t, (1, c, h >> (i + 1), w >> (i + 1)), tap.name())?;
            for v in t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()? {
                out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
            }
        }
        for (i, &c) in self.pools.iter().enumerate() {
            let sw = f.switches.get(i).and_then(|s| s.as_ref());
            let sw = sw.ok_or_else(|| Error::Unavailable(format!("the encoding lacks stage {}'s switches", i + 1)))?;
            let (oh, ow) = (h >> (i + 1), w >> (i + 1));
            check_dims(&sw.indices, (1, c, oh, ow), "switches")?;
            let in_w = sw.in_hw.1;
            let idx = sw.indices.flatten_all()?.to_vec1::<u32>()?;
            let mut packed = vec![0u8; (c * oh * ow).div_ceil(4)];
            for (n, &k) in idx.iter().enumerate() {
                let (oy, ox) = ((n / ow) % oh, n % ow);
                let (iy, ix) = (k as usize / in_w, k as usize % in_w);
                let (dy, dx) = (iy.wrapping_sub(2 * oy), ix.wrapping_sub(2 * ox));
                if dy > 1 || dx > 1 {
                    return Err(Error::Unavailable(format!("stage {}'s switch {k} is outside its window", i + 1)));
                }
                packed[n / 4] |= ((2 * dy + dx) as u8) << (2 * (n % 4));
            }
            out.extend_from_slice(&packed);
        }
        Ok(out)
    }

    /// The features of a batch of crops cut from entries: `(maps, h, w, y, x)` for each, where
    /// `maps` is an entry of an `h × w` photo ([`Self::pack`]) and `(y, x)` the crop's top-left
    /// pixel (multiples of [`Self::stride`]); codes in `dtype`, on the CPU.
    pub fn cut(&self, crops: &[(&[u8], usize, usize, usize, usize)], crop: usize, dtype: DType) -> Result<Features> {
        let b = crops.len();
        let mut taps = Vec::new();
        let mut switches = Vec::new();
        for (n, &(tap, i, c)) in self.codes.iter().enumerate() {
            let g = crop >> (i + 1);
            let mut v = Vec::with_capacity(b * c * g * g);
            for &(maps, h, w, y, x) in crops {
                let (gh, gw) = (h >> (i + 1), w >> (i + 1));
                let start = self.offsets(h, w)[n];
                let plane = &maps[start..start + 2 * c * gh * gw];
                let (y0, x0) = (y >> (i + 1), x >> (i + 1));
                for ch in 0..c {
                    for row in y0..y0 + g {
                        let at = 2 * ((ch * gh + row) * gw + x0);
                        v.extend(
                            plane[at..at + 2 * g].chunks_exact(2).map(|p| f16::from_le_bytes([p[0], p[1]]).to_f32()),
                        );
                    }
                }
            }
            taps.push((tap, Tensor::from_vec(v, (b, c, g, g), &Device::Cpu)?.to_dtype(dtype)?));
        }
        for (i, &c) in self.pools.iter().enumerate() {
            let g = crop >> (i + 1);
            let mut v = Vec::with_capacity(b * c * g * g);
            for &(maps, h, w, y, x) in crops {
                let (gh, gw) = (h >> (i + 1), w >> (i + 1));
                let start = self.offsets(h, w)[self.codes.len() + i];
                let (y0, x0) = (y >> (i + 1), x >> (i + 1));
                for ch in 0..c {
                    for oy in 0..g {
                        for ox in 0..g {
                            let n = (ch * gh + y0 + oy) * gw + x0 + ox;
                            let pos = (maps[start + n / 4] >> (2 * (n % 4))) & 3;
                            let (dy, dx) = ((pos >> 1) as usize, (pos & 1) as usize);
                            v.push(((2 * oy + dy) * 2 * g + 2 * ox + dx) as u32);
                        }
                    }
                }
            }
            let indices = Tensor::from_vec(v, (b, c, g, g), &Device::Cpu)?;
            switches.push(Some(PoolSwitches { indices, in_hw: (2 * g, 2 * g), kernel: 2, stride: 2 }));
        }
        Ok(Features { taps, switches })
    }

    /// `a`'s batch followed by `b`'s, for the maps this layout keeps (`b` may hold more).
    pub(super) fn concat(&self, a: Features, b: &Features) -> Result<Features> {
        let mut taps = Vec::new();
        for (tap, t) in a.taps {
            let u = b.tap(tap).ok_or_else(|| Error::Unavailable(format!("the encoding lacks {tap}")))?;
            taps.push((tap, Tensor::cat(&[&t, &u.to_device(&Device::Cpu)?], 0)?));
        }
        let mut switches = Vec::new();
        for (i, s) in a.switches.into_iter().enumerate() {
            let other = b.switches.get(i).and_then(|s| s.as_ref());
            switches.push(match (s, other) {
                (Some(s), Some(o)) => Some(PoolSwitches {
                    indices: Tensor::cat(&[&s.indices, &o.indices.to_device(&Device::Cpu)?], 0)?,
                    ..s
                }),
                _ => return Err(Error::Unavailable(format!("the encoding lacks stage {}'s switches", i + 1))),
            });
        }
        Ok(Features { taps, switches })
    }
}

fn check_dims(t: &Tensor, want: (usize, usize, usize, usize), what: &str) -> Result<()> {
    if t.dims4()? != want {
        return Err(Error::Unavailable(format!("{what} has shape {:?}, expected {want:?}", t.dims())));
    }
    Ok(())
}
