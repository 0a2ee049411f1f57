"""CR stream: decoder shapes, the maximum local error, sample assembly, training and scoring on a tiny video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mgenet.baselines.engine.cr import CRScoreConfig, CRTrainConfig, cr_checkpoint, load_cr, sample_arrays, score_cr_video, \
    train_cr
from mgenet.features.swin import load_backbone
from mgenet.baselines.models.crnet import CRNet, CRNetConfig, local_error, max_local


@pytest.fixture(scope="module")
def encoder():
    return load_backbone("random", 0)[0]


@pytest.mark.parametrize("size", [(32, 48), (40, 56), (36, 44)])  # the last two are not multiples of 8
def test_decoder_output_shape_equals_target_frame(encoder, size):
    model = CRNet(encoder, CRNetConfig(context=8, width=8)).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 8, *size))
    assert y.shape == (2, 3, *size)
    assert bool(((y >= 0) & (y <= 1)).all())


def test_encoder_stays_frozen_in_training(encoder):
    model = CRNet(encoder, CRNetConfig(width=8)).train()
    assert not model.encoder.training
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())


def test_max_local_error_on_a_hand_made_map():
    err = torch.zeros(1, 1, 16, 16)
    err[0, 0, 4:8, 8:12] = 1.0  # a 4x4 blob of error 1
    # 4x4 windows at stride 4: one window holds the whole blob -> mean 1
    assert max_local(err, 4, 4).item() == pytest.approx(1.0)
    # 8x8 windows at stride 8: the blob is 16 of 64 pixels of one window
    assert max_local(err, 8, 8).item() == pytest.approx(0.25)
    # a window larger than the frame is clipped to it: the frame's mean
    assert max_local(err, 64, 8).item() == pytest.approx(16 / 256)
    # MSE + lam * L1, channels averaged first: error 0.5 on every channel of the blob
    target = torch.zeros(1, 3, 16, 16)
    pred = target.clone()
    pred[..., 4:8, 8:12] = 0.5
    assert local_error(pred, target, 4, 4, lam_l1=2.0).item() == pytest.approx(0.25 + 2 * 0.5)


def test_sample_arrays_picks_context_then_target():
    index = np.array([0, 2, 4, 6, 8, 10])
    frames = index[:, None, None, None] * np.ones((6, 1, 1, 3), np.uint8)  # frame value = its index
    clips, targets = sample_arrays(frames, index, np.array([6, 10]), context=3, step=2)
    assert clips[:, :, 0, 0, 0].tolist() == [[0, 2, 4], [4, 6, 8]]
    assert targets[:, 0, 0, 0].tolist() == [6, 10]


def _video(path, n, moving_from=None):
    """A frame folder (lossless, unlike a tiny mp4): a block walking right, random noise from ``moving_from``."""
    path.mkdir()
    for i in range(n):
        img = np.full((32, 48, 3), 90, np.uint8)
        x = (i * 2) % 40
        img[10:20, x:x + 6] = 220  # a block walking right
        if moving_from is not None and i >= moving_from:
            img[:, :] = np.random.default_rng(i).integers(0, 255, (32, 48, 3), dtype=np.uint8)
        cv2.imwrite(str(path / f"{i:03d}.png"), img)
    return path


def test_train_and_score_a_tiny_video(encoder, tmp_path):
    train = [_video(tmp_path / f"t{i}", 30) for i in range(2)]
    test = _video(tmp_path / "x", 30, moving_from=22)
    cfg = CRTrainConfig(size=[32, 48], frame_step=1, epochs=3, iterations=8, batch_size=8, lr=1e-2, buffer_videos=1)
    mcfg = CRNetConfig(width=8)
    model, hist = train_cr(train, encoder, mcfg, cfg, seed=0, device="cpu")
    assert len(hist) == 3 and all(np.isfinite(h["loss"]) for h in hist)
    ckpt = cr_checkpoint(model, cfg, hist, {})
    torch.save(ckpt, tmp_path / "cr.pt")
    model2, cfg2 = load_cr(torch.load(tmp_path / "cr.pt", weights_only=True), encoder)
    assert cfg2 == cfg
    sc = CRScoreConfig(patch_size=8, patch_stride=4, batch_size=4)
    scores = score_cr_video(model2, test, cfg2, sc, device="cpu")
    assert scores.shape == (30,)
    assert np.all(scores[:8] == scores[8:].min())  # no context: the video's lowest score
    assert scores[22:].mean() > scores[8:22].mean()  # noise frames are not predictable
    one = score_cr_video(model2, test, cfg2, sc, device="cpu", per_frame=True)
    np.testing.assert_allclose(one, scores, rtol=1e-4, atol=1e-6)
    strided = score_cr_video(model2, test, cfg2, CRScoreConfig(patch_size=8, patch_stride=4, stride=3), device="cpu")
    np.testing.assert_allclose(strided[[8, 11, 14, 29]], scores[[8, 11, 14, 29]], rtol=1e-4, atol=1e-6)
