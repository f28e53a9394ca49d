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

/// Convs, then maybe a pooling, then a tap (a decoder entry point).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub tap: &'static str,
    pub convs: Vec<ConvSpec>,
    pub pool: Option<PoolSpec>,
}

/// A fully connected layer of the head; `tap` is fc6, fc7 or fc8 (its canonical weight name too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FcSpec {
    pub tap: &'static str,
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
    name: &'static str,
    fc: bool,
}

impl Tap {
    pub fn name(&self) -> &'static str {
        self.name
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
        f.pad(self.name)
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
            FcSpec { tap: "fc6", din: trunk, dout: 4096, classifier_index: idx[0], relu: true },
            FcSpec { tap: "fc7", din: 4096, dout: 4096, classifier_index: idx[1], relu: true },
            FcSpec { tap: "fc8", din: 4096, dout: 1000, classifier_index: idx[2], relu: false },
        ]
    }

    pub fn convs(&self) -> Vec<ConvSpec> {
        self.stages().into_iter().flat_map(|s| s.convs).collect()
    }

    /// Every tap in forward order: the stages', then the fc layers'.
    pub fn taps(&self) -> Vec<Tap> {
        let stages = self.stages().into_iter().map(|s| (s.tap, false));
        let fcs = self.fcs().into_iter().map(|f| (f.tap, true));
        stages.chain(fcs).enumerate().map(|(index, (name, fc))| Tap { index, name, fc }).collect()
    }

    /// The taps of the convolutional trunk (pool1 … pool5 for VGG; pool1, pool2, conv3, conv4,
    /// pool5 for AlexNet): what training and benchmarks do when no layers are named.
    pub fn stage_taps(&self) -> Vec<Tap> {
        self.taps().into_iter().filter(|t| !t.is_fc()).collect()
    }

    /// The tap called `name`, or an error that lists this architecture's taps.
    pub fn tap(&self, name: &str) -> crate::Result<Tap> {
        self.taps().into_iter().find(|t| t.name == name).ok_or_else(|| {
            crate::Error::Unavailable(format!("{name} is not a layer of {self} (its layers: {})", self.tap_names()))
        })
    }

    /// Every tap of `names`, or an error naming the first that is not one.
    pub fn taps_named<S: AsRef<str>>(&self, names: &[S]) -> crate::Result<Vec<Tap>> {
        names.iter().map(|n| self.tap(n.as_ref())).collect()
    }

    /// "pool1, pool2, …, fc8", for messages.
    pub fn tap_names(&self) -> String {
        self.taps().iter().map(Tap::name).collect::<Vec<_>>().join(", ")
    }

    /// The tap of the class scores (the fc layer without a ReLU).
    pub fn logits(&self) -> &'static str {
        self.fcs().into_iter().find(|f| !f.relu).map_or("fc8", |f| f.tap)
    }

    /// Shape of each tap's activation for one image: `[C, H, W]` for stages, `[D]` for fcs.
    pub fn tap_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
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
    let names = ["pool1", "pool2", "pool3", "pool4", "pool5"];
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
        Stage { tap: "pool1", convs: vec![conv(0, 3, 64, 11, 4, 2)], pool },
        Stage { tap: "pool2", convs: vec![conv(3, 64, 192, 5, 1, 2)], pool },
        Stage { tap: "conv3", convs: vec![conv(6, 192, 384, 3, 1, 1)], pool: None },
        Stage { tap: "conv4", convs: vec![conv(8, 384, 256, 3, 1, 1)], pool: None },
        Stage { tap: "pool5", convs: vec![conv(10, 256, 256, 3, 1, 1)], pool },
    ]
}
