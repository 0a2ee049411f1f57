"""A full disk is one error line naming the file and the space left, with nothing half-written: on a small tmpfs,
which only root can mount (elsewhere these tests are skipped, saying so)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import mount_tmpfs

from mgenet.io import DiskFullError, create_h5, save_torch, write_parquet, write_segments
from mgenet.io.common import disk_full


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 256 kB file system."""
    folder = tmp_path / "small"
    mount_tmpfs(folder, "256k")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def assert_nothing_left(folder: Path) -> None:
    assert [p.name for p in folder.iterdir()] == []


def test_an_hdf5_file_that_does_not_fit_is_an_error_not_a_crash(small_disk):
    # HDF5 itself would crash the process (a segfault) closing a file whose writes failed: it runs in-process here
    target = small_disk / "segments" / "v.h5"
    n = 2000  # ~2.5 MB of poses
    arrays = {"pose": np.random.rand(n, 2, 12, 18), "confidence": np.ones((n, 12, 18)),
              "keypoints": np.zeros((n, 12, 17, 3)), "boxes": np.zeros((n, 12, 4)), "frames": np.zeros((n, 12)),
              "person_id": np.zeros(n), "start_frame": np.arange(n), "mid_frame": np.arange(n)}
    with pytest.raises(DiskFullError, match=r"v\.h5: no space left on device \(0\.\d MB free\)"):
        write_segments(target, arrays, {"video": "v"})
    assert_nothing_left(target.parent)
    # and a file that fits is written as usual (the guarded file object is invisible to HDF5)
    small = {k: v[:10] for k, v in arrays.items()}
    write_segments(target, small, {"video": "v"})
    from mgenet.io import read_segments

    got, attrs = read_segments(target)
    assert np.allclose(got["pose"], small["pose"]) and attrs["video"] == "v"


@pytest.mark.parametrize("kind", ["torch", "parquet", "h5-stream"])
def test_other_writers_out_of_space_name_the_file_and_leave_nothing(small_disk, kind):
    target = small_disk / f"out.{kind}"
    with pytest.raises(DiskFullError, match="no space left on device") as e:
        if kind == "torch":
            import torch

            save_torch({"w": torch.randn(200_000)}, target)
        elif kind == "parquet":
            write_parquet(pd.DataFrame({"a": np.random.rand(100_000)}), target)
        else:
            with create_h5(target) as f:
                ds = f.create_dataset("x", shape=(100, 1000), dtype="f8", chunks=(1, 1000))
                for i in range(100):  # streamed writes keep going after the disk is full; the error comes at the end
                    ds[i] = np.random.rand(1000)
    assert str(e.value).startswith(f"{target}: no space left on device (")
    assert_nothing_left(small_disk)


def test_disk_full_recognises_errors_that_only_quote_enospc():
    import errno

    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    try:
        try:
            raise OSError(errno.ENOSPC, "x")
        except OSError as inner:
            raise RuntimeError("unexpected pos 704 vs 598") from inner
    except RuntimeError as outer:
        assert disk_full(outer)
    assert disk_full(RuntimeError("file write failed: errno = 28, error message = 'No space left on device'"))
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not disk_full(ValueError("bad value"))


def test_the_cli_turns_any_write_out_of_space_into_one_line(monkeypatch, capsys):
    import errno

    from mgenet.cli import main

    def full(args):  # a verb writing outside mgenet.io's writers (the demo generator, say)
        raise OSError(errno.ENOSPC, "No space left on device", "results/x/table.csv")

    monkeypatch.setattr("mgenet.cli.apps.cmd_inspect", full)
    assert main(["inspect", "whatever.h5"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: results/x/table.csv: no space left on device (")
