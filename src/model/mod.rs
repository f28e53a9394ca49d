//! Models: architecture tables, the frozen encoder, decoders, and where weights come from.

pub mod arch;
pub mod decoder;
pub mod decoder_file;
pub mod decoder_spec;
pub mod encoder;
pub mod hub;
pub mod labels;
pub mod layers;
pub mod onnx;
pub mod pth;
pub mod source;
pub mod weights;

pub use arch::{Arch, Layer, Tap};
pub use decoder::{Decoder, Segment, Visit, OUTPUT_SCALE};
pub use decoder_file::{decoder_path, load_decoder, save_decoder, DecoderMeta, Earlier};
pub use decoder_spec::{DecOp, DecoderSpec, Kind, Objective, Switches, Upsampling};
pub use encoder::{Encoder, Features};
pub use source::ModelSource;
pub use weights::{load_weights_file, ModelWeights};
