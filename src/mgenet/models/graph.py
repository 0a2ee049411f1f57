"""The 18-joint OpenPose skeleton as a graph, and its adjacency for ST-GCN style graph convolutions.

Joint order (what ``mgenet.io`` segments hold): 0 nose, 1 neck, 2 r-shoulder, 3 r-elbow, 4 r-wrist, 5 l-shoulder,
6 l-elbow, 7 l-wrist, 8 r-hip, 9 r-knee, 10 r-ankle, 11 l-hip, 12 l-knee, 13 l-ankle, 14 r-eye, 15 l-eye, 16 r-ear,
17 l-ear.

Adjacencies are stacks ``A`` of shape (K, V, V) with rows indexing the *receiving* joint: a graph conv computes
``out[w] = sum_k sum_v A[k, w, v] * x_k[v]``. Every row of ``A.sum(0)`` sums to one, so a joint averages over its
neighbourhood (the normalisation of ST-GCN, Yan et al. AAAI 2018, where the neighbourhood includes the joint itself).
"""

from __future__ import annotations

import numpy as np

N_JOINTS = 18
CENTER = 1  # the neck: ST-GCN's centre of gravity for the openpose layout

# Bones (undirected), OpenPose-18 order.
EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7),  # head-neck, arms
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),  # torso, legs
    (0, 14), (14, 16), (0, 15), (15, 17),  # eyes, ears
)

# Each joint's mirror image; joints on the midline (nose, neck) map to themselves.
FLIP_PERMUTATION: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

STRATEGIES = ("spatial", "uniform")


def hop_distance(n_joints: int = N_JOINTS, edges: tuple[tuple[int, int], ...] = EDGES) -> np.ndarray:
    """Shortest-path length (in bones) between every pair of joints; ``inf`` where unconnected."""
    dist = np.full((n_joints, n_joints), np.inf)
    np.fill_diagonal(dist, 0)
    for i, j in edges:
        dist[i, j] = dist[j, i] = 1
    for k in range(n_joints):  # Floyd-Warshall: 18 joints, so cubic is nothing
        dist = np.minimum(dist, dist[:, k:k + 1] + dist[k:k + 1, :])
    return dist


def adjacency(strategy: str = "spatial", max_hop: int = 1) -> np.ndarray:
    """Partitioned, row-normalised adjacency of the OpenPose-18 skeleton.

    Args:
        strategy: ``"spatial"`` — ST-GCN's spatial configuration partition into 3 subsets: the joint itself, its
            centripetal neighbours (closer to the neck) and its centrifugal neighbours (farther from it);
            ``"uniform"`` — one subset holding every joint within ``max_hop`` bones (STG-NF's default is uniform with
            ``max_hop=8``, which on this skeleton connects every pair of joints, i.e. a mean over the body).
        max_hop: neighbourhood radius in bones.

    Returns:
        float32 array (K, 18, 18); K = 3 for spatial, 1 for uniform.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown graph strategy {strategy!r}; expected one of {STRATEGIES}")
    if max_hop < 1:
        raise ValueError(f"max_hop must be >= 1, got {max_hop}")
    dist = hop_distance()
    near = dist <= max_hop  # (V, V) neighbourhood, self included
    norm = near / near.sum(axis=1, keepdims=True)  # mean over each joint's neighbourhood
    if strategy == "uniform":
        return norm[None].astype(np.float32)
    to_center = dist[:, CENTER]
    # A[k, w, v]: how joint v feeds joint w. Subsets are by v's distance to the centre relative to w's.
    self_part = norm * np.eye(N_JOINTS)
    centripetal = norm * (near & (to_center[None, :] < to_center[:, None]))
    centrifugal = norm * (near & (to_center[None, :] > to_center[:, None]))
    # Neighbours as far from the centre as the joint itself (none on a tree with max_hop=1) go with the joint, as in
    # ST-GCN's "root" subset.
    same = norm * (near & (to_center[None, :] == to_center[:, None]) & ~np.eye(N_JOINTS, dtype=bool))
    return np.stack([self_part + same, centripetal, centrifugal]).astype(np.float32)
