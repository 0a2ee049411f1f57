"""Model files and the runtimes that execute them: TFLite (ai-edge-litert) and ONNX (onnxruntime).

Nothing is ever downloaded: the BlazePose models are the ``.tflite`` files inside the installed ``mediapipe==0.10.14``
wheel (later releases ship none), found on disk without importing mediapipe itself; other weights are files the user
puts under ``resources/weights/``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from mgenet import MgenetError

MEDIAPIPE_MODELS = {
    "pose_detection": "modules/pose_detection/pose_detection.tflite",
    "pose_landmark_full": "modules/pose_landmark/pose_landmark_full.tflite",
}
MEDIAPIPE_PIN = "mediapipe==0.10.14"


def find_mediapipe_model(name: str, search_dirs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Path of a BlazePose ``.tflite`` file: in ``search_dirs`` first (``{dir}/{name}.tflite``), then inside the
    installed mediapipe package.

    Raises:
        MgenetError: the file is nowhere, with the install command.
    """
    rel = MEDIAPIPE_MODELS[name]
    for d in search_dirs:
        if (p := Path(d) / Path(rel).name).is_file():
            return p
    spec = importlib.util.find_spec("mediapipe")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        if (p := Path(root) / rel).is_file():
            return p
    where = f"the mediapipe package at {roots[0]}" if roots else "any installed mediapipe package"
    raise MgenetError(f"{Path(rel).name} not found in {where}. The mediapipe backend runs the models that ship inside "
                      f"the {MEDIAPIPE_PIN} wheel (later releases ship none): `pip install --no-deps {MEDIAPIPE_PIN}` "
                      f"(--no-deps: only its model files are used), or copy {Path(rel).name} into "
                      f"resources/weights/mediapipe/.")


class TFLiteModel:
    """One ``.tflite`` model: float32 NHWC input in, outputs by position."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise MgenetError("ai-edge-litert is not installed; `pip install -r requirements.txt`.") from e
        self.path = Path(path)
        try:
            self._it = Interpreter(model_path=str(path), num_threads=max(1, threads))
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise MgenetError(f"{path}: not a loadable TFLite model ({e}).") from e
        self._in = self._it.get_input_details()[0]
        self._out = [d["index"] for d in self._it.get_output_details()]
        self.input_shape = tuple(int(v) for v in self._in["shape"])  # (1, H, W, 3)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self._it.set_tensor(self._in["index"], np.ascontiguousarray(x, dtype=np.float32))
        self._it.invoke()
        return [self._it.get_tensor(i) for i in self._out]


class OnnxModel:
    """One ONNX model run by onnxruntime on the CPU."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        path = Path(path)
        if not path.is_file():
            raise MgenetError(f"{path}: weights file not found. The onnx pose backend loads a user-supplied ONNX "
                              f"top-down keypoint model (COCO-17 heatmaps or SimCC); put it under resources/weights/ "
                              f"and set pose.weights to its path (see resources/weights/README.md).")
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise MgenetError("onnxruntime is not installed; `pip install -r requirements.txt`.") from e
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for every kind of bad file
            raise MgenetError(f"{path}: not a loadable ONNX model ({type(e).__name__}: {e}).") from e
        self.path = path
        inp = self._sess.get_inputs()
        if len(inp) != 1 or len(inp[0].shape) != 4:
            raise MgenetError(f"{path}: expected one image input of shape (N, 3, H, W), got "
                              f"{[(i.name, i.shape) for i in inp]}.")
        self._input = inp[0].name
        self.input_shape = tuple(inp[0].shape)
        self.output_shapes = [tuple(o.shape) for o in self._sess.get_outputs()]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self._sess.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})
