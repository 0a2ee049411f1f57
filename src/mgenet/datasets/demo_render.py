"""People and scenes of the synthetic demo dataset: a gait model on the 17 COCO joints, and cv2 drawing.

A person is a stick-and-volume figure in its own body frame (forward, left, up; unit = standing height, feet on the
ground at the origin), posed by a few joint angles per frame (:data:`PARAMS`), turned to its heading and projected
orthographically with a slight downward camera tilt. :mod:`mgenet.datasets.demo` plans who does what when; this module
only turns actions into joint angles, joints into pixels, and pixels into pictures.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

# ------------------------------------------------------------------------------------------------------- actions

WALK, STAND, RUN, JUMP, JACKS, FIGHT, FALL, CARRY, RIDE = range(9)
ACTION_NAMES = ("walk", "stand", "run", "jump", "jacks", "fight", "fall", "carry", "ride")
# Cycle frequency (Hz) of each action's phase; walking and carrying use the person's own cadence.
ACTION_HZ = {STAND: 0.35, RUN: 1.45, JUMP: 1.6, JACKS: 1.3, FIGHT: 2.2, FALL: 0.4, RIDE: 0.8}
FALL_DOWN, GET_UP = 12, 18  # frames a fall takes, and getting up again

# Joint angles (radians) and offsets that pose the body; flexion is positive forward, knee/elbow flexion >= 0.
PARAMS = ("hip_l", "hip_r", "knee_l", "knee_r", "sh_l", "sh_r", "el_l", "el_r", "arm_abd", "leg_abd", "lean",
          "lift", "roll")
_P = {n: i for i, n in enumerate(PARAMS)}

# Body proportions in units of standing height: straight legs put the ankles 0.03 above the ground.
THIGH, SHIN, UPPER_ARM, FOREARM = 0.245, 0.245, 0.17, 0.16
HIP_HEIGHT, HIP_HALF, SHOULDER_HALF, SHOULDER_UP, HEAD_UP, HEAD_R = 0.52, 0.085, 0.115, 0.30, 0.40, 0.068
ANKLE_HEIGHT = 0.03
TILT = 0.25        # image y per unit of depth toward the camera: the camera looks slightly down
DEPTH_SCALE = 0.45  # image y per unit of ground motion toward the camera, relative to sideways motion
NEAR_HEIGHT = 0.375  # person height (px) per px of feet y: 90 px tall at the bottom of a 240 px frame
HEAD = 17           # index of the extra head-centre point after the 17 COCO joints


@dataclass(frozen=True)
class Style:
    """What makes one person look and move unlike another."""

    scale: float          # height relative to the average person at the same depth
    walk_hz: float        # gait cycles per second
    stride: float         # hip flexion amplitude when walking (rad)
    arm_swing: float      # shoulder flexion amplitude when walking (rad)
    walk_speed: float     # heights per second
    shirt: tuple[int, int, int]
    pants: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shoes: tuple[int, int, int]
    long_sleeves: bool
    phone: bool           # walks looking at a phone held in the right hand


_SKIN = ((140, 180, 230), (110, 150, 205), (80, 120, 170), (60, 90, 130), (120, 165, 220))
_HAIR = ((20, 20, 25), (30, 45, 70), (40, 70, 110), (120, 120, 125), (15, 30, 50))


def random_style(rng: np.random.Generator) -> Style:
    hue = rng.uniform(0, 180)
    shirt = cv2.cvtColor(np.uint8([[[hue, rng.uniform(90, 230), rng.uniform(90, 240)]]]), cv2.COLOR_HSV2BGR)[0, 0]
    dark = rng.uniform(30, 110)
    pants = np.clip(np.array([dark * rng.uniform(1.0, 1.6), dark, dark * rng.uniform(0.7, 1.1)]), 0, 255)
    stride, hz = rng.uniform(0.34, 0.44), rng.uniform(0.85, 1.05)
    return Style(
        scale=rng.uniform(0.9, 1.1), walk_hz=hz, stride=stride, arm_swing=rng.uniform(0.1, 0.4),
        # Speed roughly matches stride length x cadence, so feet barely slide.
        walk_speed=4 * (THIGH + SHIN) * np.sin(stride) * hz * rng.uniform(1.05, 1.2),
        shirt=tuple(int(c) for c in shirt), pants=tuple(int(c) for c in pants),
        skin=_SKIN[rng.integers(len(_SKIN))], hair=_HAIR[rng.integers(len(_HAIR))],
        shoes=(int(rng.uniform(10, 60)),) * 3, long_sleeves=bool(rng.random() < 0.5), phone=bool(rng.random() < 0.15))


# ------------------------------------------------------------------------------------------------- joint angles


def _q(n: int, **params: np.ndarray | float) -> np.ndarray:
    q = np.zeros((n, len(PARAMS)))
    for name, v in params.items():
        q[:, _P[name]] = v
    return q


def _walk(p: np.ndarray, st: Style) -> np.ndarray:
    a, s = st.stride, st.arm_swing
    # The knee flexes most early in the swing phase, i.e. just after the hip starts moving forward.
    kl = 0.08 + 0.65 * np.clip(np.cos(p - 0.4), 0, None) ** 1.5
    kr = 0.08 + 0.65 * np.clip(np.cos(p + np.pi - 0.4), 0, None) ** 1.5
    shl, shr = -s * np.sin(p), s * np.sin(p)  # arms swing against the same-side leg
    q = _q(len(p), hip_l=a * np.sin(p), hip_r=-a * np.sin(p), knee_l=kl, knee_r=kr, sh_l=shl, sh_r=shr,
           el_l=0.2 + 0.8 * np.clip(shl, 0, None), el_r=0.2 + 0.8 * np.clip(shr, 0, None), arm_abd=0.06, lean=0.05)
    if st.phone:
        q[:, _P["sh_r"]], q[:, _P["el_r"]] = 0.3, 1.3
    return q


def _stand(p: np.ndarray) -> np.ndarray:
    sway = np.sin(p)
    return _q(len(p), hip_l=0.04 + 0.02 * sway, hip_r=-0.02 + 0.02 * sway, knee_l=0.06, knee_r=0.05,
              sh_l=0.05 + 0.04 * sway, sh_r=0.05 - 0.04 * sway, el_l=0.25, el_r=0.25, arm_abd=0.08,
              lean=0.02 * np.sin(0.7 * p))


def _run(p: np.ndarray) -> np.ndarray:
    kl = 0.3 + 1.3 * np.clip(np.cos(p - 0.3), 0, None) ** 1.2
    kr = 0.3 + 1.3 * np.clip(np.cos(p + np.pi - 0.3), 0, None) ** 1.2
    return _q(len(p), hip_l=0.2 + 0.6 * np.sin(p), hip_r=0.2 - 0.6 * np.sin(p), knee_l=kl, knee_r=kr,
              sh_l=0.15 - 0.8 * np.sin(p), sh_r=0.15 + 0.8 * np.sin(p), el_l=1.45, el_r=1.45, arm_abd=0.1,
              lean=0.25, lift=0.06 * np.sin(p) ** 2)


def _jump(p: np.ndarray) -> np.ndarray:
    crouch = 0.5 * (1 + np.cos(p))          # 1: deepest crouch, 0: top of the hop
    up = np.clip(-np.cos(p), 0, None)       # airborne half of the cycle
    arms = -0.7 * crouch + 2.3 * (1 - crouch) ** 2
    return _q(len(p), hip_l=0.1 + crouch, hip_r=0.1 + crouch, knee_l=0.1 + 1.6 * crouch, knee_r=0.1 + 1.6 * crouch,
              sh_l=arms, sh_r=arms, el_l=0.3, el_r=0.3, arm_abd=0.1, lean=0.05 + 0.5 * crouch,
              lift=0.25 * up ** 1.3)


def _jacks(p: np.ndarray) -> np.ndarray:
    spread = 0.5 * (1 - np.cos(p))          # 0: feet together, arms down; 1: feet apart, arms overhead
    land = 0.5 * (1 + np.cos(2 * p))        # knees give a little on each landing
    return _q(len(p), hip_l=0.06 + 0.15 * land, hip_r=0.06 + 0.15 * land, knee_l=0.12 + 0.3 * land,
              knee_r=0.12 + 0.3 * land, el_l=0.1, el_r=0.1, arm_abd=0.12 + 2.75 * spread,
              leg_abd=0.04 + 0.27 * spread, lift=0.07 * np.abs(np.sin(p)))


def _fight(p: np.ndarray) -> np.ndarray:
    pl, pr = np.clip(np.sin(p), 0, None) ** 3, np.clip(-np.sin(p), 0, None) ** 3  # alternating punches
    bounce = 0.1 * np.sin(2 * p)
    return _q(len(p), hip_l=0.35, hip_r=-0.2, knee_l=0.35 + bounce, knee_r=0.3 + bounce,
              sh_l=1.05 + 0.5 * pl, sh_r=1.05 + 0.5 * pr, el_l=1.9 - 1.8 * pl, el_r=1.9 - 1.8 * pr, arm_abd=0.15,
              lean=0.15 + 0.08 * (pl + pr))


def _fall(p: np.ndarray, tau: np.ndarray, n: np.ndarray) -> np.ndarray:
    def smooth(x: np.ndarray) -> np.ndarray:
        x = np.clip(x, 0, 1)
        return x * x * (3 - 2 * x)

    down = smooth(tau / FALL_DOWN) * (1 - smooth((tau - (n - GET_UP)) / GET_UP))  # 0 upright .. 1 lying
    lying = _q(len(p), hip_l=0.3, hip_r=0.05, knee_l=0.7, knee_r=0.15, sh_l=0.4 + 0.1 * np.sin(p), sh_r=-0.2,
               el_l=0.6, el_r=0.3, arm_abd=0.5, leg_abd=0.1)
    q = (1 - down[:, None]) * _stand(p) + down[:, None] * lying
    moving = np.sin(np.pi * down)  # flailing arms and bent knees while going down or getting up
    for k in ("sh_l", "sh_r"):
        q[:, _P[k]] += 1.2 * moving
    for k in ("knee_l", "knee_r"):
        q[:, _P[k]] += 0.8 * moving
    q[:, _P["roll"]] = 1.45 * down
    return q


def _ride(p: np.ndarray) -> np.ndarray:
    # A kick scooter: the left foot stands on the deck, the right leg pushes off the ground once per cycle, hands on
    # the handlebar. The pushing leg moves like a walking leg, so the pose stays close to normal walking.
    kick = np.clip(np.cos(p + np.pi - 0.4), 0, None) ** 1.5
    return _q(len(p), hip_l=0.05 + 0.03 * np.sin(p), hip_r=-0.35 * np.sin(p), knee_l=0.12, knee_r=0.08 + 0.65 * kick,
              sh_l=0.25, sh_r=0.25, el_l=0.55, el_r=0.55, arm_abd=0.06, lean=0.06, lift=0.05)


def pose_params(action: np.ndarray, phase: np.ndarray, tau: np.ndarray, seg_len: np.ndarray,
                st: Style) -> np.ndarray:
    """Joint angles per frame.

    Args:
        action: (T,) action codes; phase: (T,) cycle phase (rad); tau: (T,) frames since the action began;
            seg_len: (T,) frames the action lasts.
    Returns:
        (T, len(PARAMS))
    """
    q = np.zeros((len(action), len(PARAMS)))
    for a in np.unique(action):
        m = action == a
        p = phase[m]
        if a in (WALK, CARRY):
            qa = _walk(p, st)
            if a == CARRY:  # the right hand holds the box by its top: the arm swings less
                qa[:, _P["sh_r"]] *= 0.5
        elif a == FALL:
            qa = _fall(p, tau[m], seg_len[m])
        else:
            qa = {STAND: _stand, RUN: _run, JUMP: _jump, JACKS: _jacks, FIGHT: _fight, RIDE: _ride}[int(a)](p)
        q[m] = qa
    return q


# ---------------------------------------------------------------------------------------------------- kinematics


def _limb(flex: np.ndarray, abd: np.ndarray, side: float) -> np.ndarray:
    """Unit direction (T, 3) in (forward, left, up) of a limb hanging down, flexed forward and abducted sideways."""
    return np.stack([np.sin(flex) * np.cos(abd), side * np.sin(abd), -np.cos(flex) * np.cos(abd)], -1)


def body_points(q: np.ndarray) -> np.ndarray:
    """17 COCO joints plus the head centre in the body frame, lowest ankle on the ground.

    Args:
        q: (T, len(PARAMS)) joint angles.
    Returns:
        (T, 18, 3) in (forward, left, up), heights.
    """
    t = len(q)
    g = {n: q[:, i] for n, i in _P.items()}
    pts = np.zeros((t, 18, 3))
    pelvis = np.zeros((t, 3))
    pelvis[:, 2] = HIP_HEIGHT
    spine = np.stack([np.sin(g["lean"]), np.zeros(t), np.cos(g["lean"])], -1)
    fwd = np.stack([np.cos(g["lean"]), np.zeros(t), -np.sin(g["lean"])], -1)  # the face's direction
    lat = np.array([0.0, 1.0, 0.0])
    neck, head = pelvis + SHOULDER_UP * spine, pelvis + HEAD_UP * spine
    for side, sh, el, wr, hp, kn, an in (("l", 5, 7, 9, 11, 13, 15), ("r", 6, 8, 10, 12, 14, 16)):
        s = 1.0 if side == "l" else -1.0
        hip_flex, sh_flex = g[f"hip_{side}"], g[f"sh_{side}"]
        pts[:, hp] = pelvis + s * HIP_HALF * lat
        pts[:, kn] = pts[:, hp] + THIGH * _limb(hip_flex, g["leg_abd"], s)
        pts[:, an] = pts[:, kn] + SHIN * _limb(hip_flex - g[f"knee_{side}"], g["leg_abd"], s)
        pts[:, sh] = neck + s * SHOULDER_HALF * lat
        pts[:, el] = pts[:, sh] + UPPER_ARM * _limb(sh_flex, g["arm_abd"], s)
        pts[:, wr] = pts[:, el] + FOREARM * _limb(sh_flex + g[f"el_{side}"], g["arm_abd"], s)
        pts[:, 1 if s > 0 else 2] = head + 0.045 * fwd + 0.02 * spine + s * 0.028 * lat   # eyes
        pts[:, 3 if s > 0 else 4] = head - 0.005 * fwd + 0.01 * spine + s * 0.06 * lat   # ears
    pts[:, 0] = head + 0.062 * fwd - 0.012 * spine
    pts[:, HEAD] = head
    ground = np.minimum(pts[:, 15, 2], pts[:, 16, 2])
    pts[..., 2] += (ANKLE_HEIGHT - ground + g["lift"])[:, None]
    return pts


def project(pts: np.ndarray, feet: np.ndarray, heading: np.ndarray, height_px: np.ndarray,
            roll: np.ndarray, roll_dir: float) -> tuple[np.ndarray, np.ndarray]:
    """Body-frame points to image pixels.

    Args:
        pts: (T, 18, 3) body-frame points; feet: (T, 2) image position of the body origin; heading: (T,) yaw, 0 =
            facing image right, pi/2 = facing the camera; height_px: (T,) standing height in pixels; roll: (T,)
            rotation in the image plane about the feet (falling), toward ``roll_dir`` (+1 right, -1 left).
    Returns:
        (T, 18, 2) pixels and (T, 18) depth toward the camera (larger = nearer).
    """
    c, s = np.cos(heading)[:, None], np.sin(heading)[:, None]
    x = pts[..., 0] * c + pts[..., 1] * s
    z = pts[..., 0] * s - pts[..., 1] * c
    dx = height_px[:, None] * x
    dy = height_px[:, None] * (-pts[..., 2] + TILT * z)
    a = (roll * roll_dir)[:, None]
    rx, ry = dx * np.cos(a) - dy * np.sin(a), dx * np.sin(a) + dy * np.cos(a)
    return np.stack([feet[:, None, 0] + rx, feet[:, None, 1] + ry], -1), z


# ------------------------------------------------------------------------------------------------------ drawing

_SHIFT = 4  # cv2 sub-pixel bits: smooth motion at low resolution
_ONE = 1 << _SHIFT


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))


def _line(img: np.ndarray, a: np.ndarray, b: np.ndarray, color: tuple, width: float) -> None:
    cv2.line(img, _pt(a), _pt(b), color, max(1, int(round(width))), cv2.LINE_AA, _SHIFT)


def _circle(img: np.ndarray, c: np.ndarray, r: float, color: tuple) -> None:
    cv2.circle(img, _pt(c), max(_ONE, int(round(r * _ONE))), color, -1, cv2.LINE_AA, _SHIFT)


def _poly(img: np.ndarray, pts: np.ndarray, color: tuple) -> None:
    cv2.fillConvexPoly(img, np.round(np.asarray(pts) * _ONE).astype(np.int32), color, cv2.LINE_AA, _SHIFT)


@functools.lru_cache(maxsize=4096)
def _shade(color: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(min(255, c * f)) for c in color)


_SIDES = ((5, 7, 9, 11, 13, 15, 19), (6, 8, 10, 12, 14, 16, 20))  # shoulder .. ankle, toe (an extra point)


def draw_person(img: np.ndarray, pts: np.ndarray, depth: np.ndarray, origin: np.ndarray, h: float, heading: float,
                st: Style, action: int, shadow: tuple[int, int, int]) -> None:
    """Draw one person (and the box or scooter that goes with its action) onto ``img`` in place.

    Args:
        pts: (18, 2) joints and head centre (px); depth: (18,) toward the camera; origin: feet point (px); h: height
            (px); heading: yaw (see :func:`project`).
    """
    fwd = np.array([np.cos(heading), TILT * np.sin(heading)])
    # Fixed-point coordinates once per person: 0-17 joints and head, 18 neck top, 19-20 toes.
    neck = (pts[5] + pts[6]) / 2
    extra = np.stack([neck + 0.5 * (pts[HEAD] - neck), pts[15] + 0.06 * h * fwd, pts[16] + 0.06 * h * fwd])
    ip = [tuple(p) for p in np.round(np.vstack([pts, extra]) * _ONE).astype(np.int64).tolist()]
    d = depth.tolist()

    def line(i: int, j: int, color: tuple, width: float) -> None:
        cv2.line(img, ip[i], ip[j], color, max(1, int(width + 0.5)), cv2.LINE_AA, _SHIFT)

    cv2.ellipse(img, _pt(origin), (int(0.22 * h * _ONE), int(0.05 * h * _ONE)), 0, 0, 360, shadow, -1,
                cv2.LINE_AA, _SHIFT)
    if action == RIDE:
        _draw_scooter(img, pts, origin, h, fwd)
    forearm = st.shirt if st.long_sleeves else st.skin
    items = []  # (depth, tie-break, part, shade): painter's algorithm, far parts first
    for k, (sh, el, wr, hp, kn, an, toe) in enumerate(_SIDES):
        f = 0.8 if d[hp] < d[_SIDES[1 - k][3]] else 1.0  # the far side is in shadow
        items.append(((d[hp] + d[kn] + d[an]) / 3, 0, _SIDES[k], f))
        items.append(((d[sh] + d[el] + d[wr]) / 3, 2, _SIDES[k], f))
    items.append(((d[5] + d[6] + d[11] + d[12]) / 4, 1, None, 1.0))
    items.sort(key=lambda it: (it[0], it[1]))
    for _, part, idx, f in items:
        if part == 0:
            sh, el, wr, hp, kn, an, toe = idx
            line(hp, kn, _shade(st.pants, f), 0.085 * h)
            line(kn, an, _shade(st.pants, f), 0.07 * h)
            line(an, toe, _shade(st.shoes, f), 0.045 * h)
        elif part == 2:
            sh, el, wr, hp, kn, an, toe = idx
            line(sh, el, _shade(st.shirt, f), 0.065 * h)
            line(el, wr, _shade(forearm, f), 0.05 * h)
            cv2.circle(img, ip[wr], max(_ONE, int(0.03 * h * _ONE)), _shade(st.skin, f), -1, cv2.LINE_AA, _SHIFT)
        else:
            line(11, 12, st.pants, 0.1 * h)
            cv2.fillConvexPoly(img, np.array([ip[5], ip[6], ip[12], ip[11]], np.int32), st.shirt, cv2.LINE_AA, _SHIFT)
            for a, b in ((5, 6), (6, 12), (12, 11), (11, 5)):
                line(a, b, st.shirt, 0.06 * h)
            line(18, HEAD, st.skin, 0.05 * h)
    _draw_head(img, pts[HEAD], h, heading, st)
    if action == CARRY:
        _draw_box(img, pts[10], h, fwd)


def _draw_head(img: np.ndarray, c: np.ndarray, h: float, heading: float, st: Style) -> None:
    _circle(img, c, HEAD_R * h, st.hair)
    toward = np.sin(heading)  # 1: facing the camera, -1: seen from behind
    if toward > -0.5:
        face = c + np.array([0.025 * h * np.cos(heading), 0.012 * h])
        _circle(img, face, (0.045 + 0.012 * max(toward, 0)) * h, st.skin)


def _draw_box(img: np.ndarray, hand: np.ndarray, h: float, fwd: np.ndarray) -> None:
    w, hb = 0.36 * h, 0.3 * h
    x0, y0 = hand[0] - w / 2 + 0.05 * h * np.sign(fwd[0] or 1), hand[1] - 0.03 * h
    corners = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + hb], [x0, y0 + hb]])
    _poly(img, corners, (60, 130, 185))
    cv2.polylines(img, [np.round(corners * _ONE).astype(np.int32)], True, (40, 85, 125), 1, cv2.LINE_AA, _SHIFT)
    _line(img, np.array([x0 + w / 2, y0]), np.array([x0 + w / 2, y0 + hb]), (150, 200, 220), 0.04 * h)


def _draw_scooter(img: np.ndarray, pts: np.ndarray, origin: np.ndarray, h: float, fwd: np.ndarray) -> None:
    d = fwd / (np.linalg.norm(fwd) + 1e-9)
    rear, front = origin - 0.25 * h * d, origin + 0.3 * h * d
    bar = (pts[9] + pts[10]) / 2
    _line(img, rear, front, (40, 40, 200), 0.05 * h)
    _line(img, front, bar, (170, 170, 170), 0.035 * h)
    _line(img, bar - np.array([0, 0.02 * h]), bar + np.array([0, 0.02 * h]), (30, 30, 30), 0.05 * h)
    for wheel in (rear, front):
        _circle(img, wheel + np.array([0, 0.02 * h]), 0.055 * h, (25, 25, 25))


# ------------------------------------------------------------------------------------------------------- scenes


@dataclass
class Scene:
    background: np.ndarray            # (H, W, 3) uint8 BGR
    paths: list[tuple[np.ndarray, np.ndarray]]  # walkways people tend to follow: (entry, exit) feet points
    shadow: tuple[int, int, int]


GROUND_TOP = 0.5  # feet never go above this fraction of the frame height
HORIZON = 0.24  # far side of the pavement: above every widened person crop (the scene's own verge below it shows at
# the top of the farthest people's crops in 0.2% of the default demo's person-frames)
PAVEMENT = np.array((150.0, 150.0, 145.0))  # the same pedestrian pavement in every scene
PATH = (172, 172, 166)  # its walkways


def make_scene(index: int, width: int, height: int, rng: np.random.Generator) -> Scene:
    """Background of scene ``index``: three styles (park, plaza, street), recoloured for indices beyond 3.

    An elevated camera over a pedestrian pavement that is the same in every scene; the scene's identity is its far
    side (sky, tree line, facades, a brick wall), above where people walk, plus a verge of its own along the horizon.
    So the crop around a person shows the same pavement in every scene and only the whole frame (the scene feature)
    tells the scenes apart: a behaviour's look does not depend on where it happens, which is what the scene-related
    anomalies (jumping jacks are normal in one scene only) need to be learnable from person crops.
    """
    W, H = width, height
    horizon = int(HORIZON * H)
    band = (horizon, horizon + int(0.04 * H))  # the scene's own verge (grass, kerb, road) between far side and pavement
    style = index % 3
    tint = rng.uniform(0.85, 1.15, 3) if index >= 3 else np.ones(3)
    verge = np.array([(70, 140, 85), (175, 180, 185), (95, 95, 100)][style], float) * tint
    sky = np.array([(235, 205, 160), (215, 200, 190), (225, 215, 200)][style], float) * tint
    img = np.empty((H, W, 3), np.float32)
    rows = np.linspace(0, 1, H)[:, None]
    img[:horizon] = (sky * (0.85 + 0.15 * rows[:horizon]))[:, None, :]
    img[horizon:] = PAVEMENT
    img[band[0]:band[1]] = verge
    noise = rng.normal(0, 7, (H - int(0.45 * H), W, 1))  # as many draws as when the far side was lower: the plans
    img[horizon:] += np.concatenate([noise[::-1], noise])[-(H - horizon):].astype(np.float32)  # and poses stay
    img = cv2.GaussianBlur(img, (3, 3), 0)

    paths = []
    for _ in range(2 + int(rng.integers(2))):
        y1, y2 = rng.uniform(0.55, 0.92, 2) * H
        a, b = np.array([-0.03 * W, y1]), np.array([1.03 * W, y2])
        paths.append((a, b) if rng.random() < 0.5 else (b, a))
    for a, b in paths:  # walkway widths follow the perspective (proportional to feet y)
        quad = np.array([a + [0, -0.06 * a[1]], b + [0, -0.06 * b[1]], b + [0, 0.06 * b[1]], a + [0, 0.06 * a[1]]])
        cv2.fillConvexPoly(img, np.round(quad).astype(np.int32), PATH, cv2.LINE_AA)

    def far(u: float, lo: float, hi: float) -> float:
        """A y on the verge for a draw u in [lo, hi] (the draws are the same as before the far side moved up)."""
        return band[0] + (u - lo) / (hi - lo) * (band[1] - band[0])

    if style == 0:  # park: tree line on the horizon, trees and benches on the verge
        for x in np.arange(-10, W + 20, 0.06 * W):
            r = rng.uniform(0.03, 0.055) * H
            cv2.circle(img, (int(x), int(horizon - 0.2 * r)), int(r), (40, 95 + rng.uniform(-15, 15), 45), -1)
        for _ in range(3):
            x, y = rng.uniform(0.05, 0.95) * W, far(rng.uniform(0.48, 0.6), 0.48, 0.6)
            s = NEAR_HEIGHT * y
            cv2.rectangle(img, (int(x - 0.05 * s), int(y - 0.8 * s)), (int(x + 0.05 * s), int(y)), (40, 60, 90), -1)
            cv2.circle(img, (int(x), int(y - 1.0 * s)), int(0.4 * s), (35, 110, 50), -1)
        for _ in range(2):
            x, y = rng.uniform(0.1, 0.9) * W, far(rng.uniform(0.5, 0.56), 0.5, 0.56)
            s = NEAR_HEIGHT * y
            cv2.rectangle(img, (int(x - 0.5 * s), int(y - 0.3 * s)), (int(x + 0.5 * s), int(y - 0.2 * s)),
                          (50, 90, 140), -1)
            cv2.rectangle(img, (int(x - 0.5 * s), int(y - 0.5 * s)), (int(x + 0.5 * s), int(y - 0.42 * s)),
                          (50, 90, 140), -1)
    elif style == 1:  # plaza: building facades with windows, planters on the kerb
        x = 0
        while x < W:
            w = int(rng.uniform(0.18, 0.35) * W)
            top = int(rng.uniform(0.05, 0.25) / 0.45 * horizon)
            color = rng.uniform(120, 210, 3)
            cv2.rectangle(img, (x, top), (x + w, horizon), color.tolist(), -1)
            for wy in range(top + 4, horizon - 5, max(6, H // 30)):
                for wx in range(x + 5, x + w - 6, max(9, W // 30)):
                    cv2.rectangle(img, (wx, wy), (wx + max(3, W // 80), wy + max(3, H // 70)), (110, 80, 60), -1)
            x += w + int(rng.uniform(0, 0.05) * W)
        for _ in range(2):
            x, y = rng.uniform(0.1, 0.9) * W, far(rng.uniform(0.5, 0.55), 0.5, 0.55)
            s = NEAR_HEIGHT * y
            cv2.rectangle(img, (int(x - 0.3 * s), int(y - 0.25 * s)), (int(x + 0.3 * s), int(y)), (90, 100, 110), -1)
            cv2.circle(img, (int(x), int(y - 0.35 * s)), int(0.3 * s), (40, 120, 60), -1)
    else:  # street: brick wall with doors behind the road, lamp posts
        wall_top = int(0.12 / 0.45 * horizon)
        cv2.rectangle(img, (0, wall_top), (W, horizon), (60, 75, 150), -1)
        for by in range(wall_top, horizon, max(3, H // 60)):
            cv2.line(img, (0, by), (W, by), (80, 95, 170), 1)
        for _ in range(3):
            dx = int(rng.uniform(0.05, 0.9) * W)
            cv2.rectangle(img, (dx, int(0.28 / 0.45 * horizon)), (dx + W // 20, horizon), (40, 40, 50), -1)
        cv2.line(img, (0, (band[0] + band[1]) // 2), (W, (band[0] + band[1]) // 2), (220, 230, 235), 1)
        rng.uniform(0.3, 0.6)  # (was the zebra crossing's position: keeps the random stream, so the plans stay)
        for _ in range(2):
            x = int(rng.uniform(0.05, 0.95) * W)
            cv2.line(img, (x, int(0.2 / 0.45 * horizon)), (x, band[1]), (60, 60, 60), max(1, W // 160))
            cv2.circle(img, (x, int(0.2 / 0.45 * horizon)), max(2, W // 80), (180, 230, 240), -1)
    bg = np.clip(img, 0, 255).astype(np.uint8)
    return Scene(background=bg, paths=paths, shadow=tuple(int(c) for c in np.clip(PAVEMENT * 0.55, 0, 255)))
