"""Official STG-NF checkpoints import key by key and score as STG-NF's equations say; anything else is refused."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import official_stgnf_state as official_state
from helpers import save_official_stgnf as save_official

from mgenet import MgenetError
from mgenet.cli import main
from mgenet.engine.flow import load_checkpoint
from mgenet.engine.stgnf_checkpoint import import_stgnf

T, V = 8, 18


def reference_nll(sd: dict[str, torch.Tensor], x: torch.Tensor, R: float, invconv: bool = False) -> torch.Tensor:
    """STG-NF's forward pass written out from its equations (eval mode: BatchNorm on running statistics)."""
    def bn(h: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(h, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                            training=False, eps=1e-5)

    K = sum(k.endswith("actnorm.bias") for k in sd)
    z, logdet = x, torch.zeros(x.shape[0], dtype=x.dtype)
    for k in range(K):
        p = f"flow.layers.{k}"
        z = (z + sd[f"{p}.actnorm.bias"]) * torch.exp(sd[f"{p}.actnorm.logs"])
        logdet = logdet + sd[f"{p}.actnorm.logs"].sum() * T * V
        if invconv:
            c = f"{p}.invconv"
            w = sd[f"{c}.p"] @ (torch.tril(sd[f"{c}.lower"], -1) + torch.eye(2)) @ (
                torch.triu(sd[f"{c}.upper"], 1) + torch.diag(sd[f"{c}.sign_s"] * torch.exp(sd[f"{c}.log_s"])))
            z = F.conv2d(z, w.view(2, 2, 1, 1))
            logdet = logdet + sd[f"{c}.log_s"].sum() * T * V
        else:
            z = z[:, [1, 0]]  # Permute2d(shuffle=False): reversed channels
        z1, z2 = z[:, :1], z[:, 1:]
        h = z1
        b = 0
        while f"{p}.block.{b}.gcn.conv.weight" in sd:
            q = f"{p}.block.{b}"
            res = 0 if k == 0 else (bn(F.conv2d(h, sd[f"{q}.residual.0.weight"], sd[f"{q}.residual.0.bias"]),
                                       f"{q}.residual.1") if f"{q}.residual.0.weight" in sd else h)
            A = torch.full((1, V, V), 1.0 / V)  # uniform graph with 8 hops: every joint is every joint's neighbour
            if f"{p}.edge_importance.{b}" in sd:
                A = A * sd[f"{p}.edge_importance.{b}"]
            g = F.conv2d(h, sd[f"{q}.gcn.conv.weight"], sd[f"{q}.gcn.conv.bias"])
            g = torch.einsum("nkctv,kvw->nctw", g.view(g.shape[0], 1, -1, T, V), A)
            tk = sd[f"{q}.tcn.2.weight"].shape[2]
            g = bn(F.conv2d(F.relu(bn(g, f"{q}.tcn.0")), sd[f"{q}.tcn.2.weight"], sd[f"{q}.tcn.2.bias"],
                            padding=(tk // 2, 0)), f"{q}.tcn.3")
            h = F.relu(g + res)
            b += 1
        shift, scale = h[:, 0::2], torch.sigmoid(h[:, 1::2] + 2.0) + 1e-6
        z2 = (z2 + shift) * scale
        logdet = logdet + torch.log(scale).sum(dim=(1, 2, 3))
        z = torch.cat([z1, z2], dim=1)
    log_pz = (-0.5 * ((z - R) ** 2 + math.log(2 * math.pi))).sum(dim=(1, 2, 3))
    return -(log_pz + logdet) / (math.log(2.0) * 2 * T * V)


@pytest.mark.parametrize("kw", [dict(), dict(R=10.0, K=4), dict(hidden=4), dict(hidden=2, edge_importance=True),
                                dict(invconv=True)])
def test_official_layout_imports_and_scores_as_stgnf(tmp_path: Path, kw: dict) -> None:
    sd = official_state(**kw)
    path = save_official(tmp_path / "ckpt.tar", sd, R=kw.get("R", 3.0), K=kw.get("K", 3),
                         hidden_dim=kw.get("hidden", 0), flow_permutation="invconv" if kw.get("invconv") else "invcov")
    model, info = import_stgnf(path)
    assert not model.training
    assert (model.cfg.seg_len, model.cfg.n_flows, model.cfg.prior_mean, model.cfg.temporal_kernel) == (
        T, kw.get("K", 3), kw.get("R", 3.0), 5)
    assert info["epoch"] == 8 and info["args"]["seed"] == 6276204685895611204
    x = torch.randn(32, 2, T, V) * 1.5
    with torch.no_grad():
        _, nll = model.nll(x)
        expected = reference_nll(sd, x, kw.get("R", 3.0), invconv=kw.get("invconv", False))
    assert nll.std() > 0.01  # the check is not on a constant
    torch.testing.assert_close(nll, expected, atol=1e-5, rtol=1e-5)


def test_batchnorm_running_statistics_are_what_scores(tmp_path: Path) -> None:
    sd = official_state()
    x = torch.randn(8, 2, T, V)
    with torch.no_grad():
        before = import_stgnf(save_official(tmp_path / "a.tar", sd))[0].nll(x)[1]
        sd["flow.layers.1.block.0.tcn.3.running_mean"] += 1.0
        after = import_stgnf(save_official(tmp_path / "b.tar", sd))[0].nll(x)[1]
    assert (before - after).abs().min() > 1e-4


def test_mismatched_files_are_refused_with_the_keys(tmp_path: Path) -> None:
    sd = official_state()
    sd["flow.layers.0.block.0.extra.weight"] = torch.zeros(2)
    with pytest.raises(MgenetError, match=r"map to nothing.*flow\.layers\.0\.block\.0\.extra\.weight"):
        import_stgnf(save_official(tmp_path / "extra.tar", sd))
    sd = official_state()
    del sd["flow.layers.2.block.0.tcn.3.running_var"]
    with pytest.raises(MgenetError, match=r"does not fill.*steps\.2\.coupling\.blocks\.0\.tcn\.3\.running_var"):
        import_stgnf(save_official(tmp_path / "missing.tar", sd))
    sd = official_state()
    sd["flow.layers.1.block.0.tcn.2.weight"] = torch.zeros(2, 2, 3, 1)
    with pytest.raises(MgenetError, match="shape mismatches"):
        import_stgnf(save_official(tmp_path / "shape.tar", sd))
    with pytest.raises(MgenetError, match="seg_len: 8"):
        import_stgnf(save_official(tmp_path / "ok.tar", official_state()), seg_len=24)
    with pytest.raises(MgenetError, match="strategy 'spatial'"):
        import_stgnf(save_official(tmp_path / "spatial.tar", official_state(), strategy="spatial"))
    with pytest.raises(MgenetError, match="shuffle"):
        import_stgnf(save_official(tmp_path / "shuffle.tar", official_state(), flow_permutation="shuffle"))
    with pytest.raises(MgenetError, match="args say R"):
        import_stgnf(save_official(tmp_path / "r.tar", official_state(R=3.0), R=5.0))
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(MgenetError, match="no 'state_dict'"):
        import_stgnf(tmp_path / "other.pt")
    (tmp_path / "text.tar").write_text("not a checkpoint\n")
    with pytest.raises(MgenetError, match="weights_only=True"):
        import_stgnf(tmp_path / "text.tar")
    with pytest.raises(MgenetError, match="not found"):
        import_stgnf(tmp_path / "absent.tar")


class Payload:
    """Unpickling this would create a file: a stand-in for code hidden in a checkpoint."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_no_pickle_beyond_weights_and_namespace_is_read(tmp_path: Path) -> None:
    target = tmp_path / "PWNED"
    path = tmp_path / "evil.tar"
    torch.save({"epoch": 8, "state_dict": official_state(), "args": argparse.Namespace(seg_len=T),
                "payload": Payload(str(target))}, path)
    with pytest.raises(MgenetError, match="weights_only=True"):
        import_stgnf(path)
    assert not target.exists()


def test_cli_import_writes_an_mgenet_checkpoint(tmp_path: Path) -> None:
    sd = official_state()
    src = save_official(tmp_path / "ShanghaiTech_85_9.tar", sd)
    out = tmp_path / "flow.pt"
    assert main(["import-stgnf", str(src), "--out", str(out), "--seg-len", str(T)]) == 0
    model, ckpt = load_checkpoint(out)
    assert ckpt["imported_from"]["epoch"] == 8 and len(ckpt["imported_from"]["sha256"]) == 64
    x = torch.randn(4, 2, T, V)
    with torch.no_grad():
        torch.testing.assert_close(model.nll(x)[1], reference_nll(sd, x, 3.0), atol=1e-5, rtol=1e-5)
    assert main(["import-stgnf", str(src), "--out", str(tmp_path / "x.pt"), "--seg-len", "24"]) == 1
    assert not (tmp_path / "x.pt").exists()


def test_train_flow_imports_when_flow_checkpoint_is_set(tmp_path: Path) -> None:
    """The DAG's train_flow with flow.checkpoint: the import, with the training segments' settings recorded."""
    import json

    import numpy as np

    from mgenet.io import write_segments

    seg = tmp_path / "v.h5"
    n = 3
    write_segments(seg, {"pose": np.zeros((n, 2, T, V)), "confidence": np.ones((n, T, V)),
                         "keypoints": np.zeros((n, T, V, 2)), "boxes": np.zeros((n, T, 4)),
                         "frames": np.arange(T)[None].repeat(n, 0), "person_id": np.zeros(n),
                         "start_frame": np.arange(n), "mid_frame": np.arange(n) + T // 2},
                   {"video": "v", "split": "train", "seg_len": T, "stride": 6, "max_missing": 2,
                    "keep_last_window": False, "norm_size": "stgnf"})
    src = save_official(tmp_path / "ckpt.tar", official_state())
    out = tmp_path / "flow.pt"
    params = json.dumps({"seg_len": T, "checkpoint": str(src), "model": {"n_flows": 99}, "train": {"epochs": 1}})
    assert main(["train-flow", "--segments", str(seg), "--params", params, "--out", str(out)]) == 0
    model, ckpt = load_checkpoint(out)
    assert model.cfg.n_flows == 3  # the checkpoint's architecture, not flow.model's
    assert ckpt["segments"]["train_stride"] == 6 and ckpt["imported_from"]["source"] == str(src)
    params = json.dumps({"seg_len": 24, "checkpoint": str(src)})
    assert main(["train-flow", "--segments", str(seg), "--params", params, "--out", str(tmp_path / "x.pt")]) == 1


@pytest.mark.parametrize("content", [b"hello, this is a text file\n", b"abc", b""])
def test_a_file_of_another_kind_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  content: bytes) -> None:
    path = tmp_path / "not_a_checkpoint.tar"
    path.write_bytes(content)
    assert main(["import-stgnf", str(path), "--out", str(tmp_path / "flow.pt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: not readable as an STG-NF checkpoint")
    assert not (tmp_path / "flow.pt").exists()


def test_an_empty_state_dict_is_called_empty(tmp_path: Path) -> None:
    path = save_official(tmp_path / "empty.tar", {})
    with pytest.raises(MgenetError, match=r"empty.tar: its 'state_dict' is empty \(no weights\)"):
        import_stgnf(path)


def test_an_mgenet_flow_given_as_flow_checkpoint_is_taken_as_it_is(tmp_path: Path) -> None:
    src = save_official(tmp_path / "ckpt.tar", official_state())
    ours = tmp_path / "other_run_flow.pt"
    assert main(["import-stgnf", str(src), "--out", str(ours), "--seg-len", str(T)]) == 0
    with pytest.raises(MgenetError, match="an mgenet flow checkpoint .* not an STG-NF one"):
        import_stgnf(ours)  # the STG-NF reader says what it is ...
    out = tmp_path / "flow.pt"  # ... and the import (train_flow's flow.checkpoint, import-stgnf) takes it as it is
    assert main(["import-stgnf", str(ours), "--out", str(out), "--seg-len", str(T)]) == 0
    model, ckpt = load_checkpoint(out)
    original, _ = load_checkpoint(ours)
    x = torch.randn(3, 2, T, V)
    with torch.no_grad():
        torch.testing.assert_close(model.nll(x)[1], original.nll(x)[1])
    assert ckpt["imported_from"]["format"] == "mgenet" and ckpt["imported_from"]["source"] == str(ours)
    assert main(["import-stgnf", str(ours), "--out", str(tmp_path / "x.pt"), "--seg-len", "24"]) == 1
    assert not (tmp_path / "x.pt").exists()
