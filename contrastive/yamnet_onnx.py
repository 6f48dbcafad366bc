"""The YAMNet module as an ONNX QDQ graph, so onnxruntime's int8 kernels run our weights.

The graph mirrors the w8a8 export the weights came from (DequantizeLinear on int8 weights, Conv,
Relu, QuantizeLinear/DequantizeLinear on every activation), with a free batch dimension and the
1024-d pooled embedding as a second output. onnxruntime fuses each DQ -> Conv -> Relu -> Q chain
into an integer convolution: ~30x faster than the same network as float PyTorch convolutions on
this CPU. Built in memory from ``YamNet``'s state; nothing is written to disk.
"""
from __future__ import annotations

import numpy as np

from .yamnet import N_MELS, PATCH_FRAMES, dequantize_state, same_pads


def build_onnx(model):
    """``contrastive.yamnet.YamNet`` -> onnx.ModelProto: patches [N, 1, 96, 64] ->
    (embedding [N, 1024], logits [N, 521])."""
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def qdq(x, i):
        s = const(f"act{i}_scale", np.float32(model.act_scale[i]))
        z = const(f"act{i}_zp", np.uint8(int(model.act_zero_point[i])))
        nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{x}_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{x}_q", s, z], [f"{x}_dq"]))
        return f"{x}_dq"

    stored = getattr(model, "stored_state", None) or {}
    grid = dequantize_state(stored)

    def weight(name, key):
        """int8 initializer + DequantizeLinear: the stored int8 grid when the module still has
        the converted weights, else symmetric int8 from the current float weights (max / 127)."""
        if f"{key}_int8" in stored and torch.equal(grid[key], state[key]):
            wi, scale = stored[f"{key}_int8"].numpy(), stored[f"{key}_scale"].numpy().astype(np.float32)
        else:
            w = state[key].numpy().astype(np.float32)
            m = np.abs(w.reshape(w.shape[0], -1)).max(1)
            scale = np.where(m > 0, m / 127.0, 1.0).astype(np.float32)
            wi = np.clip(np.round(w / scale.reshape(-1, *([1] * (w.ndim - 1)))), -128, 127).astype(np.int8)
        per_channel = scale.size > 1
        scale = scale if per_channel else np.float32(scale.reshape(()))
        const(f"{name}_int8", wi)
        const(f"{name}_scale", scale)
        const(f"{name}_zp", np.zeros(np.shape(scale), np.int8))
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zp"],
                                      [f"{name}_f"], **({"axis": 0} if per_channel else {})))
        return f"{name}_f"

    x = qdq("patches", 0)
    h, w = PATCH_FRAMES, N_MELS
    for i, (conv, stride) in enumerate(zip(model.convs, model.strides)):
        k = conv.kernel_size[0]
        pads, h2, w2 = same_pads(h, w, stride) if k == 3 else ((0, 0, 0, 0), h, w)
        wname = weight(f"conv{i}", f"convs.{i}.weight")
        b = const(f"conv{i}_bias", state[f"convs.{i}.bias"].numpy().astype(np.float32))
        nodes.append(helper.make_node("Conv", [x, wname, b], [f"c{i}"], kernel_shape=[k, k], pads=list(pads),
                                      strides=[stride, stride], group=conv.groups))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        x = qdq(f"r{i}", i + 1)
        h, w = h2, w2
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", [qdq("gap", len(model.convs) + 1)], ["embedding"]))
    wc = weight("classifier", "classifier.weight")
    bc = const("classifier_bias", state["classifier.bias"].numpy().astype(np.float32))
    nodes.append(helper.make_node("Gemm", ["embedding", wc, bc], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes, "yamnet_earmark",
        [helper.make_tensor_value_info("patches", TensorProto.FLOAT, ["N", 1, PATCH_FRAMES, N_MELS])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 1024]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 521])],
        inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto

