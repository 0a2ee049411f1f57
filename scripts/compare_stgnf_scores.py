"""Compare mgenet's frame scores with the official STG-NF code's on the same UBnormal-layout test set.

    python scripts/compare_stgnf_scores.py OFFICIAL_SCORES.npy results/<dataset>/scores/frames.parquet

OFFICIAL_SCORES.npy: the array `score_dataset` returns in STG-NF's utils/scoring_utils.py (smoothed normality scores,
-NLL, every test frame, the clips concatenated in the order of their sorted `<video>_tracks.txt` names). Prints the
Pearson correlation of those with mgenet's smoothed S_nf negated (column `nf` of frames.parquet) in the same order,
and the AUC of each.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("official", help="frame scores of the official code (.npy)")
    ap.add_argument("frames", help="mgenet's results/<dataset>/scores/frames.parquet")
    args = ap.parse_args()
    official = np.load(args.official)
    df = pd.read_parquet(args.frames)
    order = sorted(df["video"].unique(), key=lambda v: f"{v}_tracks.txt")
    df = pd.concat([df[df["video"] == v].sort_values("frame") for v in order])
    ours = -df["nf"].to_numpy()
    if len(ours) != len(official):
        raise SystemExit(f"error: {len(official)} official frame scores but {len(ours)} frames in {args.frames}; "
                         f"were both run on the same test set?")
    gt = df["gt"].to_numpy()
    r = np.corrcoef(official, ours)[0, 1]
    print(f"frames {len(ours)}  pearson {r:.6f}  max |diff| {np.abs(official - ours).max():.3g}  "
          f"AUC official {roc_auc_score(1 - gt, official):.4f}  mgenet {roc_auc_score(1 - gt, ours):.4f}")


if __name__ == "__main__":
    main()
