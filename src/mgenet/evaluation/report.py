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
import platform
import subprocess
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from mgenet import MgenetError, __version__
from mgenet.evaluation.metrics import anomaly_types, micro_auc, roc_points, weak_columns
from mgenet.io import atomic_path, read_features, sha256_file
from mgenet.scoring.fusion import FUSED, score_columns

LABELS = {"nf": "S_nf (pose flow NLL)", "mo": "S_mo (motion)", "app": "S_app (appearance)",
          "mm": "S_mm (behaviour-scene matching)", FUSED: "fused", "arnet": "AR-Net (weakly supervised)",
          "cr": "CR (two-stream baseline)", "kr": "KR (two-stream baseline)", "crkr": "CR + KR (two-stream baseline)"}
FIGURE_TITLES = {"micro_auc": "micro AUC", "macro_auc": "macro AUC", "micro_ap": "micro AP", "macro_ap": "macro AP",
                 "micro_eer": "micro EER", "macro_eer": "macro EER", "rbdc": "RBDC", "tbdc": "TBDC",
                 "fused_gain": "fused − this, AUC", "anomalous_video_auc": "AUC, anomalous videos",
                 "false_alarm_rate": "false alarms at 0.5", "micro_auc_ci95_low": "micro AUC 95% CI low",
                 "micro_auc_ci95_high": "micro AUC 95% CI high"}
SHORT = {"nf": "S_nf", "mo": "S_mo", "app": "S_app", "mm": "S_mm", FUSED: "fused", "arnet": "AR-Net", "cr": "CR",
         "kr": "KR", "crkr": "CR+KR"}
# Fixed colours so a component looks the same in the ROC and in every per-video plot.
COLOURS = {"nf": "tab:blue", "mo": "tab:orange", "app": "tab:green", "mm": "tab:purple", FUSED: "black",
           "arnet": "tab:brown", "cr": "tab:olive", "kr": "tab:cyan", "crkr": "tab:pink"}
TYPE_PALETTE = ("tab:red", "tab:cyan", "tab:olive", "tab:pink", "tab:brown", "gold", "tab:blue", "tab:green")
UNTYPED_COLOUR = "0.55"
# Versions worth recording beside mgenet's own: the numerics behind every score.
PACKAGES = ("torch", "numpy", "pandas", "scipy", "scikit-learn", "h5py", "matplotlib", "snakemake")
DPI = 100
PALETTE_COLOURS = 128
ROW_INCHES = 0.62  # height of one score row of a per-video panel

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table.metrics { border-collapse: collapse; margin: 1em 0; }
table.metrics th, table.metrics td { border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: right; }
table.metrics th:first-child, table.metrics td:first-child { text-align: left; }
table.metrics tr.fused td { font-weight: bold; }
table.ablation { font-size: 0.9em; } table.ablation th { white-space: nowrap; }
table.metrics .text { text-align: left; } table.metrics .formula { text-align: left; white-space: nowrap; }
details summary { cursor: pointer; color: #555; }
table.prov { border-collapse: collapse; font-size: 0.85em; } table.prov td { padding: 0.15em 0.8em 0.15em 0; }
table.prov td:first-child { color: #555; white-space: nowrap; } table.prov code { word-break: break-all; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #555; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
p.note { font-size: 0.9em; color: #555; }
nav a { margin-right: 1em; }
"""


def _png_bytes(fig: Figure) -> bytes:
    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(DPI)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    # A palette of 128 colours without dithering looks the same as the antialiased RGBA plot and is about a third of
    # its size, which keeps a report of a hundred videos a few MB. PIL writes no "Software" tag, so the bytes depend
    # only on the data and the matplotlib rendering.
    image = Image.fromarray(rgba).convert("RGB").quantize(colors=PALETTE_COLOURS, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
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


def roc_figure(frames: pd.DataFrame, title: str = "Frame-level ROC, all test frames (micro)") -> Figure:
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
           title=title)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def percentile(values: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Fraction of ``ref`` (sorted) below each value, ties counted half: the value's percentile rank in ``ref``.
    A NaN value stays NaN (a gap in its curve)."""
    values = np.asarray(values, dtype=float)
    if ref.size == 0:
        return np.where(np.isnan(values), np.nan, 0.0)
    below = np.searchsorted(ref, values, side="left")
    upto = np.searchsorted(ref, values, side="right")
    return np.where(np.isnan(values), np.nan, (below + upto) / (2 * ref.size))


def video_figure(g: pd.DataFrame, cols: list[str], ref: dict[str, np.ndarray], colours: dict[str, str]) -> Figure:
    """Small multiples of one video: one row per score in ``cols`` (top first), sharing the frame axis.

    Every row shades the GT anomalous intervals by type, so a component's response can be read against each
    anomaly. A score is drawn as its percentile among all test frames (``ref``: each column's sorted test-set values),
    not scaled to the video: a normal video then stays low instead of having its noise stretched over the axis, a few
    extreme frames (NLL spikes) do not flatten the rest, and the curve shows the ranking the frame-level AUC measures.
    """
    frame = g["frame"].to_numpy()
    gt = g["gt"].to_numpy()
    types = g["type"].astype(str).to_numpy() if "type" in g.columns else np.full(len(g), "", dtype=object)
    labels = np.where(gt == 1, np.where(types == "", "\x00untyped", types), "")
    spans = []  # (first, last, colour, label) of each GT anomalous interval
    for s, e, lab in _runs(labels):
        if lab != "":
            colour = UNTYPED_COLOUR if lab == "\x00untyped" else colours.get(lab, UNTYPED_COLOUR)
            spans.append((frame[s] - 0.5, frame[e] + 0.5, colour, lab))
    fig = Figure(figsize=(10, 0.45 + ROW_INCHES * len(cols)), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.02, hspace=0.0)
    axes = fig.subplots(len(cols), 1, sharex=True, squeeze=False)[:, 0]
    for ax, c in zip(axes, cols):
        for x0, x1, colour, _ in spans:
            ax.axvspan(x0, x1, color=colour, alpha=0.25, lw=0)
        ax.plot(frame, percentile(g[c].to_numpy(), ref[c]), color=COLOURS[c], lw=1.4 if c == FUSED else 1.0)
        ax.set_ylim(-0.08, 1.08)
        ax.set_yticks([0, 1])
        ax.tick_params(labelsize=8, length=2, pad=1)
        ax.set_ylabel(SHORT[c], rotation=0, ha="right", va="center", fontsize=9, color=COLOURS[c])
    axes[-1].set_xlabel("frame", fontsize=9)
    if len(frame):
        axes[-1].set_xlim(frame[0] - 0.5, frame[-1] + 0.5)
    handles, seen = [], set()
    for _, _, colour, lab in spans:
        if lab not in seen:
            seen.add(lab)
            handles.append(Patch(color=colour, alpha=0.4, label="GT anomaly" if lab == "\x00untyped" else f"GT: {lab}"))
    # The PNG is also opened on its own (plots/{video}.png), so it names its video.
    axes[0].set_title(str(g["video"].iloc[0]) if len(g) else "", loc="left", fontsize=9)
    if handles:
        axes[0].legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=len(handles), fontsize=8,
                       frameon=False, borderaxespad=0.1, handlelength=1.2)
    return fig


def _ci(ci: list | None) -> str:
    return "–" if not ci or None in ci else f"{ci[0]:.4f} – {ci[1]:.4f}"


def _metrics_table(metrics: dict) -> str:
    """One row per score: micro AUC and its interval, macro AUC, AP, EER, RBDC / TBDC (with boxes), per-type AUC."""
    scores = metrics.get("scores", {})
    types = sorted({t for s in scores.values() for t in s.get("by_type", {})})
    with_ci = any("micro_auc_ci95" in s for s in scores.values())
    figures = [f for f in ("macro_auc", "micro_ap", "macro_ap", "micro_eer", "macro_eer", "rbdc", "tbdc",
                           "anomalous_video_auc", "false_alarm_rate")
               if any(f in s for s in scores.values())]
    head = ("<th>micro AUC</th>" + ("<th>95% CI</th>" if with_ci else "")
            + "".join(f"<th>{FIGURE_TITLES[f]}</th>" for f in figures)
            + "".join(f"<th>AUC {html.escape(t)}</th>" for t in types))
    rows = []
    for name, s in scores.items():
        cells = f"<td>{_fmt(s.get('micro_auc'))}</td>" + (f"<td>{_ci(s.get('micro_auc_ci95'))}</td>" if with_ci else "")
        cells += "".join(f"<td>{_fmt(s.get(f))}</td>" for f in figures)
        cells += "".join(f"<td>{_fmt(s.get('by_type', {}).get(t))}</td>" for t in types)
        cls = ' class="fused"' if name == FUSED else ""
        rows.append(f"<tr{cls}><td>{html.escape(LABELS.get(name, name))}</td>{cells}</tr>")
    return (f'<table class="metrics"><thead><tr><th>score</th>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def _paired_table(metrics: dict) -> str:
    """The fused score's micro-AUC gain over each component: paired bootstrap interval and DeLong's test; "" when
    there is no fused score or no component."""
    rows = []
    for name, s in metrics.get("scores", {}).items():
        paired = s.get("fused_vs_this")
        if not paired:
            continue
        diff, p = paired.get("auc_diff"), paired.get("delong_p")
        diff_text = "–" if diff is None else f"{diff:+.4f}"
        p_text = "–" if p is None else f"{p:.2g}"
        rows.append(f"<tr><td>{html.escape(LABELS.get(name, name))}</td><td>{diff_text}</td>"
                    f"<td>{_ci(paired.get('ci95'))}</td><td>{_fmt(paired.get('delong_z'))}</td>"
                    f"<td>{p_text}</td></tr>")
    if not rows:
        return ""
    return ('<table class="metrics"><thead><tr><th>component</th><th>fused − component, micro AUC</th>'
            "<th>95% CI (paired bootstrap)</th><th>DeLong z</th><th>DeLong p</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _wins_table(metrics: dict) -> str:
    """Each stage-2 branch against its baseline on its own anomaly type (metrics' ``branch_wins``); "" without."""
    rows = []
    for w in metrics.get("branch_wins", []):
        diff = w.get("auc_diff")
        rows.append(f"<tr><td>{html.escape(LABELS.get(w['branch'], w['branch']))} − "
                    f"{html.escape(LABELS.get(w['baseline'], w['baseline']))}</td><td>{html.escape(w['type'])}</td>"
                    f"<td>{'–' if diff is None else f'{diff:+.4f}'}</td><td>{_ci(w.get('ci95'))}</td></tr>")
    if not rows:
        return ""
    return ('<table class="metrics"><thead><tr><th>branch − baseline</th><th>on type</th><th>AUC gain</th>'
            f"<th>95% CI (paired bootstrap)</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _metrics_note(metrics: dict) -> str:
    """What the metrics table's figures are computed on: skipped videos, resamples, the RBDC / TBDC settings."""
    parts = ["micro: all test frames concatenated (STG-NF protocol); macro: mean over the videos that contain both "
             "classes; per type: all normal frames against the anomalous frames of that type; AP: area under the "
             "precision-recall curve; EER: equal error rate (lower is better). – = undefined (a single class)."]
    mv = metrics.get("macro_videos")
    if mv:
        skipped = mv.get("skipped_one_class", [])
        parts.append(f"Macro figures average {mv.get('n_used')} videos; {len(skipped)} one-class video(s) skipped"
                     + (f": {html.escape(', '.join(map(str, skipped)))}." if skipped else "."))
    b = metrics.get("bootstrap")
    if b:
        parts.append(f"95% intervals: percentiles of {b.get('resamples')} bootstrap resamples of the test videos "
                     f"(seed {b.get('seed')}; {b.get('valid_resamples')} with both classes), the same resamples for "
                     "every score, so the intervals of the fused score's gain are paired. DeLong's test treats frames "
                     "as independent, which frames of one video are not: its p-value is optimistic, the bootstrap "
                     "interval is the one to read.")
    loc = metrics.get("localization")
    if loc:
        parts.append(f"RBDC / TBDC (Ramachandra &amp; Jones, WACV 2020): {loc.get('n_regions')} anomalous regions in "
                     f"{loc.get('n_tracks')} tracks, {loc.get('n_detections')} detections (segment boxes at their "
                     f"middle frame), IoU ≥ {loc.get('iou')}, a track detected with ≥ {loc.get('track_fraction')} of "
                     f"its regions, area up to {loc.get('max_fp_per_frame')} false positives per frame.")
    return '<p class="note">' + " ".join(parts) + "</p>\n"


def _video_caption(g: pd.DataFrame, name: str) -> str:
    gt = g["gt"].to_numpy()
    text = f"{len(g)} frames, {int(gt.sum())} anomalous"
    if 0 < gt.sum() < len(gt):
        text += f"; {LABELS.get(name, name)} AUC on this video {micro_auc(g, name):.3f}"
    return text


def _column_title(column: str) -> str:
    """``auc_motion`` -> ``AUC motion``, ``micro_auc`` -> ``micro AUC``, the metrics table's wording."""
    if column in FIGURE_TITLES:
        return FIGURE_TITLES[column]
    return f"AUC {column[4:]}" if column.startswith("auc_") else column.replace("_auc", " AUC").replace("_", " ")


def _ablation_table(df: pd.DataFrame) -> str:
    """The ablation table (``mgenet ablation-table``'s CSV), the best value of each figure in bold (the highest; the
    lowest for an EER; none for an interval's bounds)."""
    aucs = {c: pd.to_numeric(df[c], errors="coerce") for c in df.columns
            if c in FIGURE_TITLES or c.startswith(("auc_", "micro_auc_ci95"))}
    best = {c: v.min() if c.endswith("_eer") else v.max() for c, v in aucs.items() if "_ci95" not in c}
    # Numbers align right (the table's default), text left; a fusion formula stays on one line.
    kind = {c: "" if c in aucs else ' class="formula"' if c == "fusion" else ' class="text"' for c in df.columns}
    rows = []
    for i in range(len(df)):
        cells = []
        for c in df.columns:
            if c in aucs:
                v = aucs[c].iloc[i]
                text = _fmt(None if pd.isna(v) else float(v))
                cells.append(f"<td><b>{text}</b></td>" if c in best and v == best[c] else f"<td>{text}</td>")
            else:
                v = df[c].iloc[i]
                cells.append(f"<td{kind[c]}>{html.escape('' if pd.isna(v) else str(v))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f"<th{kind[c]}>{html.escape(_column_title(c))}</th>" for c in df.columns)
    return f'<table class="metrics ablation"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}{k}" if not prefix else f"{prefix} / {k}")
    else:
        yield prefix, obj


def _provenance_table(provenance: dict) -> str:
    rows = []
    for key, value in _flatten(provenance):
        text = "unavailable" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        rows.append(f"<tr><td>{html.escape(key)}</td><td><code>{html.escape(text)}</code></td></tr>")
    return f'<table class="prov">{"".join(rows)}</table>'


def _yaml(obj: Any) -> str:
    """``obj`` as YAML in a collapsed block (a real config runs to a few hundred lines)."""
    text = yaml.safe_dump(json.loads(json.dumps(obj, default=str)), sort_keys=False, allow_unicode=True, width=110)
    n_lines = text.count("\n")
    return f"<details><summary>show the YAML ({n_lines} lines)</summary><pre>{html.escape(text)}</pre></details>"


def git_commit(cwd: str | Path | None = None) -> tuple[str | None, bool | None]:
    """The commit checked out in ``cwd`` (the workflow's directory when Snakemake runs a job) and whether tracked
    files differ from it; ``(None, None)`` outside a git checkout or without git."""
    try:
        run = dict(cwd=cwd, capture_output=True, text=True, timeout=30, check=True)
        head = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        # --no-optional-locks: never take the index lock, which a concurrent `git commit` may hold.
        status = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                                **run).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head, bool(status.strip())


def _one_or_all(values: Iterable[Any]) -> Any:
    distinct = sorted({str(v) for v in values})
    return distinct[0] if len(distinct) == 1 else distinct or None


def collect_provenance(frames: str | Path | None = None, models: Iterable[str | Path] = (),
                       features: Iterable[str | Path] = (), cwd: str | Path | None = None) -> dict[str, Any]:
    """What produced a report: versions, the git commit, and sha256 of the score table, models and features backbone.

    Args:
        frames: the frame score table the report is made from.
        models: checkpoints (flow.pt, stage2.pt), hashed whole.
        features: features HDF5 files; their ``checkpoint_sha256`` (and backbone, weights) attributes are reported, one
            value when every file agrees, else the sorted distinct values (a mixed run worth noticing).
        cwd: where to ask git for the commit (default: the current directory).
    """
    commit, dirty = git_commit(cwd)
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    prov: dict[str, Any] = {"mgenet_version": __version__, "git_commit": commit, "git_uncommitted_changes": dirty,
                            "python": platform.python_version(), "packages": versions}
    if frames:
        prov["frame_scores"] = {"path": str(frames), "sha256": sha256_file(frames)}
    models = list(models)
    if models:
        names = [Path(m).name for m in models]
        keys = names if len(set(names)) == len(names) else [str(m) for m in models]
        prov["models_sha256"] = {k: sha256_file(m) for k, m in zip(keys, models)}
    attrs = [read_features(f, fields=())[1] for f in features]
    if attrs:
        prov["features"] = {"files": len(attrs),
                            "checkpoint_sha256": _one_or_all(a.get("checkpoint_sha256") for a in attrs),
                            "weights": _one_or_all(a.get("weights") for a in attrs if "weights" in a),
                            "backbone": _one_or_all(a.get("backbone") for a in attrs)}
    return prov


def _tuning_table(df: pd.DataFrame, rows: int = 40) -> str:
    """The tuning grid, best validation rows first (at most ``rows``), the chosen one in bold."""
    shown = df.head(rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = []
    for _, r in shown.iterrows():
        cells = "".join(f"<td>{_fmt(v) if isinstance(v, float) else html.escape(str(v))}</td>" for v in r)
        bold = ' class="fused"' if bool(r.get("chosen", False)) else ""
        body.append(f"<tr{bold}>{cells}</tr>")
    more = f"<p class=\"note\">{len(df) - rows} more rows in eval/tuning.csv.</p>" if len(df) > rows else ""
    return f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{more}'


def _seeds_table(df: pd.DataFrame) -> str:
    """The seeds summary (``mgenet seeds-table``'s CSV): one row per score, ``mean ± std`` per figure."""
    figures = list(dict.fromkeys(df["figure"]))
    head = "".join(f"<th>{html.escape(_column_title(f))}</th>" for f in figures)
    rows = []
    for score, g in df.groupby("score", sort=False):
        cells = []
        for f in figures:
            r = g[g["figure"] == f].iloc[0]
            text = "–" if pd.isna(r["mean"]) else f"{r['mean']:.4f} ± {r['std']:.4f}"
            cells.append(f"<td>{text}</td>")
        cls = ' class="fused"' if score == FUSED else ""
        rows.append(f"<tr{cls}><td>{html.escape(LABELS.get(score, str(score)))}</td>{''.join(cells)}</tr>")
    return (f'<table class="metrics"><thead><tr><th>score</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _weak_section(frames: pd.DataFrame, weak: dict, plots_dir: Path) -> str:
    """The weak split's evaluation: every score, the weakly supervised ones too, on its test videos only."""
    sub = frames[frames["video"].astype(str).isin(weak["videos"])]
    fig = roc_figure(sub, title="Frame-level ROC, the weak split's test frames (micro)")
    png = _save_png(fig, plots_dir / "roc_weak.png")
    names = ", ".join(LABELS.get(n, n) for n, s in weak["scores"].items() if s.get("supervision") == "weak")
    return ('<h2 id="weak">Weak split</h2>\n' + _metrics_table(weak)
            + f'\n<p class="note">{weak["n_videos"]} test videos of the weak split '
              f"(<code>{html.escape(weak.get('split_file', ''))}</code>; {weak.get('n_train_videos', 0)} videos train "
              f"the weakly supervised scores with their video labels), {weak['n_frames']} frames. Weakly supervised: "
              f"{html.escape(names or 'none')}; it is trained on anomalous test videos, so it is evaluated here only, "
              f"beside every other score on the same frames.</p>\n"
            + f'<figure><img alt="ROC curves, weak split" src="{_data_uri(png)}"></figure>\n')


def _protocols_section(metrics: dict) -> str:
    """Each named protocol of metrics.json (``protocols``): its table, the videos it leaves out and its source."""
    parts = []
    for name, p in metrics.get("protocols", {}).items():
        parts.append(f'<h3 id="protocol-{html.escape(name)}">{html.escape(p.get("title", name))}</h3>\n'
                     + _metrics_table(p) + f'\n<p class="note">{p.get("n_videos")} test videos, {p.get("n_frames")} '
                     f"frames: the test split without {html.escape(', '.join(p.get('left_out', [])))} "
                     f"(<code>protocols.{html.escape(name)}</code> in metrics.json). Source: "
                     f"{html.escape(p.get('source', ''))}.</p>\n")
    return ('<h2 id="protocols">Named protocols</h2>\n' + "".join(parts)) if parts else ""


def _write_html(out: TextIO, frames: pd.DataFrame, metrics: dict, plots_dir: Path, config: dict | None,
                provenance: dict | None, ablation: pd.DataFrame | None, seeds: pd.DataFrame | None = None,
                matching_seeds: pd.DataFrame | None = None, validation: dict | None = None,
                tuning: pd.DataFrame | None = None) -> None:
    ds = html.escape(str(metrics.get("dataset", "")))
    n_anom = int(frames["gt"].sum())
    out.write(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>mgenet report: {ds}</title>'
              f"<style>{CSS}</style></head><body>\n")
    out.write(f"<h1>mgenet report: {ds}</h1>\n")
    out.write('<nav><a href="#metrics">metrics</a><a href="#validation">validation</a>'
              + ('<a href="#protocols">protocols</a>' if metrics.get("protocols") else "")
              + ('<a href="#weak">weak split</a>' if "weak" in metrics else "")
              + '<a href="#ablation">ablations</a><a href="#roc">ROC</a>'
              '<a href="#videos">videos</a><a href="#provenance">provenance</a><a href="#config">configuration</a>'
              "</nav>\n")
    out.write(f"<p>{metrics.get('n_videos', frames['video'].nunique())} test videos, "
              f"{metrics.get('n_frames', len(frames))} frames, {n_anom} anomalous "
              f"({100 * n_anom / max(len(frames), 1):.1f}%).</p>\n")
    out.write('<h2 id="metrics">Frame-level AUC</h2>\n' + _metrics_table(metrics) + "\n")
    paired = _paired_table(metrics)
    if paired:
        out.write('<h3 id="paired">Fused score against each component</h3>\n' + paired + "\n")
    wins = _wins_table(metrics)
    if wins:
        out.write('<h3 id="branches">Each branch on its anomaly type</h3>\n' + wins + "\n")
    out.write(_metrics_note(metrics))
    out.write(_protocols_section(metrics))
    out.write('<h2 id="validation">Validation split</h2>\n')
    if validation is None:
        out.write('<p class="note">The dataset has no validation split: every setting is the documented default (see '
                  "the configuration below).</p>\n")
    else:
        out.write(_metrics_table(validation) + f'\n<p class="note">The same scores on the '
                  f"{validation.get('n_videos')} validation videos ({validation.get('n_frames')} frames; "
                  "eval/val_metrics.json). Settings are chosen on these figures (<code>snakemake tune</code>), never "
                  "on the test figures above.</p>\n")
    if tuning is not None:
        out.write('<h3 id="tuning">Tuning grid (validation)</h3>\n' + _tuning_table(tuning) + '\n<p class="note">'
                  "One row per setting of <code>tune.grid</code> (eval/tuning.csv), scored on the validation split "
                  "only; the chosen row is in bold and written to eval/tuned.yaml.</p>\n")
    weak = metrics.get("weak")
    weak_cols = weak_columns(frames)
    if weak is not None:
        out.write(_weak_section(frames, weak, plots_dir))
    for table, anchor, title, what, target in (
            (seeds, "seeds", "Over seeds", "training seeds", "seeds"),
            (matching_seeds, "matching-seeds", "Over matching-memory seeds",
             "seeds of the matching memory's random start and clip order (only M^r written again: S_nf, S_mo and "
             "S_app do not change)", "matching_seeds")):
        if table is None:
            continue
        n = int(table["n_seeds"].max()) if len(table) else 0
        names = ", ".join(c[5:] for c in table.columns if c.startswith("seed_"))
        out.write(f'<h2 id="{anchor}">{title}</h2>\n' + _seeds_table(table) + f'\n<p class="note">Mean ± sample std '
                  f"over {n} {html.escape(what)}: {html.escape(names)}. Made by <code>snakemake {target}</code> "
                  f"(eval/{target}.csv); the frame-level AUC table is the main seed's run.</p>\n")
    out.write('<h2 id="ablation">Ablations</h2>\n')
    if ablation is None:
        out.write('<p class="note">No ablation table yet: <code>snakemake ablation</code> makes eval/ablation.csv, and '
                  "the next <code>snakemake</code> rebuilds this report with it.</p>\n")
    else:
        out.write(_ablation_table(ablation) + '\n<p class="note">One row per variant of <code>ablation.variants</code> '
                  "(<code>snakemake ablation</code>, eval/ablation.csv): the AUCs of its fused score; best of each "
                  "column in bold.</p>\n")
    out.write('<h2 id="roc">ROC</h2>\n')
    fig = roc_figure(frames.drop(columns=weak_cols))
    out.write(f'<figure><img alt="ROC curves" src="{_data_uri(_save_png(fig, plots_dir / "roc.png"))}"></figure>\n')
    del fig

    cols = score_columns(frames)
    main = next(c for c in (FUSED, *cols[::-1]) if c in cols and c not in weak_cols)
    # The main (fused) score on the top row, each component on a row of its own below it. A weakly supervised score
    # is drawn only on the weak split's test videos (it trained on the others), as a percentile among their frames.
    rows = [main] + [c for c in cols if c != main]
    weak_videos = set(weak["videos"]) if weak is not None else set()
    in_weak = frames["video"].astype(str).isin(weak_videos).to_numpy()
    ref = {}  # each score's sorted test-set values, for its percentile rank
    for c in cols:
        v = frames[c].to_numpy(dtype=float)[in_weak if c in weak_cols else slice(None)]
        ref[c] = np.sort(v[~np.isnan(v)])
    colours = type_colours(anomaly_types(frames))
    out.write('<h2 id="videos">Per-video scores</h2>\n<p class="note">One panel per test video: the fused score on '
              "top, each component below it on the same frame axis, each drawn as its percentile among all test "
              "frames (the ranking the AUC measures: 0.9 = above 90% of them); shaded: ground-truth anomalous "
              "frames, coloured by anomaly type.</p>\n")
    for video, g in frames.groupby("video", sort=True):
        fig = video_figure(g, [c for c in rows if c not in weak_cols or str(video) in weak_videos], ref, colours)
        png = _save_png(fig, plots_dir / f"{video}.png")
        del fig
        v = html.escape(str(video))
        out.write(f'<figure id="video-{v}"><img alt="scores of video {v}" src="{_data_uri(png)}">'
                  f"<figcaption><b>{v}</b>: {html.escape(_video_caption(g, main))}</figcaption></figure>\n")

    out.write('<h2 id="provenance">Provenance</h2>\n' + _provenance_table(provenance or {}) + "\n")
    out.write('<h2 id="config">Configuration</h2>\n<p class="note">The resolved configuration (defaults filled in), '
              "as YAML: save it as a file and pass it with <code>--configfile</code> to rerun.</p>\n"
              + _yaml(config if config is not None else {}) + "\n")
    out.write("</body></html>\n")


def write_report(frames: pd.DataFrame, metrics: dict, out_html: Path, plots_dir: Path, config: dict | None = None,
                 provenance: dict | None = None, ablation: pd.DataFrame | None = None,
                 seeds: pd.DataFrame | None = None, matching_seeds: pd.DataFrame | None = None,
                 validation: dict | None = None, tuning: pd.DataFrame | None = None) -> None:
    """Write ``plots_dir/roc.png``, one ``plots_dir/{video}.png`` per test video, and a self-contained HTML report.

    Args:
        frames: frame score table (:func:`mgenet.scoring.frames.frame_scores`).
        metrics: the ``metrics.json`` dict (:func:`mgenet.evaluation.metrics.compute_metrics`) of the same table.
        out_html: report path; the HTML embeds every figure, so it needs no other file.
        plots_dir: directory for the PNGs (created).
        config: resolved configuration, shown as YAML.
        provenance: versions, hashes, inputs (:func:`collect_provenance`); shown as a table.
        ablation: the ablation table (``eval/ablation.csv``), when one has been made.
        seeds: the summary over seeds (``eval/seeds.csv``), when one has been made.
        matching_seeds: the summary over matching-memory seeds (``eval/matching_seeds.csv``), when one has been made.
        validation: the validation split's metrics (``eval/val_metrics.json``), shown beside the test figures.
        tuning: the validation grid of ``snakemake tune`` (``eval/tuning.csv``), when one has been made.

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
        _write_html(out, frames, metrics, plots_dir, config, provenance, ablation, seeds, matching_seeds, validation,
                    tuning)
