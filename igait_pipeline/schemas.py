"""Contracts of everything that crosses a boundary: one definition used by writer and reader.

No Dagster import here: the stages, the CLI, the sensors and the web app's readers all share these models.
"""
from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from igait_pipeline.layout import VIEWS  # noqa: F401  (re-exported: readers of the contracts use it)

View = Literal["front", "side"]

# MediaPipe BlazePose's 33 landmarks, in model order.
LANDMARK_NAMES = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
]
LM = {name: i for i, name in enumerate(LANDMARK_NAMES)}


class MetadataError(ValueError):
    """metadata.json is missing a field or holds a value that cannot be used."""


_FT_IN = re.compile(
    r"""^\s*(\d+(?:\.\d+)?)\s*(?:'|ft|feet|foot)\s*(?:(\d+(?:\.\d+)?)\s*(?:"|''|in|inch|inches)?)?\s*$""", re.I)
_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(cm|m|mm|in|inch|inches|\")?\s*$", re.I)


def parse_height_cm(value: object) -> float:
    """Height as the web app sends it (`4'2"`, `4 ft 2 in`, `127 cm`, `1.27 m`, `50 in`, or a number of cm)."""
    if isinstance(value, bool):
        raise MetadataError("height is true/false, not a height")
    if isinstance(value, (int, float)):
        cm = float(value)
    else:
        text = str(value).strip()
        m = _FT_IN.match(text)
        if m:
            cm = float(m.group(1)) * 30.48 + float(m.group(2) or 0) * 2.54
        else:
            m = _UNIT.match(text)
            if not m:
                raise MetadataError("height is not understood (expected e.g. 4'2\" or 127 cm)")
            number, unit = float(m.group(1)), (m.group(2) or "cm").lower()
            cm = number * {"cm": 1.0, "m": 100.0, "mm": 0.1, "in": 2.54, "inch": 2.54, "inches": 2.54, '"': 2.54}[unit]
    if not 40.0 <= cm <= 250.0:
        raise MetadataError("height is outside 40–250 cm")
    return round(cm, 1)


_WEIGHT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(kg|kgs|lb|lbs|pounds)?\s*$", re.I)


def parse_weight_kg(value: object) -> float:
    if isinstance(value, bool):
        raise MetadataError("weight is true/false, not a weight")
    if isinstance(value, (int, float)):
        kg = float(value)
    else:
        m = _WEIGHT.match(str(value))
        if not m:
            raise MetadataError("weight is not understood (expected e.g. 25 kg or 55 lb)")
        kg = float(m.group(1)) * (0.45359237 if (m.group(2) or "kg").lower().startswith(("lb", "p")) else 1.0)
    if not 5.0 <= kg <= 300.0:
        raise MetadataError("weight is outside 5–300 kg")
    return round(kg, 1)


class AddressError(ValueError):
    """An e-mail address that cannot be used as the one recipient. The message names the problem, never the
    address (it is patient data: it goes to logs)."""


# Characters no usable single mailbox holds: separators of several addresses, display-name and comment syntax.
_ADDRESS_FORBIDDEN = set(',;<>()[]"\\')
MAX_ADDRESS_LENGTH = 254  # RFC 5321: a path of 256 octets including the angle brackets


def normalize_email(value: object) -> str:
    """One recipient `local@domain`, normalised: the domain in IDNA ASCII and lower case, the local part as given.

    Refused (AddressError): anything but a string; white space or control characters anywhere (a trailing
    newline too); a comma, semicolon, angle bracket or other syntax that makes several recipients or a display
    name; not exactly one '@'; an empty, over-long or dotted-wrong part; a domain without a dot or not
    encodable in IDNA. A local part with non-ASCII letters is kept: sending it needs a server that offers
    SMTPUTF8 (status.notify checks that and refuses clearly otherwise).
    """
    if not isinstance(value, str):
        raise AddressError("email is not a string")
    if _ADDRESS_FORBIDDEN & set(value):
        raise AddressError("email must be one plain address (no comma, semicolon, brackets, quotes or name)")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise AddressError("email contains white space or a control character (a line break?)")
    if value.count("@") != 1:
        raise AddressError("email must contain exactly one '@'")
    local, domain = value.split("@")
    if not local or len(local.encode("utf-8")) > 64 or local.startswith(".") or local.endswith(".") or ".." in local:
        raise AddressError("email has an empty, over-long or badly dotted part before the '@'")
    labels = domain.split(".")
    if len(labels) < 2 or any(not label for label in labels):
        raise AddressError("email has no usable domain after the '@'")
    try:
        ascii_domain = ".".join(label.encode("idna").decode("ascii") for label in labels).lower()
    except UnicodeError:
        raise AddressError("email's domain cannot be written in IDNA") from None
    if not all(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", label) for label in ascii_domain.split(".")):
        raise AddressError("email's domain has characters a domain cannot hold")
    address = f"{local}@{ascii_domain}"
    if len(address.encode("utf-8")) > MAX_ADDRESS_LENGTH:
        raise AddressError(f"email is longer than {MAX_ADDRESS_LENGTH} bytes")
    return address


class JobMetadata(BaseModel):
    """`stage_0/metadata.json` as the web app writes it, normalised (height in cm, weight in kg)."""

    model_config = ConfigDict(extra="ignore")

    age: float = Field(ge=1, le=100, description="years")
    sex: Literal["M", "F", "O"]
    height_cm: float
    weight_kg: float
    ethnicity: str = Field(min_length=1)
    email: str

    @field_validator("age", mode="before")
    @classmethod
    def _age(cls, v: object) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise ValueError("age must be a number of years")  # `"age": true` is not 1 year
        if isinstance(v, str):
            if not re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", v):
                raise ValueError("age must be a number of years")
            return float(v)
        return float(v)

    @field_validator("ethnicity", mode="before")
    @classmethod
    def _text(cls, v: object) -> str:
        if not isinstance(v, str):
            raise ValueError("ethnicity must be text")
        return v

    @field_validator("sex", mode="before")
    @classmethod
    def _sex(cls, v: object) -> str:
        if not isinstance(v, str):
            raise ValueError("sex must be text")
        s = v.strip().lower()
        table = {"m": "M", "male": "M", "boy": "M", "f": "F", "female": "F", "girl": "F", "o": "O", "other": "O"}
        if s not in table:
            raise ValueError("sex is not one of M, F, O")
        return table[s]

    @field_validator("email", mode="before")
    @classmethod
    def _email(cls, v: object) -> str:
        try:
            return normalize_email(v)
        except AddressError as e:
            raise ValueError(str(e)) from None

    @classmethod
    def parse(cls, raw: dict) -> JobMetadata:
        """Parse the raw web-app document; raise MetadataError naming each bad field."""
        if not isinstance(raw, dict):
            raise MetadataError("metadata.json is not a JSON object")
        missing = [k for k in ("age", "sex", "height", "weight", "ethnicity", "email") if k not in raw and
                   not (k == "height" and "height_cm" in raw) and not (k == "weight" and "weight_kg" in raw)]
        if missing:
            raise MetadataError(f"metadata.json lacks {', '.join(missing)}")
        data = dict(raw)
        data["height_cm"] = parse_height_cm(raw.get("height", raw.get("height_cm")))
        data["weight_kg"] = parse_weight_kg(raw.get("weight", raw.get("weight_kg")))
        try:
            return cls.model_validate(data)
        except ValueError as e:  # pydantic.ValidationError is a ValueError
            errs = getattr(e, "errors", lambda: [])()
            # the field and pydantic's message only: never the input value (patient data goes nowhere near logs)
            detail = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg'].removeprefix('Value error, ')}"
                               for x in errs) or "unusable values"
            raise MetadataError(f"metadata.json is invalid: {detail}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> JobMetadata:
        """Parse metadata.json's bytes; bad JSON is a MetadataError like any other bad metadata."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise MetadataError(f"metadata.json is not valid JSON ({e.msg} at line {e.lineno})") from None
        return cls.parse(raw)

    def patient(self) -> dict:
        return {"age": self.age, "sex": self.sex, "height": self.height_cm, "weight": self.weight_kg,
                "ethnicity": self.ethnicity}


# ---------- stage 2: validation.json ----------
class ViewValidation(BaseModel):
    frames_total: int
    frames_sampled: int
    fps: float
    person_ratio: float
    full_body_ratio: float
    multiple_people_ratio: float
    walking: bool
    hip_travel: float = Field(description="horizontal travel of the walker's hips, share of frame width")
    scale_change: float = Field(description="walker's torso length at the end over the start of its walking segment")
    walker_box: list[float] | None = Field(None, description="union box [x0, y0, x1, y1], normalised")
    track: list[list[float]] = Field(default_factory=list,
                                     description="the walker's track: [t, x0, y0, x1, y1] per sample it is seen on")
    tracks: int = Field(0, description="number of people tracks found")
    walker_track_id: int | None = None
    walker_coverage: float = Field(0.0, description="share of sampled frames on which the walker's track is seen")
    walk: dict = Field(default_factory=dict, description="the walker's evidence: legs' stride rhythm, travel, size")
    background_track: list[list[float]] = Field(
        default_factory=list, description="the camera's pan as stage 2 measured it: [t, x] per sample, the "
                                          "background's horizontal position relative to the first sample in frame "
                                          "widths (+: slid right); empty when it never moved")
    view_seen: str = Field("unknown", description="front, side, oblique (not judged) or unknown, from the pose")
    view_evidence: dict = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class ValidationReport(BaseModel):
    job_id: str
    valid: bool
    views: dict[str, ViewValidation]
    thresholds: dict[str, float]
    params: dict = Field(default_factory=dict, description="stage 2's parameters (tracker, walker, view check)")
    view_check: dict = Field(default_factory=dict, description="{verdict, mode, message}")
    reasons: list[str]
    warnings: list[str] = Field(default_factory=list)


# ---------- stage 4: {view}_keypoints.json ----------
class ModelInfo(BaseModel):
    name: str
    version: str


class KeypointFrame(BaseModel):
    index: int
    t: float
    landmarks: list[list[float]] | None = None  # 33 × [x, y, z, visibility]


class Keypoints(BaseModel):
    job_id: str
    view: View
    fps: float
    width: int
    height: int
    model: ModelInfo
    landmark_names: list[str] = Field(default_factory=lambda: list(LANDMARK_NAMES))
    background: list[list[float]] = Field(
        default_factory=list, description="the camera's pan (stage 2, through stage 3's crop): [t, x] the "
                                          "background's horizontal position in this video's normalised x, relative "
                                          "to the start; stage 5 measures the side-view walker's travel against it")
    frames: list[KeypointFrame]


# ---------- stage 5: cycles.json ----------
class Stride(BaseModel):
    foot: Literal["left", "right"]
    start: float
    end: float
    duration: float
    toe_off: float | None = Field(None, description="that foot's toe-off inside the stride, if exactly one")
    steady: bool = Field(True, description="not cut by the frame edge, not gait initiation or termination")
    excluded: str | None = Field(None, description="why the stride is not steady")
    speed_norm: float | None = Field(
        None, description="side view: the stride's speed in leg lengths/s, compared with the median stride's for "
                          "steadiness: the pelvis's across the picture, or its speed over the ground (relative to the "
                          "foot on the ground) when the camera follows the walker")
    approach_speed: float | None = Field(
        None, description="front view: rate of change of the walker's distance from the camera, in units of the "
                          "distance at which the leg has its median pixel length, per second (+: toward the camera); "
                          "compared with the median stride's for steadiness")


class ParameterInfo(BaseModel):
    value: float | None
    n: int = Field(description="steady strides (or steps, or frames: see basis) the value was computed from; 0 when "
                               "the value is null (its reason says what was found)")
    basis: str
    reason: str | None = Field(None, description="why the value is null")
    view: Literal["side", "front"] | None = Field(None, description="the view the value was measured in (None: "
                                                                    "not measured in a view, or an older file)")


class Cycles(BaseModel):
    """`stage_5/cycles.json`: everything stage 6 needs; stage 6 never reads keypoints."""

    job_id: str
    view_used: View
    fps: float
    heel_strikes: dict[str, list[float]]
    toe_offs: dict[str, list[float]]
    strides: list[Stride] = Field(description="steady strides of view_used (the parameters use these)")
    excluded_strides: list[Stride] = Field(default_factory=list, description="strides that are not steady, why")
    parameters: dict[str, float | None]
    parameter_details: dict[str, ParameterInfo] = Field(default_factory=dict)
    methods: dict[str, str] = Field(default_factory=dict, description="how each parameter is computed")
    kinematics: dict[str, object] = Field(default_factory=dict,
                                          description="per-leg joint-angle cycle curves, ROM, symmetry")
    settings: dict[str, object] = Field(default_factory=dict, description="stage 5's algorithm parameters")
    quality: dict[str, object]


# ---------- stage 6: prediction.json ----------
class PredictionModel(BaseModel):
    name: str
    version: str
    sha256: str
    clinically_validated: bool
    trained_on: str


class OutOfRangeInput(BaseModel):
    name: str
    value: float
    range: tuple[float, float] = Field(description="the model's declared domain for this input")


CLASSIFICATIONS = ("ASD", "NO ASD", "INDETERMINATE")


class Prediction(BaseModel):
    job_id: str
    classification: Literal["ASD", "NO ASD", "INDETERMINATE"] = Field(
        description="INDETERMINATE when the job is outside the model's domain or a quality check failed; the "
                    "score is then only a number, not a result")
    reasons: list[str] = Field(default_factory=list, description="why the classification is INDETERMINATE")
    in_domain: bool = Field(description="the job lies inside the domain the model card declares")
    out_of_range_inputs: list[OutOfRangeInput] = Field(default_factory=list)
    clinically_validated: bool
    score: float = Field(ge=0.0, le=1.0)
    threshold: float
    model: PredictionModel
    disclaimer: str
    settings: dict[str, object] = Field(default_factory=dict,
                                        description="stage 6's parameters and the stage 5 settings it read")
    features: dict[str, object]


# ---------- models/{name}/{version}/model_card.json ----------
class ModelDomain(BaseModel):
    """Where a model may be used: jobs outside it get an INDETERMINATE prediction."""

    age_years: tuple[float, float] = Field(description="ages of the training population, inclusive")
    feature_ranges: dict[str, tuple[float, float]] = Field(
        description="per input, the range accepted (training min/max widened by `margin` of the span)")
    margin: float = Field(0.0, ge=0.0, description="share of each training span added on both sides")
    rule: str = Field(description="how the ranges were derived, in words")


class ModelCard(BaseModel):
    """`model_card.json`, beside `model.pt` in models/{name}/{version}/. A model is promoted (published) and used
    only when its card validates and its sha256 matches the file (the prediction asset's blocking model gate)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of model.pt")
    clinically_validated: bool
    trained_on: str = Field(min_length=1)
    intended_use: str = Field(min_length=1)
    domain: ModelDomain
    feature_names: list[str] = Field(min_length=1)
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    metrics: dict[str, object] = Field(default_factory=dict)
