//! Reading the conv trunk out of an ONNX file: just the few protobuf fields we need, decoded with
//! `prost` (no protoc, no full ONNX runtime).

use crate::data::Preprocess;
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use std::path::Path;

#[derive(Clone, PartialEq, prost::Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, tag = "4")]
    op_type: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorTypeProto {
    #[prost(message, optional, tag = "2")]
    shape: Option<ShapeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<DimProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DimProto {
    #[prost(int64, optional, tag = "1")]
    dim_value: Option<i64>,
}

const ONNX_FLOAT: i32 = 1;

/// The convolutions of an ONNX graph in execution order, as `(weight OIHW, bias)`, plus the
/// preprocessing the input layout implies (NHWC: a Keras export, Caffe-style input; NCHW: torch).
pub struct OnnxTrunk {
    pub convs: Vec<(Tensor, Tensor)>,
    pub preprocess: Preprocess,
}

pub fn read_onnx_trunk(path: &Path, device: &Device) -> Result<OnnxTrunk> {
    use prost::Message;
    let bytes = crate::fsutil::read_bounded(path, "an ONNX model", super::weights::MAX_WEIGHTS_BYTES, |_| true)?;
    let model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| Error::bad_file(path, format!("not a readable ONNX model: {e}")))?;
    let graph = model.graph.ok_or_else(|| Error::bad_file(path, "ONNX file has no graph"))?;
    let inits: std::collections::HashMap<&str, &TensorProto> =
        graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let get = |name: &str| -> Result<Tensor> {
        let t = inits
            .get(name)
            .ok_or_else(|| Error::bad_file(path, format!("conv input {name} is not a stored initializer")))?;
        to_tensor(t, device).map_err(|m| Error::bad_file(path, format!("initializer {name}: {m}")))
    };
    let mut convs = Vec::new();
    for node in graph.node.iter().filter(|n| n.op_type == "Conv") {
        let (Some(w), Some(b)) = (node.input.get(1), node.input.get(2)) else {
            return Err(Error::bad_file(path, "a Conv node without weight and bias inputs"));
        };
        convs.push((get(w)?, get(b)?));
    }
    if convs.is_empty() {
        return Err(Error::bad_file(path, "ONNX graph has no Conv nodes"));
    }
    let nhwc = graph
        .input
        .first()
        .and_then(|i| i.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref().map(|s| s.dim.clone()))
        .is_some_and(|d| d.len() == 4 && d[3].dim_value == Some(3));
    Ok(OnnxTrunk { convs, preprocess: if nhwc { Preprocess::Caffe } else { Preprocess::Torch } })
}

fn to_tensor(t: &TensorProto, device: &Device) -> std::result::Result<Tensor, String> {
    if t.data_type != ONNX_FLOAT {
        return Err(format!("data type {} is not float32", t.data_type));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("bad dim {d}")))
        .collect::<std::result::Result<_, _>>()?;
    let n: usize = dims.iter().product();
    let data: Vec<f32> = if !t.raw_data.is_empty() {
        if t.raw_data.len() != 4 * n {
            return Err(format!("{} bytes of data for shape {dims:?}", t.raw_data.len()));
        }
        t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        if t.float_data.len() != n {
            return Err(format!("{} values for shape {dims:?}", t.float_data.len()));
        }
        t.float_data.clone()
    };
    Tensor::from_vec(data, dims, device).map_err(|e| e.to_string())
}
