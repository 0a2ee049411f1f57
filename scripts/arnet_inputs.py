"""AR-Net on three inputs, on the weak split's test videos: a diagnostic, not a choice (no setting is picked here).

    python scripts/arnet_inputs.py [--results results/demo] [--config config.yaml]

The pipeline's AR-Net reads whole-frame snippet vectors (snippets/len{L}/). With the demo's random backbone those
mix the whole scene into each vector; this script trains the same AR-Net (the config's arnet settings and seed,
``mgenet.baselines.engine.arnet``) on the same weak-split videos with, per snippet:

- ``whole frame``: the pipeline's snippet vectors;
- ``crops, mean``: the person-crop tokens of features/ (extract_features), each clip mean-pooled over (t, h, w),
  averaged over the clips whose middle frame lies in the snippet (zeros where no person is);
- ``crops, max``: the same clips, the channel-wise maximum over them.

and prints, for each, the weak test videos' micro AUC, per-type AUC and AUC on the anomalous videos, after the
project's smoothing (score.smoothing_sigmas); then two figures that say whether the input can carry the anomalies:
``fit``, the same AUC on the anomalous *training* videos (how well AR-Net fits what it was trained on), and
``snippet-labelled``, the weak test AUC of a logistic regression trained on the training videos' snippets with
snippet labels from the ground truth (what the input allows with full supervision, an upper reference for a video-
level learner). Needs every weak-split video's snippets and features files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from mgenet.baselines.engine.arnet import ARNetTrainConfig, Bags, score_videos, train_arnet
from mgenet.evaluation.metrics import anomalous_video_auc, compute_metrics
from mgenet.baselines.snippets import snippet_to_frames
from mgenet.io import read_snippets, snippet_starts
from mgenet.io import load_gt_mask, read_features, read_intervals, read_manifest, read_weak_split
from mgenet.scoring.frames import _frame_types, smooth
from sklearn.linear_model import LogisticRegression


def crop_snippets(path: Path, frames: int, snippet_len: int, how: str) -> np.ndarray:
    """(n_snippets, C): the clips' mean tokens pooled per snippet by ``how`` (mean / max) over the clips whose middle
    frame lies in it; zeros for a snippet without a person."""
    arrays, _ = read_features(path, ("tokens", "mid_frame"))
    clip = arrays["tokens"].astype(np.float32).mean(axis=(1, 2, 3))  # (N, C)
    snip = arrays["mid_frame"] // snippet_len
    out = np.zeros((len(snippet_starts(frames, snippet_len)), clip.shape[1]), np.float32)
    for s in np.unique(snip):
        part = clip[snip == s]
        out[s] = part.mean(0) if how == "mean" else part.max(0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/demo")
    ap.add_argument("--config", default="config.yaml")
    args = ap.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    root = Path(config["dataset"]["root"])
    arnet = config.get("arnet", {})
    L = int(arnet.get("snippet_len", 16))
    sigmas = config.get("score", {}).get("smoothing_sigmas", [1, 2, 3, 4, 5, 6])
    cfg = ARNetTrainConfig.from_dict({**{k: v for k, v in arnet.items() if k not in ("enabled", "snippet_len")},
                                      "seed": config.get("seed", 0), "device": "cpu"})
    res = Path(args.results)
    man = read_manifest(res / "manifest.csv").set_index("video")
    weak = read_weak_split(root / (config["dataset"].get("weak_split") or "weak_split.csv"))  # the demo's default
    train = weak[weak["split"] == "train"]
    test = sorted(weak.loc[weak["split"] == "test", "video"])
    intervals = read_intervals(root / config["dataset"].get("intervals", "anomalies.csv"))
    gt = {v: load_gt_mask(man.loc[v, "gt_path"] or None, int(man.loc[v, "frames"])) for v in weak["video"]}
    fit_videos = list(train.loc[train["label"] == 1, "video"])
    print(f"weak split: {len(train)} training videos ({int(train['label'].sum())} anomalous), {len(test)} test "
          f"videos; AR-Net {cfg}")
    torch.set_num_threads(2)
    for name in ("whole frame", "crops, mean", "crops, max"):
        def vectors(v: str) -> np.ndarray:
            if name == "whole frame":
                return read_snippets(res / "snippets" / f"len{L}" / f"{v}.h5").features
            return crop_snippets(res / "features" / f"{v}.h5", int(man.loc[v, "frames"]), L, name.split(", ")[1])

        bags = Bags([vectors(v) for v in train["video"]], train["label"].to_numpy(), list(train["video"]))
        model, rec = train_arnet(bags, cfg)
        test_vectors = [vectors(v) for v in test]
        scores = score_videos(model, test_vectors, rec["mean"], rec["std"], torch.device("cpu"))
        fit = _frames(fit_videos, score_videos(model, [vectors(v) for v in fit_videos], rec["mean"], rec["std"],
                                               torch.device("cpu")), man, gt, intervals, L, sigmas)
        x = np.concatenate([(f - rec["mean"]) / rec["std"] for f in bags.features])
        y = np.concatenate([_snippet_labels(gt[v], L) for v in train["video"]])
        clf = LogisticRegression(max_iter=2000).fit(x, y)
        oracle = _frames(test, [clf.predict_proba((f - rec["mean"]) / rec["std"])[:, 1] for f in test_vectors], man,
                         gt, intervals, L, sigmas)
        parts = []
        for v, sc in zip(test, scores):
            n = int(man.loc[v, "frames"])
            types, subtypes = _frame_types(v, gt[v], intervals[intervals["video"].astype(str) == v])
            per_frame = snippet_to_frames(sc, snippet_starts(n, L), L, n)
            parts.append(pd.DataFrame({"video": v, "frame": np.arange(n), "gt": gt[v], "type": types,
                                       "subtype": subtypes, "arnet": smooth(per_frame, sigmas)}))
        frames = pd.concat(parts, ignore_index=True)
        m = compute_metrics(frames, "weak test")["scores"]["arnet"]
        types = "  ".join(f"{t} {a:.3f}" for t, a in m["by_type"].items())
        o = compute_metrics(oracle, "weak test")["scores"]["arnet"]
        print(f"{name:<12} micro AUC {m['micro_auc']:.3f}  macro {m['macro_auc']:.3f}  {types}  "
              f"anomalous videos {anomalous_video_auc(frames, 'arnet'):.3f}  final loss {rec['history'][-1]['loss']:.3f}"
              f"  | fit (anomalous training videos) {anomalous_video_auc(fit, 'arnet'):.3f}"
              f"  | snippet-labelled micro {o['micro_auc']:.3f} motion {o['by_type'].get('motion', float('nan')):.3f}")


def _snippet_labels(gt: np.ndarray, L: int) -> np.ndarray:
    """1 for a snippet holding an anomalous frame."""
    return np.array([int(gt[s:s + L].any()) for s in snippet_starts(len(gt), L)])


def _frames(videos: list, scores: list, man: pd.DataFrame, gt: dict, intervals: pd.DataFrame, L: int,
            sigmas: list) -> pd.DataFrame:
    parts = []
    for v, sc in zip(videos, scores):
        n = int(man.loc[v, "frames"])
        types, subtypes = _frame_types(v, gt[v], intervals[intervals["video"].astype(str) == v])
        per_frame = snippet_to_frames(sc, snippet_starts(n, L), L, n)
        parts.append(pd.DataFrame({"video": v, "frame": np.arange(n), "gt": gt[v], "type": types,
                                   "subtype": subtypes, "arnet": smooth(per_frame, sigmas)}))
    return pd.concat(parts, ignore_index=True)


if __name__ == "__main__":
    main()
