"""The backbone F_B: shapes, mmaction2's window clipping, and the checkpoint loader against the directly built model."""

from __future__ import annotations

import argparse
import logging
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

from mgenet import MgenetError
from mgenet.features.swin import (
    CHECKPOINT_NAME,
    SwinConfig,
    build_swin_stages12,
    load_backbone,
    quiet_mmengine,
    read_checkpoint,
)


@pytest.fixture(scope="module")
def full_tiny():
    """mmaction2's whole Swin-T backbone (4 stages), seeded, as the K400 recognizer holds it."""
    from mmaction.models.backbones.swin import SwinTransformer3D

    torch.manual_seed(7)
    model = SwinTransformer3D(arch="tiny", pretrained=None, pretrained2d=False, drop_path_rate=0.0)
    with quiet_mmengine():
        model.init_weights()
    with torch.no_grad():  # LayerNorms and the bias tables start constant: make every tensor distinctive
        for name, p in model.named_parameters():
            if "norm" in name or "relative_position_bias_table" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.eval()  # SwinTransformer3D.train() returns None, so no chaining
    return model


def recognizer_checkpoint(backbone: torch.nn.Module, meta: dict) -> dict:
    """mmaction2's recognizer format: backbone.* and cls_head.* tensors, plus meta."""
    state = OrderedDict((f"backbone.{k}", v.clone()) for k, v in backbone.state_dict().items())
    state["cls_head.fc_cls.weight"] = torch.randn(400, 768)
    state["cls_head.fc_cls.bias"] = torch.zeros(400)
    return {"meta": meta, "state_dict": state}


def stage2_output(full: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Stage 2's output of the whole model's own forward, caught by a hook: (B, t, h, w, C)."""
    caught = {}
    handle = full.layers[1].register_forward_hook(lambda m, i, o: caught.setdefault("y", o))
    with torch.inference_mode():
        full(x)
    handle.remove()
    return caught["y"]


def test_token_shape_and_window_clipping(swin):
    x = torch.randn(2, 3, 24, 32, 16)
    with torch.inference_mode():
        y = swin(x)
    assert tuple(y.shape) == (2, 12, 4, 2, 192) == (2, *SwinConfig().token_shape(24, 32, 16))
    assert SwinConfig().token_shape(24, 128, 64) == (12, 16, 8, 192)
    assert SwinConfig().token_shape(16, 128, 64) == (8, 16, 8, 192)
    # stage 1 sees (t, h, w) = (12, 8, 4): mmaction2 clips the 8x7x7 window to the width and drops that shift
    from mmaction.models.backbones.swin import get_window_size

    assert get_window_size((12, 8, 4), (8, 7, 7), (4, 3, 3)) == ((8, 7, 4), (4, 3, 0))
    assert get_window_size((12, 4, 2), (8, 7, 7), (4, 3, 3)) == ((8, 4, 2), (4, 0, 0))
    assert torch.isfinite(y).all()


def test_random_weights_are_seeded(swin):
    again, other = build_swin_stages12(seed=0), build_swin_stages12(seed=1)
    a, b, c = swin.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.blocks.0.attn.qkv.weight"], c["layers.0.blocks.0.attn.qkv.weight"])


def test_recognizer_checkpoint_gives_exactly_the_direct_model(tmp_path, full_tiny, caplog):
    path = tmp_path / CHECKPOINT_NAME
    meta = {"mmcv_version": "1.3.1", "epoch": 30, "config": "model = dict(type='Recognizer3D')",
            "hook_msgs": {"best_score": np.float64(0.78), "best_ckpt": "epoch_30.pth"}}
    torch.save(recognizer_checkpoint(full_tiny, meta), path)
    with caplog.at_level(logging.INFO):
        model, digest = load_backbone(str(path), seed=123)  # seed differs: every weight must come from the file
    assert len(digest) == 64 and "meta holds numpy objects" in caplog.text
    x = torch.randn(2, 3, 16, 64, 32)
    with torch.inference_mode():
        ours = model(x)
    assert torch.equal(ours, stage2_output(full_tiny, x))
    random_model = build_swin_stages12(seed=123)
    with torch.inference_mode():
        assert not torch.allclose(random_model(x), ours)


def test_clean_checkpoint_loads_without_fallback(tmp_path, full_tiny, caplog):
    path = tmp_path / "clean.pth"
    torch.save(recognizer_checkpoint(full_tiny, {"epoch": 30}), path)
    with caplog.at_level(logging.WARNING):
        state = read_checkpoint(path)
    assert "numpy" not in caplog.text
    assert "cls_head.fc_cls.weight" not in state and "patch_embed.proj.weight" in state


def test_numpy1_era_meta_loads(tmp_path, full_tiny):
    """Files pickled under numpy 1.x name numpy.core.multiarray.*; numpy 2 calls it numpy._core."""
    new, old = tmp_path / "n2.pth", tmp_path / "n1.pth"
    torch.save(recognizer_checkpoint(full_tiny, {"hook_msgs": {"best_score": np.float64(0.5)},
                                                 "arr": np.arange(3)}), new)
    with zipfile.ZipFile(new) as zin, zipfile.ZipFile(old, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
            zout.writestr(info, data)
    assert "numpy.core.multiarray.scalar" in torch.serialization.get_unsafe_globals_in_checkpoint(old)
    state = read_checkpoint(old)
    assert torch.equal(state["patch_embed.proj.weight"], full_tiny.state_dict()["patch_embed.proj.weight"])


def test_other_pickled_objects_are_refused(tmp_path, full_tiny):
    path = tmp_path / "ns.pth"
    torch.save(recognizer_checkpoint(full_tiny, {"args": argparse.Namespace(lr=0.1)}), path)
    with pytest.raises(MgenetError, match="argparse.Namespace") as e:
        read_checkpoint(path)
    assert str(path) in str(e.value) and "Re-save" in str(e.value)


def _edit_and_load(tmp_path, full_tiny, edit) -> str:
    ckpt = recognizer_checkpoint(full_tiny, {})
    edit(ckpt["state_dict"])
    path = tmp_path / "edited.pth"
    torch.save(ckpt, path)
    with pytest.raises(MgenetError) as e:
        load_backbone(str(path), seed=0)
    assert str(path) in str(e.value)
    return str(e.value)


def test_missing_key_is_named(tmp_path, full_tiny):
    msg = _edit_and_load(tmp_path, full_tiny, lambda s: s.pop("backbone.layers.1.blocks.1.mlp.fc2.weight"))
    assert "missing keys (1): layers.1.blocks.1.mlp.fc2.weight" in msg


def test_unexpected_key_is_named(tmp_path, full_tiny):
    def add(s):
        s["backbone.layers.0.blocks.2.norm1.weight"] = torch.ones(96)

    msg = _edit_and_load(tmp_path, full_tiny, add)
    assert "unexpected keys (1): layers.0.blocks.2.norm1.weight" in msg


def test_wrong_architecture_names_shape_mismatches(tmp_path):
    """Swin-B (embed 128) instead of Swin-T: same key names, other shapes."""
    from mmaction.models.backbones.swin import SwinTransformer3D

    base = SwinTransformer3D(arch="base", pretrained=None, pretrained2d=False)
    path = tmp_path / "swin_base.pth"
    torch.save(recognizer_checkpoint(base, {}), path)
    with pytest.raises(MgenetError, match=r"shape mismatches .*patch_embed.proj.weight: checkpoint \(128, 3, 2, 4"):
        load_backbone(str(path), seed=0)


def test_not_a_swin_checkpoint(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7)}}, path)
    with pytest.raises(MgenetError, match="not a Video Swin checkpoint"):
        load_backbone(str(path), seed=0)


def test_garbage_file(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(MgenetError, match="not a readable PyTorch checkpoint") as e:
        load_backbone(str(path), seed=0)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("text", ["epoch 3\nlr 0.1\n", "hello world", "e"])  # KeyError 101 / IndexError inside torch
def test_a_text_file_as_weights_is_one_error_line(tmp_path, text):
    path = tmp_path / "notes.txt"
    path.write_text(text)
    with pytest.raises(MgenetError, match=r"notes\.txt: not a readable PyTorch checkpoint \(") as e:
        load_backbone(str(path), seed=0)
    assert "\n" not in str(e.value)


def test_missing_weights_say_where_to_get_them(tmp_path):
    path = tmp_path / "resources" / "weights" / CHECKPOINT_NAME
    with pytest.raises(MgenetError) as e:
        load_backbone(str(path), seed=0)
    msg = str(e.value)
    assert str(path) in msg and "SwinTransformer/storage/releases" in msg and "features.weights: random" in msg
