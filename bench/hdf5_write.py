"""Cost of writing HDF5 files through mgenet's space-guarded file object (``mgenet.io.create_h5``, which turns a full
disk into one error line instead of HDF5's crash) against HDF5's own file driver, in one run.

    python bench/hdf5_write.py [--mb 96] [--repeats 5]

Writes a features-like array (float16 clip tokens, one chunk per clip, 16 clips per write) both ways, alternating,
and prints the median time of each and their ratio guarded / plain.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from mgenet.io import atomic_path, create_h5


def write(f: h5py.File, a: np.ndarray) -> None:
    ds = f.create_dataset("tokens", shape=a.shape, dtype=a.dtype, chunks=(1, *a.shape[1:]))
    for i in range(0, len(a), 16):
        ds[i:i + 16] = a[i:i + 16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=96)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    clip = (8, 4, 4, 192)  # t, h, w, C of one clip's tokens
    n = max(16, int(args.mb * 1e6 / (np.prod(clip) * 2)))
    a = np.random.default_rng(0).standard_normal((n, *clip)).astype(np.float16)
    times: dict[str, list[float]] = {"plain": [], "guarded": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with atomic_path(Path(tmp) / "plain.h5") as path, h5py.File(path, "w") as f:
                write(f, a)
            times["plain"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with create_h5(Path(tmp) / "guarded.h5") as f:
                write(f, a)
            times["guarded"].append(time.perf_counter() - t0)
        with h5py.File(Path(tmp) / "guarded.h5") as f:
            assert np.array_equal(f["tokens"][()], a)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{a.nbytes / 1e6:.0f} MB, {n} clips, median of {args.repeats}: plain {med['plain']:.3f} s, guarded "
          f"{med['guarded']:.3f} s, ratio guarded / plain {med['guarded'] / med['plain']:.2f}")


if __name__ == "__main__":
    main()
