"""Stage 1 loops: streaming data, training, checkpoints and the flow HDF5 layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mgenet import MgenetError
from mgenet.engine.flow import (FlowTrainConfig, SegmentStream, encode_flow, flip_pose, load_checkpoint,
                                resolve_device, save_checkpoint, seed_everything, train_flow)
from mgenet.io import FLOW_DIMS, write_segments
from mgenet.models.flow import STGNF, FlowConfig

T = 8
SMALL = dict(seg_len=T, temporal_kernel=3, n_flows=4)

# A standing person, OpenPose-18 order, image coordinates (y down).
TEMPLATE = np.array([[0, -0.9], [0, -0.7], [-0.2, -0.7], [-0.25, -0.4], [-0.25, -0.15], [0.2, -0.7],
                     [0.25, -0.4], [0.25, -0.15], [-0.1, 0], [-0.1, 0.4], [-0.1, 0.8], [0.1, 0], [0.1, 0.4],
                     [0.1, 0.8], [-0.03, -0.93], [0.03, -0.93], [-0.07, -0.9], [0.07, -0.9]], dtype=np.float32)
SWING = np.zeros(18, dtype=np.float32)  # signed swing of each joint in a walk: left and right limbs in antiphase
SWING[[3, 4, 12, 13]] = [0.5, 1.0, 0.5, 1.0]
SWING[[6, 7, 9, 10]] = [-0.5, -1.0, -0.5, -1.0]


def walkers(n: int, seed: int, amplitude: float = 0.1, noise: float = 0.01) -> np.ndarray:
    """Normalised walking segments (n, 2, T, 18), normalised as STG-NF does (mean removed, divided by y's std)."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    t = np.arange(T, dtype=np.float32)[None, :, None]
    pose = np.broadcast_to(TEMPLATE.T[None, :, None, :], (n, 2, T, 18)).copy()
    pose[:, 0] += amplitude * SWING[None, None, :] * np.sin(2 * np.pi * t / 8 + phase)
    pose += rng.normal(0, noise, pose.shape)
    pose -= pose.mean(axis=(2, 3), keepdims=True)
    pose /= pose[:, 1].std(axis=(1, 2))[:, None, None, None]
    return pose.astype(np.float32)


def write_video(path: Path, pose: np.ndarray, video: str, split: str = "train") -> Path:
    n = len(pose)
    arrays = {"pose": pose, "confidence": np.ones((n, T, 18)), "keypoints": np.zeros((n, T, 18, 2)),
              "boxes": np.zeros((n, T, 4)), "frames": np.arange(T)[None].repeat(n, 0),
              "person_id": np.arange(n) % 3, "start_frame": np.arange(n), "mid_frame": np.arange(n) + T // 2}
    write_segments(path, arrays, {"video": video, "split": split, "seg_len": T})
    return path


def tagged_files(tmp_path: Path, sizes: list[int]) -> tuple[list[Path], int]:
    """Files whose rows carry a unique id in the neck's y at t=0 (flip neither negates y nor moves the neck)."""
    paths, next_id = [], 0
    for i, n in enumerate(sizes):
        pose = np.zeros((n, 2, T, 18), dtype=np.float32)
        pose[:, 1, 0, 1] = np.arange(next_id, next_id + n)
        pose[:, 0, 0, 2] = 1.0  # r-shoulder x: shows where flipped rows went
        next_id += n
        paths.append(write_video(tmp_path / f"v{i}.h5", pose, f"v{i}"))
    return paths, next_id


# ----------------------------------------------------------------------------------------------- data stream


def test_flip_negates_x_only_as_stgnf() -> None:
    """STG-NF negates pixel x before normalising, which negates normalised x; joints keep their labels."""
    pose = np.zeros((1, 2, T, 18), dtype=np.float32)
    pose[0, 0] = np.arange(18)
    pose[0, 1] = 100 + np.arange(18)
    out = flip_pose(pose)
    np.testing.assert_array_equal(out[:, 0], -pose[:, 0])
    np.testing.assert_array_equal(out[:, 1], pose[:, 1])
    assert pose[0, 0, 0, 5] == 5  # input untouched


def test_flip_with_swap_negates_x_and_swaps_left_right() -> None:
    pose = np.zeros((1, 2, T, 18), dtype=np.float32)
    pose[0, 0] = np.arange(18)  # x = joint index
    pose[0, 1] = 100 + np.arange(18)
    out = flip_pose(pose, swap_joints=True)
    assert out[0, 0, 0, 2] == -5 and out[0, 0, 0, 5] == -2  # r-shoulder <- l-shoulder, x negated
    assert out[0, 1, 0, 10] == 113 and out[0, 1, 0, 17] == 116  # ankles and ears swapped; y kept
    assert out[0, 0, 0, 1] == -1 and out[0, 1, 0, 0] == 100  # midline joints stay
    np.testing.assert_array_equal(flip_pose(out, swap_joints=True), pose)
    assert pose[0, 0, 0, 5] == 5  # input untouched


@pytest.mark.parametrize("flip", [False, True])
def test_stream_yields_every_row_once_per_epoch(tmp_path: Path, flip: bool) -> None:
    paths, n = tagged_files(tmp_path, [5, 0, 37, 12, 1, 20])
    stream = SegmentStream(paths, flip=flip, seed=3, block_rows=8, buffer_blocks=3)
    assert len(stream) == n * (2 if flip else 1)
    buffers = list(stream)
    assert len(buffers) > 2 and max(len(b) for b in buffers) <= 3 * 8 * (2 if flip else 1)  # bounded memory
    batches = list(stream.batches(16))
    assert all(len(b) == 16 for b in batches[:-1]) and 0 < len(batches[-1]) <= 16
    rows = torch.cat(batches)
    ids = rows[:, 1, 0, 1].numpy()
    counts = np.bincount(ids.astype(int), minlength=n)
    np.testing.assert_array_equal(counts, np.full(n, 2 if flip else 1))
    if flip:  # one copy of each row as is, one mirrored (x negated, joints in place)
        as_is = rows[:, 0, 0, 2] == 1.0
        mirrored = rows[:, 0, 0, 2] == -1.0
        assert (as_is ^ mirrored).all() and as_is.sum() == n
    assert not np.array_equal(ids[:n], np.sort(ids[:n]))  # shuffled


@pytest.mark.parametrize("sizes", [[59], [56] * 17])
def test_stream_smaller_than_a_batch_gives_one_short_batch(tmp_path: Path, sizes: list[int]) -> None:
    # issue 26: one UBnormal training video (59 windows) and 17 videos of 56 windows, whose last shuffle buffer
    # (one file, 112 rows with the flip) is smaller than a batch of 256, once yielded an empty batch
    paths, n = tagged_files(tmp_path, sizes)
    stream = SegmentStream(paths, flip=True, seed=0)  # the training defaults: blocks of 256 rows, 16 per buffer
    batches = list(stream.batches(256))
    assert [len(b) for b in batches] == [256] * (2 * n // 256) + [2 * n % 256]
    ids = torch.cat(batches)[:, 1, 0, 1].numpy().astype(int)
    np.testing.assert_array_equal(np.bincount(ids, minlength=n), np.full(n, 2))


def test_training_on_fewer_windows_than_a_batch(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.h5", walkers(59, seed=0), "v")
    cfg = FlowTrainConfig(epochs=2, batch_size=256, seed=0, device="cpu")
    _, history = train_flow([path], FlowConfig(**SMALL), cfg, log=lambda s: None)
    assert len(history) == 2 and all(np.isfinite(h["nll"]) for h in history)


def test_stream_order_is_reproducible_by_seed_and_epoch(tmp_path: Path) -> None:
    paths, _ = tagged_files(tmp_path, [30, 17, 40])

    def order(seed: int, epoch: int, workers: int = 0) -> np.ndarray:
        stream = SegmentStream(paths, flip=True, seed=seed, block_rows=8, buffer_blocks=2)
        stream.set_epoch(epoch)
        return torch.cat(list(stream.batches(10, num_workers=workers)))[:, 1, 0, 1].numpy()

    np.testing.assert_array_equal(order(0, 0), order(0, 0))
    assert not np.array_equal(order(0, 0), order(1, 0))
    assert not np.array_equal(order(0, 0), order(0, 1))
    np.testing.assert_array_equal(order(0, 1, workers=2), order(0, 1))  # workers do not change the order


# ------------------------------------------------------------------------------------------------- training


def test_training_lowers_nll_and_separates_out_of_distribution(tmp_path: Path) -> None:
    paths = [write_video(tmp_path / f"train{i}.h5", walkers(48, seed=i), f"train{i}") for i in range(4)]
    paths.append(write_video(tmp_path / "empty.h5", np.zeros((0, 2, T, 18)), "empty"))  # skipped
    train_cfg = FlowTrainConfig(epochs=8, batch_size=32, lr=1e-2, seed=0, device="cpu")
    model, history = train_flow(paths, FlowConfig(**SMALL), train_cfg, log=lambda s: None)
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert history[-1]["nll"] < history[0]["nll"] - 0.2
    # STG-NF's schedule: lr * 0.99^e is set after epoch e, so the first two epochs run at the full rate
    assert [h["lr"] for h in history[:3]] == pytest.approx([1e-2, 1e-2, 1e-2 * 0.99])
    assert all(h["segments_per_s"] > 0 and h["seconds"] > 0 for h in history)
    normal = torch.from_numpy(walkers(200, seed=100))  # held out
    running = torch.from_numpy(walkers(200, seed=101, amplitude=0.6))  # the same body moving very differently
    noise = torch.from_numpy(walkers(200, seed=102, noise=0.3))  # jittering joints
    assert not model.training
    with torch.no_grad():
        nll_normal, nll_running, nll_noise = (model.nll(x)[1].mean().item() for x in (normal, running, noise))
    assert nll_normal < history[0]["nll"] - 0.2
    assert nll_running > nll_normal + 1.0
    assert nll_noise > nll_normal + 1.0


def test_training_is_deterministic_on_cpu(tmp_path: Path) -> None:
    paths = [write_video(tmp_path / f"v{i}.h5", walkers(40, seed=i), f"v{i}") for i in range(3)]
    cfg = FlowTrainConfig(epochs=2, batch_size=32, seed=7, device="cpu")
    (m1, h1), (m2, h2) = (train_flow(paths, FlowConfig(**SMALL), cfg, log=lambda s: None) for _ in range(2))
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(v1, v2), k
    assert [h["nll"] for h in h1] == [h["nll"] for h in h2]
    cfg.seed = 8
    m3, _ = train_flow(paths, FlowConfig(**SMALL), cfg, log=lambda s: None)
    assert not torch.equal(m3.steps[0].actnorm.bias, m1.steps[0].actnorm.bias)


def test_training_without_segments_is_a_clear_error(tmp_path: Path) -> None:
    paths = [write_video(tmp_path / f"e{i}.h5", np.zeros((0, 2, T, 18)), f"e{i}") for i in range(2)]
    with pytest.raises(MgenetError, match="no training segments"):
        train_flow(paths, FlowConfig(**SMALL), FlowTrainConfig(device="cpu"))
    with pytest.raises(MgenetError, match="no training segments"):
        train_flow([], FlowConfig(**SMALL), FlowTrainConfig(device="cpu"))


def test_bad_segment_files_are_clear_errors(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.h5", walkers(4, seed=0), "v")
    with pytest.raises(MgenetError, match="seg_len"):
        train_flow([path], FlowConfig(seg_len=24), FlowTrainConfig(device="cpu", epochs=1))
    longer = tmp_path / "w.h5"
    write_segments(longer, {"pose": np.zeros((2, 2, T + 2, 18)), "confidence": np.ones((2, T + 2, 18)),
                            "keypoints": np.zeros((2, T + 2, 18, 2)), "boxes": np.zeros((2, T + 2, 4)),
                            "frames": np.zeros((2, T + 2)), "person_id": np.zeros(2), "start_frame": np.zeros(2),
                            "mid_frame": np.zeros(2)}, {"video": "w"})
    with pytest.raises(MgenetError, match="same seg_len"):
        SegmentStream([path, longer], flip=True, seed=0)
    with pytest.raises(MgenetError, match="build_segments"):
        SegmentStream([path, tmp_path / "missing.h5"], flip=True, seed=0)


def test_lr_schedules() -> None:
    stgnf = FlowTrainConfig(lr=1.0, lr_decay=0.5)
    assert [stgnf.epoch_lr(e) for e in range(4)] == [1.0, 1.0, 0.5, 0.25]
    exp = FlowTrainConfig(lr=1.0, lr_decay=0.5, lr_schedule="exponential")
    assert [exp.epoch_lr(e) for e in range(4)] == [1.0, 0.5, 0.25, 0.125]
    with pytest.raises(ValueError, match="lr_schedule"):
        FlowTrainConfig(lr_schedule="cosine")


def test_stgnf_training_defaults() -> None:
    """STG-NF's training (args.py, optim_init.py): Adamax 5e-4 built without weight decay, 0.99 a epoch, 8 epochs of
    256, clip 100, flip without a joint swap."""
    cfg = FlowTrainConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.lr_decay, cfg.lr_schedule, cfg.weight_decay, cfg.grad_clip,
            cfg.flip_augment, cfg.flip_swap_joints) == (8, 256, 5e-4, 0.99, "stgnf", 0.0, 100.0, True, False)


def test_configs_and_devices() -> None:
    assert FlowTrainConfig.from_dict({"epochs": 2}).epochs == 2
    with pytest.raises(ValueError, match="epoch"):
        FlowTrainConfig.from_dict({"epoch": 2})
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(MgenetError, match="CUDA"):
            resolve_device("cuda")


def test_seed_everything_seeds_all_generators() -> None:
    import random
    seed_everything(5)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(5)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())


# ------------------------------------------------------------------------------------------ checkpoint, encode


def _trained(tmp_path: Path) -> tuple[STGNF, FlowConfig, FlowTrainConfig, list, list[Path]]:
    paths = [write_video(tmp_path / f"v{i}.h5", walkers(30, seed=i), f"vid_{i}") for i in range(2)]
    model_cfg, train_cfg = FlowConfig(**SMALL), FlowTrainConfig(epochs=1, batch_size=16, device="cpu")
    model, history = train_flow(paths, model_cfg, train_cfg, log=lambda s: None)
    return model, model_cfg, train_cfg, history, paths


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model, model_cfg, train_cfg, history, _ = _trained(tmp_path)
    ckpt_path = tmp_path / "models" / "flow.pt"
    save_checkpoint(ckpt_path, model, model_cfg, train_cfg, history, {"config_hash": "abc", "n_train": 60})
    assert [p.name for p in ckpt_path.parent.iterdir()] == ["flow.pt"]  # no temporary left behind
    loaded, ckpt = load_checkpoint(ckpt_path, "cpu")
    assert not loaded.training
    assert ckpt["model_config"] == {**vars(model_cfg)} and ckpt["train_config"]["epochs"] == 1
    assert ckpt["history"] == history and ckpt["config_hash"] == "abc"
    x = torch.from_numpy(walkers(10, seed=50))
    with torch.no_grad():
        z1, n1 = model.nll(x)
        z2, n2 = loaded.nll(x)
    assert torch.equal(z1, z2) and torch.equal(n1, n2)
    loaded.train()  # a loaded model must never re-run ActNorm's data-dependent init
    with torch.no_grad():
        loaded(x * 10)
    assert torch.equal(loaded.steps[0].actnorm.bias, model.steps[0].actnorm.bias)


def test_checkpoint_of_the_earlier_flow_asks_for_retraining(tmp_path: Path) -> None:
    model, model_cfg, train_cfg, history, _ = _trained(tmp_path)
    path = tmp_path / "flow.pt"
    save_checkpoint(path, model, model_cfg, train_cfg, history)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["model_config"]["coupling"], ckpt["model_config"]["prior_mean"]  # as mgenet <= 1a71ce5 wrote them
    torch.save(ckpt, path)
    with pytest.raises(MgenetError, match="earlier mgenet.*train_flow"):
        load_checkpoint(path)


def test_missing_checkpoint_names_the_rule(tmp_path: Path) -> None:
    with pytest.raises(MgenetError, match="train_flow"):
        load_checkpoint(tmp_path / "nope.pt")


def test_encode_flow_layout(tmp_path: Path) -> None:
    model, *_, paths = _trained(tmp_path)
    paths.append(write_video(tmp_path / "empty.h5", np.zeros((0, 2, T, 18)), "vid_empty", split="test"))
    out = tmp_path / "flow" / "test.h5"
    encode_flow(model, paths, out, batch_size=7, device="cpu", attrs={"checkpoint_sha256": "f00"})
    with h5py.File(out, "r") as f:
        assert set(f) == {"vid_0", "vid_1", "vid_empty"}
        assert f.attrs["checkpoint_sha256"] == "f00" and f.attrs["nll_units"] == "bits/dim"
        assert "mgenet_version" in f.attrs and f.attrs["seg_len"] == T
        for name, path in zip(["vid_0", "vid_1"], paths):
            g = f[name]
            assert g["latent"].shape == (30, 2, T, 18) and g["latent"].dtype == np.float32
            assert g["nll"].shape == (30,) and g["nll"].dtype == np.float32
            for key, dims in FLOW_DIMS.items():
                assert tuple(d.label for d in g[key].dims) == dims
            with h5py.File(path, "r") as src:
                for key in ("person_id", "start_frame", "mid_frame"):
                    assert g[key].dtype == np.int32
                    np.testing.assert_array_equal(g[key][()], src[key][()])
                with torch.no_grad():
                    z, nll = model.nll(torch.from_numpy(src["pose"][()]))
            np.testing.assert_allclose(g["latent"][()], z.numpy(), atol=1e-5)
            np.testing.assert_allclose(g["nll"][()], nll.numpy(), atol=1e-5)
        empty = f["vid_empty"]
        assert empty["latent"].shape == (0, 2, T, 18) and empty["nll"].shape == (0,)
        assert empty["mid_frame"].shape == (0,)
    assert sorted(p.name for p in out.parent.iterdir()) == ["test.h5"]


def test_encode_flow_rejects_duplicate_videos(tmp_path: Path) -> None:
    model, *_, paths = _trained(tmp_path)
    dup = write_video(tmp_path / "dup.h5", walkers(3, seed=9), "vid_0")
    out = tmp_path / "flow.h5"
    with pytest.raises(MgenetError, match="vid_0"):
        encode_flow(model, [*paths, dup], out)
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_train_and_encode_on_gpu(tmp_path: Path) -> None:
    paths = [write_video(tmp_path / f"v{i}.h5", walkers(64, seed=i), f"v{i}") for i in range(2)]
    model, history = train_flow(paths, FlowConfig(**SMALL), FlowTrainConfig(epochs=2, batch_size=32, device="cuda"),
                                log=lambda s: None)
    assert next(model.parameters()).is_cuda and history[-1]["nll"] < history[0]["nll"]
    encode_flow(model, paths, tmp_path / "flow.h5", device="cuda")
    cpu_model = STGNF(model.cfg)
    cpu_model.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    with h5py.File(tmp_path / "flow.h5", "r") as f, torch.no_grad():
        nll_cpu = cpu_model.eval().nll(torch.from_numpy(walkers(64, seed=0)))[1].numpy()
        np.testing.assert_allclose(f["v0/nll"][()], nll_cpu, rtol=1e-4, atol=1e-4)
