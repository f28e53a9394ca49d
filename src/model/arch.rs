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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    Vgg11,
    Vgg13,
    Vgg16,
    Vgg19,
    AlexNet,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const VGG11: &[&[usize]] = &[&[64], &[128], &[256, 256], &[512, 512], &[512, 512]];
const VGG13: &[&[usize]] = &[&[64, 64], &[128, 128], &[256, 256], &[512, 512], &[512, 512]];
const VGG16: &[&[usize]] = &[&[64, 64], &[128, 128], &[256, 256, 256], &[512, 512, 512], &[512, 512, 512]];
const VGG19: &[&[usize]] =
    &[&[64, 64], &[128, 128], &[256, 256, 256, 256], &[512, 512, 512, 512], &[512, 512, 512, 512]];

/// Every tap a model can have, in forward order, for the widest set of front ends.
pub const FC_TAPS: [&str; 3] = ["fc6", "fc7", "fc8"];

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

    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name.to_ascii_lowercase())
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
            FcSpec { tap: "fc6", din: trunk, dout: 4096, classifier_index: idx[0] },
            FcSpec { tap: "fc7", din: 4096, dout: 4096, classifier_index: idx[1] },
            FcSpec { tap: "fc8", din: 4096, dout: 1000, classifier_index: idx[2] },
        ]
    }

    pub fn convs(&self) -> Vec<ConvSpec> {
        self.stages().into_iter().flat_map(|s| s.convs).collect()
    }

    /// All tap names in forward order.
    pub fn taps(&self) -> Vec<&'static str> {
        self.stages().iter().map(|s| s.tap).chain(FC_TAPS).collect()
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

    /// Index of the stage or fc layer that produces `tap`.
    pub fn tap_index(&self, tap: &str) -> Option<usize> {
        self.taps().iter().position(|t| *t == tap)
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
