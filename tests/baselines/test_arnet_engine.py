"""AR-Net's losses, batches, training and the train / score commands."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from mgenet import MgenetError
from mgenet.cli import main
from mgenet.baselines.engine.arnet import (ARNetTrainConfig, Bags, _per_video_loss, arnet_loss, balanced_batches, center_loss,
                                 mil_topk_loss, score_videos, topk_count, train_arnet)
from mgenet.baselines.models.arnet import ARNet, ARNetConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_topk_is_a_quarter_rounded_up():
    assert topk_count(torch.tensor([1, 3, 4, 5, 8, 9])).tolist() == [1, 1, 1, 2, 2, 3]


def test_mil_topk_loss_on_hand_made_scores():
    # video 0 anomalous, 5 snippets: k = 2, its top two 0.9 and 0.8; video 1 normal, 3 snippets (padded): k = 1, 0.3
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.2, 0.5], [0.1, 0.3, 0.2, 0.99, 0.99]])
    loss = mil_topk_loss(scores, torch.tensor([5, 3]), torch.tensor([1, 0]))
    want = (-math.log(0.9) - math.log(0.8) - math.log(1 - 0.3)) / 3
    assert float(loss) == pytest.approx(want, rel=1e-6)  # the padding's 0.99 is never picked


def test_center_loss_is_zero_for_constant_normal_scores_and_ignores_anomalous_videos():
    lengths, labels = torch.tensor([4, 2, 3]), torch.tensor([0, 0, 1])
    flat = torch.tensor([[0.3, 0.3, 0.3, 0.3], [0.7, 0.7, 0.0, 0.9], [0.1, 0.9, 0.5, 0.0]])
    assert float(center_loss(flat, lengths, labels)) == 0.0  # padding (0.0, 0.9) is not part of video 1
    varying = torch.tensor([[0.2, 0.4, 0.2, 0.4], [0.7, 0.7, 0.0, 0.0], [0.1, 0.9, 0.5, 0.0]])
    # unbiased variance, as the public code's torch.var: 4 x 0.1^2 / 3
    assert float(center_loss(varying, lengths, labels)) == pytest.approx(20 * (0.04 / 3 + 0.0) / 2)
    assert float(center_loss(varying, lengths, torch.tensor([1, 1, 1]))) == 0.0


def test_batched_loss_equals_the_per_video_loss():
    torch.manual_seed(0)
    model = ARNet(ARNetConfig(in_dim=8)).eval()  # no dropout: the two must agree exactly
    lengths = torch.tensor([5, 9, 3, 7])
    x = torch.randn(4, 9, 8)
    labels = torch.tensor([0, 1, 0, 1])
    torch.testing.assert_close(arnet_loss(model(x), lengths, labels), _per_video_loss(model, x, lengths, labels))


def test_balanced_batches_cover_the_larger_group_once_per_epoch():
    labels = np.array([0] * 10 + [1] * 3)
    batches = balanced_batches(labels, 4, np.random.default_rng(0))
    assert len(batches) == 5 and all(len(b) == 4 and labels[b].sum() == 2 for b in batches)
    normal = np.concatenate([b[labels[b] == 0] for b in batches])
    assert sorted(normal) == list(range(10))


def _bags(n_normal=12, n_anomalous=6, seed=0):
    """Normal videos of noise; each anomalous video has 2-3 snippets shifted along channel 0."""
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for label, n in ((0, n_normal), (1, n_anomalous)):
        for _ in range(n):
            f = rng.normal(size=(int(rng.integers(8, 16)), 6)).astype(np.float32)
            if label:
                f[rng.choice(len(f), 3, replace=False), 0] += 4.0
            feats.append(f)
            labels.append(label)
    return Bags(feats, np.array(labels), [f"v{i}" for i in range(len(feats))])


def test_training_learns_the_anomalous_snippets_and_is_seeded():
    bags = _bags()
    cfg = ARNetTrainConfig(epochs=60, batch_size=8, lr=1e-2, device="cpu")
    model, rec = train_arnet(bags, cfg)
    assert rec["history"][-1]["loss"] < rec["history"][0]["loss"]
    test = _bags(seed=1)
    scores = score_videos(model, test.features, rec["mean"], rec["std"], torch.device("cpu"))
    s, shifted = np.concatenate(scores), np.concatenate([f[:, 0] > 2.5 for f in test.features])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(shifted, s) > 0.9
    # the same seed, the same model; batched and per-video scoring agree
    model2, _ = train_arnet(bags, cfg)
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        torch.testing.assert_close(a, b)
    per_video = score_videos(model, test.features, rec["mean"], rec["std"], torch.device("cpu"), mode="per_video")
    for a, b in zip(scores, per_video):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_training_needs_both_labels():
    bags = _bags()
    bags.labels[:] = 0
    with pytest.raises(MgenetError, match="0 anomalous"):
        train_arnet(bags, ARNetTrainConfig(epochs=1, batch_size=4, device="cpu"))


def _snippets(path, video, n_frames, rng, shift=False, L=16):
    starts = np.arange(0, n_frames, L)
    f = rng.normal(size=(len(starts), 6)).astype(np.float32)
    if shift:
        f[1, 0] += 4.0
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h:
        h["features"], h["start_frame"] = f, starts
        h.attrs.update(snippet_len=L, frames=n_frames, size=[32, 32], video=video, backbone="test",
                       checkpoint_sha256="random:0")
    return path


@pytest.fixture
def weak_case(tmp_path):
    """Train videos n0-n3 (normal), test videos a0-a3 (anomalous: a0, a1 train the weak split) and t0 (normal)."""
    rng = np.random.default_rng(0)
    d = tmp_path / "snippets" / "len16"
    files = {v: _snippets(d / f"{v}.h5", v, 40, rng, shift=v.startswith("a")) for v in
             ["n0", "n1", "n2", "n3", "a0", "a1", "a2", "a3", "t0"]}
    weak = pd.DataFrame({"video": ["n0", "n1", "n2", "n3", "a0", "a1", "a2", "a3", "t0"],
                         "split": ["train"] * 6 + ["test"] * 3, "label": [0, 0, 0, 0, 1, 1, 1, 1, 0]})
    weak.to_csv(tmp_path / "weak.csv", index=False)
    man = pd.DataFrame({"video": list(files), "split": ["train"] * 4 + ["test"] * 5, "scene": "01", "frames": 40,
                        "fps": 25.0, "height": 64, "width": 64, "video_path": "", "pose_path": "", "gt_path": ""})
    man.to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path, files


PARAMS = json.dumps({"epochs": 5, "batch_size": 4, "device": "cpu"})


def test_train_arnet_reads_the_weak_training_videos_only(weak_case, capsys):
    tmp, files = weak_case
    train = [str(files[v]) for v in ("n0", "n1", "n2", "n3", "a0", "a1")]
    out = tmp / "arnet.pt"
    # a weak-test video's file is refused by its name before it is opened (this one is not even HDF5)
    files["a2"].write_bytes(b"not read")
    assert main(["train-arnet", "--snippets", *train, str(files["a2"]), "--weak-split", str(tmp / "weak.csv"),
                 "--params", PARAMS, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "a2.h5: not a training video of the weak split" in err and not out.exists()
    assert main(["train-arnet", "--snippets", *train[:-1], "--weak-split", str(tmp / "weak.csv"), "--params", PARAMS,
                 "--out", str(out)]) == 1
    assert "training video(s) ['a1'] have no snippets file" in capsys.readouterr().err
    assert main(["train-arnet", "--snippets", *train, "--weak-split", str(tmp / "weak.csv"), "--params", PARAMS,
                 "--out", str(out)]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["train_videos"] == ["n0", "n1", "n2", "n3", "a0", "a1"] and ckpt["train_config"]["epochs"] == 5
    assert ckpt["snippets"]["snippet_len"] == 16 and ckpt["mean"].shape == (6,)


def test_score_arnet_writes_every_test_frame(weak_case, capsys):
    tmp, files = weak_case
    train = [str(files[v]) for v in ("n0", "n1", "n2", "n3", "a0", "a1")]
    model = tmp / "arnet.pt"
    assert main(["train-arnet", "--snippets", *train, "--weak-split", str(tmp / "weak.csv"), "--params", PARAMS,
                 "--out", str(model)]) == 0
    test = [str(files[v]) for v in ("a0", "a1", "a2", "a3", "t0")]
    out = tmp / "scores" / "baselines" / "arnet.parquet"
    assert main(["score-arnet", "--model", str(model), "--snippets", *test[:-1], "--manifest",
                 str(tmp / "manifest.csv"), "--out", str(out)]) == 1
    assert "no snippets file for ['t0']" in capsys.readouterr().err and not out.exists()
    assert main(["score-arnet", "--model", str(model), "--snippets", *test, "--manifest", str(tmp / "manifest.csv"),
                 "--params", json.dumps({"device": "cpu"}), "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert list(df.columns) == ["video", "frame", "arnet"] and len(df) == 5 * 40
    g = df[df["video"] == "a2"]["arnet"].to_numpy()
    # 40 frames in snippets of 16: frames 0-15, 16-31, 32-39 each take their snippet's score
    assert len(set(g[:16])) == len(set(g[16:32])) == len(set(g[32:])) == 1 and g[0] != g[16]
