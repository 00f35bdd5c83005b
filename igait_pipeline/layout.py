"""The iGait job layout, in one place and without Dagster: job IDs, the stage table, storage keys.

Every layer reads these: the storage library (`jobs/{job_id}/stage_N/<file>`), the assets (name, stage number and
files of each stage), the uploads sensor, the job-status documents and e-mails (stage labels), placement and the
CLI. Renaming a stage's file or label means editing `STAGES` here and nothing else.

    jobs/{job_id}/stage_0/front.mp4, side.mp4, metadata.json     the upload (the web back end writes it)
    jobs/{job_id}/stage_N/<file>                                  what stage N's asset wrote
    jobs/{job_id}/stage_N/{view}<...>                             a per-view stage: each view's own files
    jobs/{job_id}/stage_N/.manifest.{view|all}.json, .commit.*/   a GCS commit: its manifest and files
    models/{name}/{version}/model.pt, model_card.json             scoring models
    research/...                                                  the research layer's tables and labels

What each identity may touch (`ACCESS`) is derived from the stage table too: a stage's step reads the folders of
the stages it reads (`Stage.reads`) and writes only its own `stage_N/`; the uploads path only
creates `stage_0/` objects. The storage handles of a step enforce it (`igait_pipeline.storage.scope`), and the
IAM bindings a platform team applies are generated from it (`igait_pipeline.deploy_iam`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# `{user_id}_{index}`: a user ID of letters, digits and inner dashes, then an underscore and a number. Always
# matched whole (`fullmatch`, and `\Z`: `$` would admit a final newline, `a_1\n`), and only ASCII digits.
JOB_ID_RE = re.compile(r"(?P<user_id>[A-Za-z0-9](?:[A-Za-z0-9-]{0,126}[A-Za-z0-9])?)_(?P<index>[0-9]{1,9})\Z",
                       re.ASCII)
MAX_JOB_ID_LENGTH = 128 + 1 + 9  # user ID (at most 128), '_', index (at most 9 digits)

ASSET_GROUP = "igait"  # the Dagster asset group every stage asset belongs to
SCREENING_MODEL = "screening_model"  # the unpartitioned asset of the model in use; prediction depends on it
STAGE_META = "igait/stage"  # asset definition metadata: the stage number N of `stage_N/`
FILES_META = "igait/files"  # asset definition metadata: the file names a stage always produces
VIEW_META = "igait/view"  # asset definition metadata of a per-view stage's asset: the view it produces
VIEWS = ("front", "side")  # the two walking videos of every job
JOB = "{job}"  # in an access prefix: one job ID (one path segment)
MODELS_PREFIX = "models/"
RESEARCH_PREFIX = "research/"


class LayoutError(ValueError):
    pass


def view_of(name: str) -> str | None:
    """The view a stage file belongs to (`front.mp4`, `side_keypoints.json` -> the view), or None (`cycles.json`)."""
    return next((v for v in VIEWS if name.startswith((f"{v}.", f"{v}_"))), None)


@dataclass(frozen=True)
class Stage:
    """One stage of a job: its number (the N of `stage_N/`), its asset's name, the label people read (run log,
    job document, e-mail), the files it always writes under `stage_N/`, the stages whose files it reads (`reads`:
    its asset's inputs, and all its step may read of the job) and the shared prefixes outside `jobs/` it reads
    (`reads_shared`: the scoring models).

    A per-view stage (`per_view`) is one asset per view, `{asset}_{view}` (e.g. `keypoints_front`): each view is
    its own step, so the two views run at the same time and one view can be re-run alone. Every file of such a
    stage belongs to one view (its name starts with the view); the job document, metrics and `igait status`
    still show it as one stage, successful once every view is."""

    number: int
    asset: str
    label: str
    files: tuple[str, ...]
    per_view: bool = False
    reads: tuple[int, ...] = ()
    reads_shared: tuple[str, ...] = ()

    def __post_init__(self):
        if self.per_view and any(view_of(f) is None for f in self.files):
            raise LayoutError(f"per-view stage {self.number} has files of no view: {self.files}")
        if any(not 0 <= n < self.number for n in self.reads) or len(set(self.reads)) != len(self.reads):
            raise LayoutError(f"stage {self.number} may read only earlier stages, each once: {self.reads}")

    def asset_key(self, view: str | None = None) -> str:
        """The asset key of this stage (of one view's asset, for a per-view stage) as the UI and `dagster asset
        materialize --select` spell it. One part, whose whole is the name the UI shows: the stage first, the
        view last (`keypoints_front`), so the catalog and lineage list both views of a stage together and no
        asset is just "front"."""
        if not self.per_view:
            if view is not None:
                raise LayoutError(f"stage {self.number} ({self.asset}) is one asset for both views, not per view")
            return self.asset
        if view not in VIEWS:
            raise LayoutError(f"stage {self.number} ({self.asset}) is one asset per view {VIEWS}: not {view!r}")
        return f"{self.asset}_{view}"

    @property
    def asset_keys(self) -> tuple[str, ...]:
        """Every asset key of this stage: one, or one per view."""
        return tuple(self.asset_key(v) for v in VIEWS) if self.per_view else (self.asset,)

    def former_asset_key(self, view: str | None = None) -> tuple[str, ...]:
        """The key this asset had in releases before the per-view assets were named `{stage}_{view}`: the two-part
        `("keypoints", "front")` (shown as "front" in the UI). An instance keeps the history recorded under it;
        `stage_of_asset` and `igait status` still read it. A per-job stage's key did not change."""
        self.asset_key(view)  # the same checks
        return (self.asset, view) if self.per_view else (self.asset,)

    def files_of(self, view: str | None) -> tuple[str, ...]:
        """The files one view's asset writes (all files for view None, or for a per-job stage)."""
        return tuple(f for f in self.files if view_of(f) == view) if self.per_view and view else self.files

    def prefix(self, job_id: str) -> str:
        return stage_prefix(job_id, self.number)

    def key(self, job_id: str, name: str | None = None) -> str:
        """The key of one of this stage's files (the only one when name is not given)."""
        if name is None:
            if len(self.files) != 1:
                raise LayoutError(f"stage {self.number} has several files {self.files}: name one")
            name = self.files[0]
        if name not in self.files:
            raise LayoutError(f"stage {self.number} ({self.asset}) has no file {name!r}; its files: {self.files}")
        return job_key(job_id, self.number, name)


STAGES: tuple[Stage, ...] = (
    Stage(0, "upload", "upload", ("front.mp4", "side.mp4", "metadata.json")),
    Stage(1, "converted_video", "video conversion", ("front.mp4", "side.mp4"), per_view=True, reads=(0,)),
    Stage(2, "validation_report", "video check", ("validation.json",), reads=(1,)),
    Stage(3, "reframed_video", "reframing", ("front.mp4", "side.mp4", "front_crop.json", "side_crop.json"),
          per_view=True, reads=(1, 2)),
    Stage(4, "keypoints", "pose estimation",
          ("front_keypoints.json", "side_keypoints.json", "front_overlay.mp4", "side_overlay.mp4"), per_view=True,
          reads=(3,)),
    Stage(5, "gait_cycles", "gait cycles", ("cycles.json", "cycles.png", "curves.png"), reads=(4,)),
    Stage(6, "prediction", "prediction", ("prediction.json",), reads=(0, 5), reads_shared=(MODELS_PREFIX,)),
    Stage(7, "results_archive", "results archive", ("results.zip",), reads=(0, 1, 2, 3, 4, 5, 6)),
)
UPLOAD, CONVERTED, VALIDATION, REFRAMED, KEYPOINTS, CYCLES, PREDICTION, ARCHIVE = STAGES
PIPELINE_STAGES = STAGES[1:]  # what a run of the pipeline materializes; stage 0 is the upload itself
FINAL_STAGE = STAGES[-1].number
_BY_ASSET = {s.asset: s for s in STAGES}
_BY_KEY = {(key,): (s, view) for s in STAGES
           for key, view in (zip(s.asset_keys, VIEWS) if s.per_view else [(s.asset, None)])}
# Keys of releases before the per-view assets were named `{stage}_{view}` (`keypoints/front`, a two-part key):
# their materializations stay in an instance's history under those keys; read as the same stage and view.
_BY_KEY.update({s.former_asset_key(view): (s, view) for s in STAGES if s.per_view for view in VIEWS})


def stage(number: int) -> Stage:
    if not 0 <= number < len(STAGES):
        raise KeyError(f"no stage {number}; stages are 0..{FINAL_STAGE}")
    return STAGES[number]


def _stage_and_view(asset: str | list[str] | tuple[str, ...]) -> tuple[Stage, str | None]:
    path = tuple(asset.split("/")) if isinstance(asset, str) else tuple(asset)
    if len(path) == 1 and path[0] in _BY_ASSET:  # a stage's name (for a per-view stage: both views)
        return _BY_ASSET[path[0]], None
    try:
        return _BY_KEY[path]
    except KeyError:
        keys = sorted(k for s in STAGES for k in s.asset_keys)
        raise KeyError(f"no stage has the asset {'/'.join(path)!r}; assets: {keys}") from None


def stage_of_asset(asset: str | list[str] | tuple[str, ...]) -> Stage:
    """The stage of an asset key (`gait_cycles`, `keypoints_front`, or its path as a list), or of a stage's name
    (`keypoints`: the stage of both views). Keys of older releases (`keypoints/front`) are read too."""
    return _stage_and_view(asset)[0]


def view_of_asset(asset: str | list[str] | tuple[str, ...]) -> str | None:
    """The view a per-view stage's asset key handles (`keypoints_front` -> front); None for a per-job stage."""
    return _stage_and_view(asset)[1]


class JobIdError(ValueError):
    pass


def validate_job_id(job_id: object) -> str:
    """Return the job ID unchanged, or raise JobIdError saying what is wrong with it (before any storage access)."""
    if not isinstance(job_id, str):
        raise JobIdError(f"job ID {job_id!r} is not a string; expected {{user_id}}_{{index}}, e.g. user123_5")
    if not job_id:
        raise JobIdError("job ID '' is empty; expected {user_id}_{index}, e.g. user123_5")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise JobIdError(f"job ID {job_id[:20]!r}… is too long: {len(job_id)} characters, at most "
                         f"{MAX_JOB_ID_LENGTH} (a user ID of up to 128, '_', an index of up to 9 digits)")
    if JOB_ID_RE.fullmatch(job_id):
        return job_id
    problems = []
    if "/" in job_id or "\\" in job_id:
        problems.append("contains a path separator")
    if ".." in job_id:
        problems.append("contains '..'")
    if any(c.isspace() for c in job_id):
        problems.append("contains white space")
    if "_" not in job_id:
        problems.append("has no '_' between user ID and index")
    else:
        user, _, index = job_id.rpartition("_")
        if not user:
            problems.append("has an empty user ID")
        if not index:
            problems.append("has an empty index")
        elif not (index.isascii() and index.isdigit()):
            problems.append(f"index {index!r} is not a number")
        elif len(index) > 9:
            problems.append(f"index {index!r} has more than 9 digits")
        elif user and len(user) > 128:
            problems.append(f"user ID has {len(user)} characters, at most 128")
    detail = "; ".join(problems) or "has characters outside letters, digits and '-'"
    raise JobIdError(f"job ID {job_id!r} is malformed: {detail}; expected {{user_id}}_{{index}}, e.g. user123_5")


def user_id_of(job_id: str) -> str:
    return JOB_ID_RE.fullmatch(validate_job_id(job_id)).group("user_id")


def stage_prefix(job_id: str, stage: int) -> str:
    return stage_template(stage).replace(JOB, validate_job_id(job_id))


def stage_template(stage: int) -> str:
    """`jobs/{job}/stage_N/`: the folder of stage N of any job (an access prefix)."""
    return f"jobs/{JOB}/stage_{int(stage)}/"


def job_key(job_id: str, stage: int, name: str) -> str:
    if "/" in name or name in ("", ".", ".."):
        raise LayoutError(f"file name {name!r} is not a plain name")
    return stage_prefix(job_id, stage) + name


def upload_glob(job_glob: str = "*") -> str:
    """A storage glob (see `Storage.list`) for the metadata.json of every upload whose job ID matches job_glob:
    the file the web back end writes last, so its presence marks a complete upload."""
    return f"jobs/{job_glob}/stage_{UPLOAD.number}/metadata.json"


def model_prefix(name: str, version: str) -> str:
    return f"{MODELS_PREFIX}{name}/{version}/"


# ---------- who may touch what ----------

_GLOB = set("*?[]{}\\")


@dataclass(frozen=True)
class Access:
    """What one identity may touch in storage, as key prefixes in which `{job}` stands for exactly one job ID (for
    a stage's step: the job it runs for; for the uploads path: any job). `reads` may be read and listed, `writes`
    written, replaced and deleted; with `create_only` a write may only create an object that does not exist yet,
    and nothing is deleted. Every write prefix is readable too (a stage lists and replaces its own files)."""

    name: str  # the identity: `stage_4`, `uploads`, `control`
    label: str  # what an error message calls it
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    create_only: bool = False
    stage: Stage | None = None

    @property
    def readable(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.reads + self.writes))

    def can_read(self, key: str, job: str | None) -> bool:
        return any(within(t, key, job) for t in self.readable)

    def can_write(self, key: str, job: str | None) -> bool:
        return any(within(t, key, job) for t in self.writes)

    def can_list(self, prefix: str, match_glob: str | None, job: str | None) -> bool:
        """A listing stays inside what may be read: its prefix is inside a readable prefix, or its glob can only
        match keys inside one (`jobs/u_*/stage_0/metadata.json` for an identity that reads any job's stage_0)."""
        return any(within(t, prefix, job, folder=True) or (match_glob is not None and glob_within(t, match_glob, job))
                   for t in self.readable)


def _split(template: str, key: str, job: str | None) -> str | None:
    """The part of key after template's `{job}` segment (which must be one valid job ID, `job` if given), or None
    if key does not start like template. A template without `{job}` returns what follows it."""
    head, sep, _ = template.partition(JOB)
    if not key.startswith(head):
        return None
    if not sep:
        return key[len(head):]
    rest = key[len(head):]
    seg, slash, _ = rest.partition("/")
    if not slash or not JOB_ID_RE.fullmatch(seg) or (job is not None and seg != job):
        return None
    return rest[len(seg):]


def within(template: str, key: str, job: str | None, folder: bool = False) -> bool:
    """Is key below the access prefix template (a name under it; with folder, the prefix itself counts too)? `{job}`
    matches one path segment that is a job ID: `job` if given, any job ID if None."""
    tail = template.partition(JOB)[2] if JOB in template else ""
    after = _split(template, key, job)
    if after is None or not after.startswith(tail):
        return False
    return folder or len(after) > len(tail)


def glob_within(template: str, glob: str, job: str | None) -> bool:
    """Can every key the storage glob matches (`*` never crossing `/`) only be below template? The glob's
    `{job}` segment may hold wildcards only when any job is allowed (job None)."""
    head, sep, tail = template.partition(JOB)
    if not glob.startswith(head) or _GLOB & set(head):
        return False
    if not sep:
        return len(glob) > len(head)
    rest = glob[len(head):]
    seg, slash, after = rest.partition("/")
    if not slash or not seg or "**" in seg or (job is not None and seg != job):
        return False
    if job is None and not _GLOB & set(seg) and not JOB_ID_RE.fullmatch(seg):
        return False
    after = "/" + after
    return after.startswith(tail) and not _GLOB & set(tail) and len(after) > len(tail)


def stage_access(stage: Stage) -> Access:
    """What stage N's step may touch: read its input stages' folders (and shared prefixes such as the models),
    write its own `stage_N/` (its files, and on GCS its commits and manifests there)."""
    if stage.number == UPLOAD.number:
        raise LayoutError("stage 0 is written by the uploads path, not by a step: see UPLOADS_ACCESS")
    return Access(f"stage_{stage.number}", f"stage {stage.number} ({stage.label})",
                  reads=tuple(stage_template(n) for n in stage.reads) + stage.reads_shared,
                  writes=(stage_template(stage.number),), stage=stage)


# The web back end and `igait submit`: create a job's upload, nothing else (names of stage_0 may be listed, to
# pick the next job ID).
UPLOADS_ACCESS = Access("uploads", "the uploads path", reads=(stage_template(UPLOAD.number),),
                        writes=(stage_template(UPLOAD.number),), create_only=True)
# The control plane (code server: sensors; daemon; webserver; run workers; the research assets' steps): reads every
# job's files, deletes a re-uploaded job's stages 1-7, writes the research tables and the models. Never stage_0.
CONTROL_ACCESS = Access("control", "the control plane", reads=("jobs/",),
                        writes=(*(stage_template(s.number) for s in PIPELINE_STAGES), RESEARCH_PREFIX,
                                MODELS_PREFIX))
ACCESS: dict[str, Access] = {a.name: a for a in (UPLOADS_ACCESS, *(stage_access(s) for s in PIPELINE_STAGES),
                                                 CONTROL_ACCESS)}
