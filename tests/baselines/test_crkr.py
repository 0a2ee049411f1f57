"""Two-stream baseline (CR + KR): fusion, the paper's protocol, and the CLI's guards against training on test data."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter1d
from sklearn.metrics import roc_auc_score

from mgenet import MgenetError
from mgenet.cli import main
from mgenet.baselines.crkr import fuse_streams, minmax_per_video, paper_protocol


def _streams():
    rng = np.random.default_rng(0)
    rows = []
    for video, n, lo, hi in [("a", 60, 20, 35), ("b", 50, 0, 0), ("c", 80, 40, 70)]:
        gt = np.zeros(n, np.uint8)
        gt[lo:hi] = 1
        rows.append(pd.DataFrame({"video": video, "frame": np.arange(n), "gt": gt,
                                  "cr": 5 + gt * 3 + rng.normal(0, 1, n), "kr": 100 * (gt + rng.normal(0, 1, n))}))
    df = pd.concat(rows, ignore_index=True)
    return df, {v: g["gt"].to_numpy() for v, g in df.groupby("video")}


def test_minmax_per_video():
    x = np.array([1.0, 3.0, 10.0, 20.0, 7.0])
    v = np.array(["a", "a", "b", "b", "c"])
    np.testing.assert_allclose(minmax_per_video(x, v), [0, 1, 0, 1, 0])


def test_fuse_streams_is_the_sum_of_per_video_minmax():
    df, _ = _streams()
    out = fuse_streams(df[["video", "frame", "cr"]].sample(frac=1, random_state=1), df[["video", "frame", "kr"]])
    assert list(out.columns) == ["video", "frame", "cr", "kr", "crkr"]
    a = out[out["video"] == "a"]
    want = (a["cr"] - a["cr"].min()) / (a["cr"].max() - a["cr"].min()) + \
        (a["kr"] - a["kr"].min()) / (a["kr"].max() - a["kr"].min())
    np.testing.assert_allclose(a["crkr"], want)
    assert out.groupby("video")["crkr"].max().le(2).all()


def test_fuse_streams_refuses_different_frames():
    df, _ = _streams()
    with pytest.raises(MgenetError, match="same test frames"):
        fuse_streams(df[["video", "frame", "cr"]], df[["video", "frame", "kr"]].iloc[1:], "cr.parquet", "kr.parquet")


def test_paper_protocol_known_values():
    df, gts = _streams()
    res = paper_protocol(df, gts, {"cr": 3.0, "kr": 5.0})
    parts = {"cr": [], "kr": []}
    for v in ("a", "b", "c"):
        g = df[df["video"] == v]
        for s, sigma in (("cr", 3.0), ("kr", 5.0)):
            x = g[s].to_numpy()
            parts[s].append(gaussian_filter1d((x - x.min()) / (x.max() - x.min()), sigma, mode="constant"))
    gt = np.concatenate([gts[v] for v in ("a", "b", "c")])
    assert res["scores"]["cr"]["micro_auc"] == pytest.approx(roc_auc_score(gt, np.concatenate(parts["cr"])))
    fused = np.concatenate(parts["cr"]) + np.concatenate(parts["kr"])
    assert res["scores"]["crkr"]["micro_auc"] == pytest.approx(roc_auc_score(gt, fused))
    macro = np.mean([roc_auc_score(gts[v], p) for v, p in zip(("a", "c"), (parts["kr"][0], parts["kr"][2]))])
    assert res["scores"]["kr"]["macro_auc"] == pytest.approx(macro)
    assert res["scores"]["kr"]["n_macro_videos"] == 2  # b has no anomalous frame
    assert res["sigmas"] == {"cr": 3.0, "kr": 5.0}


def test_train_kr_refuses_test_snippets(tmp_path, capsys):
    paths = []
    for name, split in (("tr", "train"), ("te", "test")):
        p = tmp_path / f"{name}.h5"
        with h5py.File(p, "w") as f:
            f["features"] = np.zeros((3, 4), np.float32)
            f["start_frame"] = np.arange(0, 24, 8)
            f.attrs.update(snippet_len=8, frames=24, split=split, video=name, checkpoint_sha256="x", size=[8, 8])
        paths.append(str(p))
    assert main(["train-kr", "--snippets", *paths, "--out", str(tmp_path / "kr.pt")]) == 1
    assert "not snippets of training videos" in capsys.readouterr().err
    assert not (tmp_path / "kr.pt").exists()


def test_train_cr_refuses_a_test_video(tmp_path, capsys):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"video": ["v1", "v2"], "split": ["train", "test"], "scene": ["01", "01"], "frames": [10, 10],
                  "fps": [25.0, 25.0], "height": [32, 32], "width": [32, 32],
                  "video_path": ["videos/v1.mp4", "videos/v2.mp4"], "pose_path": ["", ""],
                  "gt_path": ["", "gt/v2.npy"]}).to_csv(manifest, index=False)
    assert main(["train-cr", "--manifest", str(manifest), "--videos", "videos/v1.mp4", "videos/v2.mp4",
              "--params", json.dumps({"train": {"epochs": 1}}), "--out", str(tmp_path / "cr.pt")]) == 1
    assert "not training videos" in capsys.readouterr().err
    assert not (tmp_path / "cr.pt").exists()
