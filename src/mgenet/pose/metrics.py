"""Keypoint accuracy against ground-truth joints: PCK (percentage of correct keypoints) per person and frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mgenet.io import PoseDict


@dataclass
class PckResult:
    pck: float          # correct joints / all ground-truth joints (a missed person counts all its joints wrong)
    pck_found: float    # correct joints / joints of the people that were matched
    recall: float       # matched person-frames / ground-truth person-frames
    precision: float    # matched poses / predicted poses (in frames with ground truth)
    per_joint: np.ndarray  # (17,) PCK of each joint
    person_frames: int


def torso_size(gt: np.ndarray) -> np.ndarray:
    """Torso diameter of (..., 17, 2) joints: the longer of the two shoulder-to-opposite-hip distances."""
    a = np.linalg.norm(gt[..., 5, :] - gt[..., 12, :], axis=-1)
    b = np.linalg.norm(gt[..., 6, :] - gt[..., 11, :], axis=-1)
    return np.fmax(a, b)


def pck(pred: PoseDict, gt_joints: np.ndarray, alpha: float = 0.2, min_score: float = 0.0) -> PckResult:
    """PCK@alpha of tracked poses against ground truth.

    In every frame, predicted poses are matched one-to-one to ground-truth people (Hungarian on the mean joint
    distance, accepted below 0.5 torso); a joint is correct when it lies within ``alpha`` × the person's torso
    diameter of the truth and its score is at least ``min_score``.

    Args:
        pred: {track: {frame: (17, 3)}}.
        gt_joints: (P, F, 17, 2), NaN where a person is absent.
    """
    n_people, n_frames = gt_joints.shape[:2]
    by_frame: dict[int, list[np.ndarray]] = {}
    for track in pred.values():
        for f, kp in track.items():
            by_frame.setdefault(f, []).append(np.asarray(kp, np.float64))
    correct = np.zeros(17)
    total = np.zeros(17)
    found_correct = found_total = 0.0
    matched = gt_frames = n_pred = 0
    for f in range(n_frames):
        g = gt_joints[:, f]  # (P, 17, 2)
        present = ~np.isnan(g).any(axis=(1, 2))
        if not present.any():
            continue
        g = g[present]
        size = torso_size(g)  # (G,)
        total += len(g)
        gt_frames += len(g)
        preds = by_frame.get(f, [])
        n_pred += len(preds)
        if not preds:
            continue
        p = np.stack(preds)  # (N, 17, 3)
        dist = np.linalg.norm(g[:, None] - p[None, :, :, :2], axis=-1)  # (G, N, 17)
        cost = dist.mean(-1) / np.maximum(size[:, None], 1e-6)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols):
            if cost[r, c] > 0.5:
                continue
            ok = (dist[r, c] <= alpha * size[r]) & (p[c, :, 2] >= min_score)
            correct += ok
            matched += 1
            found_correct += ok.sum()
            found_total += 17
    per_joint = correct / np.maximum(total, 1)
    return PckResult(pck=float(correct.sum() / max(total.sum(), 1)),
                     pck_found=float(found_correct / max(found_total, 1)),
                     recall=matched / max(gt_frames, 1), precision=matched / max(n_pred, 1),
                     per_joint=per_joint, person_frames=gt_frames)


@dataclass
class Agreement:
    pck: float             # joints within alpha x box height of the reference's / the reference's confident joints
    matched_tracks: float  # reference tracks with most of their frames matched / reference tracks
    recall: float          # matched person-frames / reference person-frames
    precision: float       # matched poses / poses (frames the reference covers)
    person_frames: int
    tracks: int


def agreement(pred: PoseDict, ref: PoseDict, alpha: float = 0.1, min_score: float = 0.5,
              min_track_frames: int = 12) -> Agreement:
    """How closely faster pose settings reproduce a reference run of the same video (no ground truth needed).

    Per frame, poses are matched one-to-one to the reference's (Hungarian on the mean distance of the reference's
    confident joints over its box height, accepted below 0.5); a confident reference joint (score >= ``min_score``)
    is correct when the matched pose's joint lies within ``alpha`` x the reference box height (PCK@alpha of the box
    height); an unmatched reference person counts all its joints wrong. A reference track of at least
    ``min_track_frames`` frames is matched when more than half its frames are.
    """
    by_frame: dict[int, list[np.ndarray]] = {}
    for track in pred.values():
        for f, kp in track.items():
            by_frame.setdefault(f, []).append(np.asarray(kp, np.float64))
    ref_frame: dict[int, list[tuple[int, np.ndarray]]] = {}
    for tid, track in ref.items():
        for f, kp in track.items():
            ref_frame.setdefault(f, []).append((tid, np.asarray(kp, np.float64)))
    correct = total = 0.0
    matched = n_ref = n_pred = 0
    hits: dict[int, int] = {}
    for f, people in ref_frame.items():
        preds = by_frame.get(f, [])
        g = np.stack([kp for _, kp in people])  # (G, 17, 3)
        conf = g[..., 2] >= min_score  # (G, 17)
        conf[~conf.any(1)] = True
        ys = np.where(conf, g[..., 1], np.nan)
        height = np.maximum(np.nanmax(ys, 1) - np.nanmin(ys, 1), 1.0)  # (G,)
        total += conf.sum()
        n_ref += len(g)
        n_pred += len(preds)
        if not preds:
            continue
        p = np.stack(preds)
        dist = np.linalg.norm(g[:, None, :, :2] - p[None, :, :, :2], axis=-1) / height[:, None, None]  # (G, N, 17)
        cost = np.where(conf[:, None], dist, 0).sum(-1) / conf.sum(-1)[:, None]
        for r, c in zip(*linear_sum_assignment(cost)):
            if cost[r, c] > 0.5:
                continue
            matched += 1
            correct += ((dist[r, c] <= alpha) & conf[r]).sum()
            hits[people[r][0]] = hits.get(people[r][0], 0) + 1
    long_tracks = [t for t, tr in ref.items() if len(tr) >= min_track_frames]
    ok_tracks = sum(hits.get(t, 0) > len(ref[t]) / 2 for t in long_tracks)
    return Agreement(pck=float(correct / max(total, 1)), matched_tracks=ok_tracks / max(len(long_tracks), 1),
                     recall=matched / max(n_ref, 1), precision=matched / max(n_pred, 1), person_frames=n_ref,
                     tracks=len(long_tracks))
