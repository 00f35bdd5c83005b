"""The tuning parameters of stage 5 (and of the feature vector built from its output), as documented dataclasses.

Every value that shapes a result lives here, not in a module constant, and `as_record()` is written into
cycles.json (`settings`) and prediction.json, so a result can be reproduced from its own file (as gaitmap records
its algorithm parameters). Defaults are the values the pipeline runs with; tests and research scripts may pass
others.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SignalSettings:
    """Which frames are used and how the landmark signals are cleaned before events are looked for."""

    visibility: float = 0.5
    """A landmark counts as seen above this MediaPipe visibility."""
    max_gap_s: float = 0.12
    """Gaps (frames without a usable pose) up to this long are linearly interpolated; longer ones split the
    recording into segments, and no stride spans a gap."""
    min_segment_s: float = 0.6
    """Shorter runs of usable frames are ignored."""
    lowpass_hz: float = 4.0
    """Cut-off of the zero-phase Butterworth low-pass (scipy.signal.butter + sosfiltfilt) applied to each event
    signal when the stride period is unknown."""
    lowpass_harmonics: float = 3.0
    """When the stride period is known (autocorrelation of the unfiltered heel signal), the cut-off is this many
    stride frequencies (≈ 3.3 Hz for a 0.9 s stride), so slow and fast walkers are filtered alike. 3 places heel
    strikes closest to the truth on the simulated reference walkers
    (igait_pipeline_tests/stages/test_gait_reference.py; with the heel alone and no offset, 89 % within one frame
    at 60 fps vs 74 % with 4, and 72 % with a fixed 4 Hz)."""
    toe_off_lowpass_harmonics: float = 7.0
    """The same for the toe-off (ankle) signal: the ankle's turn at push-off is sharper than the heel's at contact,
    and a 3-harmonic filter blunts it (on the reference walkers, ankle alone, 78 % of toe-offs within one frame
    with 7, 70 % with 3). It finds toe-offs; EventSettings.toe_off_refine_* locates them."""
    filter_order: int = 4
    """Order of that Butterworth filter (applied forwards and backwards: no phase shift, so no event lag)."""
    edge_margin: float = 0.02
    """A frame where a lower-body landmark lies within this share of the image width/height of the border counts
    as cut by the frame edge."""


@dataclass(frozen=True)
class EventSettings:
    """Gait events, side view, found then located. Found (Zeni et al. 2008, in 2-D as in Stenum et al. 2021 and
    Pose2Sim): the horizontal position of a foot landmark relative to the pelvis, in leg lengths, peaks (heel strike:
    foot furthest ahead) and dips (toe-off: foot furthest behind). Located: see `refine_window` and the
    `*_refine_*` fields (on the reference walkers 96 % of heel strikes and 98.4 % of toe-offs within one frame at
    60 fps, vs 94 % and 83 % found only)."""

    heel_strike_landmark: str = "heel+ankle+foot_index"
    """Landmark(s) whose forward-most position relative to the pelvis marks heel strike; "a+b" is the mean of the
    landmarks. The foot centre (heel, ankle, toe; as O'Connor et al. 2007's foot-centre): at contact the foot moves as
    one piece, and the mean of three landmarks carries less pose jitter than the heel alone (on the reference
    walkers, found only, with an offset: 94 % of heel strikes within one frame vs 92 % with the heel alone)."""
    toe_off_landmark: str = "heel+ankle"
    """Landmark(s) whose rear-most position finds toe-off: heel and ankle (Zeni; Stenum et al. 2021, Pose2Sim), not
    the toe (`foot_index`): the toe stays back after the foot leaves the ground, which made toe-offs 60–116 ms late
    against a marker reference (issue 9). The mean of the two halves the jitter of one."""
    min_peak_distance_s: float = 0.3
    """Two events of one kind and foot are at least this far apart (the period estimate may raise it)."""
    period_share: float = 0.6
    """...raised to this share of the stride period when the period is known (autocorrelation)."""
    prominence: float = 0.3
    """An event stands out from its surroundings by this share of the signal's 5–95 % range
    (scipy.signal.find_peaks prominence)."""
    edge_frames: int = 2
    """An extreme within this many frames of a segment's end is not an event (the signal was cut there)."""
    refine_window: float = 0.08
    """Side view: each event is re-located within this share of the stride period either side of where the
    filtered Zeni signal puts it (see the two `*_refine_*` settings below)."""
    heel_strike_refine_harmonics: float = 4.0
    """Side view: heel strikes are found on the foot-centre signal low-passed at `SignalSettings.lowpass_harmonics`
    (robust against jitter) and then placed at that signal's forward-most point low-passed at this many stride
    frequencies: a 3-harmonic filter moves the peak of the asymmetric foot trajectory by an amount that depends on
    the walker's joint ranges. 0: no re-location. Chosen on calibration walkers (seeds 100–115, `bench/
    gait_reference.py --choose-refinement`) among 4–8 harmonics."""
    heel_strike_refine_pooling: str = "walk"
    """How located heel strikes are used: "event" (each moves to its own located time), "walk" (every heel strike
    moves by the median located-minus-found shift over the walk, both feet), "foot" (that median per foot). "walk":
    the filter's walker-dependent shift is removed, but step and stride times stay those of the found events; per
    event (or per foot, from ~5 events) the lighter filter's jitter enters the step times (calibration walkers:
    asymmetry within 1 pp for 80 % with "walk", 62 % with "event" or "foot"; heel strikes within one frame 97 %,
    98 %, 97 %)."""
    toe_off_refine_landmark: str = "foot_index"
    """Side view: landmark whose forward acceleration relative to the pelvis locates toe-off (Hreljac & Marshall
    2000: toe-off at the peak horizontal acceleration of the toe, as the foot is pulled off the ground into swing).
    The rear-most heel/ankle point (Zeni) only finds the event; its delay from the toe leaving the ground varies
    with the walker's joint ranges."""
    toe_off_refine_harmonics: float = 8.0
    """Cut-off of that toe signal in stride frequencies before it is differentiated twice (a second derivative needs
    a wider band to keep its peak where it is; chosen on calibration walkers, seeds 100–115, among 3–10). 0: no
    re-location (Zeni's heel/ankle toe-off)."""
    heel_strike_swing_offset: float = 0.0368
    """Side view: heel strikes are moved later by this share of the median swing time (toe-off to heel strike; of
    the walk or the foot, `heel_strike_offset_swing`). The foot is furthest ahead of the pelvis shortly *before*
    contact (terminal-swing retraction), and how long before scales with the swing, not the stride (on the
    simulated walkers the bias correlates 0.95 with the stance share). Calibrated on reference walkers disjoint
    from the test set (`bench/gait_reference.py --calibrate`: seeds 100–115, median of -error / swing)."""
    heel_strike_offset_swing: str = "walk"
    """Whose swing time scales the heel-strike offset: "foot" (that foot's median swing) or "walk" (the mean over
    both feet: then the offset moves every heel strike of the walk alike and leaves step times untouched)."""
    toe_off_swing_offset: float = -0.0651
    """Side view: toe-offs are moved by this share of the foot's median swing time (negative: earlier); the toe's
    forward acceleration peaks just after the foot leaves the ground. Calibrated as heel_strike_swing_offset."""
    toe_off_velocity_weight: float = 1.0
    """Side view: where the foot-velocity toe-off (O'Connor et al. 2007, Gait Posture 25:469, the foot-velocity
    algorithm: toe-off at the peak upward velocity of the foot centre, the mean of heel and toe) lies inside
    `toe_off_velocity_window`, the reported toe-off is this weight times it plus (1 − weight) times the acceleration
    toe-off above (Hreljac & Marshall 2000, with its offset); elsewhere the acceleration toe-off alone. 0: never.
    Against 75 toe-offs labelled by hand on 13 real side clips (bench/events.py) the acceleration toe-off alone is
    56 ms early (49 % within 2 frames at 30 fps); with 1.0 and 3 Hz, 75 % (9 ms early), leave-one-clip-out: weight
    and filter chosen on the other 12 clips among the settings that keep the simulated reference test
    (igait_pipeline_tests/stages/test_gait_reference.py) passing — weight 0 / 0.5 / 0.75 / 1 at 3 Hz, 0.5 at 4 Hz
    (0.75 and 1 at 4 Hz reach 76 % / 75 % in-sample but break it) — every fold chose 1.0 and 3 Hz
    (bench/labels/README.md). On the simulated walkers the foot centre rises fastest ~80 ms *before* the true
    toe-off (their heel rises through late stance) and so, at 3 Hz, never inside the window: there the acceleration
    toe-off stands; the simulator's foot trajectory is what disagrees with the real clips."""
    heel_strike_estimator_offsets_s: tuple[tuple[str, float], ...] = (("mediapipe-blazepose-full", -0.05),
                                                                      ("mediapipe-pose-landmarker-full", -0.05))
    """Side view: heel strikes of keypoints from these pose estimators (`Keypoints.model.name`) move by this many
    seconds after every other step, one shift for the whole walk (stride and step times unchanged; stance, swing and
    double support change). On real clips through MediaPipe the located heel strike is late against heel strikes
    labelled by hand: +78 ms over 73 of them on 13 side clips (bench/labels/README.md), on 11 of the 13 clips, while
    on the simulated walkers (keypoints without an estimator, `synthetic-walker`) it is unbiased: the bias lies
    between real footage, the estimator's foot landmarks and the simulator, and is corrected only for the estimator
    it was measured on. Chosen leave-one-clip-out (`python -m bench.events --choose-heel-strike-offset`: the offset,
    0 to −120 ms in 5 ms steps, that puts the most heel strikes of the 12 other clips within 2 frames at 30 fps):
    12 folds chose −50 ms, one −70 ms; held out, side heel strikes within 2 frames 42 % → 60 %, all side events 59 %
    → 68 %. The GPU estimator (MediaPipe Tasks' PoseLandmarker, the same BlazePose full weights) takes the CPU
    one's offset; it has not been measured on labelled clips. An estimator not listed gets none."""
    toe_off_velocity_landmark: str = "heel+foot_index"
    """Landmarks whose mean is the foot centre of the foot-velocity toe-off (O'Connor et al. 2007: heel and toe)."""
    toe_off_velocity_lowpass_hz: float = 3.0
    """Zero-phase low-pass of the foot centre's height before it is differentiated (O'Connor et al. filtered marker
    data at 7 Hz; pose landmarks carry more jitter). Chosen leave-one-clip-out with the weight above."""
    toe_off_velocity_window: tuple[float, float] = (0.0, 0.2)
    """The foot-velocity toe-off is the peak upward velocity of the foot centre within this window (in stride
    periods) after the toe-off found on Zeni's signal (the foot furthest behind), which it follows in early swing
    (0.25 s, fixed, reached the next peak on fast simulated walkers: 0.7 s strides)."""


@dataclass(frozen=True)
class StrideSettings:
    """Which strides count, and how many are needed for each kind of number."""

    stride_limits_s: tuple[float, float] = (0.4, 2.5)
    """Plausible stride times; others are dropped."""
    step_length_window: float = 0.1
    """Side view: step length is the largest heel-to-heel distance from a steady step's heel strike to this share
    of the stride period after it (the start of double support, both feet down), not the distance at the
    heel-strike frame itself: MediaPipe's heel of the landing foot keeps moving forward for 2–4 frames after the
    contact labelled by hand (bench/labels/README.md), so the distance at the (now earlier, see
    `EventSettings.heel_strike_estimator_offsets_s`) heel-strike frame would be short of the step by up to 7 %
    (the sample clip: 0.88 against 0.95 leg lengths)."""
    missed_event_ratio: float = 1.6
    """A stride this much longer than the median hides a missed heel strike and is dropped."""
    speed_tolerance: float = 0.15
    """Side view: a stride whose mean pelvis speed differs from the median stride's (strides cut by the frame edge
    left out) by more than this share is gait initiation (speeding up) or termination (slowing down), not steady
    walking, and is dropped."""
    moving_camera_stride_tolerance: float = 0.25
    """Side view measured against a moving camera's background (`Keypoints.background`, stage 2's pan): walking
    speed and stride length come from the pelvis's travel against the background, right for a camera that turns
    (a window panning over the Sports2D walk: two steps / stride 1.02) but short for one carried along beside the
    walker, whose far background slides less than the walker's own plane (the BlackDuomu side clip: 1.68). When
    two steady steps (heel to heel, in the walker's plane) and the stride differ by more than this share, both are
    null with the reason. On 22 real still-camera side clips two steps / stride read 0.81–1.11."""
    follow_travel_leg_lengths: float = 1.0
    """Side view: when the pelvis travels less than this many leg lengths across the picture over the whole
    recording (a straight-line fit), the camera follows the walker (a phone panning with the child) or the walker
    is on a treadmill. The pelvis's speed in the picture then says nothing about the walker's: strides are judged
    steady by their speed over the ground instead, the pelvis's speed relative to the foot on the ground
    (`events._ground_speed`), walking speed and stride length are null with that reason (step length, measured
    heel to heel in one frame, stays), and the walking direction is taken from where the face points. On the
    hand-labelled side clips (static cameras, bench/labels/) the pelvis travels 2.9 leg lengths or more; on a real
    clip filmed by a phone panning with the walker (BlackDuomu/Posture-Recognition `video_2.mp4`, measured
    locally) 0.1, where image speeds left 1 of 7 strides steady and the ground speed 4."""
    min_strides: int = 2
    """Fewer strides (steady or not, both feet) and the job cannot be analysed (stage 5 fails)."""
    min_steady_strides: int = 2
    """Fewer steady strides and the mean parameters (cadence, stride time, ...) are null with the reason."""
    min_steady_steps_variability: int = 6
    """Stride-time CV and step-time asymmetry need at least this many steady steps; below it they are null with
    the reason, never a number from 2–3 strides."""
    min_steady_strides_variability: int = 3
    """...and at least this many steady strides for the CV (an SD of two values is not a variability)."""


@dataclass(frozen=True)
class FrontSettings:
    """The front view: a walker approaching the camera (or walking away from it) grows (or shrinks) ×1.5–3.5 over
    the recording (7 m → 2 m), so every front-view signal is divided by the walker's current size and "steady" means
    a steady approach, not a steady pixel speed."""

    heel_strike_landmark_towards: str = "heel"
    """Walking toward the camera: heel strike is where this landmark of a foot is furthest below the same landmark
    of the other foot in the image (the foot in front is nearer, so lower), in current leg lengths. The heel:
    stride times within 57 ms for 95 % of strides on calibration walkers (seeds 100–105; the toe: 277 ms, its
    lift in swing competes with its depth). Its peak comes ~0.14 s after the true strike (the trailing heel rises)."""
    heel_strike_landmark_away: str = "foot_index"
    """Walking away: the foot in front is further, so higher in the image, and a lifted heel looks further too,
    so the heel (used before for both directions) peaked in early swing as often as at the strike (stride times
    off by up to 0.26 s). The toe stays on the ground until toe-off: stride times within 23 ms for 95 % of
    strides on the calibration walkers, its peak ~0.03 s after the true strike."""
    size_lowpass_hz: float = 0.5
    """The walker's current size (leg length in pixels, per frame) is low-passed at this cut-off (zero phase,
    order 2) before signals are divided by it: slower than the stride, so the legs' flexion does not enter."""
    approach_tolerance: float = 0.25
    """A front-view stride whose approach speed (rate of change of 1 / leg length in pixels, which is linear in
    time for a walker at constant speed toward or away from a pinhole camera) differs from the median stride's by
    more than this share is not a steady approach (standing still, gait initiation, slowing down, turning round,
    walking back) and is excluded with the reason; the side view's `StrideSettings.speed_tolerance` rule, wider:
    on calibration walkers (seeds 100–105, toward and away, standing first and turning or not) ±15 % dropped 14 %
    of the strides walked at constant speed (the size is measured with jitter and leg flexion), ±25 % 5.5 %."""
    base_width_percentile: float = 90.0
    """Base of support: per steady stride, this percentile of the frame-by-frame ankle separation over hip
    separation (the feet are widest apart in double support, at contact; swing adduction narrows them), then the
    median over steady strides. The median over all frames (before) read 0.15 below the simulated stance ratio."""
    base_max_diagonal: float = 0.3
    """Base of support on a diagonal approach (events._front_base): the leading ankle's sideways shift at the widest
    steps, in hip widths, is estimated from the regression of the ankle separation on how far the left foot is
    ahead, and removed; beyond this shift the base is null with the reason. On simulated approaches at 8 / 12 / 15°
    off the camera's axis (`synthetic.front_walk(diagonal_deg=…)`, base 1.2, six walkers each) the shift reads
    0.18–0.28 / 0.29–0.39 / 0.40–0.48 and the corrected base is off by −0.01…+0.12 / 0.00…+0.20 / +0.05…+0.26
    (uncorrected +0.07…+0.28 / +0.16…+0.40 / +0.22…+0.49); straight approaches read 0.00–0.15 (40 walkers). 0.3
    (about 11°) keeps the corrected error within the 0.2 of a straight approach."""
    min_scale_change: float = 1.15
    """A front view whose walker grows (or shrinks) less than this factor over the recording gets a warning: a walk
    toward or away from the camera should change the walker's size."""
    sideways_leg_lengths: float = 2.0
    """A front view whose pelvis travels more than this many leg lengths across the image is a side view in the front
    slot: no base of support and no front-view joint angles are measured."""
    heel_strike_knee_share: float = 0.1
    """Front view, heel strikes located (events._front_locate): the heel-strike signal (how far a foot is in front
    of the other, from their image heights) rises while the foot swings forward and flattens once it is down (both
    feet planted); it peaks only later, as the other foot leaves the ground (on hand-labelled real clips the peaks
    were 64–203 ms after the strike per clip, median offsets, 6 of 28 strikes within 2 frames at 30 fps). Each
    found peak is traced back to the knee of that rise: the first frame after the rise's fastest point whose
    velocity is at or below this share of that fastest velocity; every heel strike of the walk then moves by the
    median of those shifts (one shift per walk: stride and step times stay those of the peaks, so the simulated
    front stride-time tests are untouched). Chosen leave-one-clip-out on the 4 labelled real front clips (28 heel
    strikes; bench/labels/README.md) among 0 / 0.05–0.3 × 4 / 6 / 8 harmonics: every fold chose 0.1 at 6
    harmonics, held out 17 / 28 within 2 frames (61 %; 17 / 20 without the clip whose peaks sit ~0.4 s after
    both feet's strikes, unexplained). On the simulated walkers (seeds 100–105) it moves away-walks from +26 to −6
    ms (median) and toward-walks only from +144 to +122 ms: the simulated landing heel keeps sliding forward for
    ~45 ms after its nominal contact, so its rise has no knee there. 0: not located (the peak)."""
    heel_strike_knee_harmonics: float = 6.0
    """Cut-off, in stride frequencies, of the heel-strike signal before it is differentiated for that location
    (chosen with the share above)."""
    heel_strike_knee_window: float = 0.4
    """The rise is looked for within this share of the stride period before each found peak (a swing is ~0.4
    stride)."""


@dataclass(frozen=True)
class KinematicsSettings:
    """Joint-angle curves per leg: each steady stride of a leg (heel strike to the next heel strike of the same foot)
    time-normalised to `points` samples, then averaged."""

    points: int = 101
    """Samples per normalised cycle (0, 1, ..., 100 % of the cycle)."""
    lowpass_hz: float = 6.0
    """Zero-phase Butterworth low-pass of each joint-angle series before it is cut into cycles (Winter's 6 Hz
    for walking kinematics; the filter order is SignalSettings.filter_order)."""
    min_coverage: float = 0.8
    """A cycle is used for a series when the series is measured on this share of its frames."""
    end_slack: float = 0.1
    """...and measured within this share of the cycle of both of its ends (no extrapolation)."""
    min_steady_cycles_per_leg: int = 2
    """A joint's curves, ranges of motion (ROM) and left/right symmetry index need at least this many steady gait
    cycles of *each* leg in its view; with fewer on either leg all of them are null with the reason naming both
    counts. One cycle per leg is an anecdote, not a range or a symmetry (the rule the variability parameters
    follow with `StrideSettings.min_steady_steps_variability`). Cycles come only from steady strides."""
    min_rom_for_symmetry_deg: float = 8.0
    """A symmetry index needs a mean range of motion of at least this much: it is a relative difference, and of
    two ranges near the measurement's noise it measures the noise (on simulated walkers whose knee moves 6° in
    the frontal plane, the front view reads 2–11° per leg, and the index read −77 % for a symmetric walker, seed
    3). Side-view flexion ranges (40–60°) are far above it; front-view knee ab/adduction is usually below it."""


@dataclass(frozen=True)
class FrontAngleSettings:
    """Front-view hip and knee ab/adduction: where a 2-D frontal projection measures them, and how far they may
    plausibly move in walking. Outside the bounds a leg's front curve is null with the reason, so it is never a model
    input (the prediction abstains when its model needs it)."""

    max_shank_tilt_deg: float = 30.0
    """A front-view frame measures a leg's ab/adduction only where the 2-D projection is valid: its shank tilts at
    most this far out of the image plane and (`max_knee_flexion_deg`) its knee is nearly straight. A segment tilted
    by θ appears cos θ of its full length (`reference_percentile`), both in the walker's current leg lengths. In
    pre-swing and swing the shank tilts 40–60° backward with the knee flexed up to 60°, and knee flexion about an
    axis not exactly perpendicular to the camera (hip rotation, a diagonal approach, a pose model's depth error)
    projects as apparent ab/adduction — the frontal-plane cross-talk of 2-D (and of skin-marker) kinematics. ROM
    and the plausibility bounds use only the phases of the cycle valid in at least half of its cycles (stance, about
    0–50 % and 90–100 %); the curve keeps the whole cycle (the 2-D projection the reference model was trained on)
    and records per phase the share of valid cycles."""
    max_knee_flexion_deg: float = 20.0
    """...and its thigh's and shank's tilts differ by at most this much (a proxy of knee flexion, at most ~20° in
    loading response; with 20° of flexion and a flexion axis turned 15° from the camera, cross-talk is ~5°)."""
    reference_percentile: float = 95.0
    """A segment's full length: this percentile of its length over the walker's current leg length, over the steady
    approach."""
    min_valid_share: float = 0.2
    """With fewer valid phases than this share of the cycle (20 of 101 points), a front ROM is not measured (null
    with the reason). On simulated walkers the share is 0.17–0.68, 0.26 at the 1st percentile (600 legs)."""
    knee_rom_max_deg: float = 16.0
    """Plausible knee ab/adduction (varus/valgus) excursion in walking, plus what the 2-D measurement adds. At the
    bone it is small: biplane radiography of 39 healthy knees over the whole treadmill gait cycle, 3.7° on average
    with 90 % prediction bands of about ±6° ("Full gait cycle knee kinematics of healthy adults", J Biomech Eng
    2020, doi:10.1115/1.4047419, PMC7477710); high-speed stereo radiography in stance, 2.3 ± 0.6°, rarely over 6°
    (Kefala et al. 2017, Med Sci Sports Exerc 49:2260, PMC8230732). Skin-marker motion capture reports more, mostly
    flexion cross-talk, still under 10° in normal walking. The pose model's jitter adds to a 2-D excursion: on
    simulated walkers whose knee moves 6° (synthetic.py's template), the valid phases read up to 11.3° (600 legs,
    seeds 100–399) and 15.1° (144 legs of test_front_reference.py). 16°: that 6° plus the measured 10° of noise.
    Over it the number cannot be knee motion plus noise: it measures the camera and the pose model."""
    hip_rom_max_deg: float = 25.0
    """Plausible hip ab/adduction excursion in walking, plus what the 2-D measurement adds: about 10° of adduction
    in loading response to about 5° of abduction in swing, a 10–15° arc in 3-D gait norms (Kadaba, Ramakrishnan &
    Wootten 1990, J Orthop Res 8:383, 40 adults; Perry & Burnfield, Gait Analysis, 2nd ed. 2010); the thigh's
    flexion inflates a projected lateral angle by 1 / cos(flexion) (~10 % at 25°), and the reference line, the
    perpendicular to the two hip landmarks one hip width apart, turns with their jitter: on simulated walkers
    whose hip moves 11°, the valid phases read up to 20.2° (600 legs) and 20.6° (144 legs). 25°: the 15° arc plus
    the measured 10° of noise."""


@dataclass(frozen=True)
class ConsistencySettings:
    """Both videos of a job show the same child: what both views measure must agree (cycles.json
    `quality.cross_view`, quality flag `views_consistent`; the prediction abstains when it fails). Two clips of
    different people (an upload mistake) otherwise pass silently."""

    stride_time_tolerance: float = 0.20
    """The longer of the two views' mean steady stride times may exceed the shorter by at most this share (cadence,
    120 / stride time, is compared alike). The two videos are separate walks: a child's self-selected speed varies
    between walks, and stride time changes about half as much as speed (cadence and step length both grow with
    speed); the front view's mean stride time is within 1.3 % on simulated walkers (test_front_reference.py). On
    300 simulated walkers (one walker in both cameras, seeds 100–399) the views differ by at most 12.9 % (median
    1.5 %, 99th percentile 9.6 %). 20 % leaves room for a real change of pace between the walks; two people whose
    stride times are closer than that are not told apart by this check."""
    proportion_tolerance: float = 0.25
    """The walker's leg length over trunk length (hip–knee–ankle over mid-shoulder–mid-hip, both 2-D, the
    `proportion_percentile` over the steady strides' frames, where both segments lie near the image plane) may
    differ between the views by at most this share. A body proportion, so it does not depend on the distance: it
    can tell a toddler from an adult, hardly two adults apart. Wide, because the front view foreshortens the legs:
    on the simulated walkers (who all share one proportion) the views differ by up to 15.5 % (99th percentile
    11.7 %, seeds 100–399); the Sports2D walker and the two vtest walkers read 1.56, 1.42 and 1.35."""
    proportion_percentile: float = 90.0
    """...the percentile of that ratio over the steady frames (the legs' fullest extension in both views)."""


@dataclass(frozen=True)
class GaitSettings:
    """All of stage 5's parameters; recorded in cycles.json as `settings`."""

    signal: SignalSettings = field(default_factory=SignalSettings)
    events: EventSettings = field(default_factory=EventSettings)
    strides: StrideSettings = field(default_factory=StrideSettings)
    front: FrontSettings = field(default_factory=FrontSettings)
    kinematics: KinematicsSettings = field(default_factory=KinematicsSettings)
    front_angles: FrontAngleSettings = field(default_factory=FrontAngleSettings)
    consistency: ConsistencySettings = field(default_factory=ConsistencySettings)

    def as_record(self) -> dict:
        return asdict(self)


DEFAULT = GaitSettings()
