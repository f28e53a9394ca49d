//! Architectures as data: a table of stages (convs, optional pooling, tap name) plus the fc head.

use std::fmt;

/// One encoder convolution, followed by a ReLU. `key` is its torchvision name (`features.N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub index: usize,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvSpec {
    pub fn key(&self) -> String {
        format!("features.{}", self.index)
    }

    pub fn out_size(&self, n: usize) -> usize {
        (n + 2 * self.pad - self.k) / self.stride + 1
    }
}

/// Max-pooling with a square window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    pub k: usize,
    pub stride: usize,
}

impl PoolSpec {
    pub fn out_size(&self, n: usize) -> usize {
        (n - self.k) / self.stride + 1
    }
}

/// A layer decoders start from, by name: pool1 … pool5, AlexNet's conv3 and conv4, fc6 … fc8.
/// A name is checked where it comes in (the command line, settings, files; [`Layer::from_name`]),
/// so inside the program a layer is never a misspelt string; which layers a model has, and where
/// they sit in it, is its architecture's ([`Arch::tap`]). Ordered as a forward pass meets them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layer(&'static str);

impl Layer {
    pub const POOL1: Layer = Layer("pool1");
    pub const POOL2: Layer = Layer("pool2");
    pub const CONV3: Layer = Layer("conv3");
    pub const POOL3: Layer = Layer("pool3");
    pub const CONV4: Layer = Layer("conv4");
    pub const POOL4: Layer = Layer("pool4");
    pub const POOL5: Layer = Layer("pool5");
    pub const FC6: Layer = Layer("fc6");
    pub const FC7: Layer = Layer("fc7");
    pub const FC8: Layer = Layer("fc8");

    /// Every layer of every architecture, in forward order.
    pub const ALL: [Layer; 10] = [
        Layer::POOL1,
        Layer::POOL2,
        Layer::CONV3,
        Layer::POOL3,
        Layer::CONV4,
        Layer::POOL4,
        Layer::POOL5,
        Layer::FC6,
        Layer::FC7,
        Layer::FC8,
    ];

    pub fn name(&self) -> &'static str {
        self.0
    }

    /// The layer called `s`, or an error naming every layer.
    pub fn parse(s: &str) -> crate::Result<Layer> {
        Layer::from_name(s)
            .ok_or_else(|| crate::Error::Unavailable(format!("unknown layer {s:?}: use one of {}", Layer::names())))
    }

    /// `layers`' names joined by `sep`: "pool1,pool3", "pool1, pool3".
    pub fn join(layers: &[Layer], sep: &str) -> String {
        layers.iter().map(Layer::name).collect::<Vec<_>>().join(sep)
    }

    fn position(&self) -> usize {
        Layer::ALL.iter().position(|l| l == self).unwrap_or(usize::MAX)
    }
}

crate::named::named_enum!(Layer);

impl PartialOrd for Layer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Layer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.position().cmp(&other.position())
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.0)
    }
}

impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.0)
    }
}

impl PartialEq<str> for Layer {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Layer {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Convs, then maybe a pooling, then a tap (a decoder entry point).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub tap: Layer,
    pub convs: Vec<ConvSpec>,
    pub pool: Option<PoolSpec>,
}

/// A fully connected layer of the head; `tap` is fc6, fc7 or fc8 (its canonical weight name too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FcSpec {
    pub tap: Layer,
    pub din: usize,
    pub dout: usize,
    /// Its index in torchvision's `classifier` Sequential.
    pub classifier_index: usize,
    /// Followed by a ReLU (the tap is post-ReLU); the last, the class logits, is not.
    pub relu: bool,
}

/// A layer a decoder can start from, checked against its architecture: made only by
/// [`Arch::tap`] and [`Arch::taps`], so an unknown name is an error where it is read, never a
/// silent pool1. Ordered as the forward pass goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tap {
    index: usize,
    layer: Layer,
    fc: bool,
}

impl Tap {
    pub fn name(&self) -> &'static str {
        self.layer.name()
    }

    pub fn layer(&self) -> Layer {
        self.layer
    }

    /// Its place in the forward order: stages first, then the fc layers.
    pub fn index(&self) -> usize {
        self.index
    }

    /// A fully connected layer (a vector, no spatial map).
    pub fn is_fc(&self) -> bool {
        self.fc
    }
}

impl fmt::Display for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.layer.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    Vgg11,
    Vgg13,
    Vgg16,
    Vgg19,
    AlexNet,
}

crate::named::named_enum!(Arch);

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

const VGG11: &[&[usize]] = &[&[64], &[128], &[256, 256], &[512, 512], &[512, 512]];
const VGG13: &[&[usize]] = &[&[64, 64], &[128, 128], &[256, 256], &[512, 512], &[512, 512]];
const VGG16: &[&[usize]] = &[&[64, 64], &[128, 128], &[256, 256, 256], &[512, 512, 512], &[512, 512, 512]];
const VGG19: &[&[usize]] =
    &[&[64, 64], &[128, 128], &[256, 256, 256, 256], &[512, 512, 512, 512], &[512, 512, 512, 512]];

impl Arch {
    pub const ALL: [Arch; 5] = [Arch::Vgg11, Arch::Vgg13, Arch::Vgg16, Arch::Vgg19, Arch::AlexNet];

    pub fn name(&self) -> &'static str {
        match self {
            Arch::Vgg11 => "vgg11",
            Arch::Vgg13 => "vgg13",
            Arch::Vgg16 => "vgg16",
            Arch::Vgg19 => "vgg19",
            Arch::AlexNet => "alexnet",
        }
    }

    /// Input side length (square RGB input).
    pub fn input_size(&self) -> usize {
        224
    }

    pub fn stages(&self) -> Vec<Stage> {
        match self {
            Arch::Vgg11 => vgg_stages(VGG11),
            Arch::Vgg13 => vgg_stages(VGG13),
            Arch::Vgg16 => vgg_stages(VGG16),
            Arch::Vgg19 => vgg_stages(VGG19),
            Arch::AlexNet => alexnet_stages(),
        }
    }

    pub fn fcs(&self) -> [FcSpec; 3] {
        let (trunk, idx) = match self {
            Arch::AlexNet => (256 * 6 * 6, [1, 4, 6]),
            _ => (512 * 7 * 7, [0, 3, 6]),
        };
        [
            FcSpec { tap: Layer::FC6, din: trunk, dout: 4096, classifier_index: idx[0], relu: true },
            FcSpec { tap: Layer::FC7, din: 4096, dout: 4096, classifier_index: idx[1], relu: true },
            FcSpec { tap: Layer::FC8, din: 4096, dout: 1000, classifier_index: idx[2], relu: false },
        ]
    }

    pub fn convs(&self) -> Vec<ConvSpec> {
        self.stages().into_iter().flat_map(|s| s.convs).collect()
    }

    /// Every tap in forward order: the stages', then the fc layers'.
    pub fn taps(&self) -> Vec<Tap> {
        let stages = self.stages().into_iter().map(|s| (s.tap, false));
        let fcs = self.fcs().into_iter().map(|f| (f.tap, true));
        stages.chain(fcs).enumerate().map(|(index, (layer, fc))| Tap { index, layer, fc }).collect()
    }

    /// The taps of the convolutional trunk (pool1 … pool5 for VGG; pool1, pool2, conv3, conv4,
    /// pool5 for AlexNet): what training and benchmarks do when no layers are named.
    pub fn stage_taps(&self) -> Vec<Tap> {
        self.taps().into_iter().filter(|t| !t.is_fc()).collect()
    }

    /// The tap of `layer`, or an error that lists this architecture's taps.
    pub fn tap(&self, layer: Layer) -> crate::Result<Tap> {
        self.taps().into_iter().find(|t| t.layer == layer).ok_or_else(|| self.not_mine(layer.name()))
    }

    /// The tap called `name` (a name from the command line or a file), or an error that lists
    /// this architecture's taps.
    pub fn tap_named(&self, name: &str) -> crate::Result<Tap> {
        Layer::from_name(name).ok_or_else(|| self.not_mine(name)).and_then(|l| self.tap(l))
    }

    fn not_mine(&self, name: &str) -> crate::Error {
        crate::Error::Unavailable(format!("{name} is not a layer of {self} (its layers: {})", self.tap_names()))
    }

    /// Every tap of `layers`, or an error naming the first this architecture lacks.
    pub fn taps_of(&self, layers: &[Layer]) -> crate::Result<Vec<Tap>> {
        layers.iter().map(|&l| self.tap(l)).collect()
    }

    /// Every layer of [`Self::taps`], in forward order.
    pub fn layers(&self) -> Vec<Layer> {
        self.taps().iter().map(Tap::layer).collect()
    }

    /// "pool1, pool2, …, fc8", for messages.
    pub fn tap_names(&self) -> String {
        self.taps().iter().map(Tap::name).collect::<Vec<_>>().join(", ")
    }

    /// The tap of the class scores (the fc layer without a ReLU).
    pub fn logits(&self) -> Layer {
        self.fcs().into_iter().find(|f| !f.relu).map_or(Layer::FC8, |f| f.tap)
    }

    /// Shape of each tap's activation for one image: `[C, H, W]` for stages, `[D]` for fcs.
    pub fn tap_shapes(&self) -> Vec<(Layer, Vec<usize>)> {
        let mut n = self.input_size();
        let mut out = Vec::new();
        let mut c = 3;
        for st in self.stages() {
            for conv in &st.convs {
                n = conv.out_size(n);
                c = conv.cout;
            }
            if let Some(p) = st.pool {
                n = p.out_size(n);
            }
            out.push((st.tap, vec![c, n, n]));
        }
        for fc in self.fcs() {
            out.push((fc.tap, vec![fc.dout]));
        }
        out
    }

    /// Spatial size at the input of each stage's pooling (= what unpooling restores), by stage.
    pub fn pool_input_sizes(&self) -> Vec<usize> {
        let mut n = self.input_size();
        let mut out = Vec::new();
        for st in self.stages() {
            for conv in &st.convs {
                n = conv.out_size(n);
            }
            out.push(n);
            if let Some(p) = st.pool {
                n = p.out_size(n);
            }
        }
        out
    }

    /// Spatial size at the input of every conv, by features index.
    pub fn conv_input_size(&self, index: usize) -> Option<usize> {
        let mut n = self.input_size();
        for st in self.stages() {
            for conv in &st.convs {
                if conv.index == index {
                    return Some(n);
                }
                n = conv.out_size(n);
            }
            if let Some(p) = st.pool {
                n = p.out_size(n);
            }
        }
        None
    }
}

fn vgg_stages(cfg: &[&[usize]]) -> Vec<Stage> {
    let mut index = 0;
    let mut cin = 3;
    let names = [Layer::POOL1, Layer::POOL2, Layer::POOL3, Layer::POOL4, Layer::POOL5];
    cfg.iter()
        .zip(names)
        .map(|(block, tap)| {
            let convs = block
                .iter()
                .map(|&cout| {
                    let c = ConvSpec { index, cin, cout, k: 3, stride: 1, pad: 1 };
                    index += 2; // conv, relu
                    cin = cout;
                    c
                })
                .collect();
            index += 1; // max-pool
            Stage { tap, convs, pool: Some(PoolSpec { k: 2, stride: 2 }) }
        })
        .collect()
}

/// torchvision's AlexNet (`features.0` … `features.12`), 3×3 stride-2 overlapping pooling.
fn alexnet_stages() -> Vec<Stage> {
    let pool = Some(PoolSpec { k: 3, stride: 2 });
    let conv = |index, cin, cout, k, stride, pad| ConvSpec { index, cin, cout, k, stride, pad };
    vec![
        Stage { tap: Layer::POOL1, convs: vec![conv(0, 3, 64, 11, 4, 2)], pool },
        Stage { tap: Layer::POOL2, convs: vec![conv(3, 64, 192, 5, 1, 2)], pool },
        Stage { tap: Layer::CONV3, convs: vec![conv(6, 192, 384, 3, 1, 1)], pool: None },
        Stage { tap: Layer::CONV4, convs: vec![conv(8, 384, 256, 3, 1, 1)], pool: None },
        Stage { tap: Layer::POOL5, convs: vec![conv(10, 256, 256, 3, 1, 1)], pool },
    ]
}
