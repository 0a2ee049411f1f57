"""Plots and a self-contained HTML report of one evaluation.

Figures are drawn on matplotlib ``Figure`` objects with the Agg canvas directly, not through ``pyplot``: no global
figure registry to leak memory across hundreds of videos, and no change to the backend of a user's interactive session
that imports this module. The HTML embeds every PNG as a base64 data URI and its CSS inline, so the one file can be
mailed or archived and opens offline.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from mgenet import MgenetError
from mgenet.evaluation import anomaly_types, micro_auc, roc_points
from mgenet.io import atomic_path
from mgenet.scoring import FUSED, score_columns

LABELS = {"nf": "S_nf (pose flow NLL)", "mo": "S_mo (motion)", "app": "S_app (appearance)",
          "mm": "S_mm (behaviour-scene matching)", FUSED: "fused"}
# Fixed colours so a component looks the same in the ROC and in every per-video plot.
COLOURS = {"nf": "tab:blue", "mo": "tab:orange", "app": "tab:green", "mm": "tab:purple", FUSED: "black"}
TYPE_PALETTE = ("tab:red", "tab:cyan", "tab:olive", "tab:pink", "tab:brown", "gold", "tab:blue", "tab:green")
UNTYPED_COLOUR = "0.55"
DPI = 100

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table.metrics { border-collapse: collapse; margin: 1em 0; }
table.metrics th, table.metrics td { border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: right; }
table.metrics th:first-child, table.metrics td:first-child { text-align: left; }
table.metrics tr.fused td { font-weight: bold; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #555; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
p.note { font-size: 0.9em; color: #555; }
nav a { margin-right: 1em; }
"""


def _png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    # No "Software" tag: the PNG bytes then depend only on the data and the matplotlib rendering.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _save_png(fig: Figure, path: Path) -> bytes:
    data = _png_bytes(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return data


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def type_colours(types: list[str]) -> dict[str, str]:
    """Colour of each anomaly type, stable across the videos of one report."""
    return {t: TYPE_PALETTE[i % len(TYPE_PALETTE)] for i, t in enumerate(sorted(types))}


def _runs(labels: np.ndarray) -> Iterator[tuple[int, int, Any]]:
    """Maximal runs of equal labels: (first, last, label), last inclusive."""
    if labels.size == 0:
        return
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change - 1, [labels.size - 1]])
    for s, e in zip(starts, ends):
        yield int(s), int(e), labels[s]


def roc_figure(frames: pd.DataFrame) -> Figure:
    """ROC curves (all test frames) of every score column, micro AUC in the legend."""
    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="0.7", lw=1, label="chance")
    for c in score_columns(frames):
        fpr, tpr, auc = roc_points(frames, c)
        if fpr.size:
            ax.plot(fpr, tpr, color=COLOURS[c], lw=2.2 if c == FUSED else 1.3,
                    label=f"{LABELS[c]}  AUC {auc:.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
           title="Frame-level ROC, all test frames (micro)")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def video_figure(g: pd.DataFrame, cols: list[str], lo: dict[str, float], hi: dict[str, float],
                 colours: dict[str, str]) -> Figure:
    """Scores of one video over its frames, GT anomalous intervals shaded by type.

    Every score is min-max scaled with the test set's range (``lo``, ``hi``), not the video's: a normal video then
    stays low instead of having its noise stretched to fill the axis.
    """
    frame = g["frame"].to_numpy()
    gt = g["gt"].to_numpy()
    types = g["type"].astype(str).to_numpy() if "type" in g.columns else np.full(len(g), "", dtype=object)
    fig = Figure(figsize=(10, 2.6), layout="constrained")
    ax = fig.add_subplot()
    handles = []
    labels = np.where(gt == 1, np.where(types == "", "\x00untyped", types), "")
    seen: set[str] = set()
    for s, e, lab in _runs(labels):
        if lab == "":
            continue
        colour = UNTYPED_COLOUR if lab == "\x00untyped" else colours.get(lab, UNTYPED_COLOUR)
        ax.axvspan(frame[s] - 0.5, frame[e] + 0.5, color=colour, alpha=0.22, lw=0)
        if lab not in seen:
            seen.add(lab)
            handles.append(Patch(color=colour, alpha=0.35,
                                 label="GT anomaly" if lab == "\x00untyped" else f"GT: {lab}"))
    for c in cols:
        span = hi[c] - lo[c]
        y = (g[c].to_numpy() - lo[c]) / span if span > 0 else np.zeros(len(g))
        main = c == FUSED
        (line,) = ax.plot(frame, y, color=COLOURS[c], lw=1.8 if main else 0.8, alpha=1.0 if main else 0.75,
                          label=LABELS[c], zorder=3 if main else 2)
        handles.append(line)
    ax.set(xlim=(frame[0] - 0.5, frame[-1] + 0.5) if len(frame) else None, ylim=(-0.03, 1.03),
           xlabel="frame", ylabel="score (scaled)")
    # The PNG is also opened on its own (plots/{video}.png), so it names its video.
    ax.set_title(str(g["video"].iloc[0]) if len(g) else "", loc="left", fontsize=9)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)
    return fig


def _metrics_table(metrics: dict) -> str:
    scores = metrics.get("scores", {})
    types = sorted({t for s in scores.values() for t in s.get("by_type", {})})
    head = "".join(f"<th>AUC {html.escape(t)}</th>" for t in types)
    rows = []
    for name, s in scores.items():
        cells = "".join(f"<td>{_fmt(s.get('by_type', {}).get(t))}</td>" for t in types)
        cls = ' class="fused"' if name == FUSED else ""
        rows.append(f"<tr{cls}><td>{html.escape(LABELS.get(name, name))}</td><td>{_fmt(s.get('micro_auc'))}</td>"
                    f"<td>{_fmt(s.get('macro_auc'))}</td>{cells}</tr>")
    return (f'<table class="metrics"><thead><tr><th>score</th><th>micro AUC</th><th>macro AUC</th>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def _video_caption(g: pd.DataFrame, name: str) -> str:
    gt = g["gt"].to_numpy()
    text = f"{len(g)} frames, {int(gt.sum())} anomalous"
    if 0 < gt.sum() < len(gt):
        text += f"; {LABELS.get(name, name)} AUC on this video {micro_auc(g, name):.3f}"
    return text


def _pre(obj: Any) -> str:
    return "<pre>" + html.escape(json.dumps(obj, indent=2, sort_keys=True, default=str)) + "</pre>"


def _write_html(out: TextIO, frames: pd.DataFrame, metrics: dict, plots_dir: Path, config: dict | None,
                provenance: dict | None) -> None:
    ds = html.escape(str(metrics.get("dataset", "")))
    n_anom = int(frames["gt"].sum())
    out.write(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>mgenet report: {ds}</title>'
              f"<style>{CSS}</style></head><body>\n")
    out.write(f"<h1>mgenet report: {ds}</h1>\n")
    out.write('<nav><a href="#metrics">metrics</a><a href="#roc">ROC</a><a href="#videos">videos</a>'
              '<a href="#config">configuration</a></nav>\n')
    out.write(f"<p>{metrics.get('n_videos', frames['video'].nunique())} test videos, "
              f"{metrics.get('n_frames', len(frames))} frames, {n_anom} anomalous "
              f"({100 * n_anom / max(len(frames), 1):.1f}%).</p>\n")
    out.write('<h2 id="metrics">Frame-level AUC</h2>\n' + _metrics_table(metrics) + "\n")
    out.write('<p class="note">micro: all test frames concatenated (STG-NF protocol); macro: mean over videos '
              "that contain both classes; per type: all normal frames against the anomalous frames of that type. "
              "– = undefined (a single class).</p>\n")
    out.write('<h2 id="roc">ROC</h2>\n')
    fig = roc_figure(frames)
    out.write(f'<figure><img alt="ROC curves" src="{_data_uri(_save_png(fig, plots_dir / "roc.png"))}"></figure>\n')
    del fig

    cols = score_columns(frames)
    main = FUSED if FUSED in cols else cols[-1]
    # Draw components thin under the main (fused) curve; the main one last so it sits on top of the legend order.
    draw = [c for c in cols if c != main] + [main]
    lo = {c: float(frames[c].min()) for c in cols}
    hi = {c: float(frames[c].max()) for c in cols}
    colours = type_colours(anomaly_types(frames))
    out.write('<h2 id="videos">Per-video scores</h2>\n<p class="note">Each score min-max scaled over the whole test '
              "set; shaded: ground-truth anomalous frames, coloured by anomaly type.</p>\n")
    for video, g in frames.groupby("video", sort=True):
        fig = video_figure(g, draw, lo, hi, colours)
        png = _save_png(fig, plots_dir / f"{video}.png")
        del fig
        v = html.escape(str(video))
        out.write(f'<figure id="video-{v}"><img alt="scores of video {v}" src="{_data_uri(png)}">'
                  f"<figcaption><b>{v}</b>: {html.escape(_video_caption(g, main))}</figcaption></figure>\n")

    out.write('<h2 id="config">Configuration</h2>\n' + _pre(config if config is not None else {}) + "\n")
    out.write("<h2>Provenance</h2>\n" + _pre(provenance if provenance is not None else {}) + "\n")
    out.write("</body></html>\n")


def write_report(frames: pd.DataFrame, metrics: dict, out_html: Path, plots_dir: Path, config: dict | None = None,
                 provenance: dict | None = None) -> None:
    """Write ``plots_dir/roc.png``, one ``plots_dir/{video}.png`` per test video, and a self-contained HTML report.

    Args:
        frames: frame score table (:func:`mgenet.scoring.frame_scores`).
        metrics: the ``metrics.json`` dict (:func:`mgenet.evaluation.compute_metrics`) of the same table.
        out_html: report path; the HTML embeds every figure, so it needs no other file.
        plots_dir: directory for the PNGs (created).
        config: resolved configuration, shown verbatim.
        provenance: versions, hashes, inputs; shown verbatim.

    Raises:
        MgenetError: a video name that cannot be a plot file name.
    """
    if not score_columns(frames):
        raise MgenetError("frame score table has no score column (nf, mo, app, mm, fused); nothing to report.")
    plots_dir = Path(plots_dir)
    for v in frames["video"].astype(str).unique():
        if v == "roc" or "/" in v or "\\" in v or v in ("", ".", ".."):
            raise MgenetError(f"video name {v!r} cannot name a plot file in {plots_dir} (it is reserved or holds a "
                              f"path separator); rename the video in the dataset.")
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_html) as tmp, open(tmp, "w", encoding="utf-8") as out:
        _write_html(out, frames, metrics, plots_dir, config, provenance)
