"""Stage-2 networks: shapes, masking invariants, memory addressing, S_mm and the separateness loss on known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mgenet.models.lsta import LKA3d, LSTABlock, LSTAConfig, LSTAHead
from mgenet.models.masking import (MaskConfig, block_mask, clip_mask_pairs, complementary_masks, keep_indices,
                                   random_masks)
from mgenet.models.memory import (MatchingConfig, MatchingMemory, Memory, MemoryConfig, address, kmeans_pp,
                                  mnad_update, separateness_loss)
from mgenet.models.mgenet import LEVEL1_VARIANTS, MGENet, MGENetConfig
from mgenet.models.vit import SpaceTimeViT, TemporalHead, ViTConfig

# The demo's grid: T=24 frames -> t=12 steps, a 32x16 crop -> 4x2 tokens.
B, T, t, h, w, C = 3, 24, 12, 4, 2, 24
SMALL = dict(t=t, h=h, w=w, in_dim=C, seg_len=T, c_mo=36, scene_dim=16, dim=32, depth=2, heads=4, c_app=16,
             n_behaviour=8, n_scene=4, n_matching=6, top_k=3)


@pytest.fixture
def model() -> MGENet:
    torch.manual_seed(0)
    return MGENet(MGENetConfig(**SMALL)).eval()


def keep_pair(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    m1, m2 = clip_mask_pairs(seed, ["v"] * n, range(n), h, w, MaskConfig())
    return keep_indices(m1, t), keep_indices(m2, t)


# ------------------------------------------------------------------------------------------------------- shapes


def test_vit_shapes_with_and_without_keep() -> None:
    vit = SpaceTimeViT(ViTConfig(t=t, h=h, w=w, in_dim=C, dim=32, depth=1, heads=2))
    x = torch.randn(B, t, h, w, C)
    assert vit(x).shape == (B, t * h * w, 32)
    keep, _ = keep_pair(B)
    assert keep.shape == (B, t * h * w // 2)
    assert vit(x, keep).shape == (B, t * h * w // 2, 32)


def test_temporal_head_gives_two_frames_per_step() -> None:
    head = TemporalHead(8, 5, t=4, seg_len=8)
    x = torch.randn(2, 4, 3, 8)
    y = head(x)
    assert y.shape == (2, 8, 5)
    x2 = x.clone()
    x2[:, 1] += 1.0  # step 1 covers frames 2 and 3 only
    changed = (head(x2) - y).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [False, False, True, True, False, False, False, False]


@pytest.mark.parametrize("blocks", [0, 2])
def test_lsta_head_shapes(blocks: int) -> None:
    head = LSTAHead(LSTAConfig(dim=32, t=t, h=h, w=w, seg_len=T, out_dim=36, blocks=blocks))
    assert len(head.blocks) == blocks
    assert head(torch.randn(B, t * h * w, 32)).shape == (B, T, 36)


def test_lka_kernels_follow_van_decomposition() -> None:
    lka = LKA3d(kernel=21, dilation=3)
    assert lka.local.kernel_size == (5, 5, 5)  # (2d - 1)^3
    assert lka.wide.kernel_size == (7, 7, 7) and lka.wide.dilation == (3, 3, 3)  # ceil(k / d)^3, dilation d
    assert lka.point.kernel_size == (1, 1, 1)
    assert lka(torch.randn(2, 1, t, h, w)).shape == (2, 1, t, h, w)


def test_lsta_block_reweights_by_one_plus_a_shared_sigmoid_map() -> None:
    block = LSTABlock(21, 3)
    e = torch.rand(2, 6, t, h, w) + 0.1
    ratio = block(e) / e  # 1 + sigmoid(map): in (1, 2), the same for every channel
    assert (ratio > 1).all() and (ratio < 2).all()
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))


def test_mgenet_shapes(model: MGENet) -> None:
    x, f_sk, scene = torch.randn(B, t, h, w, C), torch.randn(B, 2, T, 18), torch.randn(B, 16)
    e_b = model.encode_rgb(x)
    assert e_b.shape == (B, t * h * w, 32)
    assert model.predict_motion(e_b).shape == (B, T, 36)
    w_b, f_u = model.guidance(e_b)
    assert w_b.shape == (B, t * h * w, 8) and f_u.shape == (B, T, 16)
    keep1, keep2 = keep_pair(B)
    assert model.encode_masked(x, keep1).shape == (B, T, 16)
    assert model.motion_target(f_sk).shape == (B, T, 36)
    scores = model.scores(x, f_sk, scene, keep1, keep2)
    assert set(scores) == {"app", "mm"} | set(LEVEL1_VARIANTS)
    assert all(v.shape == (B,) and torch.isfinite(v).all() for v in scores.values())
    assert (scores["app"] >= 0).all() and (scores["app"] <= 2).all()
    l1 = model.level1_losses(x, f_sk, scene)
    assert l1["loss"].shape == () and l1["e_b"].shape == e_b.shape
    assert model.level2_losses(x, keep1)["loss"].shape == ()


def test_motion_target_is_per_frame_x_then_y() -> None:
    f_sk = torch.arange(2 * 3 * 18, dtype=torch.float32).view(1, 2, 3, 18)
    target = MGENet.motion_target(f_sk)
    assert target.shape == (1, 3, 36)
    torch.testing.assert_close(target[0, 1, :18], f_sk[0, 0, 1])
    torch.testing.assert_close(target[0, 1, 18:], f_sk[0, 1, 1])


def test_s_mo_is_the_norm_of_the_difference(model: MGENet) -> None:
    x, scene = torch.randn(B, t, h, w, C), torch.randn(B, 16)
    f_rgb = model.predict_motion(model.encode_rgb(x))  # (B, T, 36)
    f_sk = f_rgb.view(B, T, 2, 18).permute(0, 2, 1, 3).detach().clone()  # f_sk == f_rgb
    f_sk[0, 0, 0, 0] += 3.0
    s = model.scores(x, f_sk, scene, *keep_pair(B))
    torch.testing.assert_close(s["mo"], torch.tensor([3.0, 0.0, 0.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(s["mo_sim"][1:], torch.zeros(2), atol=1e-5, rtol=0)


def test_configs_reject_unknown_keys() -> None:
    for cls in (ViTConfig, LSTAConfig, MaskConfig, MemoryConfig, MatchingConfig, MGENetConfig):
        with pytest.raises(ValueError, match="unknown"):
            cls.from_dict({"dimm": 3})
    assert MGENetConfig.from_dict({"dim": 64}).dim == 64
    with pytest.raises(ValueError, match="must be set"):
        MGENet(MGENetConfig())  # data shapes still 0


# ------------------------------------------------------------------------------------------------------ masking


def test_mask_encoder_ignores_masked_tokens(model: MGENet) -> None:
    x = torch.randn(B, t, h, w, C)
    m1, _ = clip_mask_pairs(0, ["v"] * B, range(B), h, w, MaskConfig())
    keep = keep_indices(m1, t)
    f_m = model.encode_masked(x, keep)
    x2 = x.clone()
    masked = torch.from_numpy(m1)[:, None].expand(B, t, h, w)  # the spatial mask, every step
    x2[masked] = torch.randn(int(masked.sum()), C) * 100
    torch.testing.assert_close(model.encode_masked(x2, keep), f_m, atol=0, rtol=0)
    x3 = x.clone()
    x3[~masked] += 1.0  # a visible change must show, or the test above proves nothing
    assert not torch.allclose(model.encode_masked(x3, keep), f_m)


@pytest.mark.parametrize("grid", [(16, 8), (4, 2), (14, 14), (6, 6)])
def test_complementary_masks_cover_every_token_once(grid: tuple[int, int]) -> None:
    gh, gw = grid
    rng = np.random.default_rng(1)
    for _ in range(20):
        m1, m2 = complementary_masks(gh, gw, MaskConfig(), rng)
        assert (m1 ^ m2).all() and not (m1 & m2).any()
        assert m1.sum() == m2.sum() == gh * gw // 2  # ratio exactly 0.5 each
        k1, k2 = keep_indices(m1[None], 3), keep_indices(m2[None], 3)
        assert sorted(torch.cat([k1, k2], 1)[0].tolist()) == list(range(3 * gh * gw))
        assert (k1.view(3, -1) % (gh * gw) == k1.view(3, -1)[0] % (gh * gw)).all()  # same cells every step


def _perimeter(mask: np.ndarray) -> int:
    """Edges between a masked and a visible 4-neighbour: low for blocks, high for scattered cells."""
    return int((mask[1:] != mask[:-1]).sum() + (mask[:, 1:] != mask[:, :-1]).sum())


def test_masks_are_blocky() -> None:
    rng = np.random.default_rng(2)
    gh, gw, cfg = 16, 8, MaskConfig()
    block = [_perimeter(block_mask(gh, gw, cfg, rng)) for _ in range(200)]
    scattered = []
    for _ in range(200):
        m = np.zeros(gh * gw, bool)
        m[rng.choice(gh * gw, gh * gw // 2, replace=False)] = True
        scattered.append(_perimeter(m.reshape(gh, gw)))
    # The complement has the same perimeter, so this holds for both masks of a pair.
    assert np.mean(block) < 0.5 * np.mean(scattered)


def test_mask_pairs_are_seeded_per_clip_not_per_batch() -> None:
    a1, a2 = clip_mask_pairs(3, ["x", "y", "y"], [5, 0, 1], 16, 8, MaskConfig())
    b1, b2 = clip_mask_pairs(3, ["y"], [1], 16, 8, MaskConfig())
    np.testing.assert_array_equal(a1[2], b1[0])
    assert not np.array_equal(a1[1], a1[2])
    batch = random_masks(4, 16, 8, MaskConfig(), np.random.default_rng(0))
    assert batch.shape == (4, 16, 8) and (batch.sum((1, 2)) == 64).all()


def test_keep_indices_rejects_unequal_counts() -> None:
    m = np.zeros((2, 2, 2), bool)
    m[0, 0, 0] = True
    with pytest.raises(ValueError, match="equal counts"):
        keep_indices(m, 1)


# ----------------------------------------------------------------------------------------------------- memories


def test_addressing_weights_sum_to_one() -> None:
    mem = Memory(MemoryConfig(n_items=10, dim=7))
    w_b = mem.address(torch.randn(4, 5, 7))
    assert w_b.shape == (4, 5, 10) and (w_b > 0).all()
    torch.testing.assert_close(w_b.sum(-1), torch.ones(4, 5))
    read, w = mem.read(torch.randn(3, 7))
    assert read.shape == (3, 7)
    match = MatchingMemory(MatchingConfig(n_items=6, behaviour_len=5 * 10, scene_len=4, top_k=2))
    c_b, c_s = match.read(w_b, Memory(MemoryConfig(4, 3)).address(torch.randn(4, 3)))
    torch.testing.assert_close(c_b.sum(-1), torch.ones(4))
    torch.testing.assert_close(c_s.sum(-1), torch.ones(4))


def test_addressing_is_a_softmax_of_cosines() -> None:
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    w = address(torch.tensor([[2.0, 0.0]]), items)  # cosines 1, 0, -1
    expected = torch.tensor([math.e, 1.0, 1 / math.e])
    torch.testing.assert_close(w[0], expected / expected.sum())
    sharp = address(torch.tensor([[2.0, 0.0]]), items, temperature=0.5)
    assert sharp[0, 0] > w[0, 0]


def test_hand_made_matching_memory_gives_known_s_mm() -> None:
    # P = 1 token, N_b = 2 behaviour items, N_s = 2 scene items, N_r = 3 matching items, K = 2.
    match = MatchingMemory(MatchingConfig(n_items=3, behaviour_len=2, scene_len=2, top_k=2))
    match.items.copy_(torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 1], [1, 0, 0, 1]]) / math.sqrt(2))
    w_b = torch.tensor([[[1.0, 0.0]]])  # (B, P, N_b): cos with the behaviour parts = 1, 0, 1
    w_s = torch.tensor([[0.0, 1.0]])  # cos with the scene parts = 0, 1, 1
    # c^b = (e, 1, e) / (2e + 1), c^s = (1, e, e) / (2e + 1); top-2 by c^b: items 0 and 2;
    # S_mm = ||(e - 1, 0)|| / (2e + 1).
    expected = (math.e - 1) / (2 * math.e + 1)
    torch.testing.assert_close(match.score(w_b, w_s), torch.tensor([expected]))
    # A behaviour seen in its own scene (item 0 matches both parts) scores lower.
    assert match.score(w_b, torch.tensor([[1.0, 0.0]])) < match.score(w_b, w_s)


def test_one_sided_s_mm_counts_only_scenes_falling_short() -> None:
    # A toy memory that knows its pairs: walking in scenes 0 and 1 (items 0, 1), cycling in scene 0 only (item 2).
    # Behaviour space: 4 behaviour items (walk, cycle, two unused), P = 1 token; scene space: 2 scene items.
    match = MatchingMemory(MatchingConfig(n_items=3, behaviour_len=4, scene_len=2, top_k=2, temperature=0.1))
    # (item 1 walks a little differently, so that no two items tie in c^b)
    walk, walk1, cycle, novel = [1.0, 0, 0, 0], [1.0, 0, 0.2, 0], [0, 1.0, -0.1, 0], [0.1, 0, 0, 1.0]
    s0, s1 = [1.0, 0], [0, 1.0]
    match.items.copy_(torch.nn.functional.normalize(torch.tensor([walk + s0, walk1 + s1, cycle + s0]), dim=1))
    clips = {"walk in s0": (walk, s0), "walk in s1": (walk, s1), "cycling in the wrong scene": (cycle, s1),
             "unfamiliar behaviour, familiar scene": (novel, s1)}
    w_b = torch.tensor([b for b, _ in clips.values()])[:, None, :]  # (B, P=1, N_b)
    w_s = torch.tensor([s for _, s in clips.values()])
    two = dict(zip(clips, match.score(w_b, w_s).tolist()))
    one = dict(zip(clips, match.score(w_b, w_s, "one_sided").tolist()))
    assert match.score(w_b, w_s, "two_sided").tolist() == list(two.values())  # the default is Eq. 15
    # A behaviour in the wrong scene: its scene weight falls short on every item the behaviour picks, so both forms
    # agree and it is the most anomalous clip either way.
    assert one["cycling in the wrong scene"] == pytest.approx(two["cycling in the wrong scene"])
    assert one["cycling in the wrong scene"] > 0.99
    assert max(two, key=two.get) == max(one, key=one.get) == "cycling in the wrong scene"
    # An unfamiliar behaviour in a familiar scene: c^b is spread over items 0 and 1 (~0.4 each) while c^s sits on
    # item 1 (~1), which Eq. 15 counts as much as a shortfall: two-sided it outranks the walk in scene 0; one-sided
    # only item 0's shortfall counts and it ranks below both normal clips.
    novel_clip, normal = "unfamiliar behaviour, familiar scene", ("walk in s0", "walk in s1")
    assert two[novel_clip] > two["walk in s0"]
    assert one[novel_clip] < min(one[c] for c in normal)
    assert two[novel_clip] - one[novel_clip] > 0.25
    # The same excess lifts a normal walk in scene 1 (walking is known in two scenes, so c^b is split between them),
    # so one-sided the wrong-scene clip stands out from every other clip by twice the margin (0.45 vs 0.22).
    margin = {f: d["cycling in the wrong scene"] - max(v for c, v in d.items() if c != "cycling in the wrong scene")
              for f, d in (("one", one), ("two", two))}
    assert margin["one"] > 1.5 * margin["two"] > 0
    # Always one_sided <= two_sided; equal where no scene weight exceeds its behaviour weight.
    g = torch.Generator().manual_seed(0)
    rb, rs = torch.rand(20, 1, 4, generator=g), torch.rand(20, 2, generator=g)
    assert (match.score(rb, rs, "one_sided") <= match.score(rb, rs) + 1e-7).all()
    with pytest.raises(ValueError, match="one_sided"):
        match.score(w_b, w_s, "both")


def test_kmeans_pp_finds_well_separated_clusters_deterministically() -> None:
    g = torch.Generator().manual_seed(0)
    directions = torch.eye(8)[[0, 3, 5]]
    points = torch.cat([d + 0.05 * torch.randn(40, 8, generator=g) for d in directions])
    centres = kmeans_pp(points, 3, torch.Generator().manual_seed(1))
    assert centres.shape == (3, 8)
    torch.testing.assert_close(centres.norm(dim=1), torch.ones(3))
    # one centre per cluster, each close to its direction
    cos = centres @ directions.T
    assert sorted(cos.argmax(1).tolist()) == [0, 1, 2] and (cos.max(1).values > 0.98).all()
    assert torch.equal(centres, kmeans_pp(points, 3, torch.Generator().manual_seed(1)))
    # fewer distinct points than centres: the seeding still picks distinct points
    twins = torch.cat([directions[:2]] * 5)
    assert kmeans_pp(twins, 3, torch.Generator().manual_seed(0)).shape == (3, 8)
    with pytest.raises(ValueError, match="k-means"):
        kmeans_pp(points[:2], 3, torch.Generator())


def test_memories_count_the_queries_written_into_each_item() -> None:
    torch.manual_seed(0)
    mem = Memory(MemoryConfig(n_items=5, dim=4))
    queries = torch.randn(30, 4)
    nearest = (torch.nn.functional.normalize(queries, dim=1) @ mem.items.T).argmax(1)
    mem.update(queries)
    assert torch.equal(mem.writes, torch.bincount(nearest, minlength=5))
    assert mem.items_written() == len(nearest.unique())
    match = MatchingMemory(MatchingConfig(n_items=4, behaviour_len=6, scene_len=2))
    w_r = torch.rand(7, 8)
    match.update(w_r)
    match.update(w_r)
    assert int(match.writes.sum()) == 14 and 1 <= match.items_written() <= 4
    match.start_from(torch.eye(8)[:4])
    assert match.items_written() == 0 and torch.equal(match.items, torch.eye(8)[:4])


def test_balanced_matching_query_gives_both_parts_unit_length() -> None:
    w_b = torch.softmax(torch.randn(3, 6, 5) * 5, dim=-1)  # (B, P, N_b), nearly one-hot per token
    w_s = torch.softmax(torch.randn(3, 4), dim=-1)
    plain = MatchingMemory(MatchingConfig(n_items=4, behaviour_len=30, scene_len=4))
    q = plain.query(w_b, w_s)  # the paper's concatenation, unchanged
    torch.testing.assert_close(q, torch.cat([w_b.flatten(1), w_s], 1))
    assert (q[:, :30].norm(dim=1) > 2 * q[:, 30:].norm(dim=1)).all()
    balanced = MatchingMemory(MatchingConfig(n_items=4, behaviour_len=30, scene_len=4, balance=True))
    q = balanced.query(w_b, w_s)
    torch.testing.assert_close(q[:, :30].norm(dim=1), torch.ones(3))
    torch.testing.assert_close(q[:, 30:].norm(dim=1), torch.ones(3))
    # reads compare each part by cosine, so the same items give the same scores either way
    balanced.items.copy_(plain.items)
    torch.testing.assert_close(balanced.score(w_b, w_s), plain.score(w_b, w_s))


def test_separateness_loss_zero_when_margin_holds_positive_otherwise() -> None:
    items = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    near = torch.tensor([[1.0, 0.05, 0.0]])  # d1 ~ 0.05, d2 ~ 1.38: gap ~ 1.33 > 1
    assert separateness_loss(near, items, margin=1.0).item() == 0.0
    between = torch.tensor([[1.0, 1.0, 0.0]])  # equidistant from items 0 and 1: loss = the margin
    torch.testing.assert_close(separateness_loss(between, items, margin=1.0), torch.tensor(1.0))
    q = between.clone().requires_grad_(True)
    separateness_loss(q + torch.tensor([[0.1, 0, 0]]), items, 1.0).backward()
    assert q.grad is not None and torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0


def test_mnad_update_moves_chosen_items_towards_their_queries() -> None:
    items = torch.eye(3)
    q = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.2, 0.0]])  # both nearest to item 0
    new = mnad_update(items, q)
    torch.testing.assert_close(new.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(new[1:], items[1:])  # not chosen: unchanged
    assert new[0, 1] > 0 and new[0, 0] < 1  # turned towards the queries
    mem = Memory(MemoryConfig(3, 3))
    mem.items.copy_(items)
    mem.update(q)
    torch.testing.assert_close(mem.items, new)


def test_centred_scene_features_that_share_most_pixels_write_to_their_own_items() -> None:
    """Three scenes whose pooled features point almost the same way (cos > 0.98): written uncentred they all land on
    one scene item; centred on their mean they keep one item each (the engine sets ``scene_centre`` so)."""
    gen = torch.Generator().manual_seed(0)
    common = 10 * torch.randn(16, generator=gen)
    scenes = common + torch.randn(3, 16, generator=gen)
    cos = torch.nn.functional.cosine_similarity(scenes[:, None], scenes[None], dim=-1)
    assert cos.min() > 0.98
    items_used = {}
    for centred in (False, True):
        torch.manual_seed(0)
        m = MGENet(MGENetConfig(**{**SMALL, "n_scene": 8, "memory_temperature": 0.1}))
        if centred:
            m.scene_centre.copy_(scenes.mean(0))
        for _ in range(20):  # level 1 writes every batch's scenes
            m.scene_memory.update(m.scene_query(scenes))
        items_used[centred] = set(m.scene_address(scenes).argmax(1).tolist())
    assert len(items_used[False]) == 1
    assert len(items_used[True]) == 3
