"""STG-NF's supervised setting in the flow loop: labelled windows, the priors N(+-R, I), the label counts recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from engine.test_flow_engine import SMALL, T, tagged_files, walkers, write_video

from mgenet import MgenetError
from mgenet.engine.flow import FlowTrainConfig, SegmentStream, load_checkpoint, train_flow
from mgenet.engine.flow_jobs import FlowSettings, train_flow_job
from mgenet.models.flow import STGNF, FlowConfig


@pytest.mark.parametrize("flip", [False, True])
def test_stream_keeps_each_window_with_its_label(tmp_path: Path, flip: bool) -> None:
    paths, n = tagged_files(tmp_path, [5, 0, 37, 12])
    # label = -1 for odd row ids, +1 for even; the empty file has none; None = all normal
    labels = [np.where(np.arange(0, 5) % 2, -1, 1), np.zeros(0), np.where(np.arange(5, 42) % 2, -1, 1), None]
    stream = SegmentStream(paths, flip=flip, seed=3, block_rows=8, buffer_blocks=2, labels=labels)
    batches = list(stream.batches(16))
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches]).numpy()
    ids = x[:, 1, 0, 1].numpy().astype(int)
    assert len(ids) == n * (2 if flip else 1)
    want = np.where(ids < 42, np.where(ids % 2, -1, 1), 1)  # the last file (ids 42..53) is all normal
    np.testing.assert_array_equal(y, want)
    with pytest.raises(MgenetError, match="5 windows but 4 labels"):
        SegmentStream(paths[:1], flip=False, seed=0, labels=[np.ones(4)])


def test_nll_uses_the_prior_of_each_label() -> None:
    model = STGNF(FlowConfig(**SMALL, prior_mean=10.0)).eval()
    x = torch.from_numpy(walkers(6, seed=0))
    with torch.no_grad():
        z, nll = model.nll(x)
        _, nll_pos = model.nll(x, torch.ones(6))
        _, nll_neg = model.nll(x, -torch.ones(6))
    torch.testing.assert_close(nll, nll_pos)  # scoring = the normal prior N(+R, I)
    dims = x[0].numel() * np.log(2.0)
    # -log N(z; -R) + log N(z; +R) = ((z + R)^2 - (z - R)^2) / 2 = 2 R sum(z)
    torch.testing.assert_close(nll_neg - nll_pos, 2 * 10.0 * z.sum(dim=(1, 2, 3)) / dims)


def test_labels_reach_the_loss_and_pull_latents_to_their_prior(tmp_path: Path) -> None:
    paths = [write_video(tmp_path / f"n{i}.h5", walkers(48, seed=i), f"n{i}") for i in range(2)]
    held = torch.from_numpy(walkers(64, seed=20))

    def mean_latent(labels: list | None, supervised: bool = True) -> float:
        cfg = FlowTrainConfig(epochs=2, batch_size=32, lr=1e-2, seed=0, device="cpu", supervised=supervised)
        model, _ = train_flow(paths, FlowConfig(**SMALL, prior_mean=3.0), cfg, log=lambda s: None, labels=labels)
        with torch.no_grad():
            return model.nll(held)[0].mean().item()

    as_normal = mean_latent([None, None])
    assert as_normal == mean_latent(None, supervised=False)  # label 1 everywhere = unsupervised training
    assert mean_latent([-np.ones(48), -np.ones(48)]) < as_normal - 0.5  # fitted to N(-R, I) instead of N(+R, I)


def test_job_records_how_many_windows_got_each_label(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    normal = [str(write_video(tmp_path / "n.h5", walkers(20, seed=0), "normal_scene_1_scenario_1"))]
    ab = [str(write_video(tmp_path / "a.h5", walkers(10, seed=1), "abnormal_scene_1_scenario_2", "abnormal_train"))]
    pd.DataFrame({"row": range(10), "person_id": np.arange(10) % 3, "start_frame": range(10),
                  "label": [1] * 7 + [-1] * 3}).to_csv(tmp_path / "a.csv", index=False)
    s = FlowSettings(seg_len=T, model=dict(SMALL), train={"epochs": 1, "supervised": True, "label_persons": "all"},
                     device="cpu")
    with caplog.at_level("INFO", logger="mgenet"):
        train_flow_job(normal, tmp_path / "flow.pt", s, abnormal=ab, label_files=[str(tmp_path / "a.csv")])
    _, ck = load_checkpoint(tmp_path / "flow.pt")
    assert ck["window_labels"] == {"normal_videos_label_1": 20, "abnormal_train_label_1": 7,
                                   "abnormal_train_label_-1": 3, "label_1": 27, "label_-1": 3}
    assert "27 windows labelled 1 (20 of normal videos, 7 of anomalous ones), 3 labelled -1" in caplog.text
    with pytest.raises(MgenetError, match="1 anomalous training segments file.s. but 0 label table"):
        train_flow_job(normal, tmp_path / "flow2.pt", s, abnormal=ab, label_files=[])
