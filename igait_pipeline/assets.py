"""The iGait stages as software-defined assets, partitioned by job ID: one asset per stage, and for the per-view
stages (conversion, reframing, pose: `layout.STAGES[n].per_view`) one asset per view, `{stage}_{view}`
(`Stage.asset_key`: the name the UI shows says the stage and the view).

Thin wrappers: each takes the previous stages' files as `StageFiles` (local paths, through the IO manager), calls
a stage function from `igait_pipeline.stages`, and returns its own files plus the metadata the UI shows.

One view, one step: `converted_video_front` and `converted_video_side` are separate steps of the same job, so the
multiprocess (or Kubernetes) executor runs the two views at the same time, and one view can be re-materialized
alone. A per-view asset reads the same view of a per-view input (`reframed_video_front` reads
`converted_video_front`) and the whole of a per-job input (`validation_report`). A per-job asset that names a
per-view stage as a parameter (`keypoints: StageFiles`) receives both views' files merged, as if one asset had
written them: `stage_asset` splits such a parameter into one input per view and merges them before the call.
"""

import base64
import dataclasses
import functools
import inspect
import json
import multiprocessing
import re
import resource
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import cv2
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetSpec,
    Config,
    ConfigurableResource,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from igait_pipeline import placement, watchdog
from igait_pipeline.layout import (
    ASSET_GROUP,
    FILES_META,
    SCREENING_MODEL,
    STAGE_META,
    UPLOAD,
    VALIDATION,
    VIEW_META,
    JobIdError,
    LayoutError,
    Stage,
    stage_of_asset,
    validate_job_id,
    view_of_asset,
)
from igait_pipeline.partitions import job_partitions
from igait_pipeline.resources.io_manager import StorageResource, retry_transient, stage_step_scope
from igait_pipeline.resources.model_store import ModelStoreResource
from igait_pipeline.schemas import VIEWS, Cycles, JobMetadata, Keypoints, Prediction, ValidationReport
from igait_pipeline.stages import archive, cycles, features, media, pose, predict, reframe, validity
from igait_pipeline.storage import StageFiles, TransientStorageError, write_stage
from igait_pipeline.storage import scope as storage_scope


def _meta(stage: Stage, view: str | None = None) -> dict:
    meta = {STAGE_META: stage.number, FILES_META: list(stage.files_of(view))}
    return {**meta, VIEW_META: view} if view else meta


def _is_stage(name: str) -> bool:
    try:
        stage_of_asset(name)
        return True
    except KeyError:
        return False


def _per_view_stage(name: str) -> bool:
    try:
        return stage_of_asset(name).per_view
    except KeyError:
        return False


def _inputs(fn) -> list[inspect.Parameter]:
    """The parameters of an asset function that are asset inputs (not the context, not a resource)."""
    return [p for p in inspect.signature(fn).parameters.values()
            if p.name != "context" and not (isinstance(p.annotation, type)
                                            and issubclass(p.annotation, (ConfigurableResource, Config)))]


def _merging_views(fn):
    """fn with every parameter named after a per-view stage split into one input per view (`keypoints__front`,
    `keypoints__side`), merged back into one `StageFiles` before fn is called; and the AssetIns of those inputs."""
    split = [p.name for p in _inputs(fn) if _per_view_stage(p.name)]
    if not split:
        return fn, {}
    params, ins = [], {}
    for p in inspect.signature(fn).parameters.values():
        if p.name not in split:
            params.append(p)
            continue
        for view in VIEWS:
            params.append(p.replace(name=f"{p.name}__{view}"))
            ins[f"{p.name}__{view}"] = AssetIn(key=stage_of_asset(p.name).asset_key(view))

    def merge(kwargs: dict) -> dict:
        for name in split:
            kwargs[name] = StageFiles.merged(*(kwargs.pop(f"{name}__{view}") for view in VIEWS))
        return kwargs

    if inspect.isgeneratorfunction(fn):  # a stage that yields (output and check results) stays a generator
        @functools.wraps(fn)
        def merged(*args, **kwargs):
            yield from fn(*args, **merge(kwargs))
    else:
        @functools.wraps(fn)
        def merged(*args, **kwargs):
            return fn(*args, **merge(kwargs))

    merged.__signature__ = inspect.signature(fn).replace(parameters=params)
    return merged, ins


def stage_asset(description: str, kinds: set[str], code_version: str = "1",
                check_specs: list[AssetCheckSpec] | None = None, deps: list | None = None):
    """@asset for one stage, named after the function: partitioned by job, its stage number and file names (from
    `layout.STAGES`) in its metadata for the IO manager, placement (k8s resources, GPU node pool, concurrency
    pool) from configuration, not code.

    For a per-view stage it makes one asset per view, keyed `{name}_{view}` (`Stage.asset_key`), and returns them
    as a tuple; the function then handles the one view `_view(context)` names. Both views share the stage's
    placement."""
    def decorate(fn):
        name = fn.__name__
        stage = stage_of_asset(name)
        inputs = {stage_of_asset(p.name).number for p in _inputs(fn) if _is_stage(p.name)}
        if inputs != set(stage.reads):
            raise LayoutError(f"{name} takes the files of stages {sorted(inputs)}, but layout.STAGES says stage "
                              f"{stage.number} reads {sorted(stage.reads)}: the stage table decides what a stage "
                              f"may read (and its identity's bucket access); change both together")
        pool = placement.pool_for(name)
        common = dict(description=description, group_name=ASSET_GROUP, partitions_def=job_partitions,
                      code_version=code_version, kinds=kinds, op_tags=placement.op_tags_for(name),
                      **({"pool": pool} if pool else {}), **({"deps": deps} if deps else {}))
        if not stage.per_view:
            compute, ins = _merging_views(fn)
            return asset(name=name, metadata=_meta(stage), ins=ins, **common,
                         **({"check_specs": check_specs} if check_specs else {}))(_step(compute))
        if check_specs:
            raise ValueError(f"{name}: asset checks of a per-view stage need one spec per view asset")
        return tuple(
            asset(key=stage.asset_key(view), metadata=_meta(stage, view), **common,
                  ins={p.name: AssetIn(key=stage_of_asset(p.name).asset_key(view) if _per_view_stage(p.name)
                                       else p.name,
                                       metadata={VIEW_META: view}) for p in _inputs(fn)})(_step(fn))
            for view in VIEWS)
    return decorate


_SCRATCH: ContextVar[list[Path] | None] = ContextVar("igait_scratch", default=None)


def _context_of(args: tuple, kwargs: dict) -> AssetExecutionContext:
    ctx = kwargs.get("context") or next((a for a in args if isinstance(a, AssetExecutionContext)), None)
    if ctx is None:
        raise TypeError("a stage asset's function takes the asset execution context")
    return ctx


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system, all threads) of this process so far, and of its finished child processes."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


# The run-log line each stage step ends with (parsed back by `step_cpu_of`, e.g. by bench/job.py).
_CPU_LINE = ("{asset}: CPU {body:.2f} s in the step's own process, {tools:.2f} s in its tools (ffmpeg); "
             "{before} s before the step (process start, loading inputs); peak memory {rss:.0f} MiB")
_CPU_RE = re.compile(r"(?P<asset>\S+): CPU (?P<body>[\d.]+) s in the step's own process, (?P<tools>[\d.]+) s in its "
                     r"tools \(ffmpeg\); (?P<before>[\d.]+|-) s before the step")


def step_cpu_of(message: str) -> dict | None:
    """{asset, body, tools, before (None when the step ran in the run's process)} from a step's CPU line."""
    m = _CPU_RE.search(message)
    if not m:
        return None
    return {"asset": m["asset"], "body": float(m["body"]), "tools": float(m["tools"]),
            "before": None if m["before"] == "-" else float(m["before"])}


@contextmanager
def _step_scope(context: AssetExecutionContext) -> Iterator[None]:
    watchdog.exit_with_parent()
    job_id = _job_id(context)
    scope = stage_step_scope(context.asset_key.to_user_string(), job_id)
    made: list[Path] = []
    token = _SCRATCH.set(made)
    own0, tools0 = _cpu()
    try:
        # Every storage handle the stage takes from here on (StorageResource.get(), the model store) may touch
        # only what layout.ACCESS grants this stage for this job; the store unavailable past the client's retries
        # (reading a model, storing validation.json of rejected videos) retries the step.
        with storage_scope.within(scope), retry_transient(job_id, f"{scope.access.label}, step {scope.step}",
                                                          context.retry_number):
            yield
    except BaseException:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
        raise
    else:
        # What the step cost, for sizing its pod and for bench/job.py: a step process of the multiprocess executor
        # is forked for this step alone, so what it used before the body is its start and its inputs' loading.
        own1, tools1 = _cpu()
        alone = multiprocessing.parent_process() is not None
        context.log.info(_CPU_LINE.format(
            asset=context.asset_key.to_user_string(), body=own1 - own0, tools=tools1 - tools0,
            before=f"{own0:.2f}" if alone else "-",
            rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    finally:
        _SCRATCH.reset(token)


def _step(fn):
    """Around each stage asset: a step process of the multiprocess executor ends itself when its run worker
    dies (no orphan holding memory and a GPU), and the scratch directories the stage made are removed if it
    fails (on success the IO manager stores their files and removes them). A stage that yields (its output and
    an asset check result) is wrapped as a generator, so the scope covers its whole body."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def run_yielding(*args, **kwargs):
            with _step_scope(_context_of(args, kwargs)):
                yield from fn(*args, **kwargs)
        return run_yielding

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with _step_scope(_context_of(args, kwargs)):
            return fn(*args, **kwargs)
    return run


upload = AssetSpec(
    UPLOAD.asset,
    description="Stage 0: the job as uploaded by the web app: front.mp4, side.mp4 and metadata.json "
                "(patient age, sex, height, weight, ethnicity; e-mail). Written by the web back end or "
                "`igait submit`; the uploads sensor records it.",
    group_name=ASSET_GROUP,
    partitions_def=job_partitions,
    metadata=_meta(UPLOAD),
    kinds={"video", "json"},
)


@contextmanager
def stage_errors(context: AssetExecutionContext) -> Iterator[None]:
    """Turn a stage function's input errors into a Failure naming the job, the stage (its label) and the cause."""
    try:
        yield
    except (Failure, TransientStorageError):  # the latter: the step is retried (`_step_scope`)
        raise
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        job, stage = context.partition_key, _stage(context).label
        raise Failure(description=f"job {job}: {stage} failed: {e}",
                      metadata={"job_id": job, "stage": stage, "cause": str(e)}, allow_retries=False) from e


def _stage(context: AssetExecutionContext) -> Stage:
    return stage_of_asset(context.asset_key.path)


def _view(context: AssetExecutionContext) -> str | None:
    """The view a per-view stage's asset handles (`keypoints_front` -> front); None for a per-job stage."""
    return view_of_asset(context.asset_key.path)


def _scratch(context: AssetExecutionContext) -> Path:
    """A fresh scratch directory for this stage's files (removed when the stage fails or its files are stored)."""
    view = _view(context)
    d = Path(tempfile.mkdtemp(prefix=f"igait-{context.partition_key}-stage{_stage(context).number}-"
                                     f"{view + '-' if view else ''}"))
    made = _SCRATCH.get()
    if made is not None:
        made.append(d)
    watchdog.scratch_dirs.add(d)
    return d


def _outputs(context: AssetExecutionContext, out: Path) -> dict[str, Path]:
    """The stage's files (as `layout.STAGES` lists them; one view's for a per-view asset) in its scratch
    directory."""
    return {name: out / name for name in _stage(context).files_of(_view(context))}


def _job_id(context: AssetExecutionContext) -> str:
    try:
        return validate_job_id(context.partition_key)
    except JobIdError as e:
        raise Failure(description=str(e), allow_retries=False) from e


def _sizes(files: dict[str, Path]) -> dict:
    return {f"size_bytes/{name}": Path(p).stat().st_size for name, p in sorted(files.items())}


def _image_md(data: bytes, mime: str, title: str) -> MetadataValue:
    """A picture shown in the asset's metadata in the UI (markdown with a data URI)."""
    return MetadataValue.md(f"![{title}](data:{mime};base64,{base64.b64encode(data).decode()})")


def _thumbnail_md(image, title: str, width: int = 480) -> MetadataValue:
    h, w = image.shape[:2]
    small = cv2.resize(image, (width, max(1, int(h * width / w))))
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return _image_md(buf.tobytes(), "image/jpeg", title)


@stage_asset(
    kinds={"ffmpeg", "video"},
    description="Stage 1, one view: the view's video converted with ffmpeg to 1920×1080 (aspect kept, padded), "
                "60 fps, H.264 yuv420p, no audio.",
)
def converted_video(context: AssetExecutionContext, upload: StageFiles) -> Output[StageFiles]:
    job_id, view = _job_id(context), _view(context)
    out = _scratch(context)
    with stage_errors(context):
        # refuse a job whose metadata is unusable before any heavy work
        JobMetadata.from_json(upload["metadata.json"].read_bytes())
        src = upload[f"{view}.mp4"]
        try:
            before = media.probe(src, min_duration=media.MIN_WALK_DURATION_S)
            context.log.info(f"job {job_id}: converting {view} video ({before.width}×{before.height}, "
                             f"{before.fps:.2f} fps, {before.codec}, {before.duration:.1f} s)")
            info = media.convert(src, out / f"{view}.mp4", progress=lambda p: context.log.info(
                f"job {job_id}: {view} conversion {p:.0%}"))
        except media.MediaError as e:
            raise media.MediaError(f"{view} video: {e}") from None
    files = _outputs(context, out)
    meta = {**info.as_metadata(), "source": f"{before.width}×{before.height} {before.codec} {before.fps:.2f} fps",
            **_sizes(files)}
    return Output(StageFiles(files, scratch=out), metadata=meta)


class ValidationConfig(Config):
    """Run configuration of stage 2. view_check: `refuse` (default) stops a job whose videos are in the wrong
    slots or show the same view twice; `warn` only records it (`igait demo`, whose one licensed walking clip is
    a side view, uses it)."""

    view_check: str = "refuse"


@stage_asset(
    kinds={"mediapipe", "json"},
    description="Stage 2: is one whole person visible enough, and walking, in each view? MediaPipe pose on "
                "sampled frames, every person found and tracked; fails the run (after writing validation.json) "
                "when a view is unusable, so later stages never start on a rejected job.",
)
def validation_report(context: AssetExecutionContext, config: ValidationConfig, storage: StorageResource,
                      converted_video: StageFiles) -> Output[StageFiles]:
    job_id = _job_id(context)
    out = _scratch(context)
    with stage_errors(context):
        if config.view_check not in ("refuse", "warn"):
            raise ValueError(f"view_check {config.view_check!r} is not one of refuse, warn")
        params = dataclasses.replace(validity.PARAMS, view_check=config.view_check)
        report = validity.validate({v: converted_video[f"{v}.mp4"] for v in VIEWS}, job_id, params,
                                   progress=lambda v, d, t: context.log.info(
                                       f"job {job_id}: validating {v} view, {d}/{t} samples"))
    (out / "validation.json").write_text(report.model_dump_json(indent=1))
    files = StageFiles(_outputs(context, out), scratch=out)
    meta = {"valid": report.valid, "reasons": MetadataValue.json(report.reasons),
            "view_check": report.view_check.get("verdict", ""),
            "walk_plot": _image_md(validity.plot_walks(report), "image/png", "the legs' stride rhythm per view")}
    for view, v in report.views.items():
        meta.update({f"{view}/person_ratio": v.person_ratio, f"{view}/full_body_ratio": v.full_body_ratio,
                     f"{view}/multiple_people_ratio": v.multiple_people_ratio, f"{view}/walking": v.walking,
                     f"{view}/frames_sampled": v.frames_sampled, f"{view}/view_seen": v.view_seen,
                     f"{view}/walker_coverage": v.walker_coverage,
                     f"{view}/walk": MetadataValue.json({k: v.walk.get(k) for k in validity.WALK_SUMMARY})})
        for w in v.warnings:
            context.log.warning(f"job {job_id}: {w}")
    for w in report.warnings:
        context.log.warning(w)
    if not report.valid:
        # validation.json is written either way: store it, then stop this job here.
        write_stage(storage.get(), job_id, _stage(context).number, files)
        raise Failure(description=f"job {job_id}: validation rejected the videos: " + "; ".join(report.reasons),
                      metadata={**meta, "validation_key": VALIDATION.key(job_id)},
                      allow_retries=False)
    return Output(files, metadata=meta)


@stage_asset(
    kinds={"ffmpeg", "video"},
    description="Stage 3, one view: the view cropped around the walker (union of the walker's box over time plus "
                "a margin), with {view}_crop.json describing the crop and the walker's track.",
)
def reframed_video(context: AssetExecutionContext, converted_video: StageFiles,
                   validation_report: StageFiles) -> Output[StageFiles]:
    job_id, view = _job_id(context), _view(context)
    out = _scratch(context)
    report = ValidationReport.model_validate_json(validation_report["validation.json"].read_text())
    with stage_errors(context):
        crop = reframe.reframe_view(converted_video[f"{view}.mp4"], report.views[view], out / f"{view}.mp4",
                                    progress=lambda p: context.log.info(f"job {job_id}: cropping {view} view {p:.0%}"))
    (out / f"{view}_crop.json").write_text(json.dumps(crop, indent=1))
    files = _outputs(context, out)
    meta = {"crop_box_px": MetadataValue.json(crop["box_px"]), "params": MetadataValue.json(crop["params"]),
            "size": f"{crop['output']['width']}×{crop['output']['height']}", **_sizes(files)}
    return Output(StageFiles(files, scratch=out), metadata=meta)


@stage_asset(
    kinds={"mediapipe", "video", "json"},
    description="Stage 4 (GPU), one view: MediaPipe BlazePose (full) on every frame of the reframed view, "
                "streamed; a keypoints JSON (33 named landmarks, normalised x/y/z, visibility, time) and an overlay "
                "video with the skeleton drawn. Detections that are not the walker are dropped.",
)
def keypoints(context: AssetExecutionContext, reframed_video: StageFiles) -> Output[StageFiles]:
    job_id, view = _job_id(context), _view(context)
    out = _scratch(context)
    crop = json.loads(reframed_video[f"{view}_crop.json"].read_text())
    with stage_errors(context):
        res = pose.extract_keypoints(
            reframed_video[f"{view}.mp4"], out, view, job_id,
            is_walker=reframe.gate_from_crop(crop), background=crop.get("background_track"),
            progress=lambda n, total: context.log.info(f"job {job_id}: pose {view} view, frame {n}/{total}"))
        if res.detected == 0:
            raise pose.PoseError(f"{view} view: no person detected in any frame")
    files = _outputs(context, out)
    meta = {"frames": res.frames, "detection_ratio": round(res.detection_ratio, 4),
            "rejected_not_walker": res.rejected, "fps": res.fps, "overlay_preview": _overlay_preview(res),
            "model": res.model, **_sizes(files)}
    return Output(StageFiles(files, scratch=out), metadata=meta)


def _overlay_preview(res: pose.KeypointsResult) -> MetadataValue:
    """A still from the middle of the walker's passage in the overlay video."""
    cap = cv2.VideoCapture(str(res.overlay_path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, res.middle_detected)
    ok, frame = cap.read()
    cap.release()
    return _thumbnail_md(frame, "overlay") if ok else MetadataValue.text("no frame")


def _keypoints_of(files: StageFiles, view: str) -> Keypoints:
    return Keypoints.model_validate_json(files[f"{view}_keypoints.json"].read_text())


@stage_asset(
    kinds={"numpy", "json"}, code_version="3",
    description="Stage 5: heel strikes (heel) and toe-offs (ankle) per foot from the keypoints (side view first, "
                "front view as support), steady strides (no gait initiation/termination, none cut by the frame "
                "edge), gait parameters with the strides each used (cadence, stride time and CV, step-time "
                "asymmetry, stance, speed in leg lengths/s, ...), per-leg hip/knee joint-angle cycle curves with "
                "ROM and symmetry (from at least 2 steady cycles per leg; front ab/adduction only where the 2-D "
                "projection is valid and within plausibility bounds), the cross-view check that both videos show "
                "the same walker, the algorithm settings; plots of the events and of the per-leg curves.",
)
def gait_cycles(context: AssetExecutionContext, keypoints: StageFiles) -> Output[StageFiles]:
    job_id = _job_id(context)
    out = _scratch(context)
    side, front = _keypoints_of(keypoints, "side"), _keypoints_of(keypoints, "front")
    with stage_errors(context):
        gait = cycles.measure_gait(side, front, job_id)
        pngs = gait.plots()
    result = gait.cycles
    (out / "cycles.json").write_text(result.model_dump_json(indent=1))
    for name, png in pngs.items():
        (out / name).write_bytes(png)
    sym = result.kinematics.get("symmetry") or {}
    meta = {"num_cycles": len(result.strides), "excluded_strides": len(result.excluded_strides),
            "view_used": result.view_used,
            "heel_strikes/left": len(result.heel_strikes.get("left", [])),
            "heel_strikes/right": len(result.heel_strikes.get("right", [])),
            **{f"param/{k}": float(v) for k, v in result.parameters.items() if v is not None},
            **{f"n/{k}": d.n for k, d in result.parameter_details.items() if d.value is not None},
            **{f"not_measured/{k}": d.reason or "not measured" for k, d in result.parameter_details.items()
               if d.value is None},
            **{f"rom_si_pct/{j}": float(v["rom_symmetry_index_pct"]) for j, v in sym.items()
               if v.get("rom_symmetry_index_pct") is not None},
            "cross_view": MetadataValue.json(result.quality.get("cross_view") or {}),
            "plot": _image_md(pngs["cycles.png"], "image/png", "gait signals and events"),
            "per_leg_curves": _image_md(pngs["curves.png"], "image/png", "per-leg joint-angle curves")}
    for w in result.quality.get("warnings", []) or []:
        context.log.warning(f"job {job_id}: {w}")
    files = _outputs(context, out)
    meta.update(_sizes(files))
    return Output(StageFiles(files, scratch=out), metadata=meta)


MODEL_GATE = "model_gate"


@stage_asset(
    kinds={"pytorch", "json"}, code_version="3", deps=[SCREENING_MODEL],
    check_specs=[AssetCheckSpec(MODEL_GATE, asset="prediction", blocking=True,
                                description="The scoring model's card validates (schemas.ModelCard: domain and "
                                            "clinical validation status declared) and model.pt's sha256 matches "
                                            "it. Blocking: no results archive from an unverified model.")],
    description="Stage 6: the feature vector read from cycles.json (per-leg joint-angle curves, gait parameters) "
                "and patient data, scored by the model in use (screening_model: after a promotion every "
                "prediction made with another model shows stale; a backfill of prediction and results_archive "
                "re-scores them). prediction.json holds the "
                "classification (INDETERMINATE with the reasons when the job is outside the model's declared "
                "domain or a quality check failed), in_domain, out_of_range_inputs, clinically_validated, the "
                "score, the model's name/version/sha256 and the settings. Never reads keypoints.",
)
def prediction(context: AssetExecutionContext, model_store: ModelStoreResource, upload: StageFiles,
               gait_cycles: StageFiles):
    job_id = _job_id(context)
    out = _scratch(context)
    problems, checked = model_store.gate()
    with stage_errors(context):
        meta_in = JobMetadata.from_json(upload["metadata.json"].read_bytes())
        result = Cycles.model_validate_json(gait_cycles["cycles.json"].read_text())
        fs = features.compute_features(result, meta_in)
        model = model_store.load()
        pred = predict.predict(fs, model, job_id, flags=list(result.quality.get("flags") or []),
                               stage5_settings=result.settings)
    for note in model.notes:
        context.log.info(f"job {job_id}: model {note}")
    for note in fs.warnings:
        context.log.warning(f"job {job_id}: {note}")
    for r in pred.reasons:
        context.log.warning(f"job {job_id}: INDETERMINATE: {r}")
    context.log.info(f"job {job_id}: {pred.disclaimer}")
    (out / "prediction.json").write_text(pred.model_dump_json(indent=1))
    files = _outputs(context, out)
    yield Output(StageFiles(files, scratch=out), metadata={
        "classification": pred.classification, "score": pred.score, "in_domain": pred.in_domain,
        "reasons": MetadataValue.json(pred.reasons), "out_of_range_inputs": len(pred.out_of_range_inputs),
        "threshold": pred.threshold, "model": f"{pred.model.name} {pred.model.version}",
        "model_sha256": pred.model.sha256, "clinically_validated": pred.clinically_validated,
        "disclaimer": pred.disclaimer, **_sizes(files)})
    yield AssetCheckResult(check_name=MODEL_GATE, passed=not problems, severity=AssetCheckSeverity.ERROR,
                           metadata={"problems": MetadataValue.json(problems),
                                     **{k: str(v) for k, v in checked.items()}})


@stage_asset(
    kinds={"zip"},
    description="Stage 7: results.zip with every stage's files (stage 0 metadata, stages 1–6) and a short "
                "human-readable SUMMARY.txt.",
)
def results_archive(context: AssetExecutionContext, upload: StageFiles, converted_video: StageFiles,
                    validation_report: StageFiles, reframed_video: StageFiles, keypoints: StageFiles,
                    gait_cycles: StageFiles, prediction: StageFiles) -> Output[StageFiles]:
    job_id = _job_id(context)
    out = _scratch(context)
    inputs = {"upload": {"metadata.json": upload["metadata.json"]}, "converted_video": converted_video.files,
              "validation_report": validation_report.files, "reframed_video": reframed_video.files,
              "keypoints": keypoints.files, "gait_cycles": gait_cycles.files, "prediction": prediction.files}
    stages = {stage_of_asset(name).number: files for name, files in inputs.items()}
    summary = archive.summary_text(
        job_id, ValidationReport.model_validate_json(validation_report["validation.json"].read_text()),
        Cycles.model_validate_json(gait_cycles["cycles.json"].read_text()),
        Prediction.model_validate_json(prediction["prediction.json"].read_text()))
    manifest = archive.build_archive(job_id, stages, summary, out / "results.zip")
    files = _outputs(context, out)
    return Output(StageFiles(files, scratch=out), metadata={
        "files": len(manifest), "summary": MetadataValue.md(f"```\n{summary}\n```"), **_sizes(files)})


STAGE_ASSETS = [*converted_video, validation_report, *reframed_video, *keypoints, gait_cycles, prediction,
                results_archive]
