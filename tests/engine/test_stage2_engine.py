"""Stage-2 loops: the (features, flow) stream, level-wise training, resumption, checkpoints and scoring."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from mgenet import MgenetError
from mgenet.engine import stage2 as engine
from mgenet.engine.stage2 import SCORE_COLUMNS, Stage2Config, load_stage2, rewrite_matching, score_stage2, train_stage2
from mgenet.engine.stage2_data import ClipSource
from mgenet.models.mgenet import MGENet

T, t, h, w, C, CS = 8, 4, 4, 2, 80, 12
MIXING = np.random.default_rng(123).normal(size=(2 * 36, C)).astype(np.float32) / np.sqrt(72)
TINY = {"dim": 96, "depth": 1, "heads": 2, "c_app": 16, "n_behaviour": 8, "n_scene": 4, "n_matching": 6,
        "top_k": 2, "lsta_blocks": 1}


def write_pair(root: Path, video: str, n: int, seed: int, split: str = "train",
               f_sk: np.ndarray | None = None) -> tuple[Path, Path]:
    """A features file and its flow group whose tokens linearly encode f_sk: each token step holds its 2 frames'
    36 latent values, mixed by a fixed matrix into C channels, at every spatial position (plus noise)."""
    rng = np.random.default_rng(seed)
    if f_sk is None:
        f_sk = rng.normal(size=(n, 2, T, 18)).astype(np.float32)
    steps = f_sk.transpose(0, 2, 1, 3).reshape(n, t, 72)  # frames 2k, 2k+1 -> step k
    tokens = (steps @ MIXING)[:, :, None, None, :] + 0.05 * rng.normal(size=(n, t, h, w, C))
    person, start = np.arange(n) % 3, np.arange(n) * 2
    features, flow = root / "features" / f"{video}.h5", root / "flow" / f"{split}.h5"
    features.parent.mkdir(parents=True, exist_ok=True)
    flow.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(features, "w") as f:
        f["tokens"] = tokens.astype(np.float16)
        for k, v in (("person_id", person), ("start_frame", start), ("mid_frame", start + T // 2)):
            f[k] = v.astype(np.int32)
        f["scene"] = rng.normal(size=CS).astype(np.float32)
        f["scene_map"] = np.zeros((2, 2, CS), np.float32)
        f.attrs.update(video=video, split=split, scene=f"s{seed % 2}")
    with h5py.File(flow, "a") as g:
        grp = g.create_group(video)
        grp["latent"] = f_sk
        grp["nll"] = np.zeros(n, np.float32)
        for k, v in (("person_id", person), ("start_frame", start), ("mid_frame", start + T // 2)):
            grp[k] = v.astype(np.int32)
    return features, flow


def config(level1: int = 2, level2: int = 1, **train: object) -> Stage2Config:
    return Stage2Config.from_dict({"model": TINY, "train": {"level1_epochs": level1, "level2_epochs": level2,
                                                             "batch_size": 16, "lr": 2e-3, "device": "cpu",
                                                             "block_rows": 8, "buffer_blocks": 2, **train}})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_pairs(root: Path) -> list[tuple[Path, Path]]:
    return [write_pair(root, f"v{i}", n, i) for i, n in enumerate([30, 0, 21, 13])]


@pytest.fixture
def pairs(tmp_path: Path) -> list[tuple[Path, Path]]:
    return make_pairs(tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], list[tuple[Path, Path]]]:
    """One training run shared by the tests that only read its results: checkpoint, history, training pairs."""
    root = tmp_path_factory.mktemp("trained")
    pairs = make_pairs(root)
    out = root / "stage2.pt"
    history = train_stage2(pairs, config(level1=8, level2=2), out, log=lambda s: None)
    return out, history, pairs


# -------------------------------------------------------------------------------------------------------- stream


def test_source_yields_every_clip_once_in_a_seeded_order(pairs: list) -> None:
    source = ClipSource(pairs, block_rows=8, buffer_blocks=2)
    assert len(source) == 64 and source.shape == {"t": t, "h": h, "w": w, "in_dim": C, "seg_len": T, "c_mo": 36,
                                                  "scene_dim": CS}
    assert max(len(b["row"]) for b in source) <= 16  # a buffer holds at most block_rows * buffer_blocks clips

    def keys(key: tuple[int, ...] | None, bs: int = 10) -> list[tuple[int, int]]:
        out = []
        for batch in source.batches(bs, key):
            assert batch.tokens.dtype == torch.float16 and batch.tokens.shape[1:] == (t, h, w, C)
            assert batch.to(torch.device("cpu"))[0].dtype == torch.float32
            assert batch.f_sk.shape[1:] == (2, T, 18) and batch.scene.shape[1:] == (CS,)
            out += list(zip(batch.video.tolist(), batch.row.tolist()))
        return out

    ordered = keys(None)
    assert ordered == [(v, r) for v, n in enumerate([30, 0, 21, 13]) for r in range(n)]
    a, b = keys((0, 0, 0)), keys((0, 0, 1))
    assert sorted(a) == sorted(ordered) and a != ordered and a != b
    assert keys((0, 0, 0), bs=7) == a  # the order does not depend on the batch size
    batch = next(source.batches(64))
    with h5py.File(pairs[2][0]) as f:  # row 0 of video 2 is the 31st clip in file order
        np.testing.assert_allclose(batch.tokens[30].numpy(), f["tokens"][0].astype(np.float32))
        np.testing.assert_array_equal(batch.scene[30].numpy(), f["scene"][()])


def as_track_layout(features: Path) -> None:
    """Rewrite a window-layout features file in the track layout: clip i's rows stored at (n - 1 - i) * t, so that a
    reader that ignored clip_token_start would return the clips reversed."""
    with h5py.File(features, "r+") as f:
        tokens = f["tokens"][()]
        n = len(tokens)
        del f["tokens"]
        f["track_tokens"] = tokens[::-1].reshape(n * t, h, w, C)
        f["clip_token_start"] = ((n - 1 - np.arange(n)) * t).astype(np.int64)
        f.attrs.update(layout="track", clip_tokens=t)


def test_source_reads_track_layout_clips_as_the_window_layout(pairs: list, tmp_path: Path) -> None:
    window = [b.tokens for b in ClipSource(pairs, block_rows=8, buffer_blocks=2).batches(10, (0, 1, 2))]
    for features, _ in pairs:
        as_track_layout(features)
    source = ClipSource(pairs, block_rows=8, buffer_blocks=2)
    assert source.shape["t"] == t and len(source) == 64
    track = [b.tokens for b in source.batches(10, (0, 1, 2))]
    assert len(track) == len(window)
    for a, b in zip(window, track):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_worker_processes_keep_the_order(pairs: list) -> None:
    source = ClipSource(pairs, block_rows=8, buffer_blocks=2)
    rows = [b.row.tolist() for b in source.batches(10, (1, 2, 3))]
    assert [b.row.tolist() for b in source.batches(10, (1, 2, 3), num_workers=2)] == rows


def test_source_rejects_misaligned_pairs(tmp_path: Path) -> None:
    features, flow = write_pair(tmp_path, "a", 5, 0)
    with h5py.File(flow, "a") as g:
        g["a/start_frame"][2] = 99
    with pytest.raises(MgenetError, match="not aligned") as err:
        ClipSource([(features, flow)])
    assert str(features) in str(err.value) and str(flow) in str(err.value)
    other = tmp_path / "flow" / "test.h5"
    with h5py.File(other, "w"):
        pass
    with pytest.raises(MgenetError, match="no group for video 'a'"):
        ClipSource([(features, other)])


def test_source_rejects_clips_of_different_shapes(tmp_path: Path) -> None:
    a = write_pair(tmp_path, "a", 4, 0)
    b = write_pair(tmp_path, "b", 4, 1)
    with h5py.File(b[0], "a") as f:
        del f["scene"]
        f["scene"] = np.zeros(CS + 1, np.float32)
    with pytest.raises(MgenetError, match="differ from the other videos"):
        ClipSource([a, b])


# ------------------------------------------------------------------------------------------------------ training


def test_training_lowers_l_mo_and_writes_a_loadable_checkpoint(trained: tuple) -> None:
    out, history, _ = trained
    assert [r["phase"] for r in history] == ["level1"] * 8 + ["level2"] * 2 + ["matching"]
    l_mo = [r["l_mo"] for r in history if r["phase"] == "level1"]
    assert l_mo[-1] < 0.75 * l_mo[0]
    assert not Path(f"{out}.partial").exists()
    ck = torch.load(out, weights_only=True)
    assert ck["config"]["model"]["t"] == t and ck["config"]["model"]["in_dim"] == C  # resolved from the data
    assert ck["config"]["train"]["level1_epochs"] == 8
    model, _ = load_stage2(out)
    assert isinstance(model, MGENet) and not model.training


def test_rewriting_the_matching_memory_with_the_training_seed_reproduces_it(trained: tuple, tmp_path: Path) -> None:
    out, _, pairs = trained
    ck = torch.load(out, weights_only=True)
    again, other = tmp_path / "again.pt", tmp_path / "other.pt"
    rewrite_matching(out, pairs, again, seed=ck["config"]["train"]["seed"], device="cpu", log=lambda s: None)
    rewrite_matching(out, pairs, other, seed=7, device="cpu", log=lambda s: None)
    a, o = torch.load(again, weights_only=True), torch.load(other, weights_only=True)
    for name, value in ck["state_dict"].items():
        assert torch.equal(a["state_dict"][name], value), name
        if not name.startswith("matching_memory."):
            assert torch.equal(o["state_dict"][name], value), name  # only M^r (items and write counts) is new
    assert not torch.allclose(o["state_dict"]["matching_memory.items"], ck["state_dict"]["matching_memory.items"])
    assert o["provenance"]["matching_seed"] == 7 and o["provenance"]["stage"] == "rewrite_matching"
    assert o["provenance"]["trained"] == ck["provenance"] and o["config"] == ck["config"]
    assert [r["phase"] for r in o["history"]] == [r["phase"] for r in ck["history"]]
    # the rewritten model scores: S_mo and S_app as before, S_mm from the new memory
    test = [write_pair(tmp_path / "test", "t0", 12, 9, split="test")]
    base, new = score_stage2(out, test, device="cpu"), score_stage2(other, test, device="cpu")
    pd.testing.assert_series_equal(base["mo"], new["mo"])
    pd.testing.assert_series_equal(base["app"], new["app"])
    assert not np.allclose(base["mm"], new["mm"])


def test_training_counts_memory_writes_in_the_log_and_the_checkpoint(trained: tuple) -> None:
    out, history, pairs = trained
    ck = torch.load(out, weights_only=True)
    n_clips = sum(ClipSource(pairs).videos[i].n for i in range(len(pairs)))
    writes = {m: ck["state_dict"][f"{m}_memory.writes"] for m in ("behaviour", "scene", "matching")}
    # every query of every step is written into one item: clips x tokens per level-1 epoch, clips per M^r pass
    assert int(writes["behaviour"].sum()) == n_clips * t * h * w * 8 and int(writes["scene"].sum()) == n_clips * 8
    assert int(writes["matching"].sum()) == n_clips
    assert ck["items_written"] == {m: int((v > 0).sum()) for m, v in writes.items()}
    assert history[-1]["items_written"] == ck["items_written"] and history[0]["items_written"]["matching"] == 0


def test_kmeans_start_of_the_matching_memory_is_deterministic(trained: tuple, tmp_path: Path) -> None:
    _, _, pairs = trained
    lines: list[str] = []
    cfg = Stage2Config.from_dict({**config(level1=1, level2=0).to_dict(),
                                  "model": {**TINY, "matching_init": "kmeans"}})
    a, b, r = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "random.pt"
    train_stage2(pairs, cfg, a, log=lines.append)
    train_stage2(pairs, cfg, b, log=lambda s: None)
    train_stage2(pairs, config(level1=1, level2=0), r, log=lambda s: None)
    ka, kb, kr = (torch.load(p, weights_only=True) for p in (a, b, r))
    assert any("k-means++ centres of 64 training queries" in line for line in lines)
    assert any(line.startswith("memory items ever written: behaviour") for line in lines)
    assert torch.equal(ka["state_dict"]["matching_memory.items"], kb["state_dict"]["matching_memory.items"])
    assert ka["items_written"] == kb["items_written"]
    # the same model up to M^r: only the matching memory's start differs from the random one
    for name, value in kr["state_dict"].items():
        same = torch.equal(ka["state_dict"][name], value)
        assert same != name.startswith("matching_memory."), name
    # rewriting M^r with the training seed redoes the k-means start and the passes
    again = tmp_path / "again.pt"
    rewrite_matching(a, pairs, again, seed=0, device="cpu", log=lambda s: None)
    assert torch.equal(torch.load(again, weights_only=True)["state_dict"]["matching_memory.items"],
                       ka["state_dict"]["matching_memory.items"])
    # on these clips: from the k-means start every M^r item is some query's nearest (6 of 6); from random, 2 of 6
    assert ka["items_written"]["matching"] == 6 > kr["items_written"]["matching"]


def test_rewriting_the_matching_memory_needs_training_clips(trained: tuple, tmp_path: Path) -> None:
    out, _, pairs = trained
    with pytest.raises(MgenetError, match="no training clips"):
        rewrite_matching(out, [pairs[1]], tmp_path / "x.pt", seed=1, device="cpu")  # video v1 has no clip
    assert not (tmp_path / "x.pt").exists()


def test_scene_memory_reads_scene_features_centred_on_the_training_videos(pairs: list, tmp_path: Path) -> None:
    cfg = config(level1=1, level2=0, matching_epochs=0)
    cfg = Stage2Config.from_dict({"model": {**TINY, "centre_scene": True}, "train": asdict(cfg.train)})
    out = tmp_path / "s.pt"
    train_stage2(pairs, cfg, out, log=lambda s: None)
    model, ck = load_stage2(out)
    scenes = []
    for features, _ in pairs:
        with h5py.File(features) as f:
            if f["tokens"].shape[0]:  # a video without clips does not count
                scenes.append(f["scene"][:])
    np.testing.assert_allclose(model.scene_centre.numpy(), np.mean(scenes, axis=0), rtol=1e-6)
    e_s = torch.from_numpy(np.stack(scenes))
    torch.testing.assert_close(model.scene_query(e_s), e_s - model.scene_centre)
    # a checkpoint from before centring (no scene_centre) loads as uncentred
    old = dict(ck, state_dict={k: v for k, v in ck["state_dict"].items() if k != "scene_centre"})
    torch.save(old, tmp_path / "old.pt")
    assert not load_stage2(tmp_path / "old.pt")[0].scene_centre.any()


def test_centre_scene_off_leaves_scene_features_as_they_are(trained: tuple) -> None:
    model, ck = load_stage2(trained[0])  # the default: the paper's uncentred e_s
    assert ck["config"]["model"]["centre_scene"] is False and not model.scene_centre.any()


def test_level2_leaves_the_rgb_encoder_untouched(pairs: list, tmp_path: Path) -> None:
    out = tmp_path / "stage2.pt"
    train_stage2(pairs, config(level1=1, level2=2), out, log=lambda s: None, stop_after=1)
    after_level1 = torch.load(f"{out}.partial", weights_only=True)["state_dict"]
    train_stage2(pairs, config(level1=1, level2=2), out, log=lambda s: None)
    final = torch.load(out, weights_only=True)["state_dict"]
    for k, v in after_level1.items():
        if k.startswith(("rgb_encoder.", "motion_head.", "behaviour_memory.", "scene_memory.")):
            assert torch.equal(final[k], v), k
        elif k.startswith(("mask_encoder.", "mask_head.", "matching_memory.")):
            assert not torch.equal(final[k], v), k


def test_level2_backward_reaches_only_the_mask_branch() -> None:
    torch.manual_seed(0)
    model = MGENet(engine.resolve_model_config(config().model, {"t": t, "h": h, "w": w, "in_dim": C,
                                                                "seg_len": T, "c_mo": 36, "scene_dim": CS}, "x"))
    params = engine._set_phase(model, "level2")
    keep = engine.keep_indices(engine.random_masks(4, h, w, model.cfg.mask, np.random.default_rng(0)), t)
    model.level2_losses(torch.randn(4, t, h, w, C), keep)["loss"].backward()
    assert all(p.grad is None for p in model.rgb_encoder.parameters())
    assert all(p.grad is None for p in model.guide_head.parameters())  # a stop-gradient target by default
    assert all(p.grad is not None for p in params)


def test_engine_stops_if_a_gradient_leaks_into_the_rgb_encoder(pairs: list, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def leaky(self: MGENet, tokens: torch.Tensor, keep: torch.Tensor) -> dict[str, torch.Tensor]:
        f_m = self.encode_masked(tokens, keep)
        return {"loss": f_m.mean() + self.encode_rgb(tokens).mean(), "l_app": f_m.mean()}

    monkeypatch.setattr(MGENet, "level2_modules", lambda self: [self.mask_encoder, self.rgb_encoder])
    monkeypatch.setattr(MGENet, "level2_losses", leaky)
    with pytest.raises(RuntimeError, match="frozen RGB encoder"):
        train_stage2(pairs, config(level1=1, level2=1), tmp_path / "x.pt", log=lambda s: None)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], list[tuple[Path, Path]]]:
    root = tmp_path_factory.mktemp("uninterrupted")
    pairs = make_pairs(root)
    history = train_stage2(pairs, config(level1=2, level2=2), root / "full.pt", log=lambda s: None)
    return root / "full.pt", history, pairs


@pytest.mark.parametrize("stops", [[1], [2, 1], [3]])  # in level 1; at the level change; in level 2
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(uninterrupted: tuple, tmp_path: Path,
                                                                stops: list[int]) -> None:
    full, ref, pairs = uninterrupted
    cfg = config(level1=2, level2=2)
    out = tmp_path / "resumed.pt"
    for k in stops:  # each call is killed after k epochs
        train_stage2(pairs, cfg, out, log=lambda s: None, stop_after=k)
        assert Path(f"{out}.partial").exists() and not out.exists()
    lines: list[str] = []
    history = train_stage2(pairs, cfg, out, log=lines.append)
    assert lines[0].startswith("resuming from")
    a, b = torch.load(full, weights_only=True), torch.load(out, weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    drop = ("seconds", "clips_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in history] == \
           [{k: v for k, v in r.items() if k not in drop} for r in ref]


def test_partial_checkpoint_of_another_config_is_refused(pairs: list, tmp_path: Path) -> None:
    out = tmp_path / "s.pt"
    train_stage2(pairs, config(), out, log=lambda s: None, stop_after=1)
    with pytest.raises(MgenetError, match="another stage-2 config"):
        train_stage2(pairs, config(lr=1e-4), out, log=lambda s: None)


def test_config_mismatch_with_the_data_is_an_error(pairs: list, tmp_path: Path) -> None:
    cfg = config()
    cfg.model.h = 16
    with pytest.raises(MgenetError, match="h=4 but the stage-2 model config sets h=16"):
        train_stage2(pairs, cfg, tmp_path / "s.pt", log=lambda s: None)
    with pytest.raises(MgenetError, match="no training clips"):
        train_stage2([pairs[1]], config(), tmp_path / "s.pt", log=lambda s: None)


def test_stage2_config_from_dict() -> None:
    cfg = Stage2Config.from_dict({"model": {"lsta": False}, "train": {"optimizer": "sgd", "lr": 1e-4}})
    assert not cfg.model.lsta and cfg.train.optimizer == "sgd" and cfg.train.momentum == 0.5
    assert Stage2Config.from_dict(cfg.to_dict()) == cfg
    for bad in ({"modle": {}}, {"train": {"epochs": 3}}, {"train": {"optimizer": "adam"}}):
        with pytest.raises(ValueError):
            Stage2Config.from_dict(bad)


# ------------------------------------------------------------------------------------------------------- scoring


def test_scores_one_row_per_segment_independent_of_batch_size(trained: tuple, tmp_path: Path) -> None:
    trained = trained[0]
    test = [write_pair(tmp_path / "test", f"t{i}", n, 10 + i, split="test") for i, n in enumerate([9, 0, 14])]
    df = score_stage2(trained, test, batch_size=64, device="cpu")
    assert list(df.columns) == SCORE_COLUMNS and len(df) == 23
    assert df["video"].tolist() == ["t0"] * 9 + ["t2"] * 14
    with h5py.File(test[2][0]) as f:
        np.testing.assert_array_equal(df["start_frame"].to_numpy()[9:], f["start_frame"][()])
    assert np.isfinite(df[SCORE_COLUMNS[4:]].to_numpy()).all()
    assert (df["app"] >= 0).all() and (df["mm"] >= 0).all()
    small = score_stage2(trained, test[::-1], batch_size=5, device="cpu")
    merged = df.merge(small, on=["video", "person_id", "start_frame", "mid_frame"], suffixes=("", "_b"))
    assert len(merged) == 23
    for c in SCORE_COLUMNS[4:]:
        np.testing.assert_allclose(merged[c], merged[f"{c}_b"], rtol=1e-4, atol=1e-5)
    empty = score_stage2(trained, [test[1]], device="cpu")
    assert list(empty.columns) == SCORE_COLUMNS and len(empty) == 0


def test_s_mo_flags_motion_that_contradicts_appearance(trained: tuple, tmp_path: Path) -> None:
    trained = trained[0]
    normal = write_pair(tmp_path / "test", "normal", 20, 20, split="test")
    with h5py.File(normal[1]) as g:
        f_sk = g["normal/latent"][()]
    swapped = f_sk[::-1].copy()  # tokens of one clip, latent of another
    with h5py.File(normal[0]) as f, h5py.File(normal[1], "a") as g:
        g.create_group("odd")
        for k in ("person_id", "start_frame", "mid_frame", "nll"):
            g[f"odd/{k}"] = g[f"normal/{k}"][()]
        g["odd/latent"] = swapped
        odd = tmp_path / "test" / "features" / "odd.h5"
        with h5py.File(odd, "w") as o:
            for k in f:
                o[k] = f[k][()]
            o.attrs.update(dict(f.attrs), video="odd")
    df = score_stage2(trained, [normal, (odd, normal[1])], device="cpu")
    by = df.groupby("video")["mo"].mean()
    assert by["odd"] > 1.2 * by["normal"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_amp_training_and_scoring(pairs: list, tmp_path: Path) -> None:
    out = tmp_path / "gpu.pt"
    history = train_stage2(pairs, config(level1=3, level2=1, device="cuda"), out, log=lambda s: None)
    assert all(np.isfinite(r["loss"]) for r in history if "loss" in r)
    df = score_stage2(out, pairs, device="cuda")
    cpu = score_stage2(out, pairs, device="cpu")
    assert len(df) == 64 and np.isfinite(df[SCORE_COLUMNS[4:]].to_numpy()).all()
    np.testing.assert_allclose(df["mo"], cpu["mo"], rtol=0.05)
    assert asdict(load_stage2(out, "cuda")[0].cfg) == torch.load(out, weights_only=True)["config"]["model"]
    # M^r written again on the GPU (the write's scatter-add is not bit-exact there, so only its form is checked)
    again = tmp_path / "again.pt"
    rewrite_matching(out, pairs, again, seed=3, device="cuda", log=lambda s: None)
    items = torch.load(again, weights_only=True)["state_dict"]["matching_memory.items"]
    assert items.device.type == "cpu" and torch.allclose(items.norm(dim=1), torch.ones(len(items)), atol=1e-5)
    assert np.isfinite(score_stage2(again, pairs, device="cuda")["mm"]).all()


def test_score_table_columns_feed_the_fusion(trained: tuple) -> None:
    df = score_stage2(trained[0], trained[2][:1], device="cpu")
    assert isinstance(df, pd.DataFrame)
    assert df[["person_id", "start_frame", "mid_frame"]].dtypes.map(lambda d: d.kind == "i").all()
