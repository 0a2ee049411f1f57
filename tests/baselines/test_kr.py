"""KR stream: HashNet codes, iL2SH tables, pair sampling and training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mgenet import MgenetError
from mgenet.baselines.engine.kr import HashTables, KRTrainConfig, code_keys, load_kr, kr_checkpoint, sample_pairs, \
    snippet_scores, train_hashnet
from mgenet.baselines.models.hashnet import HashNet, HashNetConfig, binarise, decorrelation_loss, similarity_loss


def test_codes_shape_range_and_binarised_values():
    torch.manual_seed(0)
    net = HashNet(HashNetConfig(in_dim=16, n_tables=8, code_bits=32)).eval()
    codes = net(torch.randn(5, 16))
    assert codes.shape == (5, 8, 32)
    assert bool(((codes > 0) & (codes < 1)).all())
    bits = binarise(codes)
    assert set(torch.unique(bits).tolist()) <= {0, 1}
    assert torch.equal(bits, torch.round(codes).to(torch.uint8))


def test_code_keys_read_bits_as_integers():
    codes = np.zeros((2, 1, 4), np.float32)
    codes[0, 0] = [0.9, 0.1, 0.8, 0.2]  # bits 1,0,1,0 -> 1 + 4
    codes[1, 0] = [0.1, 0.1, 0.1, 0.7]  # bit 3 -> 8
    assert code_keys(codes)[:, 0].tolist() == [5, 8]


def test_unseen_bucket_scores_sqrt_r_and_seen_bucket_its_mean_distance():
    r = 32
    train = np.full((2, 2, r), 0.2, np.float32)
    train[1] = 0.4  # same binary key (all zeros) in both tables: one bucket, mean 0.3
    tables = HashTables.build(train)
    assert [len(k) for k in tables.keys] == [1, 1]
    np.testing.assert_allclose(tables.means[0], 0.3)
    seen = np.full((1, 2, r), 0.1, np.float32)
    unseen = np.full((1, 2, r), 0.9, np.float32)
    np.testing.assert_allclose(tables.distances(seen), 0.2 * math.sqrt(r), rtol=1e-5)
    np.testing.assert_allclose(tables.distances(unseen), math.sqrt(r))
    assert tables.unseen_distance == math.sqrt(32)


def test_score_is_min_over_tables():
    r = 8
    train = np.full((1, 2, r), 0.2, np.float32)
    tables = HashTables.build(train)
    q = np.full((1, 2, r), 0.2, np.float32)
    q[0, 1] = 0.9  # table 1: unseen bucket; table 0: exact hit
    d = tables.distances(q)
    np.testing.assert_allclose(d[0], [0.0, math.sqrt(r)], atol=1e-6)
    net = HashNet(HashNetConfig(in_dim=4, n_tables=2, code_bits=r))
    scores = snippet_scores(net, HashTables.build(np.full((1, 2, r), 0.5, np.float32)), np.zeros((3, 4), np.float32))
    assert scores.shape == (3,)


def test_too_many_bits_is_a_clear_error():
    with pytest.raises(MgenetError, match="code_bits"):
        HashTables.build(np.zeros((1, 1, 64), np.float32))


def test_pairs_stay_in_their_video_and_range():
    rng = np.random.default_rng(0)
    lengths = [10, 0, 300]
    i0, i1 = sample_pairs(lengths, 500, 5, rng)
    assert len(i0) == 1000  # the empty video draws nothing
    video = lambda i: np.searchsorted(np.cumsum(lengths), i, side="right")  # noqa: E731
    assert np.array_equal(video(i0), video(i1))
    assert np.abs(i0 - i1).max() <= 5
    assert i0.max() < 310 and i1.min() >= 0


def test_losses_known_values():
    a = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # two orthogonal heads
    assert similarity_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert decorrelation_loss(a).item() == pytest.approx(0.0)
    same = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]])
    assert decorrelation_loss(same).item() == pytest.approx(1.0 / 2)  # cos 1, divided by r = 2


def test_training_lowers_the_loss_and_separates_unseen_features(tmp_path):
    rng = np.random.default_rng(0)
    normal = [rng.normal(0, 1, (40, 16)).astype(np.float32) + 3 * np.eye(16)[0] for _ in range(3)]
    cfg = KRTrainConfig(epochs=15, iterations=64, batch_size=32, lr=0.05)
    model, hist = train_hashnet(normal, HashNetConfig(in_dim=16, n_tables=4, code_bits=16), cfg, seed=0, device="cpu")
    assert hist[-1]["loss"] < hist[0]["loss"]
    tables = HashTables.build(np.concatenate([hash_all(model, f) for f in normal]))
    ckpt = kr_checkpoint(model, tables, cfg, hist, {})
    torch.save(ckpt, tmp_path / "kr.pt")
    model2, tables2 = load_kr(torch.load(tmp_path / "kr.pt", weights_only=True))
    train_scores = snippet_scores(model2, tables2, np.concatenate(normal))
    odd = rng.normal(0, 1, (40, 16)).astype(np.float32) - 3 * np.eye(16)[0]
    assert snippet_scores(model2, tables2, odd).mean() > train_scores.mean()


def hash_all(model, feats):
    from mgenet.baselines.engine.kr import hash_codes
    return hash_codes(model, feats)


def test_too_few_snippets_is_a_clear_error():
    with pytest.raises(MgenetError, match="at least two"):
        train_hashnet([np.zeros((1, 4), np.float32)], HashNetConfig(in_dim=4), KRTrainConfig(epochs=1), 0, "cpu")
