"""The demo's plan: every video's actors, their scripted behaviours and anomalous events, drawn from seeded random
streams before anything is rendered."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import uniform_filter1d

from mgenet.config import FromDict
from mgenet.datasets import demo_render as R

SUBTYPES = {"running": "motion", "jumping": "motion", "falling": "motion", "fighting": "motion",
            "carrying": "appearance", "riding": "appearance", "exercise": "scene"}
EVENT_MIN, EVENT_MAX, RUN_MAX = 40, 90, 60  # event lengths (frames); a run must fit inside the frame
EVENTS_PER_SUBTYPE = 2
SLOT_MARGIN = 8      # frames kept free at both ends of an event's time slot, so events never touch
JITTER = 0.015       # keypoint noise, fraction of person height
MISSED_JOINT = 0.02  # share of joints the "detector" misses (score < 0.1, position off)
MISSED_FRAME = 0.02  # share of a track's frames with no detection (isolated single frames)
BLEND = 4            # frames on each side of an action change over which joint angles are blended


@dataclass
class DemoConfig(FromDict):
    seed: int = 0
    n_scenes: int = 3
    train_videos_per_scene: int = 4
    test_videos_per_scene: int = 4
    val_videos_per_scene: int = 3
    frames: int = 240
    width: int = 320
    height: int = 240
    fps: int = 25
    people_min: int = 2
    people_max: int = 4

    def __post_init__(self) -> None:
        minimum = {"seed": 0, "n_scenes": 1, "train_videos_per_scene": 1, "test_videos_per_scene": 1,
                   "val_videos_per_scene": 0, "frames": 48, "width": 64, "height": 64, "fps": 1, "people_min": 1, "people_max": 1}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"demo config {f.name} must be an integer, got {v!r}")
            if v < minimum[f.name]:
                raise ValueError(f"demo config {f.name} must be >= {minimum[f.name]}, got {v}")
        if self.people_min > self.people_max:
            raise ValueError(f"demo config people_min ({self.people_min}) exceeds people_max ({self.people_max})")



def scene_id(index: int) -> str:
    return f"{index + 1:02d}"


SPLIT_STREAM = {"train": 0, "test": 1, "val": 2}  # the split's part of each video's random-stream key


def video_name(scene: int, split: str, k: int) -> str:
    if split == "val":
        return f"{scene_id(scene)}_v{k + 1:03d}"
    return f"{scene_id(scene)}_{k + 1:03d}" if split == "train" else f"{scene_id(scene)}_{k + 1:04d}"

# ------------------------------------------------------------------------------------------------------ planning


@dataclass
class Segment:
    """One thing an actor does for a while, from its anchor frame on."""

    action: int
    frames: int
    speed: float = 0.0           # heights per second along the actor's line
    direction: int = 1           # -1: back the way it came
    face: float | None = None    # yaw to turn to (pi/2 = the camera); None = along the direction of travel


@dataclass
class Track:
    feet: np.ndarray      # (T, 2) px
    height: np.ndarray    # (T,) px
    heading: np.ndarray   # (T,) yaw
    action: np.ndarray    # (T,) action codes
    present: np.ndarray   # (T,) bool: feet inside the frame
    points: np.ndarray | None = None  # (T, 18, 2) px: 17 COCO joints + head centre
    depth: np.ndarray | None = None   # (T, 18)


@dataclass
class Actor:
    """A person on a straight line: at ``anchor_t`` at ``start``, before it walking along ``u``, then ``script``,
    then walking on until the video ends."""

    style: R.Style
    start: np.ndarray
    u: np.ndarray
    anchor_t: int
    script: list[Segment]
    phase0: float
    pid: int = 0
    track: Track | None = None


@dataclass
class Event:
    start: int
    end: int  # inclusive
    subtype: str
    actors: list[Actor]

    @property
    def type(self) -> str:
        return SUBTYPES[self.subtype]


@dataclass
class VideoPlan:
    name: str
    split: str
    scene: int
    actors: list[Actor] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass
class DemoPlan:
    cfg: DemoConfig
    scenes: list[R.Scene]
    videos: list[VideoPlan]


def _timeline(a: Actor, t0: int, n: int) -> tuple[np.ndarray, ...]:
    """Per-frame action, frames into it, its length, speed, direction and facing for frames t0..n-1."""
    m = n - t0
    action = np.full(m, R.WALK)
    tau, seg_len = np.zeros(m), np.full(m, 1e9)
    speed, direction, face = np.full(m, a.style.walk_speed), np.ones(m), np.full(m, np.nan)
    cur = a.anchor_t
    tail = Segment(R.WALK, 1 << 30, a.style.walk_speed, a.script[-1].direction if a.script else 1)
    for seg in [*a.script, tail]:
        lo, hi = max(cur, t0) - t0, min(cur + seg.frames, n) - t0
        if hi > lo:
            action[lo:hi], seg_len[lo:hi] = seg.action, seg.frames
            speed[lo:hi], direction[lo:hi] = seg.speed, seg.direction
            tau[lo:hi] = np.arange(lo, hi) + t0 - cur
            face[lo:hi] = np.nan if seg.face is None else seg.face
        cur += seg.frames
        if cur >= n:
            break
    return action, tau, seg_len, speed, direction, face


def _simulate(a: Actor, width: int, height: int, fps: int, n: int, pose: bool = False) -> Track:
    """Integrate the actor's feet along its line (perspective: pixel speed grows with feet y) and, if ``pose``,
    pose its joints."""
    t0 = min(0, a.anchor_t)
    action, tau, seg_len, speed, direction, face = _timeline(a, t0, n)
    phi0 = np.arctan2(a.u[1] / R.DEPTH_SCALE, a.u[0])  # yaw of the line in the world
    fore = np.hypot(np.cos(phi0), R.DEPTH_SCALE * np.sin(phi0))  # foreshortening of motion in depth
    k = R.NEAR_HEIGHT * a.style.scale * fore / fps
    step = speed * direction * k  # px per frame per px of feet y
    ux, uy = float(a.u[0]), float(a.u[1])
    feet = np.zeros((n - t0, 2))
    i0 = a.anchor_t - t0
    x, y = float(a.start[0]), float(a.start[1])
    feet[i0] = x, y
    for i in range(i0, len(feet) - 1):
        d = step[i] * y
        x, y = x + d * ux, max(1.0, y + d * uy)
        feet[i + 1] = x, y
    x, y = float(a.start[0]), float(a.start[1])
    for i in range(i0 - 1, -1, -1):
        d = step[i] * y
        x, y = x - d * ux, max(1.0, y - d * uy)
        feet[i] = x, y
    heading = np.where(direction < 0, phi0 + np.pi, phi0)
    heading = np.unwrap(np.where(np.isnan(face), heading, face))
    h = R.NEAR_HEIGHT * a.style.scale * feet[:, 1]
    present = (feet[:, 0] >= 0) & (feet[:, 0] < width) & (feet[:, 1] >= 0) & (feet[:, 1] < height)
    s = slice(-t0, None)
    track = Track(feet[s], h[s], heading[s], action[s], present[s])
    if pose:
        hz = np.array([a.style.walk_hz if c in (R.WALK, R.CARRY) else R.ACTION_HZ[c]
                       for c in range(len(R.ACTION_NAMES))])
        phase = a.phase0 + np.cumsum(2 * np.pi * hz[action] / fps)
        q = R.pose_params(action, phase, tau, seg_len, a.style)
        # Blend joint angles and heading across action changes so nobody snaps from one pose to another.
        change = np.flatnonzero((np.diff(action) != 0) | (np.diff(direction) != 0) | (np.diff(np.isnan(face)) != 0))
        near = np.zeros(len(action), bool)
        for c in change:
            near[max(0, c - BLEND + 1):c + BLEND + 1] = True
        q[near] = uniform_filter1d(q, 2 * BLEND + 1, axis=0, mode="nearest")[near]
        heading[near] = uniform_filter1d(heading, 2 * BLEND + 1, mode="nearest")[near]
        track.heading = heading[s]
        roll_dir = 1.0 if a.u[0] >= 0 else -1.0  # fall forward along the walk
        pts, depth = R.project(R.body_points(q), feet, heading, h, q[:, R.PARAMS.index("roll")], roll_dir)
        track.points, track.depth = pts[s].astype(np.float32), depth[s].astype(np.float32)
    return track


@dataclass
class _Ctx:
    cfg: DemoConfig
    scene: R.Scene
    rng: np.random.Generator

    def sim(self, a: Actor, n: int | None = None) -> Track:
        c = self.cfg
        return _simulate(a, c.width, c.height, c.fps, n or c.frames)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _random_line(ctx: _Ctx, corner: float, use_paths: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit feet points just outside the frame: side to side, or (with probability ``corner``) between a
    side and the bottom edge, so every point between them is on the ground."""
    rng, W, H = ctx.rng, ctx.cfg.width, ctx.cfg.height
    if rng.random() < use_paths:
        a, b = ctx.scene.paths[rng.integers(len(ctx.scene.paths))]
        jitter = np.array([0.0, rng.uniform(-0.03, 0.03) * H])
        return a + jitter, b + jitter
    side = np.array([-0.04 * W if rng.random() < 0.5 else 1.04 * W, rng.uniform(0.55, 0.92) * H])
    if rng.random() < corner:
        other = np.array([rng.uniform(0.15, 0.85) * W, 1.04 * H])
    else:
        other = np.array([W - side[0], rng.uniform(0.55, 0.92) * H])
    return (side, other) if rng.random() < 0.5 else (other, side)


def _actor(ctx: _Ctx, start: np.ndarray, u: np.ndarray, anchor_t: int, script: list[Segment],
           style: R.Style | None = None) -> Actor:
    style = style or R.random_style(ctx.rng)
    return Actor(style, np.asarray(start, float), _unit(np.asarray(u, float)), anchor_t, script,
                 float(ctx.rng.uniform(0, 2 * np.pi)))


def _in_place(ctx: _Ctx, action: int, start: int, frames: int, margin: float = 0.5) -> Actor:
    """Someone who walks to a spot, does ``action`` there from ``start`` for ``frames`` frames, and walks on."""
    rng, W, H = ctx.rng, ctx.cfg.width, ctx.cfg.height
    style = R.random_style(rng)
    y = rng.uniform(0.58, 0.9) * H
    h = R.NEAR_HEIGHT * y * style.scale
    pad = min(margin * h, 0.4 * W)
    x = rng.uniform(pad, W - pad)
    tilt = rng.uniform(-1, 1) * min(0.15, np.arctan((y - R.GROUND_TOP * H) / W))  # stay on the ground
    u = np.array([np.cos(tilt) * rng.choice([-1, 1]), np.sin(tilt)])
    face = np.pi / 2 if action == R.JACKS else None  # jumping jacks face the camera: side-on they hide the spread
    return _actor(ctx, [x, y], u, start, [Segment(action, frames, face=face)], style)


def _runner(ctx: _Ctx, start: int, frames: int) -> Actor:
    rng, W, H = ctx.rng, ctx.cfg.width, ctx.cfg.height
    style = R.random_style(rng)
    # Pick a depth where a run of at least 1.5 heights/s (about twice walking) over `frames` frames stays in view.
    y_fit = 0.85 * W * ctx.cfg.fps / (frames * 1.5 * R.NEAR_HEIGHT * style.scale)
    y = rng.uniform(0.55, max(0.56, min(0.9, y_fit / H))) * H
    sign = rng.choice([-1.0, 1.0])
    tilt = rng.uniform(-0.05, 0.05)
    h_max = R.NEAR_HEIGHT * style.scale * (y + 0.85 * W * abs(np.tan(tilt)))
    speed = min(2.1, 0.85 * W * ctx.cfg.fps / (frames * h_max))
    x = 0.05 * W if sign > 0 else 0.95 * W
    return _actor(ctx, [x, y], [sign * np.cos(tilt), np.sin(tilt)], start, [Segment(R.RUN, frames, speed)], style)


def _fighters(ctx: _Ctx, start: int, frames: int) -> list[Actor]:
    rng, W, H = ctx.rng, ctx.cfg.width, ctx.cfg.height
    y = rng.uniform(0.58, 0.88) * H
    centre = np.array([rng.uniform(0.3, 0.7) * W, y])
    u = _unit(np.array([1.0, rng.uniform(-0.05, 0.05)]))
    gap = 0.3 * R.NEAR_HEIGHT * y  # within punching reach
    out = []
    for sign in (-1.0, 1.0):  # they came from opposite sides, face each other, and go back where they came from
        style = R.random_style(rng)
        script = [Segment(R.FIGHT, frames), Segment(R.WALK, 1 << 20, style.walk_speed, -1)]
        out.append(_actor(ctx, centre + sign * gap / 2 * u, -sign * u, start, script, style))
    return out


def _crosser(ctx: _Ctx, action: int, lo: int, hi: int, slot: tuple[int, int]) -> tuple[Actor, int, int]:
    """Someone who does ``action`` all the time it is in view, in view for lo..hi frames inside ``slot``."""
    style = R.random_style(ctx.rng)
    speed = style.walk_speed * (1.0 if action == R.CARRY else 1.15)
    best: tuple[int, Actor, int, int] | None = None
    for _ in range(100):
        a, b = _random_line(ctx, corner=0.8 if action == R.CARRY else 0.4)
        if abs(_unit(b - a)[1]) > 0.35:  # steep lines are rare among normal walkers: the path would give it away
            continue
        actor = _actor(ctx, a, b - a, 0, [Segment(action, 1 << 20, speed)], style)
        present = ctx.sim(actor, n=1000).present
        idx = np.flatnonzero(present)
        if len(idx) == 0 or idx[-1] - idx[0] + 1 != len(idx):
            continue
        miss = max(lo - len(idx), len(idx) - hi, 0)
        if best is None or miss < best[0]:
            best = (miss, actor, int(idx[0]), len(idx))
        if miss == 0:
            break
    if best is None:
        raise RuntimeError("demo generator: found no line across the frame")
    _, actor, first, dur = best
    s_lo, s_hi = slot[0] + SLOT_MARGIN, slot[1] - SLOT_MARGIN - dur
    if s_hi < s_lo:  # tiny configs: fall back to anywhere in the video
        s_lo, s_hi = 0, max(0, ctx.cfg.frames - dur)
    t = int(ctx.rng.integers(s_lo, s_hi + 1))
    actor.anchor_t = t - first
    return actor, t, min(t + dur, ctx.cfg.frames) - 1


def _walker(ctx: _Ctx, t: int, initial: bool) -> Actor:
    """A normal passer-by entering at frame ``t`` (or already in view at frame 0); some stop and stand a while."""
    rng, cfg = ctx.rng, ctx.cfg
    style = R.random_style(rng)
    a, b = _random_line(ctx, corner=0.35, use_paths=0.5)
    start = a + rng.uniform(0.1, 0.85) * (b - a) if initial else a
    script: list[Segment] = []
    if rng.random() < 0.3:
        px_per_frame = style.walk_speed * R.NEAR_HEIGHT * style.scale * (a[1] + b[1]) / 2 / cfg.fps
        crossing = np.linalg.norm(b - a) / px_per_frame
        walk = 0 if initial and rng.random() < 0.5 else int(rng.uniform(0.25, 0.6) * crossing)
        face = np.pi / 2 if rng.random() < 0.4 else None
        script = [Segment(R.WALK, walk, style.walk_speed), Segment(R.STAND, int(rng.integers(30, 121)), face=face)]
    return _actor(ctx, start, b - a, 0 if initial else t, script, style)


def _populate(ctx: _Ctx, actors: list[Actor]) -> None:
    """Add passers-by so that people_min..people_max people are in view, changing the target every few seconds."""
    rng, cfg, n = ctx.rng, ctx.cfg, ctx.cfg.frames
    count = np.zeros(n, int)
    for a in actors:
        count += a.track.present
    target = np.zeros(n, int)
    t = 0
    while t < n:
        span = int(rng.integers(2 * cfg.fps, 5 * cfg.fps))
        target[t:t + span] = rng.integers(cfg.people_min, cfg.people_max + 1)
        t += span
    for t in range(n):
        for _ in range(3 * cfg.people_max if t == 0 else 3):
            if count[t] >= target[t]:
                break
            a = _walker(ctx, 0, initial=t == 0)
            if t:  # time the entrance so that the newcomer is in view from frame t on
                a.anchor_t = t - int(np.argmax(ctx.sim(a).present))
            a.track = ctx.sim(a)
            if a.track.present.any() and (count + a.track.present).max() <= cfg.people_max:
                actors.append(a)
                count += a.track.present


def plan_schedule(cfg: DemoConfig, split: str = "test") -> dict[str, list[str]]:
    """Anomaly subtypes of every test (or validation) video, in time order; no rendering, no simulation.

    Some videos stay fully normal; "exercise" never goes to the last scene (where it is normal). With the default
    config every subtype occurs exactly ``EVENTS_PER_SUBTYPE`` times in each split. The validation schedule has its
    own random stream: the test split's is the same with or without validation videos.
    """
    rng = np.random.default_rng([cfg.seed, 3] if split == "test" else [cfg.seed, 3, SPLIT_STREAM[split]])
    per_scene = cfg.test_videos_per_scene if split == "test" else cfg.val_videos_per_scene
    tests = [(s, k) for s in range(cfg.n_scenes) for k in range(per_scene)]
    order = [int(i) for i in rng.permutation(len(tests))]
    active = order[len(tests) // 5:]  # the first fifth of the shuffled videos stay normal
    cap = 2 if cfg.frames >= 2 * (EVENT_MIN + 2 * SLOT_MARGIN) else 1
    reps = EVENTS_PER_SUBTYPE if cap * len(active) >= EVENTS_PER_SUBTYPE * len(SUBTYPES) else 1
    others = [s for s in SUBTYPES if s != "exercise"]
    queue = ["exercise"] * reps + [others[i] for i in rng.permutation(len(others) * reps) % len(others)]
    slots: dict[int, list[str]] = {i: [] for i in order}
    for sub in queue:
        pool = [i for i in active if len(slots[i]) < cap
                and (sub != "exercise" or tests[i][0] != cfg.n_scenes - 1)]
        if pool:
            slots[min(pool, key=lambda i: len(slots[i]))].append(sub)
    out = {}
    for i, (s, k) in enumerate(tests):
        subs = slots[i]
        out[video_name(s, split, k)] = [subs[j] for j in rng.permutation(len(subs))]
    return out


def _plan_video(cfg: DemoConfig, scene: R.Scene, scene_idx: int, split: str, k: int,
                subtypes: list[str]) -> VideoPlan:
    rng = np.random.default_rng([cfg.seed, 1, scene_idx, SPLIT_STREAM[split], k])
    ctx = _Ctx(cfg, scene, rng)
    plan = VideoPlan(video_name(scene_idx, split, k), split, scene_idx)
    n = cfg.frames
    for j, sub in enumerate(subtypes):
        slot = (j * n // len(subtypes), (j + 1) * n // len(subtypes))
        room = slot[1] - slot[0] - 2 * SLOT_MARGIN
        hi = max(1, min(RUN_MAX if sub == "running" else EVENT_MAX, room))
        lo = min(EVENT_MIN, hi)
        if sub in ("carrying", "riding"):
            actor, start, end = _crosser(ctx, R.CARRY if sub == "carrying" else R.RIDE, lo, hi, slot)
            new = [actor]
        else:
            dur = int(rng.integers(lo, hi + 1))
            first = slot[0] + SLOT_MARGIN
            start = int(rng.integers(first, max(first, slot[1] - SLOT_MARGIN - dur) + 1))
            dur = min(dur, n - start)
            end = start + dur - 1
            if sub == "running":
                new = [_runner(ctx, start, dur)]
            elif sub == "fighting":
                new = _fighters(ctx, start, dur)
            else:
                action = {"jumping": R.JUMP, "falling": R.FALL, "exercise": R.JACKS}[sub]
                new = [_in_place(ctx, action, start, dur, margin=1.3 if sub == "falling" else 0.5)]
        plan.actors += new
        plan.events.append(Event(start, end, sub, new))
    for a in plan.actors:
        a.track = ctx.sim(a)
    if scene_idx == cfg.n_scenes - 1:
        # Exercise is part of normal life here, in training and test videos alike, and common enough that a model
        # blind to the scene (the pose flow, S_mo) learns it as normal: only the scene makes it an anomaly elsewhere.
        count = sum((a.track.present.astype(int) for a in plan.actors), np.zeros(n, int))
        bouts = 2 + int(rng.random() < 0.5) if split == "train" else 1 + int(rng.random() < 0.5)
        for _ in range(bouts):
            dur = int(rng.integers(min(2 * EVENT_MIN, n // 2), n + 1))
            a = _in_place(ctx, R.JACKS, int(rng.integers(0, n - dur + 1)), dur)
            a.track = ctx.sim(a)
            if (count + a.track.present).max() <= cfg.people_max:
                plan.actors.append(a)
                count += a.track.present
    _populate(ctx, plan.actors)
    plan.actors = [a for a in plan.actors if a.track.present.any()]
    plan.actors.sort(key=lambda a: int(np.argmax(a.track.present)))
    for pid, a in enumerate(plan.actors, start=1):
        a.pid = pid
        a.track = _simulate(a, cfg.width, cfg.height, cfg.fps, n, pose=True)
    return plan


def plan_dataset(cfg: DemoConfig) -> DemoPlan:
    """Everything about the dataset except pixels and pose noise: scenes, people, their joints, the anomalies."""
    scenes = [R.make_scene(s, cfg.width, cfg.height, np.random.default_rng([cfg.seed, 0, s]))
              for s in range(cfg.n_scenes)]
    schedule = {**plan_schedule(cfg, "test"), **plan_schedule(cfg, "val")}
    videos = []
    for s in range(cfg.n_scenes):
        for k in range(cfg.train_videos_per_scene):
            videos.append(_plan_video(cfg, scenes[s], s, "train", k, []))
        for k in range(cfg.test_videos_per_scene):
            videos.append(_plan_video(cfg, scenes[s], s, "test", k, schedule[video_name(s, "test", k)]))
    # after every train and test video: their indices (and pose-noise streams) are the same with or without val
    for s in range(cfg.n_scenes):
        for k in range(cfg.val_videos_per_scene):
            videos.append(_plan_video(cfg, scenes[s], s, "val", k, schedule[video_name(s, "val", k)]))
    return DemoPlan(cfg, scenes, videos)


