//! The command line. `main.rs` parses and calls [`run`]; with no subcommand it will open the GUI.

mod commands;
mod recon;
mod train;

use crate::device::check_device_name;
use crate::model::{Layer, ModelSource};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "layerinv",
    version = env!("LAYERINV_VERSION"),
    about = "How much of an image survives inside each layer of a pretrained classifier",
    long_about = "How much of an image survives inside each layer of a pretrained classifier.\n\nWith no \
                  subcommand it opens the desktop app (on PHOTO, a photo or a folder of photos, if given); \
                  the subcommands are the same work on the command line.",
    subcommand_precedence_over_arg = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// App: open this photo, or the first photo of this folder (as --image; what a file manager
    /// passes).
    #[arg(value_name = "PHOTO", conflicts_with = "image")]
    pub photo: Option<PathBuf>,
    /// Cap the CPU threads used (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// App: open this photo, or the first photo of this folder (PageUp/PageDown step through it).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// App: start at this layer (pool1 … fc8).
    #[arg(long)]
    pub layer: Option<Layer>,
    /// App: once the reconstructions are on screen, save a screenshot of the window here and exit.
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    /// App: `bundled` (default, or the last one used), `vgg16`/`vgg19` (downloaded), or a weights file.
    #[arg(long, value_parser = ModelSource::check_name)]
    pub model: Option<String>,
    /// App: compare (the input and every kind of decoder), diff (plus error maps), channels (the layer's code,
    /// channel by channel) or all-layers.
    #[arg(long, value_enum)]
    pub view: Option<crate::figure::View>,
    /// App: decode SWWAE with the pooling switches of this other photo.
    #[arg(long)]
    pub switches_from: Option<PathBuf>,
    /// App: keep only these channels of the layer's code, e.g. `0-31,64` or `top:16`.
    #[arg(long)]
    pub keep_channels: Option<String>,
    /// App: a decoders folder shown first, wherever it has the decoder (this run only).
    #[arg(long)]
    pub decoders: Option<PathBuf>,
    /// App: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto", value_parser = check_device_name)]
    pub device: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Describe a model: architecture, taps, their shapes and availability.
    Info {
        /// `bundled` (default), `vgg16`/`vgg19` (downloaded with `fetch`), or a weights file.
        #[arg(long, default_value = "bundled", value_parser = ModelSource::check_name)]
        model: String,
        /// Print exactly one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Write one layer's activation for an image as a float32 .npy, shape (C,H,W) or (D,).
    Features {
        image: PathBuf,
        #[arg(long)]
        layer: Layer,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "bundled", value_parser = ModelSource::check_name)]
        model: String,
    },
    /// Download full ImageNet weights (timm/vgg16.tv_in1k or timm/vgg19.tv_in1k) from the Hugging Face Hub.
    Fetch {
        #[arg(value_enum)]
        model: crate::model::hub::HubModel,
        /// Hub address (default: $HF_ENDPOINT or https://huggingface.co).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Time the workload of scripts/torch_ref.py (same JSON keys).
    Bench {
        /// cpu, cuda, cuda:N or auto
        #[arg(long, default_value = "auto", value_parser = check_device_name)]
        device: String,
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Layers to time (default: every layer of the model's conv trunk).
        #[arg(long, value_delimiter = ',')]
        layers: Vec<Layer>,
        /// Kinds of decoder to time (default: all, as scripts/torch_ref.py).
        #[arg(long, value_enum, value_delimiter = ',')]
        kinds: Vec<crate::model::Kind>,
        /// fp32, or bf16: mixed precision as PyTorch's autocast (bf16 convolutions and activations,
        /// f32 weights, optimizer and loss)
        #[arg(long, value_enum, default_value_t = crate::device::Precision::Fp32)]
        dtype: crate::device::Precision,
        #[arg(long, default_value = "bundled", value_parser = ModelSource::check_name)]
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild an image from a layer with every kind of decoder: the input, then each kind.
    Reconstruct(recon::ReconstructArgs),
    /// Mean MSE, PSNR and SSIM of every available decoder over a folder of photos.
    Eval {
        #[arg(long)]
        data: PathBuf,
        /// Folder of decoders (default: the bundled ones); give it again to compare sets on the
        /// same photos, a row each.
        #[arg(long)]
        decoders: Vec<PathBuf>,
        #[arg(long, default_value = "bundled", value_parser = ModelSource::check_name)]
        model: String,
        #[arg(long, default_value = "auto", value_parser = check_device_name)]
        device: String,
        /// Print exactly one JSON object.
        #[arg(long)]
        json: bool,
        /// Also write every photo's bare pictures into this folder, 224×224 PNGs: STEM_input.png
        /// and STEM_LAYER_KIND.png (`_setN` added with several --decoders), STEM the photo's path
        /// under --data with `_` for `/`.
        #[arg(long, value_name = "DIR")]
        save: Option<PathBuf>,
    },
    /// Train decoders for some layers on a folder of images.
    Train(train::TrainArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (layerinv.1 and one per subcommand) into a folder.
    #[command(hide = true)]
    Man { out: PathBuf },
    /// Convert the conv trunk of an ONNX model (e.g. a Keras VGG-16 export) to f16 safetensors.
    ImportOnnx {
        input: PathBuf,
        output: PathBuf,
        /// Display name stored in the file.
        #[arg(long)]
        name: Option<String>,
    },
}

/// Run a parsed command line; returns the exit code. Errors are one line, ready to print.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Some(n) = cli.threads {
        // Our kernels run on rayon's global pool; candle's own (its matrix products) reads the
        // same variable, so both keep to the cap.
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
        rayon::ThreadPoolBuilder::new().num_threads(n.max(1)).build_global()?;
    }
    let result: anyhow::Result<()> = match cli.command {
        Some(Command::Info { model, json }) => commands::info(&model, json),
        Some(Command::Features { image, layer, out, model }) => commands::features(&image, layer, &out, &model),
        Some(Command::Fetch { model, endpoint }) => commands::fetch(model, endpoint.as_deref()),
        Some(Command::Bench { device, batch, steps, layers, kinds, dtype, model, json }) => {
            let cfg = crate::bench::BenchConfig { batch, precision: dtype, steps, layers, kinds };
            commands::bench(&device, &model, json, cfg)
        }
        Some(Command::Reconstruct(args)) => recon::reconstruct_cmd(&args),
        Some(Command::Eval { data, decoders, model, device, json, save }) => {
            recon::eval_cmd(&data, &recon::decoders_dirs(&decoders), &model, &device, json, save.as_deref())
        }
        Some(Command::Train(args)) => train::run(args),
        Some(Command::ImportOnnx { input, output, name }) => commands::import_onnx(&input, &output, name.as_deref()),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "layerinv",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Some(Command::Man { out }) => write_man_pages(&out),
        #[cfg(not(feature = "gui"))]
        None => anyhow::bail!(
            "this layerinv was built without the desktop app (feature `gui`); use a subcommand (see --help)"
        ),
        #[cfg(feature = "gui")]
        None => {
            let opts = crate::app::AppOptions {
                image: cli.image.or(cli.photo),
                layer: cli.layer,
                screenshot: cli.screenshot,
                model: cli.model.unwrap_or_default(),
                decoders: cli.decoders,
                data_dir: None,
                device: cli.device,
                view: cli.view,
                switches_from: cli.switches_from,
                keep_channels: cli.keep_channels,
            };
            return crate::app::run(opts);
        }
    };
    result.map(|()| 0)
}

/// `layerinv.1` and `layerinv-SUBCOMMAND.1` for every visible subcommand, from the clap
/// definitions, into `out`.
fn write_man_pages(out: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    let cmd = <Cli as clap::CommandFactory>::command().version(env!("CARGO_PKG_VERSION"));
    let mut pages = vec![("layerinv".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("layerinv-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name).version(env!("CARGO_PKG_VERSION"))));
    }
    for (name, page) in pages {
        let mut bytes = Vec::new();
        clap_mangen::Man::new(page).render(&mut bytes)?;
        let path = out.join(format!("{name}.1"));
        crate::fsutil::write_atomic(&path, &bytes)?;
    }
    Ok(())
}
