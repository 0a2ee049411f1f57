"""Human-readable description of any mgenet HDF5 artifact (segments, flow, features)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from mgenet.io import ClipTokens, open_h5


def _fmt_attrs(attrs: h5py.AttributeManager, indent: str) -> list[str]:
    return [f"{indent}@{k} = {attrs[k]!r}" for k in sorted(attrs)]


def describe(path: str | os.PathLike, clip: int | None = None) -> str:
    """Layout, shapes, dtypes, chunking, dimension labels, provenance and size of an HDF5 file.

    Args:
        clip: also print per-dataset statistics of this row of the clip axis.
    """
    path = Path(path)
    lines = [f"{path}  ({path.stat().st_size / 1e6:.2f} MB on disk)" if path.exists() else str(path)]
    with open_h5(path, "file") as f:
        lines += _fmt_attrs(f.attrs, "  ")

        def visit(name: str, obj: h5py.HLObject) -> None:
            depth = name.count("/") + 1
            pad = "  " * depth
            if isinstance(obj, h5py.Group):
                lines.append(f"{pad}{name}/")
                lines.extend(_fmt_attrs(obj.attrs, pad + "  "))
                return
            labels = [d.label or "?" for d in obj.dims]
            lines.append(f"{pad}{name.split('/')[-1]}: shape {obj.shape} [{', '.join(labels)}] {obj.dtype} "
                         f"chunks={obj.chunks} compression={obj.compression} "
                         f"stored {obj.id.get_storage_size() / 1e6:.2f} MB")
            per_clip = labels[0] in ("clip", "?") if labels else False  # e.g. a features file's scene is not
            if clip is not None and per_clip and obj.shape[0] > clip:
                row = np.asarray(obj[clip], dtype=np.float64)
                lines.append(f"{pad}  clip {clip}: min {row.min():.4g} max {row.max():.4g} "
                             f"mean {row.mean():.4g} std {row.std():.4g}")

        f.visititems(visit)
        tokens = ClipTokens(f) if clip is not None and f.attrs.get("layout") == "track" else None
        if tokens is not None and len(tokens) > clip:
            rows = tokens.track_rows(clip)
            row = np.asarray(tokens.read(np.array([clip]))[0], dtype=np.float64)
            frames = tokens.token_frames(clip)
            lines.append(f"  clip {clip} (layout track): tokens = track_tokens[{rows.start}:{rows.stop}], frames "
                         f"{frames[0]}..{frames[-1]} ({len(np.unique(frames))} frames): min {row.min():.4g} "
                         f"max {row.max():.4g} mean {row.mean():.4g} std {row.std():.4g}")
    return "\n".join(lines)
