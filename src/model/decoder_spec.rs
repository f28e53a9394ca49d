//! What a decoder is: the mirror of the encoder from a tap down to the image (the official
//! code's layout), as a plan of layers.
//!
//! fc taps: Linear layers mirroring fc8 → fc7 → fc6, reshape to the trunk's `C × h × w`, then as
//! from the last pooling stage. Per stage, going down: unpool (SAE: fixed switch, SWWAE: the
//! encoder's switches), then one conv per encoder conv in reverse order mapping its out → in
//! channels. ReLU after every layer but the last, which outputs 3 channels linearly. A mark after
//! each stage names the encoder activation the decoder's output there mirrors (the training
//! objectives `all` and `layerwise` compare the two).

use super::arch::{Arch, Tap};
use crate::error::{Error, Result};
use std::fmt;

/// The kinds of decoder, and everything the rest of the program asks about a kind: its name in
/// files and on the command line, its label, and how it undoes a pooling stage. Nothing outside
/// `src/model` matches on a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Stacked autoencoder: fixed switches, the decoder must guess where each max came from.
    Sae,
    /// Stacked what-where autoencoder: the switches the encoder recorded for this image.
    Swwae,
    /// Dosovitskiy & Brox's up-convolutional network: no switches, a learned upsampling.
    Upconv,
}

crate::named::named_enum!(Kind);

/// Which pooling switches an unpooling puts each value at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Switches {
    /// One fixed cell of each window (⌊k/2⌋, ⌊k/2⌋): the decoder must guess the rest.
    Fixed,
    /// The cells the encoder's max-pooling recorded for this image.
    Recorded,
}

/// How a decoder undoes one max-pooling stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upsampling {
    /// Unpooling: each value goes to one cell of its window, zeros elsewhere.
    Unpool(Switches),
    /// A learned up-convolution: each value spread over its whole window
    /// ([`crate::ops::spread`]), then a `k × k` convolution.
    Learned { k: usize },
}

impl Kind {
    /// Every kind, in the order panes, rows and files list them.
    pub const ALL: [Kind; 3] = [Kind::Sae, Kind::Swwae, Kind::Upconv];

    /// Its name in decoder files and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Sae => "sae",
            Kind::Swwae => "swwae",
            Kind::Upconv => "upconv",
        }
    }

    /// How titles and menus name the kind.
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Sae => "SAE",
            Kind::Swwae => "SWWAE",
            Kind::Upconv => "D&B up-conv",
        }
    }

    /// What its decoder does, in a sentence for the About box.
    pub fn what(&self) -> &'static str {
        match self {
            Kind::Sae => "unpools with fixed switches: it must guess where each maximum came from.",
            Kind::Swwae => "unpools with the switches the encoder's max-pooling recorded for this photo.",
            Kind::Upconv => "learns its own upsampling (Dosovitskiy & Brox's up-convolution) and reads no switches.",
        }
    }

    /// How its decoder undoes a pooling stage.
    pub fn upsampling(&self) -> Upsampling {
        match self {
            Kind::Sae => Upsampling::Unpool(Switches::Fixed),
            Kind::Swwae => Upsampling::Unpool(Switches::Recorded),
            Kind::Upconv => Upsampling::Learned { k: 5 },
        }
    }

    /// The slope of its activations below zero: 0 (ReLU) for the mirrors of the encoder, 0.2
    /// (leaky ReLU) for the up-convolutional network, as Dosovitskiy & Brox.
    pub fn negative_slope(&self) -> f64 {
        match self {
            Kind::Sae | Kind::Swwae => 0.0,
            Kind::Upconv => 0.2,
        }
    }

    /// Whether the decoder reads the encoder's pooling switches (so a switch transplant changes
    /// its picture).
    pub fn reads_switches(&self) -> bool {
        self.upsampling() == Upsampling::Unpool(Switches::Recorded)
    }

    /// The two kinds that differ only in their switches, `(fixed, recorded)`: the gap between
    /// their pictures is what the switches carry (what max-pooling throws away).
    pub fn switch_pair() -> Option<(Kind, Kind)> {
        let with = |s| Kind::ALL.into_iter().find(|k| k.upsampling() == Upsampling::Unpool(s));
        with(Switches::Fixed).zip(with(Switches::Recorded))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What a decoder was trained to do (the paper's three decoding pathways).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Objective {
    /// The loss on the image only.
    #[default]
    First,
    /// The image loss plus, after every stage, the distance to the encoder's activation of the
    /// same depth (each divided by that activation's size, so no depth drowns the others).
    All,
    /// Each stage first trained on its own to invert one encoder stage (from the encoder's
    /// activation, not the stage above's output), then the stack fine-tuned on the image loss.
    Layerwise,
}

impl Objective {
    pub const ALL: [Objective; 3] = [Objective::First, Objective::All, Objective::Layerwise];

    pub fn name(&self) -> &'static str {
        match self {
            Objective::First => "first",
            Objective::All => "all",
            Objective::Layerwise => "layerwise",
        }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

crate::named::named_enum!(Objective);

/// One step of a decoder plan. Layers with weights carry the name of their parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecOp {
    Linear {
        name: String,
        din: usize,
        dout: usize,
    },
    Reshape {
        c: usize,
        h: usize,
        w: usize,
    },
    /// The output so far mirrors this encoder tap (no computation).
    Mark {
        tap: crate::model::Layer,
    },
    Unpool {
        stage: usize,
        switches: Switches,
    },
    /// Each value over its whole window of the stage's pooling ([`crate::ops::spread`]), to the
    /// size that pooling's input had (its geometry, not its switches).
    Spread {
        stage: usize,
    },
    Conv {
        name: String,
        cin: usize,
        cout: usize,
        k: usize,
        pad: usize,
    },
    Deconv {
        name: String,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        out_pad: usize,
    },
}

impl DecOp {
    /// `(name, shape)` of each parameter tensor.
    pub fn params(&self) -> Vec<(String, Vec<usize>)> {
        match self {
            DecOp::Linear { name, din, dout } => {
                vec![(format!("{name}.weight"), vec![*dout, *din]), (format!("{name}.bias"), vec![*dout])]
            }
            DecOp::Conv { name, cin, cout, k, .. } => {
                vec![(format!("{name}.weight"), vec![*cout, *cin, *k, *k]), (format!("{name}.bias"), vec![*cout])]
            }
            // conv_transpose2d weights are (in, out, k, k).
            DecOp::Deconv { name, cin, cout, k, .. } => {
                vec![(format!("{name}.weight"), vec![*cin, *cout, *k, *k]), (format!("{name}.bias"), vec![*cout])]
            }
            DecOp::Reshape { .. } | DecOp::Unpool { .. } | DecOp::Spread { .. } | DecOp::Mark { .. } => vec![],
        }
    }
}

/// The fan-in of an up-convolution that trains steadily at the full learning rate (see
/// [`DecoderSpec::learning_rate_scale`]): 2,000 inputs at 10⁻³.
pub const UPSAMPLING_FAN_IN: f64 = 2000.0;

/// What a decoder is: for which architecture, tap and kind, at which channel width.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderSpec {
    pub arch: Arch,
    pub layer: Tap,
    pub kind: Kind,
    /// Multiplier on the hidden channel counts inside each stage (1.0 = the full mirror of the
    /// encoder). Stage boundaries keep the encoder's width so the switches fit.
    pub width: f64,
}

impl DecoderSpec {
    pub fn new(arch: Arch, layer: crate::model::Layer, kind: Kind, width: f64) -> Result<Self> {
        let layer = arch.tap(layer)?;
        if !(width > 0.0 && width <= 4.0) {
            return Err(Error::Unavailable(format!("decoder width must be in (0, 4], got {width}")));
        }
        Ok(Self { arch, layer, kind, width })
    }

    fn scaled(&self, c: usize) -> usize {
        ((c as f64 * self.width).round() as usize).max(1)
    }

    /// The decoder's layers, top (tap) to bottom (image), with a [`DecOp::Mark`] after each stage
    /// but the last.
    pub fn plan(&self) -> Vec<DecOp> {
        let arch = self.arch;
        let stages = arch.stages();
        let shapes = arch.tap_shapes();
        let mut ops = Vec::new();
        let tap_i = self.layer.index();
        let (mut cur, top_stage) = if tap_i >= stages.len() {
            // fc tap: mirror fc(k) … fc6, ending at the full trunk size so the switches apply.
            let fcs = arch.fcs();
            let fc_i = tap_i - stages.len();
            let trunk = &shapes[stages.len() - 1].1;
            let mut cur = fcs[fc_i].dout;
            for (j, fc) in fcs[..=fc_i].iter().enumerate().rev() {
                let dout = if j == 0 { fc.din } else { self.scaled(fc.din) };
                ops.push(DecOp::Linear { name: fc.tap.to_string(), din: cur, dout });
                cur = dout;
                // A narrowed fc layer (width < 1) has no encoder activation of its size to mirror.
                if j > 0 && dout == fc.din {
                    ops.push(DecOp::Mark { tap: fcs[j - 1].tap });
                }
            }
            ops.push(DecOp::Reshape { c: trunk[0], h: trunk[1], w: trunk[2] });
            ops.push(DecOp::Mark { tap: stages[stages.len() - 1].tap });
            (trunk[0], stages.len() - 1)
        } else {
            (shapes[tap_i].1[0], tap_i)
        };
        for (si, st) in stages[..=top_stage].iter().enumerate().rev() {
            if st.pool.is_some() {
                match self.kind.upsampling() {
                    Upsampling::Unpool(switches) => ops.push(DecOp::Unpool { stage: si, switches }),
                    Upsampling::Learned { k } => {
                        ops.push(DecOp::Spread { stage: si });
                        // The learned upsampling narrows to the stage's width inside.
                        let cout = self.scaled(cur);
                        ops.push(DecOp::Conv { name: format!("up{}", si + 1), cin: cur, cout, k, pad: k / 2 });
                        cur = cout;
                    }
                }
            }
            for (ci, conv) in st.convs.iter().enumerate().rev() {
                // The stage's input width is kept: the next unpooling needs one channel per switch.
                let target = if ci == 0 { conv.cin } else { self.scaled(conv.cin) };
                let name = conv.key();
                if conv.stride == 1 {
                    ops.push(DecOp::Conv { name, cin: cur, cout: target, k: conv.k, pad: conv.pad });
                } else {
                    // A strided first conv (AlexNet conv1, 11×11/4) is inverted as in the official
                    // code: conv 5×5 → 96, deconv k×k stride s → 48, deconv 5×5 → image.
                    let n_in = arch.conv_input_size(conv.index).unwrap_or(arch.input_size());
                    let n_out = conv.out_size(n_in);
                    let out_pad = n_in + 2 * conv.pad - ((n_out - 1) * conv.stride + conv.k);
                    let (c1, c2) = (self.scaled(96), self.scaled(48));
                    ops.push(DecOp::Conv { name: format!("{name}.conv"), cin: cur, cout: c1, k: 5, pad: 2 });
                    ops.push(DecOp::Deconv {
                        name: format!("{name}.deconv1"),
                        cin: c1,
                        cout: c2,
                        k: conv.k,
                        stride: conv.stride,
                        pad: conv.pad,
                        out_pad,
                    });
                    ops.push(DecOp::Deconv {
                        name: format!("{name}.deconv2"),
                        cin: c2,
                        cout: target,
                        k: 5,
                        stride: 1,
                        pad: 2,
                        out_pad: 0,
                    });
                }
                cur = target;
            }
            if si > 0 {
                ops.push(DecOp::Mark { tap: stages[si - 1].tap });
            }
        }
        ops
    }

    /// What this decoder's learning rate is multiplied by: 1 for SAE and SWWAE; for a learned
    /// upsampling, `min(1, UPSAMPLING_FAN_IN / the largest fan-in of its up-convolutions)`.
    ///
    /// Adam moves every weight by about the learning rate a step, whatever its size, so a unit's
    /// output moves by up to the rate times the sum of its inputs: the more non-zero inputs, the
    /// further one step throws it. After an unpooling three of every four inputs of a SAE or
    /// SWWAE convolution are zero; up-conv's spread fills them all, and its 5×5 `up` layers have
    /// 25·cin inputs (1,600 at pool1, 6,400 at pool3, 12,800 at pool4 and pool5). In 500-step
    /// runs of the Train dialog's defaults (`docs/upconv.md`) the rate times that fan-in trained
    /// steadily at 1.6 (pool1 at 10⁻³) and 1.9 (pool3 at 3·10⁻⁴), learned slower at 3.2, and
    /// diverged at 4.5 (pool5 at 3.5·10⁻⁴) and 6.4 (pool3 at 10⁻³): the scale keeps it at 2 for
    /// the run's default rate of 10⁻³.
    pub fn learning_rate_scale(&self) -> f64 {
        let mut widest = 0;
        let mut after_spread = false;
        for op in self.plan() {
            match op {
                DecOp::Spread { .. } => after_spread = true,
                DecOp::Conv { cin, k, .. } if after_spread => {
                    widest = widest.max(cin * k * k);
                    after_spread = false;
                }
                _ => after_spread = false,
            }
        }
        if widest == 0 {
            1.0
        } else {
            (UPSAMPLING_FAN_IN / widest as f64).min(1.0)
        }
    }

    /// Every parameter `(name, shape)` of this decoder.
    pub fn params(&self) -> Vec<(String, Vec<usize>)> {
        self.plan().iter().flat_map(|op| op.params()).collect()
    }

    pub fn param_count(&self) -> usize {
        self.params().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }
}
