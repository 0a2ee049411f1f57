"""What ``mgenet score-video`` shows a user besides the frame scores: who (``persons.csv``), when (``events.csv``), a
video to watch (``overlay.mp4``) and a page that ties them together (``index.html``).

- ``persons.csv``: one row per tracked person and frame: the track id, its box (from the keypoints) and each
  component's score of the window whose middle frame is this frame (the window that scores it, as in the frame table);
  empty scores where no window of that person lands on the frame (a track's first and last seg_len/2 frames); a
  window centred on a frame its person was missed in (a gap a window tolerates) gives a row with the nearest box.
- ``events.csv``: runs of frames whose smoothed fused score exceeds a threshold; one row per event and person scored at
  its peak frame (the most anomalous first), with the person's box there. The threshold is ``--threshold`` when given,
  else the :data:`EVENT_QUANTILE` quantile of the training segments' fused scores (scaled as this video's), else of
  the reference's, else a rule on the video's own curve (:data:`SELF_MADS` robust deviations above its median); which
  one is logged and written to ``provenance.json``.
- ``overlay.mp4`` (H.264 via PyAV) or ``overlay.webm`` (VP9 via OpenCV, when PyAV cannot write H.264): the input's
  frames, same count and fps, each person's skeleton and box coloured by its fused score with its track id, and below
  them a strip with the fused curve, the threshold, the events shaded and a cursor on the current frame; a frame inside
  an event gets a red border.
- ``index.html``: the video, the curve (inline SVG) and the event table; clicking an event or the curve seeks the video.
  It refers to nothing but its sibling overlay file.
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mgenet import MgenetError
from mgenet.io import PoseDict, atomic_path
from mgenet.pose.skeleton import COCO_EDGES, boxes_from_keypoints
from mgenet.scoring.fusion import COMPONENTS, FUSED

log = logging.getLogger("mgenet")

EVENT_QUANTILE = 0.99  # of the training segments' fused scores: about one normal window in a hundred exceeds it
SELF_MADS = 3.0  # without a reference: median + 3 robust standard deviations (1.4826 MAD) of the video's own curve
PERSON_COLUMNS = ["track", "frame", "x1", "y1", "x2", "y2", "window_start", *COMPONENTS, FUSED]
EVENT_COLUMNS = ["event", "start", "end", "start_s", "end_s", "peak_frame", "peak_score", "track", "track_score",
                 "x1", "y1", "x2", "y2"]
KEYPOINT_MIN = 0.3
GREY = (150, 150, 150)


@dataclass
class Threshold:
    value: float
    rule: str  # how it was set, in words (log and provenance.json)


# ------------------------------------------------------------------------------------------------------ tables


def person_table(poses: PoseDict, seg: pd.DataFrame) -> pd.DataFrame:
    """PERSON_COLUMNS, one row per (track, frame) of ``poses``, with the scores of the window centred on that frame.

    Args:
        poses: {track id: {frame: (17, 3)}}.
        seg: the fused segment table (person_id, start_frame, mid_frame, score columns).
    """
    tracks, frames, kps = [], [], []
    for pid in sorted(poses):
        for f in sorted(poses[pid]):
            tracks.append(pid)
            frames.append(f)
            kps.append(poses[pid][f])
    if not kps:
        return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in PERSON_COLUMNS})
    boxes = boxes_from_keypoints(np.stack(kps).astype(np.float32))
    df = pd.DataFrame({"track": np.asarray(tracks, np.int64), "frame": np.asarray(frames, np.int64)})
    df[["x1", "y1", "x2", "y2"]] = np.round(boxes, 1)
    cols = [c for c in (*COMPONENTS, FUSED) if c in seg.columns]
    scores = seg[["person_id", "mid_frame", "start_frame", *cols]].rename(
        columns={"person_id": "track", "mid_frame": "frame", "start_frame": "window_start"})
    scores = scores.astype({"track": np.int64, "frame": np.int64})
    df = df.merge(scores, on=["track", "frame"], how="outer").sort_values(["track", "frame"], ignore_index=True)
    # A window may centre on a frame its person was missed in (up to max_missing of them): the nearest frame's box.
    box = ["x1", "y1", "x2", "y2"]
    df[box] = df.groupby("track")[box].transform(lambda c: c.interpolate(method="nearest").ffill().bfill())
    return df.reindex(columns=PERSON_COLUMNS)


def self_threshold(curve: np.ndarray) -> Threshold:
    med = float(np.median(curve)) if len(curve) else 0.0
    mad = float(np.median(np.abs(curve - med))) * 1.4826 if len(curve) else 0.0
    if mad <= 0:
        return Threshold(float("inf"), "no reference and a flat curve: no event")
    return Threshold(med + SELF_MADS * mad, f"no reference scores: the video's own smoothed fused curve, median + "
                                            f"{SELF_MADS:g} x 1.4826 MAD (events are this video's outliers, not "
                                            f"anomalies judged against normal footage)")


def find_events(curve: np.ndarray, threshold: float, persons: pd.DataFrame, fps: float) -> pd.DataFrame:
    """EVENT_COLUMNS: runs of frames with ``curve`` > ``threshold``, one row per person scored at the run's peak."""
    above = np.concatenate([[False], np.asarray(curve) > threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    scored = persons.dropna(subset=[FUSED]) if len(persons) else persons
    by_frame = scored.groupby("frame").indices if len(scored) else {}
    rows = []
    for k, (s, e) in enumerate(zip(edges[::2], edges[1::2] - 1)):
        peak = int(s + np.argmax(curve[s:e + 1]))
        base = {"event": k, "start": int(s), "end": int(e), "start_s": round(s / fps, 3),
                "end_s": round((e + 1) / fps, 3), "peak_frame": peak, "peak_score": float(curve[peak])}
        at = scored.iloc[by_frame[peak]].sort_values(FUSED, ascending=False) if peak in by_frame else scored[:0]
        if not len(at):
            rows.append(base)
        for _, p in at.iterrows():
            rows.append({**base, "track": int(p["track"]), "track_score": float(p[FUSED]),
                         **{c: float(p[c]) for c in ("x1", "y1", "x2", "y2")}})
    df = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    return df.astype({"track": "Int64"})


def write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


# ----------------------------------------------------------------------------------------------------- overlay


def score_colour(t: float) -> tuple[int, int, int]:
    """BGR from green (0) through yellow to red (1)."""
    t = float(np.clip(t, 0.0, 1.0))
    return (0, round(255 * min(1.0, 2 * (1 - t))), round(255 * min(1.0, 2 * t)))


class VideoSink:
    """H.264 in MP4 through PyAV (libx264), else VP9 (then VP8) in WebM through OpenCV; frames are BGR uint8.

    Written under a temporary name with the final suffix (both writers pick the container from it), renamed on
    ``close(ok=True)`` and removed otherwise.
    """

    def __init__(self, path_stem: Path, fps: float, width: int, height: int, threads: int = 1):
        self._av = self._cv = None
        errors = []
        self._open(path_stem, ".mp4")
        try:
            import av

            self._av = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "+faststart"})
            stream = self._av.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "26"}
            stream.codec_context.thread_count = max(1, threads)
            self._stream, self.codec = stream, "H.264 (libx264 through PyAV)"
            return
        # PyAV missing, or built without libx264: any failure means "try the next writer"
        except Exception as e:  # noqa: BLE001
            errors.append(f"PyAV H.264: {type(e).__name__}: {e}")
            if self._av is not None:
                self._av.close()
                self._av = None
            self._discard()
        for fourcc, name in (("VP90", "VP9"), ("VP80", "VP8")):
            self._open(path_stem, ".webm")
            w = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
            if w.isOpened():
                self._cv, self.codec = w, f"{name} in WebM (OpenCV)"
                log.warning("overlay: no H.264 writer (%s); writing %s", "; ".join(errors), self.codec)
                return
            self._discard()
            errors.append(f"OpenCV {name}: no writer")
        raise MgenetError(f"{path_stem}.mp4: no writer for a video codec browsers play ({'; '.join(errors)}); "
                          f"`pip install av` (its wheels include H.264), or pass --no-video.")

    def _open(self, stem: Path, suffix: str) -> None:
        self.path = stem.with_suffix(suffix)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}{suffix}")

    def _discard(self) -> None:
        self.tmp.unlink(missing_ok=True)

    def write(self, frame: np.ndarray) -> None:
        if self._av is not None:
            import av

            self._av.mux(self._stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        else:
            self._cv.write(frame)

    def close(self, ok: bool) -> None:
        try:
            if self._av is not None:
                if ok:
                    self._av.mux(self._stream.encode(None))
                self._av.close()
            elif self._cv is not None:
                self._cv.release()
        finally:
            if ok:
                os.replace(self.tmp, self.path)
            else:
                self._discard()


class Overlay:
    """Draws one output frame: the input frame with the people, and the score strip under it."""

    def __init__(self, width: int, height: int, smoothed: np.ndarray, fused: np.ndarray, threshold: float,
                 events: pd.DataFrame, colour_range: tuple[float, float]):
        self.w, self.h = width, height
        self.strip_h = max(64, height // 6)
        self.out_w, self.out_h = width + width % 2, height + self.strip_h + (height + self.strip_h) % 2
        self.lo, self.hi = colour_range
        self.thick = max(1, round(min(width, height) / 320))
        self.n = len(smoothed)
        self.in_event = np.zeros(self.n, bool)
        for s, e in events[["start", "end"]].drop_duplicates().itertuples(index=False):
            self.in_event[int(s):int(e) + 1] = True
        self.bar_w = 56
        self.x0, self.x1 = 8, self.out_w - self.bar_w - 8
        self.strip = self._strip(smoothed, fused, threshold)

    def _x(self, f: np.ndarray | int) -> np.ndarray:
        return self.x0 + (np.asarray(f, np.float64) / max(self.n - 1, 1)) * (self.x1 - self.x0)

    def _strip(self, smoothed: np.ndarray, fused: np.ndarray, threshold: float) -> np.ndarray:
        sh, top, bottom = self.strip_h, 6, self.strip_h - 14
        img = np.full((self.out_h - self.h, self.out_w, 3), 24, np.uint8)
        # scaled to the smoothed curve (the one events are read from); the unsmoothed one is clipped to it
        vals = smoothed[np.isfinite(smoothed)]
        lo, hi = (float(vals.min()), float(vals.max())) if len(vals) else (0.0, 1.0)
        if np.isfinite(threshold):
            lo, hi = min(lo, threshold), max(hi, threshold)
        hi = hi if hi > lo else lo + 1.0
        self._y = lambda v: (bottom - (np.asarray(v, np.float64) - lo) / (hi - lo) * (bottom - top))
        x = self._x(np.arange(self.n))
        for s in np.flatnonzero(np.diff(np.concatenate([[0], self.in_event.astype(np.int8), [0]])) == 1):
            e = s + np.argmin(self.in_event[s:]) if not self.in_event[s:].all() else self.n
            cv2.rectangle(img, (int(self._x(s)), top), (int(self._x(max(e - 1, s))) + 1, bottom), (40, 40, 120), -1)
        for curve, colour, t in ((fused, (110, 110, 110), 1), (smoothed, (255, 255, 255), 2)):
            ok = np.isfinite(curve)
            if ok.sum() >= 2:
                pts = np.stack([x[ok], self._y(np.clip(curve[ok], lo, hi))], 1).round().astype(np.int32)
                cv2.polylines(img, [pts], False, colour, t, cv2.LINE_AA)
        if np.isfinite(threshold):
            y = round(float(self._y(threshold)))
            for xs in range(self.x0, self.x1, 10):
                cv2.line(img, (xs, y), (min(xs + 5, self.x1), y), (60, 60, 230), 1)
        cv2.putText(img, "fused score (smoothed); dashed: event threshold", (self.x0, sh - 3),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, (200, 200, 200), 1, cv2.LINE_AA)
        # colour bar of the person colours
        bx0, by0, by1 = self.out_w - self.bar_w + 6, 6, sh - 14
        for y in range(by0, by1):
            cv2.line(img, (bx0, y), (bx0 + 10, y), score_colour(1 - (y - by0) / max(by1 - by0 - 1, 1)), 1)
        for y, v in ((by0 + 6, self.hi), (by1 - 1, self.lo)):
            cv2.putText(img, f"{v:.2g}", (bx0 + 13, y), cv2.FONT_HERSHEY_SIMPLEX, 0.32, (220, 220, 220), 1,
                        cv2.LINE_AA)
        cv2.putText(img, "person", (bx0 - 4, sh - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.32, (200, 200, 200), 1, cv2.LINE_AA)
        return img

    def person_colour(self, score: float) -> tuple[int, int, int]:
        if not np.isfinite(score):
            return GREY
        return score_colour((score - self.lo) / (self.hi - self.lo) if self.hi > self.lo else 0.5)

    def draw(self, frame: np.ndarray, f: int, people: Iterable[tuple[int, np.ndarray | None, np.ndarray, float]],
             score: float) -> np.ndarray:
        out = np.zeros((self.out_h, self.out_w, 3), np.uint8)
        out[:self.h, :self.w] = frame
        view = out[:self.h, :self.w]
        t = self.thick
        for tid, kp, box, s in people:
            col = self.person_colour(s)
            if kp is not None:  # None: a frame the person was missed in, inside a scored window
                pts = kp[:, :2].round().astype(np.int32)
                for a, b in COCO_EDGES:
                    if kp[a, 2] >= KEYPOINT_MIN and kp[b, 2] >= KEYPOINT_MIN:
                        cv2.line(view, tuple(pts[a]), tuple(pts[b]), col, t, cv2.LINE_AA)
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            cv2.rectangle(view, (x1, y1), (x2, y2), col, 1)
            label = f"{tid}" if not np.isfinite(s) else f"{tid}: {s:.2f}"
            cv2.putText(view, label, (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, col, 1, cv2.LINE_AA)
        if f < self.n and self.in_event[f]:
            cv2.rectangle(view, (0, 0), (self.w - 1, self.h - 1), (0, 0, 255), 3 * t)
            cv2.putText(view, "EVENT", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2, cv2.LINE_AA)
        out[self.h:] = self.strip
        x = round(float(self._x(min(f, self.n - 1))))
        cv2.line(out, (x, self.h + 2), (x, self.out_h - 12), (0, 200, 255), 1)
        if np.isfinite(score):
            cv2.circle(out, (x, self.h + round(float(self._y(score)))), 3, (0, 200, 255), -1, cv2.LINE_AA)
        cv2.putText(out, f"frame {f}", (self.x1 - 80, self.h + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (220, 220, 220),
                    1, cv2.LINE_AA)
        return out


def _people_by_frame(poses: PoseDict, persons: pd.DataFrame) -> dict[int, list[tuple[int, np.ndarray, np.ndarray,
                                                                                        float]]]:
    out: dict[int, list] = {}
    if not len(persons):
        return out
    fused = persons[FUSED].to_numpy(np.float64)
    boxes = persons[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    for i, (tid, f) in enumerate(zip(persons["track"].to_numpy(), persons["frame"].to_numpy())):
        out.setdefault(int(f), []).append((int(tid), poses[int(tid)].get(int(f)), boxes[i], fused[i]))
    return out


def write_overlay(frames_iter: Iterator[tuple[int, np.ndarray]], out_stem: Path, fps: float, width: int,
                  height: int, n_frames: int, poses: PoseDict, persons: pd.DataFrame, curve: np.ndarray,
                  fused: np.ndarray, threshold: float, events: pd.DataFrame, threads: int = 1) -> tuple[Path, str, int]:
    """Write the overlay video; returns its path, codec in words, and frames written."""
    scored = persons[FUSED].dropna() if len(persons) else pd.Series(dtype=np.float64)
    rng = (float(scored.min()), float(scored.max())) if len(scored) else (0.0, 1.0)
    ov = Overlay(width, height, np.asarray(curve, np.float64), np.asarray(fused, np.float64), threshold, events, rng)
    sink = VideoSink(out_stem, fps, ov.out_w, ov.out_h, threads)
    people = _people_by_frame(poses, persons)
    written, ok = 0, False
    try:
        for f, frame in frames_iter:
            if f >= n_frames:
                break
            sink.write(ov.draw(frame, f, people.get(f, ()), float(curve[f]) if f < len(curve) else np.nan))
            written += 1
        ok = True
    finally:
        sink.close(ok)
    return sink.path, sink.codec, written


# -------------------------------------------------------------------------------------------------------- page


def _svg_curve(curve: np.ndarray, threshold: float, events: pd.DataFrame, width: int = 960, height: int = 160) -> str:
    n = len(curve)
    ok = np.isfinite(curve)
    vals = curve[ok]
    lo, hi = (float(vals.min()), float(vals.max())) if len(vals) else (0.0, 1.0)
    if np.isfinite(threshold):
        lo, hi = min(lo, threshold), max(hi, threshold)
    hi = hi if hi > lo else lo + 1.0
    pad = 4

    def x(f: float) -> float:
        return pad + f / max(n - 1, 1) * (width - 2 * pad)

    def y(v: float) -> float:
        return height - pad - (v - lo) / (hi - lo) * (height - 2 * pad)

    parts = [(f'<svg id="curve" viewBox="0 0 {width} {height}" width="100%" height="{height}" '
             f'preserveAspectRatio="none" data-frames="{n}" role="img" aria-label="fused score per frame">'),
             f'<rect width="{width}" height="{height}" fill="#fafafa"/>']
    for s, e in events[["start", "end"]].drop_duplicates().itertuples(index=False):
        parts.append(f'<rect class="ev" x="{x(s):.1f}" y="0" width="{max(x(e) - x(s), 1.5):.1f}" height="{height}" '
                     f'fill="#f4b6b6"/>')
    pts = " ".join(f"{x(f):.1f},{y(v):.1f}" for f, v in zip(np.flatnonzero(ok), vals))
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#222" stroke-width="1.5" '
                 f'vector-effect="non-scaling-stroke"/>')
    if np.isfinite(threshold):
        parts.append(f'<line x1="0" x2="{width}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" stroke="#c00" '
                     f'stroke-dasharray="6 4" vector-effect="non-scaling-stroke"/>')
    parts.append(f'<line id="cursor" x1="{pad}" x2="{pad}" y1="0" y2="{height}" stroke="#0a7" stroke-width="2" '
                 f'vector-effect="non-scaling-stroke"/></svg>')
    return "\n".join(parts)


def write_page(path: Path, title: str, video_file: str | None, fps: float, curve: np.ndarray, threshold: Threshold,
               events: pd.DataFrame, summary: list[str]) -> None:
    """``index.html``: self-contained but for its sibling overlay video."""
    esc = html.escape
    rows = []
    for r in events.itertuples(index=False):
        person = "" if pd.isna(r.track) else f"{int(r.track)}"
        box = "" if pd.isna(r.track) else f"{r.x1:.0f}, {r.y1:.0f}, {r.x2:.0f}, {r.y2:.0f}"
        ts = "" if pd.isna(r.track) else f"{r.track_score:.3f}"
        rows.append(f'<tr data-frame="{r.start}"><td>{r.event}</td><td>{r.start}&ndash;{r.end}</td>'
                    f'<td>{r.start_s:.2f}&ndash;{r.end_s:.2f}</td><td>{r.peak_frame}</td><td>{r.peak_score:.3f}</td>'
                    f'<td>{person}</td><td>{ts}</td><td>{box}</td></tr>')
    table = ("<table id=\"events\"><thead><tr><th>event</th><th>frames</th><th>seconds</th><th>peak frame</th>"
             "<th>peak score</th><th>person</th><th>person score</th><th>box at peak (x1, y1, x2, y2)</th></tr>"
             "</thead><tbody>" + "\n".join(rows) + "</tbody></table>") if rows else \
        "<p id=\"events\">No event: the smoothed fused score never exceeds the threshold.</p>"
    kind = "video/mp4" if (video_file or "").endswith(".mp4") else "video/webm"
    video = (f'<video id="v" controls preload="auto" muted src="{esc(video_file)}" type="{kind}"></video>'
             if video_file else "<p>No overlay video (<code>--no-video</code>).</p>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; max-width: 1000px; }}
video {{ width: 100%; max-height: 62vh; object-fit: contain; background: #000; display: block; }}
table {{ border-collapse: collapse; margin-top: 8px; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: right; }}
tbody tr {{ cursor: pointer; }} tbody tr:hover {{ background: #fde; }}
#curve {{ cursor: crosshair; border: 1px solid #ccc; }}
.note {{ color: #555; font-size: 12px; }}
</style></head><body>
<h2>{esc(title)}</h2>
{video}
<h3>Fused anomaly score per frame</h3>
{_svg_curve(np.asarray(curve, np.float64), threshold.value, events)}
<p class="note">Black: the smoothed fused score; dashed red: the event threshold {threshold.value:.4g}
({esc(threshold.rule)}); shaded: events. Click the curve or an event to seek the video.</p>
<h3>Events</h3>
{table}
<p class="note">{"<br>".join(esc(s) for s in summary)}</p>
<script>
const fps = {json.dumps(float(fps))}, n = {len(curve)}, v = document.getElementById("v");
const svg = document.getElementById("curve"), cursor = document.getElementById("cursor");
const vb = svg.viewBox.baseVal;
function seek(frame) {{ if (v) {{ v.currentTime = (frame + 0.5) / fps; v.pause(); }} place(frame); }}
function place(frame) {{
  const x = 4 + frame / Math.max(n - 1, 1) * (vb.width - 8);
  cursor.setAttribute("x1", x); cursor.setAttribute("x2", x);
}}
document.querySelectorAll("#events tbody tr").forEach(tr =>
  tr.addEventListener("click", () => seek(parseInt(tr.dataset.frame))));
svg.addEventListener("click", ev => {{
  const r = svg.getBoundingClientRect();
  seek(Math.round((ev.clientX - r.left) / r.width * (n - 1)));
}});
if (v) v.addEventListener("timeupdate", () => place(Math.min(n - 1, Math.floor(v.currentTime * fps))));
</script>
</body></html>
"""
    with atomic_path(path) as tmp:
        tmp.write_text(page)
