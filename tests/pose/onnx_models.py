"""Tiny top-down keypoint models with random weights, written as ONNX files (the shapes real ones have)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _init(name, arr):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(arr, np.float32), name)


def heatmap_model(path: Path, h: int = 64, w: int = 48, seed: int = 0, batch: str | int = "n") -> Path:
    """(N, 3, h, w) -> (N, 17, h/4, w/4) sigmoid heatmaps: one 4x4 stride-4 convolution."""
    from onnx import TensorProto, helper, save

    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["input", "W", "B"], ["c"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("Sigmoid", ["c"], ["heatmaps"])]
    graph = helper.make_graph(
        nodes, "heatmap_pose",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, h, w])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [batch, 17, h // 4, w // 4])],
        [_init("W", rng.normal(0, 0.1, (17, 3, 4, 4))), _init("B", rng.normal(0, 0.1, 17))])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def simcc_model(path: Path, h: int = 64, w: int = 48, split: int = 2, seed: int = 0) -> Path:
    """(N, 3, h, w) -> SimCC vectors (N, 17, w*split), (N, 17, h*split), like RTMPose."""
    from onnx import TensorProto, helper, save

    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["input", "W", "B"], ["c"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("ReduceMean", ["c", "ax_h"], ["rx"], keepdims=0),
             helper.make_node("ReduceMean", ["c", "ax_w"], ["ry"], keepdims=0),
             helper.make_node("MatMul", ["rx", "MX"], ["simcc_x"]),
             helper.make_node("MatMul", ["ry", "MY"], ["simcc_y"])]
    from onnx import numpy_helper

    graph = helper.make_graph(
        nodes, "simcc_pose",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, h, w])],
        [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, ["n", 17, w * split]),
         helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, ["n", 17, h * split])],
        [_init("W", rng.normal(0, 0.1, (17, 3, 4, 4))), _init("B", rng.normal(0, 0.1, 17)),
         numpy_helper.from_array(np.array([2], np.int64), "ax_h"),
         numpy_helper.from_array(np.array([3], np.int64), "ax_w"),
         _init("MX", rng.uniform(0, 1, (w // 4, w * split)) / (w // 4)),
         _init("MY", rng.uniform(0, 1, (h // 4, h * split)) / (h // 4))])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8), str(path))
    return path
