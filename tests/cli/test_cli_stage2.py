"""Stage 2 through the command line: train-stage2 (and its resumption), score with stage 2, the ablation table."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from mgenet.cli import main
from mgenet.scoring.components import segment_table

T, t, h, w, C, CS = 8, 4, 4, 2, 16, 6
MODEL = {"dim": 32, "depth": 1, "heads": 2, "c_app": 8, "n_behaviour": 8, "n_scene": 4, "n_matching": 6, "top_k": 2,
         "lsta_blocks": 1, "lka_kernel": 5, "lka_dilation": 2}
TRAIN = {"level1_epochs": 2, "level2_epochs": 1, "matching_epochs": 1, "batch_size": 16, "lr": 2e-3,
         "block_rows": 8, "buffer_blocks": 2}
# What `params_json("stage2", "seed", "device")` gives the rule: `enabled` and `score_batch_size` ride along.
PARAMS = {"enabled": True, "score_batch_size": 32, "model": MODEL, "train": TRAIN, "seed": 0, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_split(root: Path, split: str, sizes: dict[str, int], seed: int) -> list[Path]:
    """Features files of some videos and their split's flow file (one group per video, rows aligned), as
    extract_features and encode_flow write them; the tokens carry the latent linearly so that S_mo can learn."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(7).normal(size=(72, C)).astype(np.float32) / 8
    flow = root / "flow" / f"{split}.h5"
    flow.parent.mkdir(parents=True, exist_ok=True)
    (root / "features").mkdir(exist_ok=True)
    paths = []
    with h5py.File(flow, "w") as g:
        for i, (video, n) in enumerate(sizes.items()):
            f_sk = rng.normal(size=(n, 2, T, 18)).astype(np.float32)
            tokens = (f_sk.transpose(0, 2, 1, 3).reshape(n, t, 72) @ mix)[:, :, None, None, :]
            tokens = tokens + 0.05 * rng.normal(size=(n, t, h, w, C))
            person, start = np.arange(n) % 2, np.arange(n) // 2 * 3
            keys = {"person_id": person, "start_frame": start, "mid_frame": start + T // 2}
            path = root / "features" / f"{video}.h5"
            with h5py.File(path, "w") as f:
                f["tokens"] = tokens.astype(np.float16)
                for k, v in keys.items():
                    f[k] = v.astype(np.int32)
                f["scene"] = rng.normal(size=CS).astype(np.float32)
                f["scene_map"] = np.zeros((2, 2, CS), np.float32)
                f.attrs.update(video=video, split=split, scene=f"{i % 2:02d}")
            grp = g.create_group(video)
            grp["latent"] = f_sk
            grp["nll"] = rng.normal(size=n).astype(np.float32)
            for k, v in keys.items():
                grp[k] = v.astype(np.int32)
            paths.append(path)
    return paths


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("s2")
    train = write_split(root, "train", {"01_001": 24, "01_002": 0, "02_001": 17}, seed=1)
    test = write_split(root, "test", {"01_0001": 11, "02_0001": 9, "02_0002": 0}, seed=2)
    return {"root": root, "train": train, "test": test, "train_flow": root / "flow" / "train.h5",
            "test_flow": root / "flow" / "test.h5"}


def train_args(data: dict, out: Path, *extra: str, params: dict = PARAMS) -> list[str]:
    return ["--threads", "1", "train-stage2", "--features", *map(str, data["train"]), "--flow",
            str(data["train_flow"]), "--params", json.dumps(params), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def trained(data: dict) -> Path:
    out = data["root"] / "models" / "stage2.pt"
    assert main(train_args(data, out)) == 0
    return out


def test_train_stage2_writes_a_checkpoint_with_its_config(trained: Path) -> None:
    ck = torch.load(trained, weights_only=True)
    assert ck["config"]["model"]["dim"] == 32 and ck["config"]["model"]["in_dim"] == C  # shapes from the files
    assert ck["config"]["train"]["device"] == "cpu" and ck["config"]["train"]["level1_epochs"] == 2
    assert [r["phase"] for r in ck["history"]] == ["level1", "level1", "level2", "matching"]
    assert ck["provenance"]["n_videos"] == 3 and ck["provenance"]["n_clips"] == 41
    assert not Path(f"{trained}.partial").exists()


def test_score_joins_stage2_with_the_flow_nll(data: dict, trained: Path) -> None:
    out = data["root"] / "scores" / "segments.parquet"
    rc = main(["score", "--flow", str(data["test_flow"]), "--stage2", str(trained), "--features",
               *map(str, data["test"]), "--params", json.dumps({"batch_size": 4, "device": "cpu"}), "--out", str(out)])
    assert rc == 0
    df = pd.read_parquet(out)
    nf = segment_table(data["test_flow"])
    assert list(df.columns) == [*nf.columns, "mo", "app", "mm", "mo_fsk", "mo_frgb", "mo_sum", "mo_sim"]
    assert len(df) == 20
    # the flow file's rows in its order, each with its own NLL: the join matched (video, person, start) row by row
    pd.testing.assert_frame_equal(df[nf.columns], nf, check_dtype=False)
    scores = df[["mo", "app", "mm", "mo_fsk", "mo_frgb", "mo_sum", "mo_sim"]].to_numpy()
    assert np.isfinite(scores).all() and (df["mo"] > 0).all() and df["app"].std() > 0
    # S_mo is ||f_sk - f_rgb||: with the flow latents read back, mo_fsk is ||f_sk|| exactly
    with h5py.File(data["test_flow"]) as g:
        norms = np.concatenate([np.linalg.norm(g[v]["latent"][()].reshape(len(g[v]["nll"]), 2 * T * 18), axis=1)
                                for v in sorted(g)])
    np.testing.assert_allclose(df["mo_fsk"], norms, rtol=1e-5)
    # a batch size of 4 or 256 gives the same scores (masks are seeded per clip)
    out2 = data["root"] / "scores" / "segments2.parquet"
    assert main(["score", "--flow", str(data["test_flow"]), "--stage2", str(trained), "--features",
                 *map(str, data["test"]), "--params", json.dumps({"device": "cpu"}), "--out", str(out2)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out2), df, rtol=1e-5)


def test_rewritten_matching_memory_changes_only_s_mm(data: dict, trained: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    rewritten = tmp_path / "stage2_mr5.pt"
    assert main(["--threads", "1", "rewrite-matching", "--model", str(trained), "--features", *map(str, data["train"]),
                 "--flow", str(data["train_flow"]), "--seed", "5", "--params", json.dumps({"device": "cpu"}),
                 "--out", str(rewritten)]) == 0
    test = ["--flow", str(data["test_flow"]), "--features", *map(str, data["test"]), "--params",
            json.dumps({"device": "cpu"})]
    base, full, only = (tmp_path / f"{n}.parquet" for n in ("base", "full", "only"))
    assert main(["score", "--stage2", str(trained), *test, "--out", str(base)]) == 0
    assert main(["score", "--stage2", str(rewritten), *test, "--out", str(full)]) == 0
    assert main(["score", "--stage2", str(rewritten), *test, "--base", str(base), "--out", str(only)]) == 0
    b, f, o = (pd.read_parquet(p) for p in (base, full, only))
    # --base keeps the base table's other scores and computes S_mm alone: the same table as a full rescoring
    pd.testing.assert_frame_equal(o, f)
    pd.testing.assert_frame_equal(o.drop(columns="mm"), b.drop(columns="mm"))
    assert not np.allclose(o["mm"], b["mm"])
    rc = main(["score", "--flow", str(data["test_flow"]), "--base", str(base), "--out", str(tmp_path / "x.parquet")])
    assert rc == 1 and "--base goes with --stage2" in capsys.readouterr().err
    pd.read_parquet(base).drop(columns="mm").to_parquet(tmp_path / "nomm.parquet")
    rc = main(["score", "--stage2", str(rewritten), *test, "--base", str(tmp_path / "nomm.parquet"),
               "--out", str(tmp_path / "x.parquet")])
    assert rc == 1 and "no S_mm column" in capsys.readouterr().err and not (tmp_path / "x.parquet").exists()


def test_one_sided_s_mm_is_a_scoring_setting(data: dict, trained: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    """stage2.mm_form reaches the scorer through score's params: the same model, only S_mm changes."""
    def score(out: Path, *extra: str, **params: object) -> pd.DataFrame:
        assert main(["score", "--flow", str(data["test_flow"]), "--stage2", str(trained), "--features",
                     *map(str, data["test"]), "--params", json.dumps({"device": "cpu", **params}), *extra,
                     "--out", str(out)]) == 0
        return pd.read_parquet(out)

    two = score(tmp_path / "two.parquet")
    one = score(tmp_path / "one.parquet", mm_form="one_sided")
    pd.testing.assert_frame_equal(one.drop(columns="mm"), two.drop(columns="mm"))
    assert (one["mm"] <= two["mm"] + 1e-6).all() and (one["mm"] < two["mm"] - 1e-6).any()
    only = score(tmp_path / "only.parquet", "--base", str(tmp_path / "two.parquet"), mm_form="one_sided")
    pd.testing.assert_frame_equal(only, one)  # the S_mm-only path reads the setting too
    rc = main(["score", "--flow", str(data["test_flow"]), "--stage2", str(trained), "--features",
               *map(str, data["test"]), "--params", json.dumps({"device": "cpu", "mm_form": "both"}),
               "--out", str(tmp_path / "x.parquet")])
    assert rc == 1 and "stage2.mm_form 'both'" in capsys.readouterr().err and not (tmp_path / "x.parquet").exists()


def test_score_without_stage2_is_nf_only(data: dict) -> None:
    out = data["root"] / "scores" / "nf.parquet"
    assert main(["score", "--flow", str(data["test_flow"]), "--out", str(out)]) == 0
    assert [c for c in pd.read_parquet(out).columns if c in ("nf", "mo", "app", "mm")] == ["nf"]


def test_score_with_a_test_video_left_out_names_it(data: dict, trained: Path, capsys: pytest.CaptureFixture) -> None:
    out = data["root"] / "scores" / "bad.parquet"
    rc = main(["score", "--flow", str(data["test_flow"]), "--stage2", str(trained), "--features",
               *map(str, data["test"][1:]), "--params", "{}", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: ") and "01_0001" in err and "missing from the stage-2 scores" in err
    assert not out.exists()
    rc = main(["score", "--flow", str(data["test_flow"]), "--stage2", str(trained), "--out", str(out)])
    assert rc == 1 and "--features" in capsys.readouterr().err


def test_bad_stage2_setting_is_one_error(data: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = {**PARAMS, "model": {**MODEL, "dimm": 8}}
    rc = main(train_args(data, tmp_path / "x.pt", params=bad))
    err = capsys.readouterr().err
    assert rc == 1 and "dimm" in err and not (tmp_path / "x.pt").exists()
    rc = main(train_args(data, tmp_path / "x.pt", params={**PARAMS, "epochs": 3}))
    assert rc == 1 and "epochs" in capsys.readouterr().err


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_interrupted_training_resumes_to_the_uninterrupted_weights(data: dict, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "stage2.pt"
    # stopped after the first epoch, as a kill between epochs would leave it
    assert main(train_args(data, out, "--stop-after", "1")) == 0
    assert not out.exists() and Path(f"{out}.partial").exists()
    partial = torch.load(f"{out}.partial", weights_only=True)
    assert (partial["phase"], partial["epoch"]) == (0, 1)
    # a second stop, inside the next phase
    assert main(train_args(data, out, "--stop-after", "2")) == 0
    assert torch.load(f"{out}.partial", weights_only=True)["phase"] == 1 and not out.exists()
    assert main(train_args(data, out)) == 0  # the plain rerun finishes the job
    assert out.exists() and not Path(f"{out}.partial").exists()
    a, b = _state(out), _state(trained)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["phase"] for r in torch.load(out, weights_only=True)["history"]] == [
        "level1", "level1", "level2", "matching"]


def test_killed_process_resumes(data: dict, trained: Path, tmp_path: Path) -> None:
    """A real SIGKILL of the command mid-run (after its first epoch is saved), then the same command again."""
    out = tmp_path / "stage2.pt"
    cmd = [sys.executable, "-m", "mgenet.cli", *train_args(data, out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = Path(f"{out}.partial")
    try:
        while proc.poll() is None and not partial.exists():
            time.sleep(0.005)
        proc.kill()
    finally:
        proc.wait()
    if out.exists():
        pytest.skip("training finished before it could be killed (a very fast machine)")
    assert partial.exists()
    assert main(train_args(data, out)) == 0  # the same command, in this process
    a, b = _state(out), _state(trained)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_changed_config_does_not_resume_a_stale_partial(data: dict, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "stage2.pt"
    assert main(train_args(data, out, "--stop-after", "1")) == 0
    other = {**PARAMS, "train": {**TRAIN, "lr": 1e-3}}
    assert main(train_args(data, out, params=other)) == 1
    assert "another stage-2 config" in capsys.readouterr().err and not out.exists()


def test_ablation_table_command(tmp_path: Path) -> None:
    def metrics(micro: float, types: dict) -> dict:
        return {"dataset": "d", "n_videos": 2, "n_frames": 10,
                "scores": {"nf": {"micro_auc": 0.5, "macro_auc": 0.5, "by_type": {}},
                           "fused": {"micro_auc": micro, "macro_auc": micro - 0.1, "by_type": types}}}

    (tmp_path / "a.json").write_text(json.dumps(metrics(0.9, {"motion": 0.95, "scene": None})))
    (tmp_path / "b.json").write_text(json.dumps(metrics(0.7, {"motion": 0.8, "appearance": 0.6})))
    out, md = tmp_path / "t.csv", tmp_path / "t.md"
    rc = main(["ablation-table", "--metrics", f"full={tmp_path / 'a.json'}", f"no_lsta={tmp_path / 'b.json'}",
               "--params", json.dumps({"descriptions": {"full": "all of it"}, "dataset": "d",
                                       "fusion": {"full": {"weights": {"mo": 1.0, "app": 0.1, "mm": 0.0}},
                                                  "no_lsta": {"weights": {"mo": 1.0}, "motion_score": "mo_sim"}}}),
               "--out", str(out),
               "--md", str(md)])
    assert rc == 0
    df = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(df["variant"]) == ["full", "no_lsta"]
    assert list(df.columns) == ["variant", "description", "fusion", "micro_auc", "macro_auc",
                                "auc_appearance", "auc_motion", "auc_scene"]
    assert df.loc[0, "micro_auc"] == pytest.approx(0.9) and df.loc[1, "auc_motion"] == pytest.approx(0.8)
    assert np.isnan(df.loc[0, "auc_scene"]) and np.isnan(df.loc[0, "auc_appearance"])
    text = md.read_text()
    assert list(df["fusion"]) == ["mo + 0.1 app", "mo_sim"]
    assert "| full | all of it | mo + 0.1 app | 0.9000 | 0.8000 | – | 0.9500 | – |" in text
    rc = main(["ablation-table", "--metrics", str(tmp_path / "a.json"), "--out", str(out)])
    assert rc == 1
