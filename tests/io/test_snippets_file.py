"""The snippets file: writer and reader round-trip, and the reader refuses files that do not tile the video."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from mgenet import MgenetError
from mgenet.io import SNIPPET_DIMS, read_snippets, snippet_starts, write_snippets


def test_snippet_starts() -> None:
    np.testing.assert_array_equal(snippet_starts(21, 8), [0, 8, 16])
    np.testing.assert_array_equal(snippet_starts(16, 8), [0, 8])


def test_snippets_round_trip(tmp_path: Path) -> None:
    feats = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    out = tmp_path / "v.h5"
    write_snippets(out, feats, snippet_starts(21, 8), {"snippet_len": 8, "frames": 21, "video": "v"})
    with h5py.File(out) as f:
        for name, labels in SNIPPET_DIMS.items():
            assert [d.label for d in f[name].dims] == list(labels)
    s = read_snippets(out)
    np.testing.assert_array_equal(s.features, feats)
    np.testing.assert_array_equal(s.start_frame, [0, 8, 16])
    assert (s.snippet_len, s.frames, s.attrs["video"]) == (8, 21, "v")


@pytest.mark.parametrize("starts, attrs, needle", [
    ([0, 8], {"snippet_len": 8, "frames": 21}, "do not tile"),
    ([0, 8, 16], {"snippet_len": 8}, "without attribute"),
])
def test_inconsistent_snippets_file_is_an_error(tmp_path: Path, starts, attrs, needle) -> None:
    out = tmp_path / "v.h5"
    write_snippets(out, np.zeros((len(starts), 4), np.float32), np.asarray(starts, np.int64), attrs)
    with pytest.raises(MgenetError, match=needle):
        read_snippets(out)
