"""Synthetic walkers: a parametric gait model that renders BlazePose-style keypoints of a simulated child.

THIS IS A SIMULATION. No labelled patient data exists for this project, so the reference model is trained on
walkers drawn from two made-up parameter distributions. Nothing here is measured on children; the curves are
textbook-shaped normal gait patterns and the class differences are invented magnitudes.

The model, per walker:
* body segments scale with height (Winter's anthropometric ratios: thigh 0.245 H, shank 0.246 H, foot 0.152 H,
  ankle height 0.039 H, ...); age 3–12, height and weight from age (rough growth curve, BMI ~16);
* joint angles follow smooth periodic templates of normal gait over the cycle (0 = heel strike): hip and knee
  flexion/extension, ankle dorsi/plantarflexion, hip ab/adduction, knee ab/adduction (valgus +); each walker scales the
  ranges of motion, sets the stance share of the cycle (the template is warped so toe-off falls there), a static
  ankle plantarflexion (toe-walking), trunk lean, a base of support (static hip abduction), arm swing;
* stride times vary from stride to stride (coefficient of variation), the right foot's strike sits at
  0.5 + asymmetry of the left cycle, and each stride's joint ranges vary a little;
* the pelvis moves so the stance foot stays roughly still, and sits so the lowest foot point touches the ground;
* two cameras (separate recordings, like iGait's two videos): a side camera the walker crosses (either way, with
  the walker entering and leaving the frame) and a front camera the walker approaches; pinhole projection to
  normalised image coordinates, pose-estimator-like jitter, lower visibility of the far limbs, frames without a
  detection when the walker is out of the frame, and occasional dropped frames.

The two classes ("TD-like" label 0 and "ASD-like" label 1) differ in the directions reported in reviews of gait
in autism (e.g. Kindregan, Gallagher & Gormley 2015 review; Lum et al. 2021 meta-analysis): a wider base of
support, more stride-to-stride variability, more step asymmetry, reduced knee and hip range of motion, more
toe-walking, a slightly longer stance share. The magnitudes are invented and the distributions overlap on
purpose. A model trained on these walkers says nothing about real children.

No Dagster import here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from igait_pipeline.schemas import LANDMARK_NAMES, LM, JobMetadata, Keypoints

SIMULATION_NOTE = ("simulated walkers from igait_pipeline.reference_model.synthetic (a parametric 2-D/3-D gait model "
                   "with invented class differences); no real children")

# Normal gait templates, degrees, as (phase %, value) control points; toe-off at 60 %.
_TEMPLATE_TO = 0.60
_TEMPLATES = {
    "hip_flex": [(0, 30), (10, 28), (30, 8), (50, -11), (60, -5), (75, 20), (87, 33), (100, 30)],
    "knee_flex": [(0, 5), (15, 18), (30, 8), (42, 5), (52, 12), (60, 38), (71, 60), (78, 55), (88, 25),
                  (96, 5), (100, 5)],
    "ankle_dorsi": [(0, 0), (7, -6), (25, 5), (42, 10), (50, 7), (62, -17), (72, -6), (85, 0), (100, 0)],
    "hip_abd": [(0, 0), (15, -6), (40, -3), (60, 2), (70, 5), (88, 1), (100, 0)],
    "knee_abd": [(0, 0), (20, 2), (45, 1), (60, -2), (75, -4), (90, -1), (100, 0)],
}
_GRID = np.linspace(0, 1, 401)


def _smooth_periodic(points: list[tuple[float, float]], harmonics: int = 7) -> np.ndarray:
    ph = np.array([p for p, _ in points]) / 100.0
    val = np.array([v for _, v in points], dtype=float)
    dense = np.interp(_GRID[:-1], ph, val)
    spec = np.fft.rfft(dense)
    spec[harmonics + 1:] = 0
    out = np.fft.irfft(spec, n=len(dense))
    return np.concatenate([out, out[:1]])


TEMPLATES = {k: _smooth_periodic(v) for k, v in _TEMPLATES.items()}


def template(name: str, phase: np.ndarray) -> np.ndarray:
    """A template at cycle phases in [0, 1)."""
    return np.interp(np.mod(phase, 1.0), _GRID, TEMPLATES[name])


@dataclass
class WalkerParams:
    age: float
    sex: str
    height_m: float
    weight_kg: float
    stride_time_s: float
    stride_cv: float
    asymmetry: float  # right heel strike at (0.5 + asymmetry) of the left stride
    stance_ratio: float
    hip_rom: float  # scale of the hip flexion range about its mean
    knee_rom: float
    amp_cv: float  # stride-to-stride variability of the joint ranges
    ankle_offset_deg: float  # static dorsiflexion (negative: plantarflexed, toe-walking)
    base_ratio: float  # ankle separation / hip separation in stance
    trunk_lean_deg: float
    hip_offset_deg: float  # whole-curve shifts: landmark placement differs between people and pose models
    knee_offset_deg: float
    arm_swing_deg: float
    noise: float  # keypoint jitter, share of leg length
    knee_rom_right: float = 1.0  # extra scale of the right knee's range only (< 1: a stiff-knee limp on the right)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# Class parameter distributions: (mean, sd) unless noted. label 0 = "TD-like", 1 = "ASD-like". Invented.
CLASS_PARAMS = {
    0: {"stride_cv": (0.030, 0.010), "asymmetry_sd": 0.015, "stance_ratio": (0.60, 0.015), "hip_rom": (1.0, 0.08),
        "knee_rom": (1.0, 0.08), "amp_cv": (0.03, 0.01), "toe_walk_p": 0.04, "base_ratio": (1.00, 0.14)},
    1: {"stride_cv": (0.050, 0.018), "asymmetry_sd": 0.030, "stance_ratio": (0.615, 0.02), "hip_rom": (0.93, 0.10),
        "knee_rom": (0.90, 0.10), "amp_cv": (0.05, 0.015), "toe_walk_p": 0.20, "base_ratio": (1.20, 0.18)},
}


def sample_params(rng: np.random.Generator, label: int) -> WalkerParams:
    c = CLASS_PARAMS[int(label)]

    def g(key, lo=None, hi=None):
        m, s = c[key]
        return float(np.clip(rng.normal(m, s), lo if lo is not None else -np.inf, hi if hi is not None else np.inf))

    age = float(rng.uniform(3, 12))
    height = float(np.clip(0.77 + 0.061 * age + rng.normal(0, 0.05), 0.85, 1.75))
    bmi = float(np.clip(rng.normal(16.2, 1.8), 12.5, 24))
    toe_walk = rng.random() < c["toe_walk_p"]
    return WalkerParams(
        age=round(age, 1), sex=str(rng.choice(["M", "F"])), height_m=height,
        weight_kg=round(bmi * height ** 2, 1),
        stride_time_s=float(np.clip(0.66 + 0.025 * age + rng.normal(0, 0.07), 0.6, 1.4)),
        stride_cv=g("stride_cv", 0.008, 0.15), asymmetry=float(rng.normal(0, c["asymmetry_sd"])),
        stance_ratio=g("stance_ratio", 0.54, 0.70), hip_rom=g("hip_rom", 0.6, 1.3), knee_rom=g("knee_rom", 0.6, 1.3),
        amp_cv=g("amp_cv", 0.0, 0.15),
        ankle_offset_deg=float(rng.uniform(-25, -12) if toe_walk else rng.normal(0, 3)),
        base_ratio=g("base_ratio", 0.6, 1.9), trunk_lean_deg=float(rng.normal(4, 3)),
        hip_offset_deg=float(rng.normal(-2, 5)), knee_offset_deg=float(rng.normal(0, 3)),
        arm_swing_deg=float(rng.uniform(10, 30)), noise=float(rng.uniform(0.006, 0.018)))


@dataclass
class Gait:
    """Event times of one recording and its body-point trajectories (n, 33, 3): X forward, Y left, Z up (m)."""

    t: np.ndarray
    points: np.ndarray
    heel_strikes: dict[str, list[float]]
    toe_offs: dict[str, list[float]]
    stride_times: dict[str, list[float]]
    angles: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # true joint angles, degrees


def _events(p: WalkerParams, rng: np.random.Generator, duration: float) -> tuple[dict, dict]:
    """Heel-strike times per foot (covering [−2 s, duration + 2 s]) and per-stride range scales."""
    k = int((duration + 6) / p.stride_time_s) + 4
    T = p.stride_time_s * np.clip(1 + p.stride_cv * rng.standard_normal(k), 0.6, 1.5)
    left = -rng.uniform(1.0, 1.0 + p.stride_time_s) + np.concatenate([[0], np.cumsum(T[:-1])])
    right = left + (0.5 + p.asymmetry) * T
    hs = {"left": left, "right": right}
    amp = {f: {j: np.clip(1 + p.amp_cv * rng.standard_normal(k), 0.7, 1.3) for j in ("hip", "knee")}
           for f in ("left", "right")}
    return hs, amp


def _phase(t: np.ndarray, hs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stride index and phase in [0, 1) of each time, given strictly increasing heel-strike times."""
    k = np.clip(np.searchsorted(hs, t, side="right") - 1, 0, len(hs) - 2)
    return k, (t - hs[k]) / (hs[k + 1] - hs[k])


def _warp(phase: np.ndarray, stance: float) -> np.ndarray:
    """Map the walker's phase to template phase so that its toe-off (stance) lands on the template's."""
    return np.where(phase < stance, phase * _TEMPLATE_TO / stance,
                    _TEMPLATE_TO + (phase - stance) * (1 - _TEMPLATE_TO) / (1 - stance))


def _dir(a: np.ndarray, b: np.ndarray, side: float) -> np.ndarray:
    """Unit vectors at sagittal angle a (forward from straight down) and lateral angle b (outwards)."""
    return np.stack([np.sin(a) * np.cos(b), side * np.sin(b), -np.cos(a) * np.cos(b)], axis=-1)


def _segments(h: float) -> dict:
    return {"thigh": 0.245 * h, "shank": 0.246 * h, "foot": 0.152 * h, "ankle_h": 0.039 * h, "hip_w": 0.10 * h,
            "trunk": 0.29 * h, "shoulder_w": 0.21 * h, "upper_arm": 0.17 * h, "forearm": 0.15 * h,
            "head": 0.13 * h}


def _blend(scale: np.ndarray, k: np.ndarray, ph: np.ndarray) -> np.ndarray:
    """Per-stride scales made continuous: stride k's value at its heel strike, stride k+1's at the next."""
    return scale[k] + (scale[np.minimum(k + 1, len(scale) - 1)] - scale[k]) * ph


def _body(p: WalkerParams, t: np.ndarray, hs: dict, amp: dict) -> tuple[np.ndarray, dict]:
    """Points relative to the pelvis (before forward progression / ground contact) and joint angles."""
    n = len(t)
    s = _segments(p.height_m)
    r = np.radians
    leg = s["thigh"] + s["shank"]
    base_abd = np.arcsin(np.clip((p.base_ratio - 1) * s["hip_w"] / 2 / leg, -0.3, 0.3))
    lean = r(p.trunk_lean_deg)
    pts = np.zeros((n, 33, 3))
    angles = {}
    hip_mean = float(TEMPLATES["hip_flex"].mean())
    knee_min = float(TEMPLATES["knee_flex"].min())
    for foot, side in (("left", 1.0), ("right", -1.0)):
        k, ph = _phase(t, hs[foot])
        w = _warp(ph, p.stance_ratio)
        # Each stride's range scale blends linearly into the next one's over the stride: a scale switched at heel
        # strike made the joint angles (and the heel) jump at the very moment of contact.
        a_hip, a_knee = (_blend(amp[foot][j], k, ph) for j in ("hip", "knee"))
        hip = hip_mean + p.hip_offset_deg + p.hip_rom * a_hip * (template("hip_flex", w) - hip_mean)
        rom = p.knee_rom * (p.knee_rom_right if foot == "right" else 1.0)
        knee = knee_min + p.knee_offset_deg + rom * a_knee * (template("knee_flex", w) - knee_min)
        ankle = template("ankle_dorsi", w) + p.ankle_offset_deg
        abd = template("hip_abd", w)
        kabd = template("knee_abd", w)
        angles[foot] = {"hip_flex": hip, "knee_flex": knee, "ankle": ankle, "hip_abd": abd + np.degrees(base_abd),
                        "knee_abd": kabd}
        a_thigh = r(hip) - lean
        b_thigh = r(abd) + base_abd
        a_shank = a_thigh - r(knee)
        b_shank = b_thigh + r(kabd)
        hip_pt = np.zeros((n, 3))
        hip_pt[:, 1] = side * s["hip_w"] / 2
        knee_pt = hip_pt + s["thigh"] * _dir(a_thigh, b_thigh, side)
        ankle_pt = knee_pt + s["shank"] * _dir(a_shank, b_shank, side)
        down = _dir(a_shank, np.zeros(n), side)
        fwd_a = a_shank + r(ankle)
        fwd = np.stack([np.cos(fwd_a), np.zeros(n), np.sin(fwd_a)], axis=-1)
        heel = ankle_pt + s["ankle_h"] * down - 0.22 * s["foot"] * fwd
        toe = ankle_pt + s["ankle_h"] * down + 0.78 * s["foot"] * fwd
        for name, v in (("hip", hip_pt), ("knee", knee_pt), ("ankle", ankle_pt), ("heel", heel),
                        ("foot_index", toe)):
            pts[:, LM[f"{foot}_{name}"]] = v
    # Trunk, arms (swinging with the opposite leg), head.
    up = np.array([np.sin(lean), 0.0, np.cos(lean)])
    for side_name, side, other in (("left", 1.0, "right"), ("right", -1.0, "left")):
        sh = s["trunk"] * up + np.array([0.0, side * s["shoulder_w"] / 2, 0.0])
        swing = r(p.arm_swing_deg) * (angles[other]["hip_flex"] - hip_mean) / 25.0
        elbow = sh + s["upper_arm"] * _dir(swing, np.full(n, r(6)), side)
        wrist = elbow + s["forearm"] * _dir(swing + r(25), np.full(n, r(4)), side)
        pts[:, LM[f"{side_name}_shoulder"]] = sh
        pts[:, LM[f"{side_name}_elbow"]] = elbow
        pts[:, LM[f"{side_name}_wrist"]] = wrist
        for name, off in (("pinky", (0.01, 0.01, -0.06)), ("index", (0.03, 0.0, -0.07)),
                          ("thumb", (0.03, 0.01, -0.04))):
            pts[:, LM[f"{side_name}_{name}"]] = wrist + np.array(off) * np.array([1, side, 1]) * p.height_m
    neck = s["trunk"] * up
    head = neck + np.array([0.03, 0, 0.09]) * p.height_m
    face = {"nose": (0.07, 0, 0), "left_eye_inner": (0.06, 0.012, 0.02), "left_eye": (0.058, 0.022, 0.02),
            "left_eye_outer": (0.055, 0.03, 0.02), "right_eye_inner": (0.06, -0.012, 0.02),
            "right_eye": (0.058, -0.022, 0.02), "right_eye_outer": (0.055, -0.03, 0.02),
            "left_ear": (0.0, 0.055, 0.01), "right_ear": (0.0, -0.055, 0.01), "mouth_left": (0.055, 0.015, -0.03),
            "mouth_right": (0.055, -0.015, -0.03)}
    for name, off in face.items():
        pts[:, LM[name]] = head + np.array(off) * p.height_m / 1.1
    return pts, angles


def stride_length(p: WalkerParams) -> float:
    """Metres per stride with the walker's mean angles: ankle travel relative to the pelvis over stance, divided by
    the stance share (the stance foot stays put while the pelvis moves over it)."""
    ref_t = np.linspace(0, 1, 201)
    ref_hs = {"left": np.array([0.0, 1.0, 2.0]), "right": np.array([-0.5, 0.5, 1.5, 2.5])}
    ones = {f: {j: np.ones(4) for j in ("hip", "knee")} for f in ("left", "right")}
    ref, _ = _body(p, ref_t, ref_hs, ones)
    ax = ref[:, LM["left_ankle"], 0]
    i_to = int(round(p.stance_ratio * 200))
    return float((ax[0] - ax[i_to]) / p.stance_ratio)


def simulate_gait(p: WalkerParams, rng: np.random.Generator, duration: float, fps: float) -> Gait:
    """One recording's 3-D body points in world coordinates (pelvis starts at X = 0, walks +X; Y left, Z up)."""
    t = np.arange(int(round(duration * fps))) / fps
    hs, amp = _events(p, rng, duration)
    rel, angles = _body(p, t, hs, amp)
    k, ph = _phase(t, hs["left"])
    speed = stride_length(p) / np.diff(hs["left"])[k]
    x = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) / fps)])
    sway = 0.012 * p.height_m * np.sin(2 * np.pi * ph - 0.5 * np.pi)
    feet = rel[:, [LM[f] for f in ("left_heel", "right_heel", "left_foot_index", "right_foot_index")], 2]
    z = -feet.min(axis=1)
    world = rel + np.stack([x, sway, z], axis=-1)[:, None, :]
    end = t[-1]
    to = {f: [float(a + p.stance_ratio * (b - a)) for a, b in zip(hs[f][:-1], hs[f][1:])] for f in hs}
    return Gait(t, world,
                {f: [float(v) for v in hs[f] if 0 <= v <= end] for f in hs},
                {f: [v for v in to[f] if 0 <= v <= end] for f in to},
                {f: [float(b - a) for a, b in zip(hs[f][:-1], hs[f][1:]) if 0 <= a and b <= end] for f in hs}, angles)


def _crop(g: Gait, n: int) -> Gait:
    end = g.t[n - 1]
    return Gait(g.t[:n], g.points[:n], {f: [v for v in e if v <= end] for f, e in g.heel_strikes.items()},
                {f: [v for v in e if v <= end] for f, e in g.toe_offs.items()},
                {f: [d for a, d in zip(g.heel_strikes[f], s) if a + d <= end] for f, s in g.stride_times.items()},
                {f: {k: v[:n] for k, v in a.items()} for f, a in g.angles.items()})


@dataclass
class Camera:
    pos: np.ndarray
    look: np.ndarray
    f: float
    width: int
    height: int
    cx: float
    cy: float

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (…, 2) and depth (…) of world points (…, 3)."""
        up = np.array([0.0, 0.0, 1.0])
        right = np.cross(self.look, up)
        rel = pts - self.pos
        depth = rel @ self.look
        u = self.cx + self.f * (rel @ right) / depth
        v = self.cy - self.f * (rel @ up) / depth
        return np.stack([u, v], axis=-1), depth


def _jitter(rng: np.random.Generator, shape: tuple, fps: float) -> np.ndarray:
    """Pose-estimator-like noise: white plus slow wobble, unit scale."""
    white = rng.standard_normal(shape)
    slow = rng.standard_normal(shape)
    r = max(1, int(0.06 * fps))
    k = np.exp(-0.5 * (np.arange(-3 * r, 3 * r + 1) / r) ** 2)
    k /= np.sqrt((k ** 2).sum())
    slow = np.apply_along_axis(lambda s: np.convolve(s, k, mode="same"), 0, slow)
    return 0.6 * white + 0.8 * slow


def _keypoints(job_id: str, view: str, cam: Camera, g: Gait, p: WalkerParams, rng: np.random.Generator,
               far_side: str | None, fps: float, present: np.ndarray) -> Keypoints:
    uv, depth = cam.project(g.points)
    n = len(g.t)
    leg_px = (0.49 * p.height_m) * cam.f / depth.mean(axis=1)
    uv = uv + _jitter(rng, uv.shape, fps) * (p.noise * leg_px)[:, None, None]
    x, y = uv[..., 0] / cam.width, uv[..., 1] / cam.height
    z = (depth - depth.mean(axis=1, keepdims=True)) * cam.f / depth.mean(axis=1, keepdims=True) / cam.width
    vis = np.clip(rng.normal(0.96, 0.02, (n, 33)), 0, 1)
    if far_side:
        far = [i for i, nm in enumerate(LANDMARK_NAMES) if nm.startswith(far_side)]
        # Far limbs: lower, wandering visibility that now and then dips under 0.5 (occlusion by the near leg).
        wob = _jitter(rng, (n, len(far)), fps)
        vis[:, far] = np.clip(0.8 + 0.12 * wob, 0.05, 0.99)
    outside = (x < 0) | (x > 1) | (y < 0) | (y > 1)
    vis[outside] = rng.uniform(0.02, 0.3, outside.sum())
    lms = np.round(np.stack([x, y, z, vis], axis=-1), 5).tolist()
    frames = [{"index": i, "t": round(float(g.t[i]), 4), "landmarks": lms[i] if present[i] else None}
              for i in range(n)]
    return Keypoints.model_validate({"job_id": job_id, "view": view, "fps": fps, "width": cam.width,
                                     "height": cam.height, "model": {"name": "synthetic-walker", "version": "1"},
                                     "frames": frames})


@dataclass
class SyntheticWalker:
    label: int  # 0 "TD-like", 1 "ASD-like" (simulated classes)
    params: WalkerParams
    side: Keypoints
    front: Keypoints
    metadata: JobMetadata
    truth: dict = field(default_factory=dict)  # per view: heel_strikes, toe_offs, stride_times, direction


def side_recording(p: WalkerParams, rng: np.random.Generator, job_id: str = "synthetic", fps: float = 60.0,
                   direction: int | None = None, width: int = 1280, height: int = 540,
                   dropout: float = 0.01) -> tuple[Keypoints, dict]:
    """The walker crossing a side camera's field (entering and leaving the frame); returns keypoints and truth.

    direction +1: left to right in the image (camera on the walker's right), -1: right to left.
    """
    if direction is None:
        direction = 1 if rng.random() < 0.5 else -1
    fill = rng.uniform(0.5, 0.75)  # walker height / frame height
    dist = rng.uniform(3.0, 5.0)
    f = fill * height * dist / p.height_m
    view_w = width * dist / f  # metres of the walking line inside the frame
    speed = stride_length(p) / p.stride_time_s
    lead = rng.uniform(0.3, 0.8)  # seconds with nobody in the frame before and after
    margin = 0.3 * p.height_m
    duration = (view_w + 2 * margin) / speed + 2 * lead
    g = simulate_gait(p, rng, duration * 1.3, fps)
    g.points[..., 0] -= view_w / 2 + margin + lead * speed  # the camera is at X = 0: start off-frame
    s = 1.0 if direction > 0 else -1.0
    cam = Camera(pos=np.array([0.0, -s * dist, 0.55 * p.height_m]), look=np.array([0.0, s, 0.0]), f=f,
                 width=width, height=height, cx=width / 2, cy=height * rng.uniform(0.42, 0.5))
    uv, _ = cam.project(g.points[:, [LM["left_hip"], LM["right_hip"]]])
    px = uv.mean(axis=1)[:, 0] / width
    inside = (px > 0.03) & (px < 0.97)
    if inside.any():
        last = int(np.flatnonzero(inside)[-1])
        g = _crop(g, min(len(g.t), last + 1 + int(lead * fps)))
        inside = inside[: len(g.t)]
    present = inside & (rng.random(len(g.t)) > dropout)
    kp = _keypoints(job_id, "side", cam, g, p, rng, "left" if direction > 0 else "right", fps, present)
    truth = {"heel_strikes": g.heel_strikes, "toe_offs": g.toe_offs, "stride_times": g.stride_times,
             "angles": g.angles, "direction": "left_to_right" if direction > 0 else "right_to_left",
             "present_from": float(g.t[present][0]) if present.any() else None,
             "present_to": float(g.t[present][-1]) if present.any() else None}
    return kp, truth


def front_recording(p: WalkerParams, rng: np.random.Generator, job_id: str = "synthetic", fps: float = 60.0,
                    width: int = 540, height: int = 960, dropout: float = 0.01) -> tuple[Keypoints, dict]:
    """The walker approaching a front camera from ~7 m to ~2 m (the feet leave the frame near the end)."""
    d0, d1 = rng.uniform(6.0, 8.0), rng.uniform(1.8, 2.4)
    cam_h = rng.uniform(0.8, 1.2)
    cy = 0.45 * height
    f = (0.97 * height - cy) * d1 / cam_h  # the feet reach the bottom edge at distance d1
    speed = stride_length(p) / p.stride_time_s
    g = simulate_gait(p, rng, (d0 - d1) / speed + 0.3, fps)
    g.points[..., 0] -= d0
    cam = Camera(pos=np.array([0.0, rng.normal(0, 0.05), cam_h]), look=np.array([-1.0, 0.0, 0.0]), f=f,
                 width=width, height=height, cx=width / 2, cy=cy)
    present = rng.random(len(g.t)) > dropout
    kp = _keypoints(job_id, "front", cam, g, p, rng, None, fps, present)
    return kp, {"heel_strikes": g.heel_strikes, "toe_offs": g.toe_offs, "stride_times": g.stride_times,
                "angles": g.angles, "direction": "towards_camera"}


def make_walker(seed: int, label: int | None = None, job_id: str | None = None, fps: float = 60.0,
                params: WalkerParams | None = None, direction: int | None = None) -> SyntheticWalker:
    """One simulated child (both recordings and metadata), fully determined by seed (and label)."""
    rng = np.random.default_rng(seed)
    if label is None:
        label = int(rng.random() < 0.5)
    p = params or sample_params(rng, label)
    job_id = job_id or f"synthetic_{seed}"
    side, side_truth = side_recording(p, rng, job_id, fps, direction=direction)
    front, front_truth = front_recording(p, rng, job_id, fps)
    meta = JobMetadata(age=p.age, sex=p.sex, height_cm=round(p.height_m * 100, 1), weight_kg=p.weight_kg,
                       ethnicity="synthetic", email="synthetic@example.invalid")
    return SyntheticWalker(label, p, side, front, meta, {"side": side_truth, "front": front_truth})


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def front_walk(p: WalkerParams, rng: np.random.Generator, job_id: str = "synthetic", fps: float = 60.0,
               direction: int = 1, stand_s: float = 0.0, turn_s: float = 0.0, back_s: float = 1.5,
               width: int = 540, height: int = 960, dropout: float = 0.01,
               diagonal_deg: float = 0.0) -> tuple[Keypoints, dict]:
    """A front camera's recording with the variations `front_recording` lacks (which stays as it is: the reference
    model is trained on it). `direction` +1: toward the camera from ~7 m to ~2 m (the feet leave the bottom edge
    near the end), -1: away from it, from ~2 m (feet below the edge at first) to ~7 m. `stand_s` > 0: the walker
    stands still that long first (a frozen pose), then speeds up over about 0.8 s (gait initiation: the gait
    clock runs slow). `turn_s` > 0: near the end of the line (1 m before it) the walker turns round over that
    many seconds, stepping slowly, and walks back `back_s` s. `diagonal_deg`: the walker walks (and faces) that
    many degrees off the camera's axis, starting off to the side so as to end the line in front of the camera (a
    diagonal approach).

    truth: heel strikes, toe-offs and stride times on the recording's clock (the gait clock mapped back), the
    direction, and `steady_from` / `steady_to`: when the walker walks steadily along the line (after gait
    initiation, before the turn)."""
    d0, d1 = rng.uniform(6.0, 8.0), rng.uniform(1.8, 2.4)
    cam_h = rng.uniform(0.8, 1.2)
    cy = 0.45 * height
    f = (0.97 * height - cy) * d1 / cam_h  # the feet reach the bottom edge at distance d1
    speed = stride_length(p) / p.stride_time_s
    ramp = 0.8 if stand_s > 0 else 0.0
    line = d0 - d1 + 0.3 * speed  # metres walked along the line (toward: ends 0.3 s past d1)
    if turn_s > 0:
        line = d0 - d1 - 1.0
    walk_s = line / speed + ramp / 2  # the ramp covers half the distance a steady walker would
    total = stand_s + walk_s + turn_s + (back_s if turn_s > 0 else 0.0)
    t = np.arange(int(round(total * fps))) / fps
    # The gait clock: stopped while standing, then rising to real time over the ramp (smoothstep rate).
    rate = _smoothstep((t - stand_s) / ramp) if ramp else (t >= stand_s).astype(float)
    turn_from = stand_s + walk_s
    turning = (t >= turn_from) & (t < turn_from + turn_s) if turn_s > 0 else np.zeros(len(t), bool)
    tau = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) / fps)])
    g = simulate_gait(p, rng, float(tau[-1]) + 0.5, fps)
    pts = np.stack([np.interp(tau, g.t, g.points[:, j, k]) for j in range(33) for k in range(3)],
                   axis=-1).reshape(len(t), 33, 3)
    pel = pts[:, [LM["left_hip"], LM["right_hip"]], 0].mean(axis=1)
    local = pts.copy()
    local[..., 0] -= pel[:, None]
    heading = np.zeros(len(t))
    if turn_s > 0:
        heading = np.pi * _smoothstep((t - turn_from) / turn_s)
    heading = heading + np.radians(diagonal_deg)
    v = np.gradient(pel) * fps * np.where(turning, 0.3, 1.0)
    step = v[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=-1) / fps
    pos = np.concatenate([np.zeros((1, 2)), np.cumsum(step[:-1], axis=0)])
    c, s = np.cos(heading)[:, None], np.sin(heading)[:, None]
    world = local.copy()
    world[..., 0] = pos[:, None, 0] + c * local[..., 0] - s * local[..., 1]
    world[..., 1] = pos[:, None, 1] + s * local[..., 0] + c * local[..., 1]
    if diagonal_deg:
        world[..., 1] -= pos[-1, 1]  # the line ends in front of the camera
    if direction > 0:  # camera at X = 0 looking back along the line; the walker starts d0 away
        world[..., 0] -= d0
        look = np.array([-1.0, 0.0, 0.0])
    else:  # camera behind the walker, who starts 0.3 s short of d1
        world[..., 0] += d1 - 0.3 * speed
        look = np.array([1.0, 0.0, 0.0])
    cam = Camera(pos=np.array([0.0, rng.normal(0, 0.05), cam_h]), look=look, f=f, width=width, height=height,
                 cx=width / 2, cy=cy)

    def clock(times) -> list[float]:  # gait-clock times mapped back to the recording's clock
        return [float(np.interp(x, tau, t)) for x in times if tau[0] < x <= tau[-1]]

    hs = {ft: clock(g.heel_strikes[ft]) for ft in g.heel_strikes}
    to = {ft: clock(g.toe_offs[ft]) for ft in g.toe_offs}
    angles = {ft: {k: np.interp(tau, g.t, a) for k, a in g.angles[ft].items()} for ft in g.angles}
    rec = Gait(t, world, hs, to, {ft: [b - a for a, b in zip(hs[ft], hs[ft][1:])] for ft in hs}, angles)
    present = rng.random(len(t)) > dropout
    kp = _keypoints(job_id, "front", cam, rec, p, rng, None, fps, present)
    return kp, {"heel_strikes": hs, "toe_offs": to, "stride_times": rec.stride_times, "angles": angles,
                "direction": "towards_camera" if direction > 0 else "away_from_camera",
                "steady_from": stand_s + ramp, "steady_to": turn_from if turn_s > 0 else float(t[-1]),
                "distance_m": np.abs(world[:, [LM["left_hip"], LM["right_hip"]], 0].mean(axis=1)),
                "base_ratio": p.base_ratio}
