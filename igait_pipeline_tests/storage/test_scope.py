"""Each stage's storage handle touches only what layout.ACCESS grants it, on local disk and on GCS (the emulator).

Every pipeline stage (each view of a per-view stage) tries to write its files into every other stage's folder
and into another job's folder, to read what it does not read, and to delete elsewhere: each attempt raises a
ScopeError naming the stage, the job and the key, and leaves storage exactly as it was. Its own writes and its
inputs' reads go through. The uploads path may only create stage_0 objects. Then a stage asset run by Dagster
that reaches for another stage's folder (through its storage resource, or through a wrong stage number in its
metadata) fails its run with that message.
"""
import re

import pytest
from dagster import AssetExecutionContext, instance_for_test, materialize

from igait_pipeline import assets
from igait_pipeline.layout import (
    ACCESS,
    PIPELINE_STAGES,
    STAGES,
    UPLOAD,
    VIEWS,
    Access,
    glob_within,
    job_key,
    stage_template,
    within,
)
from igait_pipeline.resources import build_resources
from igait_pipeline.resources.io_manager import StorageResource
from igait_pipeline.storage import (
    LocalStorage,
    Scope,
    ScopedStorage,
    ScopeError,
    StageFiles,
    read_stage,
    storage_from_uri,
    write_stage,
)
from igait_pipeline.storage.scope import scoped
from igait_pipeline.storage.scope import within as scope_within

JOB, OTHER = "fam1_1", "fam2_7"


@pytest.fixture(params=["local", "gcs"])
def backend(request, tmp_path):
    """(storage, root URI) on local disk, or in a fresh prefix of the GCS emulator's bucket."""
    if request.param == "local":
        root = str(tmp_path / "store")
        return LocalStorage(root), root
    root = request.getfixturevalue("gcs_root")
    return storage_from_uri(root), root


def _seed(storage) -> dict[str, bytes]:
    """Every stage's files of two jobs, as the pipeline would have left them; returns key -> bytes."""
    objects = {}
    for job in (JOB, OTHER):
        for st in STAGES:
            for name in st.files:
                objects[job_key(job, st.number, name)] = f"{job}/{st.number}/{name}".encode()
    for key, data in objects.items():
        storage.write_bytes(key, data)
    return objects


def _snapshot(storage) -> dict[str, bytes]:
    return {o.key: storage.read_bytes(o.key) for o in storage.list("jobs/")}


def _files(tmp_path, names) -> StageFiles:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    for n in names:
        (out / n).write_bytes(b"rogue " + n.encode())
    return StageFiles({n: out / n for n in names})


def _steps():
    """(stage, view) of every step of the pipeline: one per per-job stage, one per view of a per-view stage."""
    return [(s, v) for s in PIPELINE_STAGES for v in (VIEWS if s.per_view else (None,))]


def _refused(fn, *parts: str) -> str:
    with pytest.raises(ScopeError) as e:
        fn()
    msg = str(e.value)
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"
    return msg


def test_every_stage_stays_in_its_folder_and_its_job(backend, tmp_path):
    storage, _ = backend
    before = _seed(storage)
    assert _snapshot(storage) == before
    for st, view in _steps():
        h = ScopedStorage(storage, Scope.for_stage(st, JOB, view))
        step = f"{st.asset}_{view}" if view else st.asset
        who = f"stage {st.number} ({st.label})"
        mine = st.files_of(view)
        for other in STAGES:
            if other.number == st.number:
                continue
            # its own files, written into another stage's folder of its job (and one key written directly)
            key = job_key(JOB, other.number, mine[0])
            _refused(lambda: write_stage(h, JOB, other.number, _files(tmp_path, mine), view=view),
                     who, f"step {step}", f"job {JOB}", f"jobs/{JOB}/stage_{other.number}/")
            _refused(lambda: h.write_bytes(key, b"x"), who, f"job {JOB}", repr(key))
            _refused(lambda: h.delete(job_key(JOB, other.number, other.files[0])), "may not delete", who)
            if other.number not in st.reads:
                _refused(lambda: read_stage(h, JOB, other.number, tmp_path / "cache"), who, "may not",
                         f"jobs/{JOB}/stage_{other.number}/")
                _refused(lambda: h.read_bytes(job_key(JOB, other.number, other.files[0])), "may not read")
                _refused(lambda: h.copy(job_key(JOB, other.number, other.files[0]),
                                        job_key(JOB, st.number, mine[0])), "may not read")
        # its own folder and its inputs, but of another job
        _refused(lambda: write_stage(h, OTHER, st.number, _files(tmp_path, mine), view=view),
                 who, f"job {JOB}", f"jobs/{OTHER}/stage_{st.number}/")
        for n in (*st.reads, st.number):
            _refused(lambda: read_stage(h, OTHER, n, tmp_path / "cache"), who, f"jobs/{OTHER}/stage_{n}/")
            _refused(lambda: h.read_bytes(job_key(OTHER, n, STAGES[n].files[0])), who, f"job {JOB}",
                     f"jobs/{OTHER}/stage_{n}/")
        # a whole-bucket listing, and keys that only look like its own folder
        _refused(lambda: list(h.list("jobs/")), "may not list")
        for sly in (f"jobs/{JOB}/stage_{st.number}", f"jobs/{JOB}/x/../stage_{st.number}/a",
                    f"jobs/{JOB}/stage_{st.number}x/a", f"jobs/{JOB}_1/stage_{st.number}/a",
                    f"jobs//stage_{st.number}/a"):
            _refused(lambda: h.write_bytes(sly, b"x"), who)
        assert _snapshot(storage) == before, f"{step}: a refused access changed storage"

    # What each step may do goes through: read its inputs, replace its own files (with its staging on GCS).
    for st, view in _steps():
        h = ScopedStorage(storage, Scope.for_stage(st, JOB, view))
        for n in st.reads:
            got = read_stage(h, JOB, n, tmp_path / "cache" / st.asset, view=view if STAGES[n].per_view else None)
            assert got.names()
        keys = write_stage(h, JOB, st.number, _files(tmp_path, st.files_of(view)), view=view)
        assert all(storage.read_bytes(k).startswith(b"rogue ") for k in keys.values())
    after = _snapshot(storage)
    assert {k for k in after if "/." not in k and after[k] != before.get(k)} == {job_key(JOB, s.number, f)
                                                           for s in PIPELINE_STAGES for f in s.files}
    # on GCS each commit left its manifest and its one commit folder, nothing else hidden
    hidden = {o.key.split("/")[3].split(".")[1] for o in storage.list(f"jobs/{JOB}/") if "/." in o.key}
    assert hidden <= {"manifest", "commit"} and (hidden == set()) == storage.swaps_directories


def test_the_uploads_path_only_creates_stage_0_objects(backend, tmp_path):
    storage, _ = backend
    h = ScopedStorage(storage, Scope.uploads())
    src = tmp_path / "front.mp4"
    src.write_bytes(b"video")
    h.upload(src, job_key(JOB, 0, "front.mp4"))
    h.write_bytes(job_key(OTHER, 0, "metadata.json"), b"{}")
    assert [o.key for o in h.list("jobs/", match_glob="jobs/fam*_*/stage_0/metadata.json")] == [
        job_key(OTHER, 0, "metadata.json")]
    _refused(lambda: h.upload(src, job_key(JOB, 0, "front.mp4")), "the uploads path", "may not overwrite",
             f"jobs/{JOB}/stage_0/front.mp4")
    _refused(lambda: h.delete(job_key(JOB, 0, "front.mp4")), "may not delete")
    for st in PIPELINE_STAGES:
        _refused(lambda: h.write_bytes(job_key(JOB, st.number, st.files[0]), b"x"), "the uploads path",
                 f"jobs/{JOB}/stage_{st.number}/")
        _refused(lambda: h.read_bytes(job_key(JOB, st.number, st.files[0])), "may not read")
    for key in ("models/in_use.json", "research/labels.csv", "jobs/not a job/stage_0/x"):
        _refused(lambda: h.write_bytes(key, b"x"), "the uploads path", repr(key))
    _refused(lambda: list(h.list("jobs/")), "may not list")
    _refused(lambda: list(h.list("jobs/", match_glob="jobs/**/metadata.json")), "may not list")
    assert sorted(o.key for o in storage.list("jobs/")) == [job_key(JOB, 0, "front.mp4"),
                                                            job_key(OTHER, 0, "metadata.json")]


def test_scoped_handles_cannot_be_widened():
    inner = LocalStorage("/nonexistent-root")
    h = ScopedStorage(inner, Scope.for_stage(STAGES[4], JOB, "front"))
    with pytest.raises(ScopeError, match="cannot be re-scoped"):
        scoped(h, Scope.for_stage(STAGES[7], JOB))
    assert scoped(h) is h
    with scope_within(Scope.for_stage(STAGES[5], JOB)):
        assert scoped(inner).scope.access == ACCESS["stage_5"]
    assert scoped(inner) is inner


def test_access_table_follows_the_stage_table():
    for st in PIPELINE_STAGES:
        a = ACCESS[f"stage_{st.number}"]
        assert a.writes == (f"jobs/{{job}}/stage_{st.number}/",)
        assert a.reads == tuple(stage_template(n) for n in st.reads) + st.reads_shared
    assert ACCESS["stage_7"].reads == tuple(stage_template(n) for n in range(7))
    assert ACCESS["stage_6"].reads == (stage_template(0), stage_template(5), "models/")
    assert ACCESS["uploads"].writes == (stage_template(UPLOAD.number),) and ACCESS["uploads"].create_only
    assert not any(within(t, job_key(JOB, 0, "front.mp4"), None) for t in ACCESS["control"].writes)
    # `{job}` is exactly one job ID
    t = stage_template(4)
    assert within(t, "jobs/a_1/stage_4/x", "a_1") and not within(t, "jobs/a_1/stage_4/x", "a_2")
    assert within(t, "jobs/a_1/stage_4/x", None) and not within(t, "jobs/a/b_1/stage_4/x", None)
    assert not within(t, "jobs/a_1/stage_4/", None) and within(t, "jobs/a_1/stage_4/", None, folder=True)
    assert glob_within(stage_template(0), "jobs/u_*/stage_0/metadata.json", None)
    assert not glob_within(stage_template(0), "jobs/u_*/stage_0/metadata.json", "u_1")
    assert not glob_within(stage_template(0), "jobs/*/stage_*/metadata.json", None)
    assert not glob_within(stage_template(0), "jobs/**/metadata.json", None)
    assert Access("x", "x", (), ()).readable == ()


# --- a stage asset, run by Dagster, that reaches outside its folder -----------------------------------------

def _rogue_cycles(target_stage: int):
    """A gait_cycles asset (stage 5) whose body writes, through its storage resource, into another stage."""
    @assets.stage_asset(description="a buggy stage 5", kinds={"json"})
    def gait_cycles(context: AssetExecutionContext, storage: StorageResource, keypoints: StageFiles):
        storage.get().write_bytes(job_key(context.partition_key, target_stage, "front_keypoints.json"), b"{}")
        raise AssertionError("not reached")

    return gait_cycles


def _materialize(asset_defs, selection, root: str, job_id: str):
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("jobs", [job_id])
        return materialize(asset_defs, selection=selection, partition_key=job_id, instance=instance,
                           resources=build_resources(root), raise_on_error=False)


def _failure_message(result) -> str:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return event.step_failure_data.error.to_string()


def test_a_stage_asset_writing_into_another_stage_fails_its_run(backend):
    storage, root = backend
    before = _seed(storage)
    others = [a for a in assets.STAGE_ASSETS if a.key.to_user_string() != "gait_cycles"]
    for target in (4, 6):
        rogue = _rogue_cycles(target)
        result = _materialize([assets.upload, *others, rogue], [rogue], root, JOB)
        assert not result.success
        msg = _failure_message(result)
        assert "ScopeError" in msg and "stage 5 (gait cycles)" in msg and f"job {JOB}" in msg
        assert f"jobs/{JOB}/stage_{target}/front_keypoints.json" in msg
    assert _snapshot(storage) == before


def test_a_stage_asset_claiming_another_stage_number_is_refused_on_output(backend, tmp_path):
    """The IO manager places files by the asset's `igait/stage` metadata, but scopes the write by the asset's
    key: a stage 5 asset that says it is stage 4 cannot overwrite stage 4."""
    from dagster import Output, asset

    from igait_pipeline.layout import FILES_META, STAGE_META
    from igait_pipeline.partitions import job_partitions

    storage, root = backend
    before = _seed(storage)
    out = tmp_path / "scratch"
    out.mkdir()
    (out / "front_keypoints.json").write_bytes(b"{}")

    @asset(name="gait_cycles", partitions_def=job_partitions, metadata={STAGE_META: 4, FILES_META: []})
    def lying(context, keypoints_front: StageFiles) -> Output[StageFiles]:
        return Output(StageFiles({"front_keypoints.json": out / "front_keypoints.json"}))

    result = _materialize([assets.upload, *assets.keypoints, *assets.reframed_video, *assets.converted_video,
                           assets.validation_report, lying], [lying], root, JOB)
    assert not result.success
    msg = _failure_message(result)
    assert re.search(rf"stage 5 \(gait cycles\).*job {JOB}: may not write 'jobs/{JOB}/stage_4/front_keypoints.json'",
                     msg), msg
    assert _snapshot(storage) == before
