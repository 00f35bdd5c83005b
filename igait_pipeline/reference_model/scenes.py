"""Synthetic scenes as stage 2's detector would report them: a child walking toward, away from or across a phone
camera, with or without a parent, on every frame of the video.

THIS IS A SIMULATION (issue 16, item 2). The walkers' bodies come from the gait model of `synthetic.py`
(`simulate_gait`, `sample_params`, the joint-angle templates); this module adds what a phone recording in a
corridor adds to them:

* a **phone camera**: 0.8–1.3 m above the floor, held roughly level (pitch −10°..+5°, roll ±3°), portrait
  1080×1920 or landscape 1920×1080, a main camera's field of view (65–75° on the long side), perspective
  projection (`PhoneCamera`, which unlike `synthetic.Camera` can pitch and roll);
* a **path** in the room: toward the camera from ~7 m to ~2 m or away from ~2 m to ~7 m with a slight lateral
  drift (front), or across the field at 2.5–5 m (side); optionally standing still for 1–2 s first (sway only) and
  turning round at the end to walk back a little;
* **other people**: a parent standing at the side (or in the back, side view) or walking beside the child at the
  child's speed with an adult's longer, slower stride (100–115 steps/min);
* **detector realism** (BlazePose run on still frames, as `pose.detect_people` does): landmark jitter as
  `synthetic._keypoints` (white + slow wobble, a share of leg length in pixels), lower and wandering visibility on
  the far side in side views, low visibility for landmarks outside the frame or hidden behind a nearer person,
  missed detections (5–10 % of frames, more for people under ~120 px tall), nobody under ~60 px tall, and only
  the nearer person where two overlap heavily (IoU > 0.5).

`render(spec)` gives a `Scene`: `frames` [(t, [Person, …])] on every frame (people in random order), `ids` (who
each Person is: "child" or "parent"), and `truth`. `front_grid`, `side_grid` and `negative_grid` enumerate the
test grid; `judge(scene)` runs stage 2's pure analysis on it and says whether its verdicts are right.

World coordinates: metres, X forward from the camera, Y to the camera's left, Z up; the camera stands at X = 0.
No Dagster import here.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from igait_pipeline.reference_model.synthetic import (
    TEMPLATES,
    WalkerParams,
    _body,
    _jitter,
    sample_params,
    simulate_gait,
    stride_length,
)
from igait_pipeline.schemas import LANDMARK_NAMES, LM
from igait_pipeline.stages.pose import Person, _iou, box_of

FPS = 30.0
PORTRAIT = (1080, 1920)
LANDSCAPE = (1920, 1080)
HIPS = [LM["left_hip"], LM["right_hip"]]
FEET = [LM[f"{s}_{p}"] for s in ("left", "right") for p in ("heel", "foot_index")]
_LEFT = np.array([n.startswith("left_") for n in LANDMARK_NAMES])
_RIGHT = np.array([n.startswith("right_") for n in LANDMARK_NAMES])


@dataclass(frozen=True)
class DetectorModel:
    """How the simulated detector behaves (the values are the brief's, not measured on BlazePose)."""

    noise: tuple[float, float] = (0.006, 0.02)  # landmark jitter, share of leg length (synthetic._keypoints)
    miss: tuple[float, float] = (0.05, 0.10)  # per person and scene: share of frames the person is missed on
    small_px: float = 120.0  # people shorter than this (visible part, pixels) are missed more often…
    small_miss: float = 0.4  # …up to this much more, at min_px
    min_px: float = 60.0  # nobody shorter than this is found at all
    occlusion_iou: float = 0.5  # a person overlapping a nearer one more than this is not found
    hidden_visibility: tuple[float, float] = (0.45, 1.0)  # factor on landmarks inside a nearer person's box
    look_min_iou: float = 0.3  # Scene.look: the detection overlapping the asked box at least this much


DETECTOR = DetectorModel()


# ---------- camera ----------

@dataclass
class PhoneCamera:
    """A pinhole camera at `pos` looking along `yaw` (radians, 0 = +X) tilted by `pitch` (up +) and `roll`
    (clockwise in the image +). Pixel coordinates: u right, v down."""

    pos: np.ndarray
    f: float
    width: int
    height: int
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    @classmethod
    def phone(cls, height_m: float, width: int, height: int, fov_deg: float, pitch_deg: float = 0.0,
              roll_deg: float = 0.0, lateral_m: float = 0.0, yaw_deg: float = 0.0) -> PhoneCamera:
        """A phone held at `height_m`: focal length from the field of view on the long side."""
        f = max(width, height) / 2 / np.tan(np.radians(fov_deg) / 2)
        return cls(np.array([0.0, lateral_m, height_m]), float(f), width, height, np.radians(yaw_deg),
                   np.radians(pitch_deg), np.radians(roll_deg))

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forward, right, down) unit vectors in world coordinates."""
        cy, sy, cp, sp = np.cos(self.yaw), np.sin(self.yaw), np.cos(self.pitch), np.sin(self.pitch)
        fwd = np.array([cy * cp, sy * cp, sp])
        right0 = np.array([sy, -cy, 0.0])
        down0 = np.cross(fwd, right0)
        cr, sr = np.cos(self.roll), np.sin(self.roll)
        return fwd, cr * right0 - sr * down0, sr * right0 + cr * down0

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (…, 2) and depth along the optical axis (…) of world points (…, 3)."""
        fwd, right, down = self.axes()
        rel = pts - self.pos
        depth = rel @ fwd
        d = np.maximum(depth, 1e-3)
        u = self.width / 2 + self.f * (rel @ right) / d
        v = self.height / 2 + self.f * (rel @ down) / d
        return np.stack([u, v], axis=-1), depth


# ---------- bodies in motion ----------

def child_params(rng: np.random.Generator, height_m: float, cadence: float) -> WalkerParams:
    """A typically developing child from `sample_params` with the given height and cadence (steps/min): stride time
    120/cadence s; age from height (the simulator's growth curve); everything else as sampled."""
    p = sample_params(rng, 0)
    age = float(np.clip((height_m - 0.77) / 0.061, 2.5, 14))
    return replace(p, height_m=float(height_m), age=round(age, 1), weight_kg=round(16.2 * height_m ** 2, 1),
                   stride_time_s=120.0 / cadence)


def adult_params(rng: np.random.Generator, height_m: float, cadence: float, speed: float | None = None
                 ) -> WalkerParams:
    """An adult (the parent) at `cadence`; with `speed`, the hip range is scaled so the stride covers the speed at
    that cadence (walking beside a child: slower steps, longer strides)."""
    p = replace(sample_params(rng, 0), height_m=float(height_m), age=35.0, weight_kg=round(23 * height_m ** 2, 1),
                stride_time_s=120.0 / cadence, asymmetry=0.0, base_ratio=1.0)
    if speed is not None:
        for _ in range(3):
            want = speed * p.stride_time_s
            p = replace(p, hip_rom=float(np.clip(p.hip_rom * want / stride_length(p), 0.5, 1.6)))
    return p


def standing_pose(p: WalkerParams) -> np.ndarray:
    """Standing with both feet side by side, knees almost straight, arms hanging: (33, 3), pelvis at X = Y = 0,
    lowest foot point on the floor (Z = 0). Built from the gait model's body at a fixed phase with no joint range."""
    q = replace(p, hip_rom=0.0, knee_rom=0.0, hip_offset_deg=-float(TEMPLATES["hip_flex"].mean()),
                knee_offset_deg=3.0 - float(TEMPLATES["knee_flex"].min()), arm_swing_deg=0.0,
                ankle_offset_deg=0.0, trunk_lean_deg=float(np.clip(p.trunk_lean_deg, -2, 3)))
    ones = {f: {j: np.ones(2) for j in ("hip", "knee")} for f in ("left", "right")}
    hs = {"left": np.array([0.0, 1.0]), "right": np.array([0.0, 1.0])}
    pts, _ = _body(q, np.zeros(1), hs, ones)
    pts = pts[0]
    pts[:, 2] -= pts[FEET, 2].min()
    return pts


def _smooth_noise(rng: np.random.Generator, n: int, fps: float, seconds: float) -> np.ndarray:
    """Unit-SD noise smoothed over about `seconds`."""
    r = max(1, int(seconds * fps))
    k = np.exp(-0.5 * (np.arange(-3 * r, 3 * r + 1) / r) ** 2)
    x = np.convolve(rng.standard_normal(n + 6 * r), k, mode="same")[3 * r:3 * r + n]
    return x / (x.std() + 1e-12)


def _sway(rng: np.random.Generator, n: int, fps: float, height_m: float, shifts: bool = True) -> np.ndarray:
    """A standing person's pelvis displacement (n, 2): slow sway (AP ~0.6 %, ML ~0.8 % of height) plus, with
    `shifts`, weight shifts from foot to foot every 1.5–3.5 s (±1.5 % of height, over half a second)."""
    out = np.stack([0.006 * height_m * _smooth_noise(rng, n, fps, 0.5),
                    0.008 * height_m * _smooth_noise(rng, n, fps, 0.4)], axis=-1)
    if shifts:
        t = np.arange(n) / fps
        level, k = np.zeros(n), 0.0
        while k < t[-1] if n else False:
            k += rng.uniform(1.5, 3.5)
            level += rng.uniform(-1, 1) * 0.015 * height_m * (1 / (1 + np.exp(-(t - k) / 0.12)))
        out[:, 1] += level - level.mean()
    return out


def _apply_sway(local: np.ndarray, sway: np.ndarray) -> np.ndarray:
    """Move the body over its feet (an inverted pendulum): points shift in proportion to their height over the
    hips' height, the feet stay."""
    hip_z = np.maximum(local[:, HIPS, 2].mean(axis=1, keepdims=True), 1e-3)
    w = np.clip(local[..., 2] / hip_z, 0.0, 2.0)[..., None]
    out = local.copy()
    out[..., :2] += w * sway[:, None, :]
    return out


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class Motion:
    """One person's body over the clip: local points (n, 33, 3) (pelvis-relative in X / Y, floor at Z = 0, facing
    +X), heading (n,) radians and floor position (n, 2) in the world, and whether the legs walk (n,)."""

    local: np.ndarray
    heading: np.ndarray
    position: np.ndarray
    walking: np.ndarray

    def world(self) -> np.ndarray:
        c, s = np.cos(self.heading)[:, None], np.sin(self.heading)[:, None]
        x, y = self.local[..., 0], self.local[..., 1]
        out = np.empty_like(self.local)
        out[..., 0] = self.position[:, None, 0] + c * x - s * y
        out[..., 1] = self.position[:, None, 1] + s * x + c * y
        out[..., 2] = self.local[..., 2]
        return out


def walk_motion(p: WalkerParams, rng: np.random.Generator, t: np.ndarray, fps: float, start: np.ndarray,
                heading: float, walk_from: float, walk_s: float, turn_s: float = 0.0, back_s: float = 0.0,
                turn_sign: float = 1.0, speed_of: np.ndarray | None = None, in_place: bool = False) -> Motion:
    """Stand (sway, weight shifts) until `walk_from`, walk `walk_s` seconds along `heading` (blending from the
    standing pose over 0.4 s), then optionally turn round over `turn_s` (stepping, barely moving) and walk back
    `back_s` s; after that, stand. `speed_of` (n,) imposes the floor speed (a parent keeping pace with the child);
    `in_place` steps without moving (marching on the spot)."""
    n = len(t)
    stand = standing_pose(p)
    moving_s = walk_s + turn_s + back_s
    g = simulate_gait(p, rng, moving_s + 1.0, fps)
    gx = g.points[:, HIPS, 0].mean(axis=1)
    glocal = g.points.copy()
    glocal[..., 0] -= gx[:, None]
    gspeed = np.gradient(gx) * fps
    tau = t - walk_from
    idx = np.clip(np.round(tau * fps).astype(int), 0, len(g.t) - 1)
    blend_in = _smoothstep(tau / 0.4)
    blend_out = 1 - _smoothstep((tau - moving_s) / 0.4)
    a = np.minimum(blend_in, blend_out)  # 0 standing, 1 walking
    sway = _sway(rng, n, fps, p.height_m)
    local = (1 - a)[:, None, None] * _apply_sway(np.broadcast_to(stand, (n, 33, 3)), sway) \
        + a[:, None, None] * glocal[idx]
    head = np.full(n, float(heading))
    if turn_s > 0:
        head += turn_sign * np.pi * _smoothstep((tau - walk_s) / turn_s)
    if speed_of is not None:
        v = speed_of
    else:
        v = gspeed[idx] * a
        if turn_s > 0:
            turning = (tau > walk_s) & (tau < walk_s + turn_s)
            v = np.where(turning, 0.15 * v, v)
    if in_place:
        v = np.zeros(n)
    step = v[:, None] * np.stack([np.cos(head), np.sin(head)], axis=-1) / fps
    pos = start[None, :] + np.concatenate([np.zeros((1, 2)), np.cumsum(step[:-1], axis=0)])
    return Motion(local, head, pos, a > 0.5)


def stand_motion(p: WalkerParams, rng: np.random.Generator, t: np.ndarray, fps: float, position: np.ndarray,
                 heading: float, shifts: bool = True) -> Motion:
    n = len(t)
    local = _apply_sway(np.broadcast_to(standing_pose(p), (n, 33, 3)), _sway(rng, n, fps, p.height_m, shifts))
    return Motion(local, np.full(n, heading), np.broadcast_to(position, (n, 2)).copy(), np.zeros(n, bool))


# ---------- the detector ----------

@dataclass
class Actor:
    id: str
    params: WalkerParams
    motion: Motion


def _observe(cam: PhoneCamera, actors: list[Actor], rng: np.random.Generator, fps: float, det: DetectorModel
             ) -> tuple[list[list[Person]], list[list[str]], dict]:
    """What the detector reports on each frame (people shuffled) and who each one is."""
    n = len(actors[0].motion.heading) if actors else 0
    W, H = cam.width, cam.height
    obs = []
    for a in actors:
        world = a.motion.world()
        uv, depth = cam.project(world)
        mdepth = np.maximum(depth.mean(axis=1), 1e-3)
        noise = rng.uniform(*det.noise)
        leg_px = 0.49 * a.params.height_m * cam.f / mdepth
        ujit = uv + _jitter(rng, uv.shape, fps) * (noise * leg_px)[:, None, None]
        x, y = ujit[..., 0] / W, ujit[..., 1] / H
        z = (depth - depth.mean(axis=1, keepdims=True)) * cam.f / mdepth[:, None] / W
        vis = np.clip(rng.normal(0.96, 0.02, (n, 33)), 0, 1)
        # Far side: seen side-on, the limbs away from the camera are partly hidden by the near ones.
        pelvis = world[:, HIPS].mean(axis=1)
        ray = pelvis - cam.pos
        ray /= np.linalg.norm(ray, axis=1, keepdims=True)
        left = np.stack([-np.sin(a.motion.heading), np.cos(a.motion.heading), np.zeros(n)], axis=-1)
        side_on = (left * ray).sum(axis=1)  # > 0: the left side faces away from the camera
        far_vis = np.clip(0.8 + 0.12 * _jitter(rng, (n, 33), fps), 0.05, 0.99)
        for mask, sign in ((_LEFT, 1.0), (_RIGHT, -1.0)):
            w = np.clip(sign * side_on, 0, 1)[:, None]
            vis[:, mask] = (1 - w) * vis[:, mask] + w * far_vis[:, mask]
        outside = (x < 0) | (x > 1) | (y < 0) | (y > 1) | (depth <= 0.05)
        vis[outside] = rng.uniform(0.02, 0.3, outside.sum())
        # The true box (noiseless, whole body) and the visible part's height, pixels.
        tb = np.stack([uv[..., 0].min(1), uv[..., 1].min(1), uv[..., 0].max(1), uv[..., 1].max(1)], axis=-1)
        vis_h = np.clip(tb[:, 3], 0, H) - np.clip(tb[:, 1], 0, H)
        vis_w = np.clip(tb[:, 2], 0, W) - np.clip(tb[:, 0], 0, W)
        in_front = depth.min(axis=1) > 0.3
        obs.append({"lm": np.stack([x, y, z, vis], axis=-1), "box": tb, "vis_h": np.where(vis_w > 0, vis_h, 0.0),
                    "depth": mdepth, "front": in_front, "miss": rng.uniform(*det.miss)})
    frames, ids = [], []
    stats = {a.id: {"visible": 0, "detected": 0, "occluded": 0, "too_small": 0, "missed": 0} for a in actors}
    for i in range(n):
        order = sorted(range(len(actors)), key=lambda k: obs[k]["depth"][i])
        people, who, nearer = [], [], []
        for k in order:
            o, aid = obs[k], actors[k].id
            if not o["front"][i] or o["vis_h"][i] <= 0:
                continue
            stats[aid]["visible"] += 1
            box_px = tuple(o["box"][i])
            lm = o["lm"][i].copy()
            blocked = False
            for nb in nearer:
                iou = _iou(box_px, nb)
                if iou > det.occlusion_iou:
                    blocked = True
                elif iou > 0:
                    inside = ((lm[:, 0] * W >= nb[0]) & (lm[:, 0] * W <= nb[2]) & (lm[:, 1] * H >= nb[1])
                              & (lm[:, 1] * H <= nb[3]))
                    lm[inside, 3] *= rng.uniform(*det.hidden_visibility, inside.sum())
            nearer.append(box_px)
            h = o["vis_h"][i]
            if blocked:
                stats[aid]["occluded"] += 1
                continue
            if h < det.min_px:
                stats[aid]["too_small"] += 1
                continue
            p_miss = o["miss"] + det.small_miss * float(np.clip((det.small_px - h) / (det.small_px - det.min_px),
                                                                  0, 1))
            box = box_of(lm)
            if rng.random() < p_miss or box is None:
                stats[aid]["missed"] += 1
                continue
            stats[aid]["detected"] += 1
            people.append(Person(lm.astype(np.float32), box))
            who.append(aid)
        perm = rng.permutation(len(people))
        frames.append([people[j] for j in perm])
        ids.append([who[j] for j in perm])
    return frames, ids, stats


# ---------- scenes ----------

@dataclass(frozen=True)
class SceneSpec:
    """One cell of the grid and a seed; `render` samples the continuous values within the cell's ranges.

    kind: "walk" (the child walks), "stand" (stands still: sway and weight shifts), "march" (steps on the spot),
    "empty" (nobody). view: "front" or "side". direction: "toward" / "away" (front) or "left_to_right" /
    "right_to_left" (side; in the image). camera_m, height_m, cadence: (low, high) ranges. parent: "none",
    "standing" or "walking" (beside the child). extra: "plain", "stand_first" or "turn_end". `fixed` overrides
    any sampled value by name (see `sample`)."""

    kind: str = "walk"
    view: str = "front"
    direction: str = "toward"
    camera_m: tuple[float, float] = (0.8, 1.3)
    height_m: tuple[float, float] = (0.95, 1.5)
    cadence: tuple[float, float] = (100.0, 170.0)
    parent: str = "none"
    extra: str = "plain"
    seed: int = 0
    cell: str = ""
    fixed: tuple[tuple[str, object], ...] = ()

    def sample(self) -> dict:
        """The scene's continuous values, from its seed (within the cell), `fixed` applied last."""
        rng = np.random.default_rng([self.seed, 16])
        front = self.view == "front"
        v = {"fps": FPS, "camera_m": rng.uniform(*self.camera_m),
             "orientation": ("portrait" if rng.random() < 0.5 else "landscape") if front else "landscape",
             "fov_deg": rng.uniform(65, 75), "pitch_deg": rng.uniform(-10, 5),
             "aim_deg": rng.uniform(-3, 3), "roll_deg": rng.uniform(-3, 3),
             "camera_lateral_m": rng.normal(0, 0.05),
             "height_m": rng.uniform(*self.height_m), "cadence": rng.uniform(*self.cadence),
             "near_m": rng.uniform(1.8, 2.3), "far_m": rng.uniform(6.5, 7.5), "offset_m": rng.uniform(-0.2, 0.2),
             "drift_m": rng.uniform(-0.3, 0.3), "side_m": rng.uniform(2.5, 5.0),
             "stand_s": rng.uniform(1.0, 2.0) if self.extra == "stand_first" else 0.0,
             "turn_s": rng.uniform(0.9, 1.4) if self.extra == "turn_end" else 0.0,
             "back_s": rng.uniform(1.0, 2.0) if self.extra == "turn_end" else 0.0,
             "turn_sign": float(rng.choice([-1.0, 1.0])), "lead_s": rng.uniform(0.2, 0.6),
             "still_s": rng.uniform(4.0, 8.0), "stand_m": rng.uniform(2.5, 5.5),
             "parent_height_m": rng.uniform(1.55, 1.9), "parent_cadence": rng.uniform(100, 115),
             "parent_gap_m": rng.uniform(0.4, 0.8) * rng.choice([-1.0, 1.0]),
             "parent_depth_m": rng.uniform(2.5, 5.0), "parent_lateral_m": rng.uniform(0.6, 1.3) * rng.choice([-1, 1]),
             "parent_behind_m": rng.uniform(1.0, 3.0), "parent_facing_deg": rng.uniform(-40, 40),
             "render_seed": int(rng.integers(2 ** 31))}
        v.update(dict(self.fixed))
        return {k: (float(x) if isinstance(x, np.floating) else x) for k, x in v.items()}


@dataclass
class Scene:
    """What stage 2's detector reports on every frame of one synthetic video, and the truth about it.

    truth keys: subject ("child"), walks, view ("front"/"side"), direction ("toward", "away", "across", "none"),
    side_direction (side: "left_to_right"/"right_to_left" in the image), walk_interval (start, end) s or None,
    cadence (steps/min), height_m, camera_m, parent ("none"/"standing"/"walking"), extra, kind, cell, params (every
    sampled value), detections (per person: frames visible / detected / occluded / too small / missed),
    distance_m (child's start and end distance from the camera, front), child_px (child's projected height in
    pixels at start / end of the walk)."""

    spec: SceneSpec
    fps: float
    width: int
    height: int
    frames: list[tuple[float, list[Person]]]
    ids: list[list[str]]
    truth: dict
    world: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # per actor: (n, 33, 3) points
    camera: PhoneCamera | None = None

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def child(self, i: int) -> Person | None:
        """The child's detection on frame i, if any."""
        for pe, who in zip(self.frames[i][1], self.ids[i]):
            if who == self.truth["subject"]:
                return pe
        return None

    def who(self, t: float, box) -> str | None:
        """Who the detection with this box at time t is (boxes as stage 2 reports them, rounded or not)."""
        i = int(np.clip(round(t * self.fps), 0, len(self.frames) - 1))
        best = max(((_iou(pe.box, box), who) for pe, who in zip(self.frames[i][1], self.ids[i])), default=(0, None))
        return best[1] if best[0] > 0.9 else None

    def samples(self, step: int) -> list[tuple[float, list[Person]]]:
        """Every step-th frame from the first, as stage 2 samples a video."""
        return self.frames[::step]

    def look_at(self, t: float, box) -> Person | None:
        """Stage 2's second pass: the person on the frame nearest t whose box overlaps `box` most (IoU ≥ 0.3)."""
        i = int(np.clip(round(t * self.fps), 0, len(self.frames) - 1))
        best = max(((_iou(pe.box, box), k) for k, pe in enumerate(self.frames[i][1])), default=(0.0, -1))
        return self.frames[i][1][best[1]] if best[0] >= DETECTOR.look_min_iou else None

    def look(self, asks: list[tuple[float, tuple[float, float, float, float]]]) -> list[Person | None]:
        """`validity.Look`: `look_at` for each (t, box) asked."""
        return [self.look_at(t, box) for t, box in asks]


def render(spec: SceneSpec, det: DetectorModel = DETECTOR) -> Scene:
    """One scene, deterministic in `spec` (its seed)."""
    v = spec.sample()
    rng = np.random.default_rng(v["render_seed"])
    fps = float(v["fps"])
    W, H = PORTRAIT if v["orientation"] == "portrait" else LANDSCAPE
    pitch = v["pitch_deg"]
    if spec.view == "side" and spec.kind == "walk":  # filming a child crossing, one aims at the child's middle
        pitch = float(np.degrees(np.arctan2(0.5 * v["height_m"] - v["camera_m"], v["side_m"]))) + v["aim_deg"]
    truth_pitch = pitch
    cam = PhoneCamera.phone(v["camera_m"], W, H, v["fov_deg"], pitch, v["roll_deg"], v["camera_lateral_m"])
    child_p = child_params(rng, v["height_m"], v["cadence"])
    speed = stride_length(child_p) / child_p.stride_time_s
    truth = {"subject": "child", "kind": spec.kind, "view": spec.view, "walks": spec.kind == "walk",
             "direction": "none", "side_direction": None, "walk_interval": None, "cadence": v["cadence"],
             "height_m": v["height_m"], "camera_m": v["camera_m"], "parent": spec.parent, "extra": spec.extra,
             "cell": spec.cell, "speed_m_s": speed, "pitch_deg": truth_pitch, "params": v,
             "child_params": child_p.as_dict()}
    actors: list[Actor] = []
    if spec.kind == "empty":
        n = int(round(v["still_s"] * fps))
        t = np.arange(n) / fps
    elif spec.kind in ("stand", "march"):
        n = int(round(v["still_s"] * fps))
        t = np.arange(n) / fps
        where = np.array([v["stand_m"], v["offset_m"]])
        if spec.kind == "stand":
            m = stand_motion(child_p, rng, t, fps, where, np.pi + np.radians(rng.uniform(-20, 20)))
        else:
            m = walk_motion(child_p, rng, t, fps, where, np.pi + np.radians(rng.uniform(-20, 20)), 0.3,
                            v["still_s"], in_place=True)
        actors.append(Actor("child", child_p, m))
        truth["distance_m"] = [float(where[0])] * 2
    elif spec.view == "front":
        toward = spec.direction == "toward"
        d0, d1 = (v["far_m"], v["near_m"]) if toward else (v["near_m"], v["far_m"])
        y0, y1 = v["offset_m"], v["offset_m"] + v["drift_m"]
        heading = float(np.arctan2(y1 - y0, d1 - d0))
        walk_s = float(np.hypot(d1 - d0, y1 - y0) / speed)
        start_s = v["stand_s"]
        n = int(round((start_s + walk_s + v["turn_s"] + v["back_s"] + 0.3) * fps))
        t = np.arange(n) / fps
        m = walk_motion(child_p, rng, t, fps, np.array([d0, y0]), heading, start_s, walk_s, v["turn_s"],
                        v["back_s"], v["turn_sign"])
        actors.append(Actor("child", child_p, m))
        truth.update(direction="toward" if toward else "away", walk_interval=(start_s, start_s + walk_s),
                     distance_m=[float(np.hypot(*m.position[0])), float(np.hypot(*m.position[min(
                         n - 1, int(round((start_s + walk_s) * fps)))]))])
    else:  # side: crossing the field at side_m, entering and leaving the frame
        d = v["side_m"]
        half = d * (W / 2) / cam.f + 0.3 * v["height_m"] + 0.3
        ltr = spec.direction == "left_to_right"  # image left to right = world +Y to −Y
        y0 = half if ltr else -half
        heading = -np.pi / 2 if ltr else np.pi / 2
        walk_s = 2 * half / speed
        start_s = v["stand_s"]
        n = int(round((start_s + walk_s + v["turn_s"] + v["back_s"]) * fps))
        t = np.arange(n) / fps
        m = walk_motion(child_p, rng, t, fps, np.array([d, y0]), heading, start_s, walk_s, v["turn_s"],
                        v["back_s"], v["turn_sign"])
        actors.append(Actor("child", child_p, m))
        truth.update(direction="across", side_direction=spec.direction, walk_interval=(start_s, start_s + walk_s),
                     distance_m=[d, d])
    if actors and spec.parent == "standing":
        ap = adult_params(rng, v["parent_height_m"], v["parent_cadence"])
        if spec.view == "side":
            where = np.array([v["side_m"] + v["parent_behind_m"],
                              rng.uniform(-0.35, 0.35) * (v["side_m"] + v["parent_behind_m"]) * W / cam.f])
        else:
            where = np.array([v["parent_depth_m"], v["parent_lateral_m"]])
        facing = float(np.arctan2(-where[1], -where[0])) + np.radians(v["parent_facing_deg"])
        actors.append(Actor("parent", ap, stand_motion(ap, rng, t, fps, where, facing)))
    elif actors and spec.parent == "walking":
        cm = actors[0].motion
        vel = np.gradient(cm.position, axis=0) * fps
        floor_speed = np.linalg.norm(vel, axis=1)
        ap = adult_params(rng, v["parent_height_m"], v["parent_cadence"], speed)
        gap = v["parent_gap_m"]
        start = cm.position[0] + gap * np.array([-np.sin(cm.heading[0]), np.cos(cm.heading[0])])
        walk_s = (truth["walk_interval"][1] - truth["walk_interval"][0]) if truth["walk_interval"] else 0.0
        pm = walk_motion(ap, rng, t, fps, start, float(cm.heading[0]), v["stand_s"], walk_s, v["turn_s"],
                         v["back_s"], v["turn_sign"], speed_of=floor_speed)
        # Beside the child: the child's floor path shifted `gap` to one side. Turning round, each turns on the
        # spot, so they swap sides rather than one walking round the other.
        pm.position = cm.position + gap * np.array([-np.sin(cm.heading[0]), np.cos(cm.heading[0])])
        actors.append(Actor("parent", ap, pm))
        truth["parent_speed_m_s"] = stride_length(ap) / ap.stride_time_s
        truth["parent_params"] = ap.as_dict()
    frames, ids, stats = _observe(cam, actors, rng, fps, det) if actors else ([[] for _ in t], [[] for _ in t], {})
    truth["detections"] = stats
    if actors:
        uv, _ = cam.project(actors[0].motion.world())
        hpx = uv[..., 1].max(axis=1) - uv[..., 1].min(axis=1)
        a, b = truth["walk_interval"] or (0.0, t[-1])
        truth["child_px"] = [float(hpx[min(n - 1, int(round(a * fps)))]), float(hpx[min(n - 1, int(round(b * fps)))])]
    return Scene(spec, fps, W, H, [(float(ti), f) for ti, f in zip(t, frames)], ids, truth,
                 {a.id: a.motion.world() for a in actors}, cam)


# ---------- the grid ----------

CAMERA_LEVELS = (0.8, 1.05, 1.3)
HEIGHT_LEVELS = (0.95, 1.2, 1.5)
CADENCE_LEVELS = (100.0, 135.0, 170.0)
PARENTS = ("none", "standing", "walking")
EXTRAS = ("plain", "stand_first", "turn_end")


def _bins(levels: tuple[float, ...]) -> list[tuple[float, float]]:
    """Each level's range: from the midpoint with the level below to the midpoint with the level above (the
    outermost levels end at themselves), so the cells cover the whole range."""
    edges = [levels[0]] + [(a + b) / 2 for a, b in zip(levels[:-1], levels[1:])] + [levels[-1]]
    return list(zip(edges[:-1], edges[1:]))


def front_grid(n_per_cell: int = 1, seed: int = 0) -> list[SceneSpec]:
    """{toward, away} × camera {0.8, 1.05, 1.3} m × height {0.95, 1.2, 1.5} m × cadence {100, 135, 170} /min ×
    parent {none, standing, walking} × {plain, stand_first, turn_end}: 486 cells, `n_per_cell` scenes each."""
    out = []
    cells = itertools.product(("toward", "away"), zip(CAMERA_LEVELS, _bins(CAMERA_LEVELS)),
                              zip(HEIGHT_LEVELS, _bins(HEIGHT_LEVELS)), zip(CADENCE_LEVELS, _bins(CADENCE_LEVELS)),
                              PARENTS, EXTRAS)
    for c, (direction, (cl, cb), (hl, hb), (kl, kb), parent, extra) in enumerate(cells):
        for r in range(n_per_cell):
            out.append(SceneSpec("walk", "front", direction, cb, hb, kb, parent, extra,
                                 seed=seed * 1_000_003 + c * 97 + r,
                                 cell=f"front/{direction}/cam{cl:g}/h{hl:g}/cad{kl:g}/{parent}/{extra}"))
    return out


def side_grid(n_per_cell: int = 1, seed: int = 0) -> list[SceneSpec]:
    """{left_to_right, right_to_left} × height × cadence × parent {none, standing (in the back)}: 36 cells, the
    child crossing at 2.5–5 m."""
    out = []
    cells = itertools.product(("left_to_right", "right_to_left"), zip(HEIGHT_LEVELS, _bins(HEIGHT_LEVELS)),
                              zip(CADENCE_LEVELS, _bins(CADENCE_LEVELS)), ("none", "standing"))
    for c, (direction, (hl, hb), (kl, kb), parent) in enumerate(cells):
        for r in range(n_per_cell):
            out.append(SceneSpec("walk", "side", direction, (0.8, 1.3), hb, kb, parent, "plain",
                                 seed=seed * 1_000_003 + 500_000 + c * 97 + r,
                                 cell=f"side/{direction}/h{hl:g}/cad{kl:g}/{parent}"))
    return out


def negative_grid(n: int = 300, seed: int = 0) -> list[SceneSpec]:
    """Scenes in which nobody walks, front camera: the child standing still (45 %), stepping on the spot (30 %),
    each alone or with a parent standing by, and nobody in view (25 %)."""
    out = []
    for k in range(n):
        r = (k * 0.618034) % 1.0
        kind = "stand" if r < 0.45 else "march" if r < 0.75 else "empty"
        parent = "standing" if (kind != "empty" and k % 2) else "none"
        out.append(SceneSpec(kind, "front", "none", parent=parent, seed=seed * 1_000_003 + 800_000 + k,
                             cell=f"negative/{kind}/{parent}"))
    return out


# ---------- stage 2 on a scene ----------

@dataclass
class Outcome:
    """Stage 2's verdicts on one scene and whether they are right."""

    cell: str
    walking: bool  # stage 2: the walker walks
    view_seen: str
    walker: str | None  # who the walker track mostly is ("child", "parent", None)
    walker_child_share: float  # share of the walker track's samples that are the child's
    reasons: list[str]
    walk: dict  # the walker's walk evidence as stage 2 reports it
    walking_ok: bool
    view_ok: bool | None  # None: not judged (nobody walks)
    walker_ok: bool | None  # None: not judged (nobody walks)
    truth: dict

    @property
    def ok(self) -> bool:
        return self.walking_ok and self.view_ok is not False and self.walker_ok is not False

    def as_row(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "truth"}


def judge(scene: Scene, slot: str | None = None) -> Outcome:
    """Run stage 2's analysis of one view on the scene (`validity.analyse_detections`) and compare with the
    truth. slot: the job slot ("front" / "side";
    default the scene's own view)."""
    from igait_pipeline.stages import validity

    slot = slot or scene.truth["view"]
    n = len(scene.frames)
    step = validity.sampling_step(scene.fps, n)
    samples = scene.samples(step)
    v = validity.analyse_detections(slot, samples, fps=scene.fps, frames_total=n, width=scene.width,
                                    height=scene.height, look=scene.look)
    walking, view_seen, reasons, walk = v.walking, v.view_seen, list(v.reasons), dict(v.walk)
    rows = [(r[0], tuple(r[1:])) for r in v.track]
    who = [scene.who(t, box) for t, box in rows]
    share = sum(w == "child" for w in who) / len(who) if who else 0.0
    names = [w for w in who if w]
    walker = max(set(names), key=names.count) if names else None
    truth = scene.truth
    walking_ok = walking == truth["walks"]
    view_ok = (view_seen == truth["view"]) if truth["walks"] else None
    walker_ok = (share >= 0.9) if truth["walks"] else None
    return Outcome(truth["cell"], walking, view_seen, walker, share, reasons, walk, walking_ok, view_ok, walker_ok,
                   truth)


def cell_factors(cell: str) -> dict[str, str]:
    """The factors of a cell name (front/toward/cam0.8/h1.2/cad135/standing/plain → {direction: toward, …})."""
    parts = cell.split("/")
    if parts[0] == "front":
        keys = ("view", "direction", "camera", "height", "cadence", "parent", "extra")
    elif parts[0] == "side":
        keys = ("view", "direction", "height", "cadence", "parent")
    else:
        keys = ("view", "kind", "parent")
    return dict(zip(keys, parts))


def summarise(outcomes: list[Outcome], by: str) -> list[dict]:
    """Accuracy per value of one factor (`cell_factors` key, or "cell" for whole cells)."""
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        key = o.cell if by == "cell" else cell_factors(o.cell).get(by, "-")
        groups.setdefault(key, []).append(o)
    rows = []
    for key, os_ in sorted(groups.items()):
        def share(vals):
            vals = [x for x in vals if x is not None]
            return (sum(vals) / len(vals)) if vals else None
        rows.append({by: key, "n": len(os_), "walking_ok": share([o.walking_ok for o in os_]),
                     "view_ok": share([o.view_ok for o in os_]), "walker_ok": share([o.walker_ok for o in os_]),
                     "accepted": share([not o.reasons for o in os_]), "all_ok": share([o.ok for o in os_])})
    return rows


__all__ = ["DETECTOR", "DetectorModel", "Outcome", "PhoneCamera", "Scene", "SceneSpec", "adult_params",
           "cell_factors", "child_params", "front_grid", "judge", "negative_grid", "render", "side_grid",
           "standing_pose", "summarise"]
